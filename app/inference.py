"""The inference core every protocol shares: waves in, checked and gap-filled, completions (and bands) out.

The native routes (app/routers/predict.py, plot.py) and the Open Inference Protocol V2 route (app/routers/v2.py)
call `complete` and only map its outcome onto their own answers and error forms: WaveError is the client's
fault, Overloaded and DeadlineExceeded (app/batching.py) are load, anything else is a server failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from app.intervals import backtest_inputs, require_calibration, wave_bands
from app.model_service import ServedModel
from app.settings import Limits
from app.validation import WaveError, wave_array

Bands = dict[str, tuple[np.ndarray, np.ndarray]]  # {level key: (lower, upper)}, each shaped like the prediction


@dataclass(frozen=True)
class Completion:
    """One wave's answer."""

    prediction: np.ndarray  # (horizon, F)
    filled: int  # gaps filled in the wave before the model
    bands: Bands  # empty without levels


async def complete(
    model: ServedModel,
    waves: Sequence[list | np.ndarray],
    labels: Sequence[str],
    horizon: int,
    levels: Sequence[float] | None,
    limits: Limits,
    timeout: float,
) -> list[Completion]:
    """Check each wave (named by its label in errors) against `model` and `limits`, fill its gaps, complete it
    through the model's batcher within `timeout` seconds, and with `levels` add its bands."""
    if not 1 <= horizon <= model.horizon:
        raise WaveError(f"horizon must be between 1 and {model.horizon}")
    name = f"{model.ref.name} v{model.ref.version}"
    calibration = require_calibration(model.calibration, name, levels) if levels else None
    total = sum(len(wave) for wave in waves)
    if total > limits.max_total_steps:
        raise WaveError(f"request has {total} observed steps in all, at most {limits.max_total_steps} are allowed")
    checked = [
        wave_array(wave, model.features, model.min_steps, limits, label, model.predict.windows)
        for wave, label in zip(waves, labels, strict=True)
    ]
    arrays = [array for array, _ in checked]
    if calibration is None or not levels:
        completions = [c[:horizon] for c in await model.batcher.complete(arrays, timeout=timeout)]
        per_wave: list[Bands] = [{} for _ in arrays]
    else:  # the bands need the model's completions of each wave's past (its backtests): one batcher call for all
        inputs = backtest_inputs(calibration, arrays)
        answers = await model.batcher.complete(arrays + [part for parts in inputs for part in parts], timeout=timeout)
        completions = [c[:horizon] for c in answers[: len(arrays)]]
        ends = np.cumsum([len(arrays)] + [len(parts) for parts in inputs])
        backtests = [answers[start:end] for start, end in pairwise(ends)]
        per_wave = wave_bands(calibration, arrays, completions, backtests, levels)
    return [
        Completion(prediction, filled, bands)
        for prediction, (_, filled), bands in zip(completions, checked, per_wave, strict=True)
    ]
