"""Checks a wave against the served model and says exactly what is wrong."""

from __future__ import annotations

import numpy as np

from app.limits import LIMITS


class WaveError(ValueError):
    """A request wave the model cannot take; the message is shown to the client."""


def wave_array(wave: list[list[float]], features: int, min_steps: int, label: str = "wave") -> np.ndarray:
    """The wave as float32 (steps, features), or WaveError naming the first problem (rows are 0-based)."""
    if len(wave) < min_steps:
        raise WaveError(f"{label} has {len(wave)} steps, at least {min_steps} are needed")
    for row, values in enumerate(wave):
        if len(values) != features:
            raise WaveError(f"{label}: row {row} has {len(values)} values, the model expects {features}")
    array = np.asarray(wave, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise WaveError(f"{label}: value at row {row}, column {column} is not finite")
    too_large = np.abs(array) > LIMITS.max_abs_value
    if too_large.any():
        row, column = np.argwhere(too_large)[0]
        raise WaveError(f"{label}: value at row {row}, column {column} exceeds {LIMITS.max_abs_value:g} in magnitude")
    return array.astype(np.float32)
