"""The one compiled inference path: XLA on a few fixed shapes, waves left-padded to a length bucket and masked.

Every wave is cropped to the model's context (the model reads no more) and left-padded with a mask to the
smallest of a few length buckets that holds it (`length_buckets`, the last one the whole context), so a short
wave pays for the steps it has, waves of any length run together, and a wave's answer does not depend on what it
was batched with nor on its bucket (the masked steps change neither the normalization, nor the LSTM states, nor
the season SeasonalLag finds: tests/test_buckets.py). Batches are padded to a few sizes (`batch_buckets`), so
XLA compiles one program per (rows, steps) shape, and nothing is traced per request: the function is traced once
for every shape.

A channel-independent model (features folded into the batch) runs every feature of a wave as its own
one-feature sequence through its seq2seq core; normalization is per feature, so the answer is the full
model's, and waves with any number of features share a call. Its unit of batching is one such sequence.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf

from training.config import ModelConfig
from training.model import build_model

Shape = tuple[int, int]  # (rows, steps) of one compiled program


def batch_buckets(max_batch: int) -> tuple[int, ...]:
    """The batch sizes compiled for `max_batch`: powers of two below it, and itself."""
    return tuple(sorted({2**i for i in range(max_batch.bit_length()) if 2**i < max_batch} | {max_batch}))


def length_buckets(context: int, count: int = 3, align: int = 16) -> tuple[int, ...]:
    """The padded lengths compiled for a model of `context` steps: `count` of them, about evenly spaced (the
    context itself the last), each a multiple of `align` shorter than the context: 108, 204, 300.

    A wave's steps then sit at the same places modulo `align` (a SIMD vector's floats, 16 for AVX-512) in every
    bucket, so XLA's vectorized loops round each of them alike and a wave's answer is the same to the bit in any
    bucket (measured on the committed models; with 100, 200, 300 answers differed by up to 1.2e-5 after the
    decoder's 150 steps).
    """
    shorter = {context - align * ((context - context * i // count) // align) for i in range(1, count)}
    return tuple(sorted(shorter | {context}))


def is_channel_independent(model: keras.Model) -> bool:
    """Whether the model folds its features into the batch (each feature its own sequence, shared weights)."""
    return any(layer.name == "fold_features" for layer in model.layers)


def single_channel_model(model: keras.Model) -> keras.Model:
    """A channel-independent model's one-feature twin: input (batch, T, 1), the same seq2seq core and weights."""
    reads = int(model.get_layer("crop_context").max_steps)
    encoder = [layer for layer in model.layers if layer.name == "crop_encoder"]  # a longer season look back
    config = ModelConfig(
        features=1,
        horizon=int(model.get_layer("decoder_clock").horizon),
        max_context=int(encoder[0].max_steps) if encoder else reads,
        channel_independent=True,
        seasonal_lag=bool(encoder),
        history=reads if encoder else 0,
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
    `max_batch` 32: 5, 10, ..., 160 rows); `lengths` the padded lengths (`length_buckets`, or the given ones).

    A program is compiled on its first use, or before by `warm_up`. Programs `defer`red to a later warm-up are not
    compiled on use meanwhile: their rows run in more calls of the row counts compiled at their length, or padded to
    a longer length bucket, instead.
    """

    def __init__(self, model: keras.Model, max_batch: int = 32, lengths: Sequence[int] | None = None):
        trained_features = int(model.input_shape[-1])
        self.horizon = int(model.output_shape[1])
        self.context = int(model.get_layer("crop_context").max_steps)
        self.channel_independent = is_channel_independent(model)
        if self.channel_independent:
            model, self.features, self._width = single_channel_model(model), None, 1
        else:
            self.features = self._width = trained_features
        self.buckets = tuple(size * trained_features // self._width for size in batch_buckets(max_batch))
        encoder = [layer for layer in model.layers if layer.name == "crop_encoder"]
        # a model whose season look back reads more than its encoder: the encoder's buckets, then the whole of it
        # (longer waves pay only for the look back, the encoder reading their last steps in any bucket)
        default = length_buckets(int(encoder[0].max_steps)) if encoder else length_buckets(self.context)
        # the last steps the model reads, the gap limit holding over each: its encoder's, and its whole context
        self.windows = tuple(sorted({int(encoder[0].max_steps), self.context} if encoder else {self.context}))
        chosen = default if lengths is None else lengths
        self.lengths = tuple(sorted({min(int(steps), self.context) for steps in chosen} | {self.context}))
        self._deferred: frozenset[Shape] = frozenset()  # replaced, never changed in place: read from any thread
        self._deferring = threading.Lock()
        spec = [
            tf.TensorSpec([None, None, self._width], tf.float32, name="wave"),
            tf.TensorSpec([None, None], tf.bool, name="mask"),
        ]

        @tf.function(input_signature=spec, jit_compile=True)
        def complete(wave, mask):
            return model(wave, mask=mask, training=False)

        self._complete = complete
        complete.get_concrete_function()  # traced once, now; XLA compiles each shape on its first call

    @property
    def shapes(self) -> list[Shape]:
        """Every (rows, steps) program, the whole context's first, largest rows first within a length."""
        return [(size, steps) for steps in reversed(self.lengths) for size in reversed(self.buckets)]

    @property
    def deferred(self) -> list[Shape]:
        """The deferred programs not yet compiled, in the order of `shapes`."""
        return [shape for shape in self.shapes if shape in self._deferred]

    def rows(self, wave: np.ndarray) -> int:
        """Rows of a model call that `wave` (T, F) takes: F for a channel-independent model, else 1."""
        return int(np.shape(wave)[1]) if self.channel_independent else 1

    def length_bucket(self, wave: np.ndarray) -> int:
        """The padded length `wave` (T, F) runs at: the smallest length bucket that holds its last `context` steps."""
        return next(length for length in self.lengths if length >= min(len(wave), self.context))

    def __call__(self, waves: np.ndarray | Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Completions (horizon, F_i) of waves (T_i, F_i), in order: one array (batch, horizon, F) when all
        waves have the same F (always, for a fixed-width model), else a list. Each length bucket's waves run in
        calls of their own."""
        waves = [np.asarray(wave, np.float32)[-self.context :] for wave in waves]
        rows = [column[:, None] for wave in waves for column in wave.T] if self.channel_independent else waves
        out = np.zeros((len(rows), self.horizon, self._width), np.float32)
        buckets = np.array([self.length_bucket(row) for row in rows], int)
        for bucket in np.unique(buckets):
            indices, (steps, sizes) = np.flatnonzero(buckets == bucket), self._plan(bucket)
            for start in range(0, len(indices), sizes[-1]):
                chunk = indices[start : start + sizes[-1]]
                out[chunk] = self._run([rows[i] for i in chunk], sizes, steps)
        if not self.channel_independent:
            return out
        widths = [wave.shape[1] for wave in waves]
        ends = np.cumsum(widths, dtype=int)
        completions = [out[end - width : end, :, 0].T for width, end in zip(widths, ends, strict=True)]
        return np.stack(completions) if len(set(widths)) == 1 else completions

    def _plan(self, bucket: int) -> tuple[int, list[int]]:
        """The padded length and the row counts a length bucket's rows run at: the bucket and its row counts not
        deferred, or while all of them are, the next longer bucket's (the same answers: see `length_buckets`)."""
        deferred = self._deferred
        for steps in self.lengths[self.lengths.index(bucket) :]:
            sizes = [size for size in self.buckets if (size, steps) not in deferred]
            if sizes:
                return steps, sizes
        raise AssertionError("defer() never defers the smallest batch of the whole context")

    def _run(self, rows: list[np.ndarray], sizes: list[int], steps: int) -> np.ndarray:
        """One compiled call on `rows` (T_i <= steps, width), padded to the smallest of `sizes` that holds them."""
        size = next(b for b in sizes if b >= len(rows))
        padded = np.zeros((size, steps, self._width), np.float32)
        mask = np.zeros((size, steps), bool)
        for i, row in enumerate(rows):
            padded[i, steps - len(row) :] = row
            mask[i, steps - len(row) :] = True
        padded[len(rows) :], mask[len(rows) :] = padded[0], mask[0]  # filler rows: copies of a real one
        return self._complete(padded, mask).numpy()[: len(rows)]

    def defer(self, shapes: Iterable[Shape]) -> None:
        """Compile `shapes` only when `warm_up` is given them (e.g. in the background); meanwhile their rows run in
        the compiled row counts of their length, or of the next longer one. The smallest batch of the whole
        context is never deferred."""
        self._deferred = frozenset(shapes) - {(self.buckets[0], self.context)}

    def warm_up(self, shapes: Iterable[Shape] | None = None) -> None:
        """Compile `shapes` (default: every program not deferred) now, two at a time, so no request waits for XLA."""
        chosen = [shape for shape in self.shapes if shape not in self._deferred] if shapes is None else list(shapes)

        def compile_one(shape: Shape) -> None:
            size, steps = shape
            self._run([np.zeros((steps, self._width), np.float32)] * size, [size], steps)
            with self._deferring:
                self._deferred = self._deferred - {shape}

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(compile_one, chosen))

    def trace_count(self) -> int:
        """Times the inference function was traced (1: every shape runs the one trace)."""
        return self._complete.experimental_get_tracing_count()
