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
    wave: np.ndarray, max_gap_fraction: float, label: str = "wave", context: int | None = None
) -> tuple[np.ndarray, int]:
    """`fill_gaps` of an observed wave (T, F) about to be completed: with `context` (the steps the model reads)
    the gap limit holds over those last steps too, not only over the whole wave (GapError names the feature)."""
    filled, count = fill_gaps(wave, max_gap_fraction, label)
    values = np.asarray(wave)
    if count and context is not None and len(values) > context:
        missing = np.isnan(values[-context:]).sum(axis=0)
        feature = int(np.argmax(missing))
        if missing[feature] > max_gap_fraction * context:
            raise GapError(
                f"{label}: feature {feature} misses {missing[feature]} of the last {context} steps, which the model "
                f"reads ({missing[feature] / context:.0%}), more than the {max_gap_fraction:.0%} allowed"
            )
    return filled, count
