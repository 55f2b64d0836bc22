"""Prediction intervals in the service: the bands of completed waves from the served model's calibration."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.validation import WaveError
from training.calibration import Calibration, bands

LEVEL_RULE = "a list of 1 to 4 percentages, each strictly between 0 and 100 (e.g. [80, 95])"


def level_key(level: float) -> str:
    """How a level names its band in answers: 80 -> '80', 99.5 -> '99.5'."""
    return f"{level:g}"


def require_calibration(calibration: Calibration | None, model: str, levels: Sequence[float]) -> Calibration:
    """The model's calibration; WaveError (422) when it has none or too few calibration windows for a level."""
    if calibration is None:
        raise WaveError(f"model {model} has no calibrated prediction intervals: send no level")
    for level in levels:
        if not calibration.bounds(level):
            raise WaveError(
                f"model {model} has prediction intervals up to level {calibration.levels[-1]:g} (too few "
                f"calibration windows for more): level {level:g} is too high"
            )
    return calibration


def backtest_inputs(calibration: Calibration, waves: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """Per wave, the inputs the model completes for its bands besides the wave itself (its backtests)."""
    return [[part[0] for part in calibration.backtest_inputs(np.asarray(wave)[None])] for wave in waves]


def wave_bands(
    calibration: Calibration,
    waves: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    backtests: Sequence[Sequence[np.ndarray]],
    levels: Sequence[float],
) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per wave {level key: (lower, upper)}, each shaped like its prediction (horizon, F), given the completions
    of each wave's `backtest_inputs`."""
    answers = []
    for wave, prediction, tried in zip(waves, predictions, backtests, strict=True):
        per_level = bands(
            np.asarray(prediction)[None], np.asarray(wave)[None], calibration, levels, [b[None] for b in tried]
        )
        answers.append({level_key(level): (lower[0], upper[0]) for level, (lower, upper) in per_level.items()})
    return answers
