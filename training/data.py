"""Vectorized, seeded generator of the reference waves and of the augmented variants."""

from __future__ import annotations

import numpy as np

from training.config import SPLIT_CATEGORIES, DataSpec

REFERENCE = DataSpec()


def wavelengths(rng: np.random.Generator, n: int, features: int, split: str, spec: DataSpec) -> np.ndarray:
    """Per-wave, per-feature w = B + (category + u) / 6 with B in [min_base, max_base]."""
    category = SPLIT_CATEGORIES[split]
    base = rng.integers(spec.min_base, spec.max_base + 1, size=(n, features))
    return base + (category + rng.random((n, features))) / 6.0


def unit_waves(
    rng: np.random.Generator,
    n: int,
    length: int,
    features: int = 5,
    split: str = "train",
    spec: DataSpec = REFERENCE,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """`n` unit sines of `length` steps: feature f is sin(t / w_f + s_f), shape (n, length, features).

    t runs from 0 (the reference), or from each wave's `start` step: the same sine observed from later on.
    """
    w = wavelengths(rng, n, features, split, spec)
    phase = rng.random((n, features))
    t = np.arange(length, dtype=np.float64)[None, :, None]
    if start is not None:
        t = t + np.asarray(start, np.float64).reshape(n, 1, 1)
    return np.sin(t / w[:, None, :] + phase[:, None, :]).astype(np.float32)


def start_steps(rng: np.random.Generator, n: int, spec: DataSpec) -> np.ndarray:
    """Where each training wave starts: step 0 for a `reference_start_fraction`, else uniform in 0..max_start_step."""
    start = rng.integers(0, spec.max_start_step + 1, size=n)
    return np.where(rng.random(n) < spec.reference_start_fraction, 0, start)


def reference_batch(
    rng: np.random.Generator, n: int, split: str = "train", horizon: int = 150, spec: DataSpec = REFERENCE
) -> tuple[np.ndarray, np.ndarray]:
    """One reference batch: L ~ U[300, 449], observed = first L - horizon steps, target = last `horizon`."""
    length = int(rng.integers(2 * horizon, 3 * horizon))
    waves = unit_waves(rng, n, length, split=split, spec=spec)
    return waves[:, :-horizon], waves[:, -horizon:]


def scale_and_offset(
    rng: np.random.Generator,
    waves: np.ndarray,
    max_log10_amplitude: float,
    max_offset: float,
    min_log10: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply per-wave, per-feature amplitude (log-uniform) and offset; return waves, amplitude, offset."""
    n, _, features = waves.shape
    low = -max_log10_amplitude if min_log10 is None else min_log10
    amplitude = 10.0 ** rng.uniform(low, max_log10_amplitude, size=(n, 1, features))
    offset = rng.uniform(-max_offset, max_offset, size=(n, 1, features))
    return (waves * amplitude + offset).astype(np.float32), amplitude, offset


def add_noise(rng: np.random.Generator, observed: np.ndarray, sigma: np.ndarray | float) -> np.ndarray:
    """Gaussian measurement noise with per-wave (or scalar) standard deviation."""
    return (observed + rng.standard_normal(observed.shape) * sigma).astype(np.float32)


def training_batch(
    rng: np.random.Generator,
    n: int,
    observed: int,
    horizon: int,
    features: int,
    spec: DataSpec,
    split: str = "train",
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented batch: random start, amplitude, offset and input noise; the target stays clean."""
    waves = unit_waves(rng, n, observed + horizon, features, split, spec, start_steps(rng, n, spec))
    waves, amplitude, _ = scale_and_offset(rng, waves, spec.max_amplitude_log10, spec.max_offset)
    sigma = rng.uniform(0.0, spec.max_noise, size=(n, 1, features)) * amplitude
    sigma *= rng.random((n, 1, 1)) >= spec.clean_fraction
    return add_noise(rng, waves[:, :observed], sigma), waves[:, observed:]
