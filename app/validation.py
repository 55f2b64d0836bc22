"""Checks a wave against the served model and says exactly what is wrong."""

from __future__ import annotations

import numpy as np

from app.settings import Limits
from training.gaps import GapError, fill_observed
from training.stamps import stamp_problem
from training.time_column import StampError, parse_stamps


class WaveError(ValueError):
    """A request wave the model cannot take; the message is shown to the client."""


def wave_array(
    wave: list[list[float | None]] | np.ndarray,
    features: int | None,
    min_steps: int,
    limits: Limits,
    label: str = "wave",
    windows: tuple[int, ...] = (),
) -> tuple[np.ndarray, int]:
    """The wave as float32 (steps, features) with its gaps (None or NaN) filled, and how many were filled.

    WaveError names the first problem (rows and columns are 0-based): a short wave, a row of the wrong width, an
    infinite or too large value, or a feature with no value or more than limits.max_gap_fraction missing.
    `features` None (a model that takes any number): every row as wide as the first. With `windows` (last steps
    the model reads: Predictor.windows), the gap limit holds over each of them too, not only over the whole wave.
    """
    if len(wave) < min_steps:
        raise WaveError(f"{label} has {len(wave)} steps, at least {min_steps} are needed")
    width = features if features is not None or not len(wave) else len(wave[0])
    expects = f"the model expects {features}" if features is not None else f"row 0 has {width}"
    try:
        array = np.asarray(wave, dtype=np.float64)  # None becomes NaN: a gap
    except ValueError:  # rows of different widths: found below
        array = None
    fits = array is not None and array.ndim == 2 and array.shape[1] == width  # no row to check one by one
    for row, values in enumerate(() if fits else wave):
        if len(values) != width:
            raise WaveError(f"{label}: row {row} has {len(values)} values, {expects}")
    array = np.asarray(wave, dtype=np.float64) if array is None else array
    infinite = np.isinf(array)
    if infinite.any():
        row, column = np.argwhere(infinite)[0]
        raise WaveError(f"{label}: value at row {row}, column {column} is not finite")
    too_large = np.abs(array) > limits.max_abs_value
    if too_large.any():
        row, column = np.argwhere(too_large)[0]
        raise WaveError(f"{label}: value at row {row}, column {column} exceeds {limits.max_abs_value:g} in magnitude")
    try:
        filled, count = fill_observed(array, limits.max_gap_fraction, label, windows)
    except GapError as error:
        raise WaveError(str(error)) from None
    return filled.astype(np.float32), count


def stamps_array(ds: list[int | str] | None, steps: int, label: str = "ds") -> np.ndarray | None:
    """A request's time stamps (`ds`: one per observed step, ISO 8601 text or integers) as int64 or datetime64[ms],
    or None without them. WaveError names the first wrong one (`label[i]`, from 0): one that is neither a time nor
    a whole number, a mix of both, one that repeats or is not after the one before, or one that breaks the regular
    steps of the ones before it (training/stamps.py)."""
    if ds is None:
        return None
    if len(ds) != steps:
        raise WaveError(f"{label} has {len(ds)} time stamps, the wave has {steps} steps: give one per step")
    kinds = {isinstance(stamp, int) for stamp in ds}
    if len(kinds) > 1:
        row = next(i for i, stamp in enumerate(ds) if isinstance(stamp, int) != isinstance(ds[0], int))
        raise WaveError(f"{label}[{row}]: {ds[row]!r}: the time stamps mix integers and text; use one kind")
    try:
        stamps = parse_stamps(np.asarray(ds, np.int64) if kinds == {True} else [str(stamp) for stamp in ds])
    except StampError as error:
        raise WaveError(f"{label}[{error.row}]: {error}") from None
    problem = stamp_problem(stamps, f"{label}[{{}}]".format)
    if problem is not None:
        row, why = problem
        raise WaveError(f"{label}[{row}]: time stamp {ds[row]!r} {why}")
    return stamps
