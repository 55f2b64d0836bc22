"""Evaluation on the test part of a user's series: MAE beside seasonal naive, window mean and persistence.

Per series, each forecaster's MAE over the test windows (gaps in the file are left out of the error) and its
ratio to the seasonal-naive MAE (period estimated on the series' training part); overall, the geometric mean
of the per-series ratios. Below 1 beats seasonal naive.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from training.baselines import geometric_mean, persistence, seasonal_naive, window_mean
from training.file_source import FileSource, pack, unpack

Forecaster = Callable[[np.ndarray], np.ndarray]  # waves (n, T, F) -> completions (n, horizon, F)


def evaluate_on_data(models: dict[str, Forecaster], source: FileSource, calibration: dict | None = None) -> dict:
    """Evaluate each model ("model", and "initial_model" for a fine-tune) and the baselines on the test windows;
    with the model's calibration record, also the coverage of its 80 % and 95 % bands."""
    from training.calibration import Calibration
    from training.coverage import mean_coverage, series_coverage

    bands_from = Calibration.from_record(calibration) if calibration else None
    horizon, features = source.model.horizon, source.model.features
    report: dict = {
        "split": "test part of the data files",
        "metric": "MAE / MAE of seasonal naive per series; overall: geometric mean of the series' ratios",
        "window_rule": (
            f"the {horizon} predicted steps lie in the test part, starting at its first step and every "
            f"{source.stride} steps after (and one window ending at its last step); the observed steps are the "
            f"{source.model.reads} before them (fewer if the series starts later)"
        ),
        "series": {},
    }
    ratios: dict[str, list[float]] = {}
    for series in source.series:
        windows = source.windows(series, "test")
        count = len(windows.starts)
        entry: dict = {"period": series.period, "windows": count, "test": [series.val_end, len(series.values)]}
        report["series"][series.name] = entry
        if not count:
            continue
        observed = windows.observed[..., None]
        forecasts = {name: unpack(model(pack(windows.observed, features)), count) for name, model in models.items()} | {
            "seasonal_naive": seasonal_naive(observed, horizon, series.period)[..., 0],
            "window_mean": window_mean(observed, horizon)[..., 0],
            "persistence": persistence(observed, horizon)[..., 0],
        }
        known = windows.target_known
        mae = {name: float(np.abs(forecast - windows.target)[known].mean()) for name, forecast in forecasts.items()}
        entry["mae"] = {name: round(value, 6) for name, value in mae.items()}
        if bands_from is not None:
            backtests = [
                unpack(models["model"](pack(part, features)), count)
                for part in bands_from.backtest_inputs(windows.observed)
            ]
            entry["intervals"] = series_coverage(
                forecasts["model"], windows.observed, windows.target, backtests, bands_from, known=known
            )
        if mae["seasonal_naive"] > 0:
            entry["relative"] = {
                name: round(value / mae["seasonal_naive"], 4) for name, value in mae.items() if name != "seasonal_naive"
            }
            for name, ratio in entry["relative"].items():
                ratios.setdefault(name, []).append(ratio)
    report["windows"] = sum(entry["windows"] for entry in report["series"].values())
    report["overall"] = {name: round(geometric_mean(v), 4) for name, v in ratios.items()}
    report["beats_seasonal_naive"] = bool(report["overall"].get("model", np.inf) < 1)
    covered = [entry["intervals"] for entry in report["series"].values() if "intervals" in entry]
    if covered:
        report["mean_coverage"] = mean_coverage(covered)
    return report
