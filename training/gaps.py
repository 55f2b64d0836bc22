"""Fill gaps (NaN) in a recorded wave: linear interpolation inside, the nearest value at the ends."""

from __future__ import annotations

import numpy as np


class GapError(ValueError):
    """A feature has no value at all, or too many of its steps are missing."""


def fill_gaps(wave: np.ndarray, max_gap_fraction: float, label: str = "wave") -> tuple[np.ndarray, int]:
    """Return `wave` (T, F) with its NaNs filled, and how many values were filled.

    Raises GapError naming the feature (0-based column) when a feature has no value, or when more than
    `max_gap_fraction` of its steps are missing.
    """
    values = np.asarray(wave)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    if values.ndim != 2:
        raise ValueError(f"{label}: expected a (steps, features) array, got shape {values.shape}")
    missing = np.isnan(values)
    count = int(missing.sum())
    if count == 0:
        return values, 0
    steps = values.shape[0]
    filled = values.copy()
    positions = np.arange(steps)
    for feature in np.flatnonzero(missing.any(axis=0)):
        gaps = missing[:, feature]
        present = int(steps - gaps.sum())
        if present == 0:
            raise GapError(f"{label}: feature {feature} has no value")
        fraction = 1.0 - present / steps
        if fraction > max_gap_fraction:
            raise GapError(
                f"{label}: feature {feature} misses {steps - present} of {steps} steps "
                f"({fraction:.0%}), more than the {max_gap_fraction:.0%} allowed"
            )
        known = ~gaps
        filled[gaps, feature] = np.interp(positions[gaps], positions[known], values[known, feature])
    return filled, count


MAX_GAP_FRACTION = 0.5  # the service's default (WAVE_LIMIT_MAX_GAP_FRACTION) and `wave-complete`'s


def fill_observed(
    wave: np.ndarray, max_gap_fraction: float, label: str = "wave", windows: tuple[int, ...] = ()
) -> tuple[np.ndarray, int]:
    """`fill_gaps` of an observed wave (T, F) about to be completed: the gap limit holds over each of `windows`
    (last steps the model reads: its encoder's, its look back's) too, not only over the whole wave (GapError names
    the feature and the window)."""
    filled, count = fill_gaps(wave, max_gap_fraction, label)
    values = np.asarray(wave)
    for window in sorted(windows) if count else ():
        if len(values) <= window:
            break
        missing = np.isnan(values[-window:]).sum(axis=0)
        feature = int(np.argmax(missing))
        if missing[feature] > max_gap_fraction * window:
            raise GapError(
                f"{label}: feature {feature} misses {missing[feature]} of the last {window} steps, which the model "
                f"reads ({missing[feature] / window:.0%}), more than the {max_gap_fraction:.0%} allowed"
            )
    return filled, count
