"""A series' seasonal period (the autocorrelation peak) and seasonal naive's in-sample error at that period
(the forecast itself is `training.baselines.seasonal_naive`)."""

from __future__ import annotations

import numpy as np


def estimate_periods(series: np.ndarray, max_period: int) -> np.ndarray:
    """Per row of (n, T) series: the lag in 2..max_period with the highest autocorrelation peak of the linearly
    detrended row, as integers (n,).

    A peak is a lag whose autocorrelation is positive and at least that of both neighbours; 1 (seasonal naive
    becomes persistence) when there is none.
    """
    series = np.atleast_2d(np.asarray(series, np.float64))
    steps = series.shape[1]
    max_period = min(max_period, steps // 2)
    if max_period < 2:
        return np.ones(len(series), np.int64)
    t = np.arange(steps) - (steps - 1) / 2
    centered = series - series.mean(axis=1, keepdims=True)
    residual = centered - (centered @ t / (t @ t))[:, None] * t
    size = 1 << (2 * steps - 1).bit_length()
    spectrum = np.fft.rfft(residual, size, axis=1)
    autocovariance = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=1)[:, : max_period + 2]
    acf = autocovariance / np.where(autocovariance[:, :1] > 0, autocovariance[:, :1], np.inf)
    lags = np.arange(2, max_period + 1)
    middle = acf[:, lags]
    peak = (middle > 0) & (middle >= acf[:, lags - 1]) & (middle >= acf[:, lags + 1])
    return np.where(peak.any(axis=1), lags[np.argmax(np.where(peak, middle, -np.inf), axis=1)], 1)


def estimate_period(values: np.ndarray, max_period: int) -> int:
    """`estimate_periods` of one series (T,)."""
    return int(estimate_periods(np.asarray(values)[None, :], max_period)[0])


def seasonal_naive_error(series: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """Per row of (n, T) series: the mean absolute difference between each step and the step one period (n,)
    before it, i.e. seasonal naive's in-sample error; periods must be below T."""
    series = np.asarray(series, np.float64)
    t = np.arange(series.shape[1])[None, :]
    back = t - np.asarray(periods)[:, None]
    difference = np.abs(series - np.take_along_axis(series, np.maximum(back, 0), axis=1))
    return (difference * (back >= 0)).sum(axis=1) / (back >= 0).sum(axis=1)
