"""The one compiled inference path: a tf.function traced once for any batch size and input length."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

Predictor = Callable[[np.ndarray], np.ndarray]


def make_predictor(model: keras.Model) -> Predictor:
    """Wrap `model` in a tf.function with a dynamic (batch, time) signature; returns numpy in, numpy out."""
    features = model.input_shape[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None, features], tf.float32, name="wave")])
    def complete(wave):
        return model(wave, training=False)

    def predict(waves: np.ndarray) -> np.ndarray:
        return complete(tf.convert_to_tensor(waves, tf.float32)).numpy()

    predict.trace_count = lambda: complete.experimental_get_tracing_count()  # type: ignore[attr-defined]
    return predict


def predict_many(predict: Predictor, waves: Sequence[np.ndarray], max_batch: int = 256) -> list[np.ndarray]:
    """Complete waves of different lengths: equal lengths run together, results come back in input order."""
    results: list[np.ndarray | None] = [None] * len(waves)
    by_length: dict[int, list[int]] = {}
    for index, wave in enumerate(waves):
        by_length.setdefault(len(wave), []).append(index)
    for indices in by_length.values():
        for start in range(0, len(indices), max_batch):
            chunk = indices[start : start + max_batch]
            batch = np.stack([np.asarray(waves[i], np.float32) for i in chunk])
            for i, prediction in zip(chunk, predict(batch), strict=True):
                results[i] = prediction
    return results  # type: ignore[return-value]
