"""The one compiled inference path: XLA on fixed shapes, waves left-padded to the context and masked.

Every wave is cropped to the model's context (the model reads no more) and left-padded with a mask, so waves
of any length run together, and a wave's answer does not depend on what it was batched with (the masked
steps change neither the normalization nor the LSTM states). Batches are padded to a few bucket sizes, so XLA
compiles a handful of programs once, at warm-up, and nothing is traced or compiled per request.

A channel-independent model (features folded into the batch) runs every feature of a wave as its own
one-feature sequence through its seq2seq core; normalization is per feature, so the answer is the full
model's, and waves with any number of features share a call. Its unit of batching is one such sequence.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf

from training.config import ModelConfig
from training.model import build_model


def batch_buckets(max_batch: int) -> tuple[int, ...]:
    """The batch sizes compiled for `max_batch`: powers of two below it, and itself."""
    return tuple(sorted({2**i for i in range(max_batch.bit_length()) if 2**i < max_batch} | {max_batch}))


def is_channel_independent(model: keras.Model) -> bool:
    """Whether the model folds its features into the batch (each feature its own sequence, shared weights)."""
    return any(layer.name == "fold_features" for layer in model.layers)


def single_channel_model(model: keras.Model) -> keras.Model:
    """A channel-independent model's one-feature twin: input (batch, T, 1), the same seq2seq core and weights."""
    config = ModelConfig(
        features=1,
        horizon=int(model.get_layer("decoder_clock").horizon),
        max_context=int(model.get_layer("crop_context").max_steps),
        channel_independent=True,
    )
    return build_model(config, core=model.get_layer("seq2seq"))


# Keras warns that the outer functional model "destroys" the input mask; its layers do receive it.
warnings.filterwarnings("ignore", message=".*does not support masking and will therefore destroy the mask.*")


class Predictor:
    """Numpy in, numpy out: `predictor(waves)` completes a batch of waves of any lengths (T_i, F_i).

    `features` is the number of features every wave must have, or None when any number works (a
    channel-independent model). A model call computes rows: one per wave, or for a channel-independent model
    one per feature of each wave (`rows(wave)`). `buckets` are the row counts compiled: those of 1, 2, 4, ...
    `max_batch` waves as wide as the model was trained on (for a channel-independent model of 5 features and
    `max_batch` 32: 5, 10, ..., 160 rows).
    """

    def __init__(self, model: keras.Model, max_batch: int = 32):
        trained_features = int(model.input_shape[-1])
        self.horizon = int(model.output_shape[1])
        self.context = int(model.get_layer("crop_context").max_steps)
        self.channel_independent = is_channel_independent(model)
        if self.channel_independent:
            model, self.features, self._width = single_channel_model(model), None, 1
        else:
            self.features = self._width = trained_features
        self.buckets = tuple(size * trained_features // self._width for size in batch_buckets(max_batch))
        spec = [
            tf.TensorSpec([None, self.context, self._width], tf.float32, name="wave"),
            tf.TensorSpec([None, self.context], tf.bool, name="mask"),
        ]

        @tf.function(input_signature=spec, jit_compile=True)
        def complete(wave, mask):
            return model(wave, mask=mask, training=False)

        self._complete = complete
        complete.get_concrete_function()  # traced now, in the caller's order: see warm_up

    def rows(self, wave: np.ndarray) -> int:
        """Rows of a model call that `wave` (T, F) takes: F for a channel-independent model, else 1."""
        return int(np.shape(wave)[1]) if self.channel_independent else 1

    def __call__(self, waves: np.ndarray | Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Completions (horizon, F_i) of waves (T_i, F_i), in order: one array (batch, horizon, F) when all
        waves have the same F (always, for a fixed-width model), else a list."""
        waves = [np.asarray(wave, np.float32)[-self.context :] for wave in waves]
        rows = [column[:, None] for wave in waves for column in wave.T] if self.channel_independent else waves
        largest = self.buckets[-1]
        parts = [self._run(rows[i : i + largest]) for i in range(0, len(rows), largest)]
        out = np.concatenate(parts) if parts else np.zeros((0, self.horizon, self._width), np.float32)
        if not self.channel_independent:
            return out
        widths = [wave.shape[1] for wave in waves]
        ends = np.cumsum(widths, dtype=int)
        completions = [out[end - width : end, :, 0].T for width, end in zip(widths, ends, strict=True)]
        return np.stack(completions) if len(set(widths)) == 1 else completions

    def _run(self, rows: list[np.ndarray]) -> np.ndarray:
        """One compiled call on `rows` (T_i, width), padded to the smallest bucket that holds them."""
        size = next(b for b in self.buckets if b >= len(rows))
        padded = np.zeros((size, self.context, self._width), np.float32)
        mask = np.zeros((size, self.context), bool)
        for i, row in enumerate(rows):
            padded[i, -len(row) :] = row
            mask[i, -len(row) :] = True
        padded[len(rows) :], mask[len(rows) :] = padded[0], mask[0]  # filler rows: copies of a real one
        return self._complete(padded, mask).numpy()[: len(rows)]

    def warm_up(self) -> None:
        """Compile every bucket now (two at a time), so no request waits for XLA."""
        row = np.zeros((self.context, self._width), np.float32)
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda size: self._run([row] * size), self.buckets))

    def trace_count(self) -> int:
        """Times the inference function was traced (1 once warm: shapes never change)."""
        return self._complete.experimental_get_tracing_count()
