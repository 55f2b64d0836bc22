"""Classical anchors on the real-series windows: statsforecast's AutoETS, AutoTheta and AutoARIMA.

The same windows and score as `python -m training evaluate --real` (MAE / seasonal-naive MAE with the known
period), so a model's table can be read against the best classical method per series. statsforecast is not a
dependency of the project: `pip install statsforecast`, then

    python -m benchmarks.real_anchors --context 300 [--max-windows 24] [--methods AutoETS AutoTheta]

Minutes long (AutoARIMA with a long season is the slow one); run it when nothing else trains.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from training.real_series import SERIES, geometric_mean, seasonal_naive, windows

HORIZON = 150


def anchor_models(period: int) -> dict:
    """The classical methods, each told the series' season length."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    return {
        "AutoETS": AutoETS(season_length=period),
        "AutoTheta": AutoTheta(season_length=period),
        "AutoARIMA": AutoARIMA(season_length=period),
    }


def run(context: int, max_windows: int, methods: list[str]) -> dict:
    report: dict = {"metric": "MAE / seasonal-naive MAE (known period)", "context": context, "series": {}}
    for item in SERIES:
        observed, target = windows(item.load(), context, HORIZON, item.period, max_windows=max_windows)
        naive = np.abs(seasonal_naive(observed, HORIZON, item.period) - target).mean()
        entry = {"windows": len(observed), "relative_mae": {}, "seconds": {}}
        for name, model in anchor_models(item.period).items():
            if name not in methods:
                continue
            started = time.monotonic()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                forecasts = np.stack([model.forecast(y=window, h=HORIZON)["mean"] for window in observed])
            entry["relative_mae"][name] = round(float(np.abs(forecasts - target).mean() / naive), 4)
            entry["seconds"][name] = round(time.monotonic() - started, 1)
        report["series"][item.name] = entry
        print(item.name, json.dumps(entry), flush=True)
    report["geometric_mean"] = {
        name: round(geometric_mean([e["relative_mae"][name] for e in report["series"].values()]), 4) for name in methods
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", type=int, default=300, help="observed steps per window (the model's context)")
    parser.add_argument("--max-windows", type=int, default=24)
    parser.add_argument("--methods", nargs="+", default=["AutoETS", "AutoTheta", "AutoARIMA"])
    args = parser.parse_args()
    report = run(args.context, args.max_windows, args.methods)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
