"""Checks a wave against the served model and says exactly what is wrong."""

from __future__ import annotations

import numpy as np

from app.settings import Limits
from training.gaps import GapError, fill_observed


class WaveError(ValueError):
    """A request wave the model cannot take; the message is shown to the client."""


def wave_array(
    wave: list[list[float | None]] | np.ndarray,
    features: int | None,
    min_steps: int,
    limits: Limits,
    label: str = "wave",
    context: int | None = None,
) -> tuple[np.ndarray, int]:
    """The wave as float32 (steps, features) with its gaps (None or NaN) filled, and how many were filled.

    WaveError names the first problem (rows and columns are 0-based): a short wave, a row of the wrong width, an
    infinite or too large value, or a feature with no value or more than limits.max_gap_fraction missing.
    `features` None (a model that takes any number): every row as wide as the first. With `context` (the steps
    the model reads), the gap limit holds over those last steps too, not only over the whole wave.
    """
    if len(wave) < min_steps:
        raise WaveError(f"{label} has {len(wave)} steps, at least {min_steps} are needed")
    width = features if features is not None or not len(wave) else len(wave[0])
    expects = f"the model expects {features}" if features is not None else f"row 0 has {width}"
    for row, values in enumerate(wave):
        if len(values) != width:
            raise WaveError(f"{label}: row {row} has {len(values)} values, {expects}")
    array = np.asarray(wave, dtype=np.float64)  # None becomes NaN: a gap
    infinite = np.isinf(array)
    if infinite.any():
        row, column = np.argwhere(infinite)[0]
        raise WaveError(f"{label}: value at row {row}, column {column} is not finite")
    too_large = np.abs(array) > limits.max_abs_value
    if too_large.any():
        row, column = np.argwhere(too_large)[0]
        raise WaveError(f"{label}: value at row {row}, column {column} exceeds {limits.max_abs_value:g} in magnitude")
    try:
        filled, count = fill_observed(array, limits.max_gap_fraction, label, context)
    except GapError as error:
        raise WaveError(str(error)) from None
    return filled.astype(np.float32), count
