"""The two single-window real series scored from several forecast origins.

`python -m training evaluate --real` scores the yearly sunspots and the quarterly beer on one window each (the
series are too short for more at the model's context + 150 steps), so one origin's luck decides their scores.
This benchmark forecasts them from every origin in a range instead, each with all the history before it (at
most `--context` steps): the yearly sunspots from years 60, 71, ..., 159 over the usual 150 steps, the beer from
quarters 60, 64, ..., 108 over 100 steps (the series has 211). Same score: MAE over all origins / seasonal-naive
MAE (known period). Models, simple baselines and, with `--anchors` (`pip install statsforecast`), the classical
methods:

    python -m benchmarks.real_origins [--store model_store] [--model general wave/9] [--anchors]
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.real_anchors import anchor_models
from model_store.defaults import DEFAULT_MODEL, DEFAULT_STORE
from training.baselines import persistence, seasonal_naive, window_mean
from training.real_series import SERIES
from training.report import markdown_table

Forecast = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class OriginCase:
    """A series scored from origins first, first + every, ... <= last, over `horizon` steps."""

    series: str
    first: int
    last: int
    every: int
    horizon: int


CASES = (OriginCase("sunspots_yearly", 60, 159, 11, 150), OriginCase("beer_quarterly", 60, 111, 4, 100))


def origin_windows(values: np.ndarray, case: OriginCase, context: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(observed, target) per origin: the last `context` steps before it at most, then `horizon` steps."""
    origins = range(case.first, min(case.last, len(values) - case.horizon) + 1, case.every)
    return [(values[max(0, o - context) : o], values[o : o + case.horizon]) for o in origins]


def relative_mae(forecast: Forecast, windows: list[tuple[np.ndarray, np.ndarray]], period: int) -> float:
    """MAE over every window's forecast / seasonal naive's, windows of any observed length."""
    error = naive = 0.0
    for observed, target in windows:
        horizon = len(target)
        error += np.abs(forecast(observed[None, :], horizon)[0] - target).mean()
        naive += np.abs(seasonal_naive(observed[None, :], horizon, period)[0] - target).mean()
    return error / naive


def model_forecasts(store: Path, specs: list[str]) -> dict[str, Forecast]:
    """A forecast per `NAME[/VERSION]` in the store (the model's first feature, every feature fed the window)."""
    from training.loading import load_model
    from training.predict import Predictor
    from training.real_series import model_forecast

    forecasts = {}
    for spec in specs:
        name, _, version = spec.partition("/")
        loaded = load_model(store, name, version or None)
        forecasts[f"{name}/{loaded.version}"] = model_forecast(Predictor(loaded.model))
    return forecasts


def anchor_forecasts(period: int) -> dict[str, Forecast]:
    """statsforecast's AutoETS, AutoTheta and AutoARIMA, told the season length (benchmarks/real_anchors.py)."""

    def of(model) -> Forecast:
        def forecast(observed: np.ndarray, horizon: int) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return model.forecast(y=observed[0].astype(np.float64), h=horizon)["mean"][None, :]

        return forecast

    return {name: of(model) for name, model in anchor_models(period).items()}


def run(models: dict[str, Forecast], context: int, anchors: bool) -> dict[str, dict[str, float]]:
    """Relative MAE per method and case."""
    scores: dict[str, dict[str, float]] = {}
    for case in CASES:
        item = next(s for s in SERIES if s.name == case.series)
        windows = origin_windows(item.load(), case, context)
        methods = {"window mean": window_mean, "persistence": persistence, **models}
        if anchors:
            methods |= anchor_forecasts(item.period)
        for method, forecast in methods.items():
            scores.setdefault(method, {})[case.series] = relative_mae(forecast, windows, item.period)
        print(f"{case.series}: {len(windows)} origins, horizon {case.horizon}", flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help="model store (default: the committed one)")
    parser.add_argument("--model", nargs="*", default=[DEFAULT_MODEL], help="NAME or NAME/VERSION, several allowed")
    parser.add_argument("--context", type=int, default=300, help="history before each origin, at most")
    parser.add_argument("--anchors", action="store_true", help="also AutoETS, AutoTheta, AutoARIMA (statsforecast)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    scores = run(model_forecasts(args.store, args.model), args.context, args.anchors)
    rows = [[method, *(f"{row[case.series]:.3f}" for case in CASES)] for method, row in scores.items()]
    print(markdown_table(["method", *(case.series for case in CASES)], rows))


if __name__ == "__main__":
    main()
