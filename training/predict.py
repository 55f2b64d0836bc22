"""The one compiled inference path: XLA on fixed shapes, waves left-padded to the context and masked.

Every wave is cropped to the model's context (the model reads no more) and left-padded with a mask, so waves
of any length run together, and a wave's answer does not depend on what it was batched with (the masked
steps change neither the normalization nor the LSTM states). Batches are padded to a few bucket sizes, so XLA
compiles a handful of programs once, at warm-up, and nothing is traced or compiled per request.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf


def batch_buckets(max_batch: int) -> tuple[int, ...]:
    """The batch sizes compiled for `max_batch`: powers of two below it, and itself."""
    return tuple(sorted({2**i for i in range(max_batch.bit_length()) if 2**i < max_batch} | {max_batch}))


# Keras warns that the outer functional model "destroys" the input mask; its layers do receive it.
warnings.filterwarnings("ignore", message=".*does not support masking and will therefore destroy the mask.*")


class Predictor:
    """Numpy in, numpy out: `predictor(waves)` completes a batch of waves of any lengths (T_i, F)."""

    def __init__(self, model: keras.Model, max_batch: int = 32):
        self.features = int(model.input_shape[-1])
        self.horizon = int(model.output_shape[1])
        self.context = int(model.get_layer("crop_context").max_steps)
        self.buckets = batch_buckets(max_batch)
        spec = [
            tf.TensorSpec([None, self.context, self.features], tf.float32, name="wave"),
            tf.TensorSpec([None, self.context], tf.bool, name="mask"),
        ]

        @tf.function(input_signature=spec, jit_compile=True)
        def complete(wave, mask):
            return model(wave, mask=mask, training=False)

        self._complete = complete

    def __call__(self, waves: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Completions (batch, horizon, features) of waves (batch, T, features) or a list of (T_i, features)."""
        waves = list(waves)
        if not waves:
            return np.zeros((0, self.horizon, self.features), np.float32)
        largest = self.buckets[-1]
        return np.concatenate([self._run(waves[i : i + largest]) for i in range(0, len(waves), largest)])

    def _run(self, waves: list[np.ndarray]) -> np.ndarray:
        size = next(b for b in self.buckets if b >= len(waves))
        padded = np.zeros((size, self.context, self.features), np.float32)
        mask = np.zeros((size, self.context), bool)
        for row, wave in enumerate(waves):
            recent = np.asarray(wave, np.float32)[-self.context :]
            padded[row, -len(recent) :] = recent
            mask[row, -len(recent) :] = True
        padded[len(waves) :], mask[len(waves) :] = padded[0], mask[0]  # filler rows: copies of a real one
        return self._complete(padded, mask).numpy()[: len(waves)]

    def warm_up(self) -> None:
        """Compile every bucket now (two at a time), so no request waits for XLA."""
        wave = np.zeros((1, self.context, self.features), np.float32)
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda size: self([wave[0]] * size), self.buckets))

    def trace_count(self) -> int:
        """Times the inference function was traced (1 once warm: shapes never change)."""
        return self._complete.experimental_get_tracing_count()
