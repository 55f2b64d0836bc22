"""Non-learned forecasts every model is scored against: seasonal naive, window mean, persistence and a
least-squares sinusoid fit; and the geometric mean that averages ratios to them.

Each takes observed values with time on axis 1, (n, T) or (n, T, F), and returns the next `horizon` steps in
the same layout.
"""

from __future__ import annotations

import numpy as np


def seasonal_naive(observed: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """Repeat the last `period` observed steps; needs at least `period` of them."""
    if observed.shape[1] < period:
        raise ValueError(f"seasonal naive with period {period} needs at least {period} observed steps")
    cycle = observed[:, observed.shape[1] - period :]
    return cycle[:, np.arange(horizon) % period]


def window_mean(observed: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat each feature's mean over the observed window."""
    return np.repeat(observed.mean(axis=1, keepdims=True), horizon, axis=1)


def persistence(observed: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last observed value."""
    return np.repeat(observed[:, -1:], horizon, axis=1)


def sine_fit(
    observed: np.ndarray, horizon: int, min_wavelength: float = 8.0, max_wavelength: float = 48.0, grid: int = 400
) -> np.ndarray:
    """Fit a*sin(t/w) + b*cos(t/w) + c per wave and feature, w on a grid, and extend the best fit."""
    n, steps, features = observed.shape
    series = observed.transpose(0, 2, 1).reshape(n * features, steps).astype(np.float64)
    t_obs = np.arange(steps, dtype=np.float64)
    t_future = np.arange(steps, steps + horizon, dtype=np.float64)
    best_error = np.full(len(series), np.inf)
    best_forecast = np.zeros((len(series), horizon))
    for w in np.geomspace(min_wavelength, max_wavelength, grid):
        design = np.stack([np.sin(t_obs / w), np.cos(t_obs / w), np.ones(steps)], axis=1)
        coefficients = np.linalg.lstsq(design, series.T, rcond=None)[0]
        error = ((design @ coefficients - series.T) ** 2).sum(axis=0)
        better = error < best_error
        future = np.stack([np.sin(t_future / w), np.cos(t_future / w), np.ones(horizon)], axis=1)
        best_forecast[better] = (future @ coefficients[:, better]).T
        best_error[better] = error[better]
    return best_forecast.reshape(n, features, horizon).transpose(0, 2, 1)


BASELINES = {"window_mean": window_mean, "persistence": persistence, "sine_fit": sine_fit}


def geometric_mean(values: list[float]) -> float:
    """The geometric mean of positive ratios (e.g. MAE / seasonal-naive MAE per series)."""
    return float(np.exp(np.mean(np.log(values))))
