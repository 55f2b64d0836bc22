"""Arithmetic cost of one completion and the machine's measured matmul rate."""

from __future__ import annotations

import time


def lstm_step_flops(inputs: int, units: int) -> int:
    """Multiply-adds of one LSTM step (4 gates over [x, h]) counted as 2 FLOPs, plus the gate arithmetic."""
    return 2 * 4 * units * (inputs + units) + 10 * units


def flops_per_wave(architecture: dict, observed_steps: int) -> int:
    """FLOPs to complete one wave of `observed_steps` (capped at the model's context) for the full horizon."""
    units, horizon, features = architecture["units"], architecture["horizon"], architecture["features"]
    width = 1 if architecture["channel_independent"] else features
    steps = min(observed_steps, architecture["max_context"])
    encoder = sum(
        steps * lstm_step_flops(width if i == 0 else units, units) for i in range(architecture["encoder_depth"])
    )
    # the lags and the season's strength into the decoder, the lags to the head
    lags = architecture.get("seasons_back", 1) if architecture.get("seasonal_lag") else 0
    strength = 1 if lags else 0
    decoder_step = (
        sum(
            lstm_step_flops(width + lags + strength if i == 0 else units, units)
            for i in range(architecture["decoder_depth"])
        )
        + 2 * (units + lags) * width
    )
    sequences = features // width
    return sequences * (encoder + horizon * decoder_step + strength * season_flops(architecture["max_context"]))


def season_flops(context: int) -> int:
    """The season's estimate: an FFT there and back of the padded context (5 N log2 N each) and its power."""
    size = 1 << (2 * context - 1).bit_length()
    return 2 * 5 * size * (size.bit_length() - 1) + 3 * size


def model_waves_per_second(model, steps: int, batch: int, threads: int = 1, repeats: int = 5) -> float:
    """In-process rate of the compiled inference function (no HTTP) in waves/s, `threads` calls at a time."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from training.predict import Predictor

    predict = Predictor(model, max_batch=batch)
    waves = [np.sin(np.arange(steps)[:, None] / 13.0 + np.arange(model.input_shape[-1])).astype(np.float32)] * batch
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: predict(waves), range(threads)))  # compile and warm
        started = time.perf_counter()
        list(pool.map(lambda _: [predict(waves) for _ in range(repeats)], range(threads)))
        return batch * repeats * threads / (time.perf_counter() - started)


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    """Measured float32 matmul rate of this machine through TensorFlow, in GFLOP/s."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.linalg.matmul(a, b).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        c = tf.linalg.matmul(a, b)
    c.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9
