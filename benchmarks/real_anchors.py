"""Classical anchors on the real-series windows: statsforecast's AutoETS, AutoTheta and AutoARIMA.

The same windows and score as `python -m training evaluate --real` (MAE / seasonal-naive MAE with the known
period), so a model's table can be read against the best classical method per series. statsforecast is not a
dependency of the project: `pip install statsforecast`, then

    python -m benchmarks.real_anchors --context 300 [--max-windows 24] [--methods AutoETS AutoTheta]
        [--timeout SECONDS]

Minutes long (AutoARIMA with a long season is the slow one: `--timeout` stops a method on a series after that
many seconds and reports it as timed out, outside its geometric mean).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue as queue_module
import time
import warnings

import numpy as np

from training.baselines import geometric_mean, seasonal_naive
from training.real_series import SERIES, windows

HORIZON = 150


def anchor_models(period: int) -> dict:
    """The classical methods, each told the series' season length."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    return {
        "AutoETS": AutoETS(season_length=period),
        "AutoTheta": AutoTheta(season_length=period),
        "AutoARIMA": AutoARIMA(season_length=period),
    }


def forecast_windows(name: str, period: int, observed: np.ndarray) -> np.ndarray:
    """One method's 150-step forecasts of every window."""
    model = anchor_models(period)[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.stack([model.forecast(y=window, h=HORIZON)["mean"] for window in observed])


def _forecast_into(queue, name: str, period: int, observed: np.ndarray) -> None:
    queue.put(forecast_windows(name, period, observed))


def forecast_within(name: str, period: int, observed: np.ndarray, timeout: float | None) -> np.ndarray | None:
    """`forecast_windows`, in a child process stopped after `timeout` seconds (None when it was)."""
    if timeout is None:
        return forecast_windows(name, period, observed)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forecast_into, args=(queue, name, period, observed))
    child.start()
    try:
        return queue.get(timeout=timeout)
    except queue_module.Empty:  # out of time
        return None
    finally:
        child.terminate()
        child.join()


def run(context: int, max_windows: int, methods: list[str], timeout: float | None = None) -> dict:
    report: dict = {"metric": "MAE / seasonal-naive MAE (known period)", "context": context, "series": {}}
    for item in SERIES:
        observed, target = windows(item.load(), context, HORIZON, item.period, max_windows=max_windows)
        naive = np.abs(seasonal_naive(observed, HORIZON, item.period) - target).mean()
        entry = {"windows": len(observed), "relative_mae": {}, "seconds": {}, "timed_out": []}
        for name in methods:
            started = time.monotonic()
            forecasts = forecast_within(name, item.period, observed, timeout)
            entry["seconds"][name] = round(time.monotonic() - started, 1)
            if forecasts is None:
                entry["timed_out"].append(name)
                continue
            entry["relative_mae"][name] = round(float(np.abs(forecasts - target).mean() / naive), 4)
        report["series"][item.name] = entry
        print(item.name, json.dumps(entry), flush=True)
    report["finished"] = {name: sum(name in e["relative_mae"] for e in report["series"].values()) for name in methods}
    report["geometric_mean"] = {  # over the series each method finished (see "finished")
        name: round(
            geometric_mean([e["relative_mae"][name] for e in report["series"].values() if name in e["relative_mae"]]), 4
        )
        for name in methods
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", type=int, default=300, help="observed steps per window (the model's context)")
    parser.add_argument("--max-windows", type=int, default=24)
    parser.add_argument("--methods", nargs="+", default=["AutoETS", "AutoTheta", "AutoARIMA"])
    parser.add_argument("--timeout", type=float, help="seconds per method and series before it is stopped")
    args = parser.parse_args()
    report = run(args.context, args.max_windows, args.methods, args.timeout)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
