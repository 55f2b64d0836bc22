"""Real recorded series that ship inside Python packages (no downloads), and a zero-shot evaluation on them.

Each series is cut into windows of the model's context plus the horizon (fewer observed steps when the series is
shorter); the model completes the observed part and is scored by its MAE relative to seasonal naive (repeat the
last cycle of the series' known period) on the same windows, next to the window mean and persistence. The
series come from the optional extra `real` (`pip install -e '.[real]'`: statsmodels, pmdarima, vega_datasets).
Four of them are the project's held-aside series: no model may ever be trained on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.baselines import geometric_mean, persistence, seasonal_naive, window_mean

GEOMETRIC_MEAN_TARGET = 1.0
PER_SERIES_TARGET = 1.25


def _statsmodels(name: str):
    from statsmodels import datasets

    return getattr(datasets, name).load_pandas().data


def _pmdarima(name: str) -> np.ndarray:
    from pmdarima import datasets

    values = np.asarray(getattr(datasets, f"load_{name}")(), np.float64)
    return values[np.isfinite(values)]  # ausbeer ends with a missing quarter


def _vega(name: str, column: str) -> np.ndarray:
    from vega_datasets import local_data

    frame = getattr(local_data, name)().sort_values("date")
    return frame[column].to_numpy(np.float64)


def _co2() -> np.ndarray:
    return _statsmodels("co2")["co2"].interpolate(limit_direction="both").to_numpy(np.float64)


def _sst() -> np.ndarray:
    return _statsmodels("elnino").drop(columns="YEAR").to_numpy(np.float64).ravel()


def _msft() -> np.ndarray:
    from pmdarima import datasets

    return datasets.load_msft()["Close"].to_numpy(np.float64)[-2500:]


def _sunspots_yearly() -> np.ndarray:
    return _statsmodels("sunspots")["SUNACTIVITY"].to_numpy(np.float64)


@dataclass(frozen=True)
class RealSeries:
    """One recorded series: where it comes from, its domain and its known period in steps."""

    name: str
    domain: str
    period: int
    held_aside: bool
    description: str
    load: Callable[[], np.ndarray]
    check: bool = False  # a check series: scored only with `evaluate --real --check-series`, never to choose


SERIES = (
    RealSeries("sunspots_monthly", "astronomy", 132, True, "monthly sunspot numbers 1749-1983 (pmdarima)",
               lambda: _pmdarima("sunspots")),
    RealSeries("electricity_halfhourly", "energy", 48, True, "half-hourly electricity demand, England and Wales, "
               "12 weeks of 2000 (pmdarima taylor)", lambda: _pmdarima("taylor")),
    RealSeries("co2_weekly", "atmosphere", 52, True, "weekly CO2 at Mauna Loa 1958-2001, gaps interpolated "
               "(statsmodels co2)", _co2),
    RealSeries("sst_monthly", "ocean", 12, True, "monthly sea surface temperature, El Nino region 1950-2010 "
               "(statsmodels elnino)", _sst),
    RealSeries("sunspots_yearly", "astronomy", 11, False, "yearly sunspot activity 1700-2008 (statsmodels sunspots)",
               _sunspots_yearly),
    RealSeries("temperature_hourly_seattle", "weather", 24, False, "hourly temperature, Seattle 2010 "
               "(vega_datasets seattle-temps)", lambda: _vega("seattle_temps", "temp")),
    RealSeries("temperature_hourly_sf", "weather", 24, False, "hourly temperature, San Francisco 2010 "
               "(vega_datasets sf-temps)", lambda: _vega("sf_temps", "temp")),
    RealSeries("beer_quarterly", "production", 4, False, "quarterly Australian beer production 1956-2008 "
               "(pmdarima ausbeer)", lambda: _pmdarima("ausbeer")),
)  # fmt: skip

# Series nobody chose a model or a calibration on, scored beside SERIES to check that the bands hold on kinds of
# data the eight lack: a random walk (a stock price) and daily weather.
CHECK_SERIES = (
    RealSeries("msft_daily", "finance", 5, False, "daily closing price of MSFT, its last 2500 trading days "
               "(pmdarima msft)", _msft, check=True),
    RealSeries("seattle_tmax_daily", "weather", 7, False, "daily maximum temperature, Seattle 2012-2015 "
               "(vega_datasets seattle-weather)", lambda: _vega("seattle_weather", "temp_max"), check=True),
    RealSeries("seattle_wind_daily", "weather", 7, False, "daily mean wind speed, Seattle 2012-2015 "
               "(vega_datasets seattle-weather)", lambda: _vega("seattle_weather", "wind"), check=True),
)  # fmt: skip


def windows(
    values: np.ndarray, context: int, horizon: int, period: int, max_windows: int = 24, stride: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Windows (observed (k, o), target (k, horizon)), o = min(context, len - horizon), ends spaced by `stride`
    from the series' end backwards, at most `max_windows` of them evenly spread."""
    observed = min(context, len(values) - horizon)
    ends = window_ends(len(values), context, horizon, period, max_windows, stride)
    cut = np.stack([values[end - observed - horizon : end] for end in ends])
    return cut[:, :observed], cut[:, observed:]


