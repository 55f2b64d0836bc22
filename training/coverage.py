"""Coverage of prediction intervals on held-out windows: the share of true values inside the bands, and their width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from training.calibration import HORIZON_BUCKETS, Calibration, bands


def coverage_report(
    predictions: Sequence[np.ndarray],
    observed: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    amplitudes: Sequence[np.ndarray],
    backtests: Sequence[Sequence[np.ndarray]],
    calibration: Calibration,
    levels: Sequence[float] = (80, 95),
    buckets: Sequence[tuple[int, int]] = HORIZON_BUCKETS,
) -> dict[str, Any]:
    """Per level: the share of true values inside the band (overall and per horizon bucket), the mean width
    relative to the amplitude, and the mean width over the MAE; `backtests` are the completions of each batch's
    `calibration.backtest_inputs`."""
    inside = {level: [] for level in levels}
    width = {level: [] for level in levels}
    absolute = []
    batches = zip(predictions, observed, targets, amplitudes, backtests, strict=True)
    for prediction, seen, target, amplitude, tried in batches:
        absolute.append(np.abs(prediction - target) / amplitude)
        for level, (lower, upper) in bands(prediction, seen, calibration, levels, tried).items():
            inside[level].append((lower <= target) & (target <= upper))
            width[level].append((upper - lower) / amplitude)
    mae = float(np.concatenate(absolute).mean())
    report = {}
    for level in levels:
        hit, span = np.concatenate(inside[level]), np.concatenate(width[level])
        report[f"{level:g}"] = {
            "coverage": round(float(hit.mean()), 4),
            "per_horizon": {
                f"{lo}-{hi}": round(float(hit[:, lo - 1 : hi].mean()), 4) for lo, hi in buckets if lo <= hit.shape[1]
            },
            "width": round(float(span.mean()), 4),
            "width_over_mae": round(float(span.mean()) / mae, 2),
        }
    return report


def series_coverage(
    prediction: np.ndarray,
    observed: np.ndarray,
    target: np.ndarray,
    backtests: Sequence[np.ndarray],
    calibration: Calibration,
    levels: Sequence[float] = (80, 95),
    known: np.ndarray | None = None,
) -> dict[str, Any]:
    """Coverage and mean width over the MAE of one series' windows, (k, H) predictions and targets of (k, T)
    observed windows, given the (k, H) completions of `calibration.backtest_inputs(observed)`, counting only the
    `known` target values (gaps left out); levels the calibration cannot bound are left out."""
    known = np.ones(target.shape, bool) if known is None else known
    mae = float(np.abs(prediction - target)[known].mean())
    report = {}
    levels = [level for level in levels if calibration.bounds(level)]
    tried = [np.asarray(backtest)[..., None] for backtest in backtests]
    for level, (lower, upper) in bands(prediction[..., None], observed[..., None], calibration, levels, tried).items():
        lower, upper = lower[..., 0], upper[..., 0]
        inside = (lower <= target) & (target <= upper)
        width = float((upper - lower)[known].mean())
        report[f"{level:g}"] = {
            "coverage": round(float(inside[known].mean()), 4),
            "per_horizon": {
                f"{lo}-{hi}": round(float(inside[:, lo - 1 : hi][known[:, lo - 1 : hi]].mean()), 4)
                for lo, hi in HORIZON_BUCKETS
                if known[:, lo - 1 : hi].any()
            },
            "width_over_mae": round(width / mae, 2) if mae > 0 else None,
        }
    return report


def mean_coverage(per_series: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean of several series' `series_coverage` per level (80 and 95, where every series has it): each
    series counts once, however many windows it has."""
    return {
        level: round(float(np.mean([s[level]["coverage"] for s in per_series])), 4)
        for level in ("80", "95")
        if all(level in s for s in per_series)
    }


def coverage_cell(coverage: dict[str, Any]) -> str:
    """'81 % / 94 %' from a `series_coverage` or a `mean_coverage`; '-' for a level the calibration cannot bound."""
    share = {level: v["coverage"] if isinstance(v, dict) else v for level, v in coverage.items()}
    return " / ".join(f"{100 * share[level]:.0f} %" if level in share else "-" for level in ("80", "95"))
