"""A series' seasonal period (the autocorrelation peak) and the seasonal-naive forecast that repeats it."""

from __future__ import annotations

import numpy as np


def estimate_period(values: np.ndarray, max_period: int) -> int:
    """The lag in 2..max_period with the highest autocorrelation peak of the linearly detrended series.

    A peak is a lag whose autocorrelation is positive and at least that of both neighbours; 1 (seasonal naive
    becomes persistence) when there is none.
    """
    values = np.asarray(values, np.float64)
    steps = len(values)
    max_period = min(max_period, steps // 2)
    if max_period < 2:
        return 1
    t = np.arange(steps)
    residual = values - np.polyval(np.polyfit(t, values, 1), t)
    size = 1 << (2 * steps - 1).bit_length()
    spectrum = np.fft.rfft(residual, size)
    autocovariance = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_period + 2]
    if autocovariance[0] <= 0:
        return 1
    acf = autocovariance / autocovariance[0]
    lags = np.arange(2, max_period + 1)
    peaks = lags[(acf[lags] > 0) & (acf[lags] >= acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    return int(peaks[np.argmax(acf[peaks])]) if len(peaks) else 1


def seasonal_naive(observed: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """Repeat the last `period` observed steps: observed (n, T, F) -> (n, horizon, F); needs T >= period."""
    if observed.shape[1] < period:
        raise ValueError(f"seasonal naive with period {period} needs at least {period} observed steps")
    cycle = observed[:, observed.shape[1] - period :]
    return cycle[:, np.arange(horizon) % period]