def window_ends(
    length: int, context: int, horizon: int, period: int, max_windows: int = 24, stride: int = 50
) -> np.ndarray:
    """Where `windows` ends its windows in a series of `length` steps (it reads `context` steps before each)."""
    observed = min(context, length - horizon)
    if observed < max(60, period):
        raise ValueError(f"series of {length} steps is too short for a horizon of {horizon} and period {period}")
    ends = np.arange(length, observed + horizon - 1, -stride)
    return ends[np.unique(np.linspace(0, len(ends) - 1, min(max_windows, len(ends))).round().astype(int))]


def histories(values: np.ndarray, context: int, horizon: int, period: int, reads: int) -> list[np.ndarray]:
    """The observed part of each of `windows`' windows with the steps before it, up to `reads` steps in all (as
    many as the series has): what a model that reads more than `context` steps is given, the windows unchanged."""
    ends = window_ends(len(values), context, horizon, period)
    return [values[max(0, end - horizon - reads) : end - horizon] for end in ends]


def evaluate_real(
    forecast: Callable[[np.ndarray, int], np.ndarray],
    context: int,
    horizon: int = 150,
    series=SERIES,
    calibration: dict | None = None,
    reads: int = 0,
) -> dict:
    """Score `forecast(observed (k, o), horizon) -> (k, horizon)` on every series: MAE / seasonal-naive MAE, and
    with a calibration record the coverage of its 80 % and 95 % bands. With `reads` > `context`, the forecast gets
    each window's observed part with up to `reads` steps before its end (`histories`: a list), the same windows,
    and so do the bands' backtests (as the service completes them); the baselines read the `context` steps."""
    from training.calibration import Calibration
    from training.coverage import mean_coverage, series_coverage

    bands_from = Calibration.from_record(calibration) if calibration else None
    report: dict = {"metric": "MAE / seasonal-naive MAE (known period)", "context": context, "series": {}}
    if reads > context:
        report["reads"] = reads
    for item in series:
        values = item.load()
        observed, target = windows(values, context, horizon, item.period)
        longer = histories(values, context, horizon, item.period, reads) if reads > context else None
        prediction = forecast(longer if longer else observed, horizon)
        mae = {
            "model": np.abs(prediction - target).mean(),
            "seasonal_naive": np.abs(seasonal_naive(observed, horizon, item.period) - target).mean(),
            "window_mean": np.abs(window_mean(observed, horizon) - target).mean(),
            "persistence": np.abs(persistence(observed, horizon) - target).mean(),
        }
        report["series"][item.name] = {
            "domain": item.domain,
            "period": item.period,
            "held_aside": item.held_aside,
            **({"check": True} if item.check else {}),
            "description": item.description,
            "windows": len(observed),
            "observed_steps": observed.shape[1],
            "seasonal_naive_mae": round(float(mae["seasonal_naive"]), 6),
            "relative_mae": {
                k: round(float(v / mae["seasonal_naive"]), 4) for k, v in mae.items() if k != "seasonal_naive"
            },
        }
        if bands_from is not None:
            if longer:  # each backtest from the same step as below, with the history before it (as served)
                backs = [observed.shape[1] - len(part[0]) for part in bands_from.backtest_inputs(observed[:1])]
                backtests = [forecast([h[: len(h) - back] for h in longer], horizon) for back in backs]
            else:
                backtests = [forecast(part, horizon) for part in bands_from.backtest_inputs(observed)]
            report["series"][item.name]["intervals"] = series_coverage(
                prediction, observed, target, backtests, bands_from
            )
    entries = report["series"].values()
    methods = ("model", "window_mean", "persistence")
    report["geometric_mean"] = {m: round(geometric_mean([e["relative_mae"][m] for e in entries]), 4) for m in methods}
    held = [e["relative_mae"]["model"] for e in entries if e["held_aside"]]
    report["held_aside_geometric_mean"] = round(geometric_mean(held), 4) if held else None
    worst = max(e["relative_mae"]["model"] for e in entries)
    report["targets"] = {"geometric_mean": GEOMETRIC_MEAN_TARGET, "every_series": PER_SERIES_TARGET}
    report["meets_targets"] = report["geometric_mean"]["model"] <= GEOMETRIC_MEAN_TARGET and worst <= PER_SERIES_TARGET
    if bands_from is not None:  # each series counts once, however many windows it has
        report["mean_coverage"] = mean_coverage([e["intervals"] for e in entries])
    return report


def model_forecast(predictor) -> Callable[[np.ndarray, int], np.ndarray]:
    """A univariate forecast from a Predictor: each window goes in as every feature, feature 0 comes back."""
    features = predictor.features or 1

    def forecast(observed: np.ndarray | list[np.ndarray], horizon: int) -> np.ndarray:
        waves = [np.repeat(np.asarray(row, np.float32)[:, None], features, axis=1) for row in observed]
        return np.stack([p[:horizon, 0] for p in predictor(waves)]).astype(np.float64)

    return forecast


def evaluate_version(loaded, series=SERIES) -> dict:
    """`evaluate_real` of a published version (a `training.loading.LoadedModel`) on `series`, with the bands of
    its calibration record."""
    from training.own_data import architecture_of
    from training.predict import Predictor

    model = architecture_of(loaded.manifest)
    forecast = model_forecast(Predictor(loaded.model))
    return evaluate_real(
        forecast, model.max_context, model.horizon, series=series, calibration=loaded.calibration, reads=model.reads
    )
