"""A broad synthetic family of waves for a general model that meets real series zero-shot.

Every feature of a wave is its own series, drawn from one family by weight (`FAMILY_WEIGHTS`):

- `reference_sines`: the reference data (training/data.py), from a random start;
- `sines`: sums of 1-3 sinusoids, periods log-uniform in 4..400 steps;
- `shapes`: square, sawtooth, triangle, pulse trains and harmonic series, some smoothed;
- `modulated`: amplitude- or frequency-modulated sinusoids;
- `trend_season`: a periodic part on a linear or slowly curving trend, with level shifts, some multiplicative;
- `turning_trend`: a periodic part on a trend that flattens, reverses or saturates part way (not in the default mix);
- `stochastic`: AR(1), AR(2) (some with a quasi-period) and random walks, some on a periodic part;
- `cycles`: quasi-periodic cycles, each with its own length and height and a rise faster or slower than its fall
  (as the sunspot cycle, or business and population cycles), some as one-sided bumps;
- `kernel`: KernelSynth-style Gaussian-process series (Ansari et al., 2024): random sums and products of periodic,
  RBF, rational-quadratic, linear and white-noise kernels, each drawn by its spectrum (random Fourier features).

Then amplitude and offset (as in the reference augmentation) and, on the observed part only, observation noise:
the target is the series without it. All draws come from the generator passed in, so a seed fixes a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.config import DataSpec, TrainConfig
from training.data import add_noise, scale_and_offset, start_steps, unit_waves

FAMILY_WEIGHTS = {
    "reference_sines": 0.10,
    "sines": 0.20,
    "shapes": 0.15,
    "modulated": 0.10,
    "trend_season": 0.15,
    "stochastic": 0.10,
    "kernel": 0.20,
}
MIN_PERIOD, MAX_PERIOD = 4.0, 400.0
NOISY_FRACTION = 0.7  # waves with observation noise; sigma uniform up to MAX_NOISE x the series' std
MAX_NOISE = 0.25
MIN_OBSERVED_STD = 0.25  # of the whole (standardized) series: flatter observed windows are replaced
TAU = 2 * np.pi
CALIBRATION_LENGTHS = (60, 80, 110, 150, 210, 300)  # observed steps of the interval calibration windows
# calibration windows that look like recorded series: trends, turning trends, stochastic and irregular cycles,
# with the target as noisy as the observed part (a recording's future is measured with its noise too)
RECORDED_LIKE_FAMILIES = {"trend_season": 0.3, "turning_trend": 0.2, "stochastic": 0.2, "cycles": 0.1, "kernel": 0.2}
RECORDED_LIKE_LENGTHS = (150, 210, 300)
RECORDED_LIKE_WAVES = 768  # per length


def parse_family_weights(text: str) -> dict[str, float]:
    """`name=weight,...` (e.g. `sines=0.3,kernel=0.1`) as family weights; families not named get none."""
    weights = {}
    for item in text.split(","):
        name, _, value = item.strip().partition("=")
        if name not in FAMILIES:
            raise ValueError(f"unknown family {name!r}: choose from {', '.join(FAMILIES)}")
        try:
            weights[name] = float(value)
        except ValueError:
            weights[name] = float("nan")
        if not 0 <= weights[name] < float("inf"):
            raise ValueError(f"family {name!r} needs a weight >= 0, as {name}=0.2")
    if sum(weights.values()) <= 0:
        raise ValueError("at least one family needs a positive weight")
    return weights


def log_uniform(rng: np.random.Generator, low: float, high: float, size) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def season_periods(rng: np.random.Generator, low: float, high: float, size, integer_fraction: float) -> np.ndarray:
    """Periods log-uniform in low..high, `integer_fraction` of them rounded to whole steps (as calendar seasons in
    sampled data are: 24 hours, 7 days, 12 months)."""
    period = log_uniform(rng, low, high, size)
    if integer_fraction <= 0:  # no draw at all: the stream, and so a seeded run, stays as before the option
        return period
    return np.where(rng.random(size) < integer_fraction, np.maximum(np.round(period), np.ceil(low)), period)


def standardize(series: np.ndarray) -> np.ndarray:
    """Zero mean, unit std per row (rows that are constant stay zero)."""
    centered = series - series.mean(axis=1, keepdims=True)
    return centered / np.maximum(centered.std(axis=1, keepdims=True), 1e-9)


def time_axis(rng: np.random.Generator, m: int, length: int) -> np.ndarray:
    """(m, length) steps from a random start, so no family always begins at the same point of its cycle."""
    return rng.uniform(0, 1000, (m, 1)) + np.arange(length)[None, :]


def reference_sines(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    spec = DataSpec()
    return unit_waves(rng, m, length, 1, "train", spec, start_steps(rng, m, spec))[:, :, 0].astype(np.float64)


def sines(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """Sums of 1-3 sinusoids with periods log-uniform in MIN_PERIOD..MAX_PERIOD."""
    t = time_axis(rng, m, length)[:, :, None]
    period = season_periods(rng, MIN_PERIOD, MAX_PERIOD, (m, 1, 3), integer_periods)
    amplitude = rng.uniform(0.2, 1.0, (m, 1, 3)) * (np.arange(3) < rng.integers(1, 4, (m, 1, 1)))
    amplitude[:, :, 0] = 1.0
    return (amplitude * np.sin(TAU * t / period + rng.uniform(0, TAU, (m, 1, 3)))).sum(axis=2)


def moving_average(series: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Trailing moving average with a per-row window (1 = unchanged), same length (shorter windows at the start)."""
    cumulative = np.concatenate([np.zeros((len(series), 1)), np.cumsum(series, axis=1)], axis=1)
    end = np.arange(1, series.shape[1] + 1)[None, :]
    begin = np.maximum(end - window[:, None], 0)
    rows = np.arange(len(series))[:, None]
    return (cumulative[rows, end] - cumulative[rows, begin]) / (end - begin)


def periodic_shapes(rng: np.random.Generator, m: int, t: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Square, sawtooth, triangle, pulse train or harmonic series of the given periods, one kind per row."""
    x = np.mod(t / period + rng.random((m, 1)), 1.0)
    duty = rng.uniform(0.2, 0.8, (m, 1))
    width = rng.uniform(0.03, 0.2, (m, 1))
    harmonics = np.arange(1, 7)[None, None, :]
    weights = rng.uniform(0.3, 1.0, (m, 1, 1)) ** (harmonics - 1) * rng.uniform(0.3, 1.0, (m, 1, 6))
    phases = rng.uniform(0, TAU, (m, 1, 6))
    kinds = [
        np.where(x < duty, 1.0, -1.0),  # square
        np.where(rng.random((m, 1)) < 0.5, x, 1.0 - x),  # sawtooth, rising or falling
        1.0 - 2.0 * np.abs(2.0 * x - 1.0),  # triangle
        (x < width).astype(np.float64),  # pulse train
        (weights * np.sin(TAU * harmonics * x[:, :, None] + phases)).sum(axis=2),  # harmonic series
    ]
    return np.choose(rng.integers(0, len(kinds), (m, 1)), kinds)


def shapes(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """Non-sinusoidal periodic shapes, half of them smoothed by a moving average up to a quarter period."""
    t = time_axis(rng, m, length)
    period = season_periods(rng, 6.0, MAX_PERIOD, (m, 1), integer_periods)
    series = periodic_shapes(rng, m, t, period)
    window = np.where(rng.random(m) < 0.5, 1, np.maximum(1, (rng.uniform(0, 0.25, m) * period[:, 0]).astype(int)))
    return moving_average(series, window)


def modulated(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """Amplitude modulation (depth 0.2-0.9) or frequency modulation (+-5..30 % of the frequency)."""
    t = time_axis(rng, m, length)
    period = season_periods(rng, MIN_PERIOD, 200.0, (m, 1), integer_periods)
    slow = period * log_uniform(rng, 3.0, 30.0, (m, 1))
    slow_phase = TAU * t / slow + rng.uniform(0, TAU, (m, 1))
    phase = rng.uniform(0, TAU, (m, 1))
    am = (1 + rng.uniform(0.2, 0.9, (m, 1)) * np.sin(slow_phase)) * np.sin(TAU * t / period + phase)
    deviation = rng.uniform(0.05, 0.3, (m, 1)) * slow / period  # peak phase deviation for that frequency swing
    fm = np.sin(TAU * t / period + phase + deviation * np.sin(slow_phase))
    return np.where(rng.random((m, 1)) < 0.5, am, fm)


def seasonal_part(rng: np.random.Generator, m: int, length: int, integer_periods: float) -> np.ndarray:
    """A standardized periodic part: a sine (40 %) or a periodic shape, periods 4-200 steps."""
    t = time_axis(rng, m, length)
    period = season_periods(rng, MIN_PERIOD, 200.0, (m, 1), integer_periods)
    return standardize(np.where(rng.random((m, 1)) < 0.4, np.sin(TAU * t / period), periodic_shapes(rng, m, t, period)))


def on_level(rng: np.random.Generator, level: np.ndarray, season: np.ndarray) -> np.ndarray:
    """The season (strength 0.2-1) added to a level; on a fifth, its swing grows with the level."""
    m = len(level)
    strength = rng.uniform(0.2, 1.0, (m, 1))
    multiplicative = rng.random((m, 1)) < 0.2
    growing = np.exp(0.5 * standardize(level))  # seasonal swing that grows with the level
    return level + strength * season * np.where(multiplicative, growing, 1.0)


def trend_season(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """A periodic part (sine, harmonics or shape) on a linear or curving trend, level shifts, some multiplicative."""
    season = seasonal_part(rng, m, length, integer_periods)
    u = np.linspace(0, 1, length)[None, :]
    trend = rng.normal(0, 2.0, (m, 1)) * u + rng.normal(0, 1.0, (m, 1)) * u**2 * (rng.random((m, 1)) < 0.5)
    shift_at = rng.integers(0, length, (m, 2))
    shift_size = rng.normal(0, 1.0, (m, 2)) * (rng.random((m, 2)) < 0.15)
    shifts = (shift_size[:, None, :] * (np.arange(length)[None, :, None] >= shift_at[:, None, :])).sum(axis=2)
    return on_level(rng, trend + shifts, season)


def turning_trends(rng: np.random.Generator, m: int, length: int) -> np.ndarray:
    """Trends that tend to flatten: a slope multiplied by -0.5..1 at 1-3 random points, or (30 %) a tanh step."""
    u = np.linspace(0, 1, length)[None, :]
    knots = np.sort(rng.uniform(0, 1, (m, 3)), axis=1)
    knots = np.where(rng.random((m, 3)) < np.array([[1.0, 0.5, 0.25]]), knots, 2.0)  # 2.0: never reached
    factors = rng.uniform(-0.5, 1.0, (m, 3))
    passed = u[:, :, None] >= knots[:, None, :]
    slope = rng.normal(0, 3.0, (m, 1)) * np.prod(np.where(passed, factors[:, None, :], 1.0), axis=2)
    broken = np.cumsum(slope, axis=1) / length
    centre, width = rng.uniform(0.2, 1.0, (m, 1)), rng.uniform(0.05, 0.4, (m, 1))
    step = rng.normal(0, 1.5, (m, 1)) * np.tanh((u - centre) / width)
    return np.where(rng.random((m, 1)) < 0.3, step, broken)


def turning_trend(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """A periodic part on a trend that turns or saturates (`turning_trends`): recorded trends rarely run on for
    150 steps, and damped trends are the classical remedy; some multiplicative."""
    season = seasonal_part(rng, m, length, integer_periods)
    return on_level(rng, turning_trends(rng, m, length), season)


def stochastic(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """AR(1), AR(2) with a quasi-period of 6-100 steps, or a random walk; a third on a periodic part."""
    burn_in = 200
    kind = rng.integers(0, 3, m)
    phi1 = np.where(kind == 0, rng.uniform(0.5, 0.99, m), 0.0)
    radius, period = rng.uniform(0.85, 0.995, m), log_uniform(rng, 6.0, 100.0, m)
    phi1 = np.where(kind == 1, 2 * radius * np.cos(TAU / period), phi1)
    phi2 = np.where(kind == 1, -(radius**2), 0.0)
    phi1 = np.where(kind == 2, 1.0, phi1)
    shocks = rng.standard_normal((m, length + burn_in))
    series = np.zeros((m, length + burn_in))
    for step in range(2, length + burn_in):
        series[:, step] = phi1 * series[:, step - 1] + phi2 * series[:, step - 2] + shocks[:, step]
    series = standardize(series[:, burn_in:])
    with_season = rng.random((m, 1)) < 0.33
    season_period = season_periods(rng, MIN_PERIOD, 200.0, (m, 1), integer_periods)
    season = np.sin(TAU * time_axis(rng, m, length) / season_period)
    return series * np.where(with_season, rng.uniform(0.2, 0.7, (m, 1)), 1.0) + with_season * season


def cycle_positions(rng: np.random.Generator, m: int, length: int, period: np.ndarray, jitter: np.ndarray):
    """Per step (m, length): which cycle it falls in and how far into it (0..1), when cycle k lasts
    period x (1 + jitter x e_k) steps, e_k standard normal clipped to +-2, and the series starts inside a cycle."""
    cycles = int(np.ceil(length / (0.6 * period.min()))) + 2
    spread = np.clip(rng.standard_normal((m, cycles)), -2.0, 2.0)
    lengths = np.maximum(period * (1 + jitter * spread), 2.0)
    ends = np.cumsum(lengths, axis=1) - rng.random((m, 1)) * lengths[:, :1]
    t = np.arange(length, dtype=np.float64)
    shift = (np.arange(m) * (ends[:, -1].max() + length + 1.0))[:, None]  # rows apart, so one search serves all
    index = np.searchsorted((ends + shift).ravel(), (t[None, :] + shift).ravel(), side="right").reshape(m, length)
    index -= np.arange(m)[:, None] * cycles
    rows = np.arange(m)[:, None]
    start = np.where(index > 0, ends[rows, np.maximum(index - 1, 0)], ends[:, :1] - lengths[:, :1])
    return index, np.clip((t[None, :] - start) / lengths[rows, index], 0.0, 1.0)


def cycles(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """Quasi-periodic cycles (mean length 6-200 steps, each +-0-15 %), each with its own height (log-normal,
    spread 0-0.5) and a rise taking 25-75 % of it; half are one-sided bumps above a floor, half full swings."""
    period = season_periods(rng, 6.0, 200.0, (m, 1), integer_periods)
    index, x = cycle_positions(rng, m, length, period, rng.uniform(0.0, 0.15, (m, 1)))
    rise = rng.uniform(0.25, 0.75, (m, 1))
    warped = np.where(x < rise, 0.5 * x / rise, 0.5 + 0.5 * (x - rise) / (1 - rise))  # peak at `rise`, mid-cycle
    height = np.exp(rng.uniform(0.0, 0.5, (m, 1)) * rng.standard_normal((m, index.max() + 1)))
    height = np.take_along_axis(height, index, axis=1)
    bump = np.sin(np.pi * warped) ** rng.uniform(1.0, 2.5, (m, 1))
    swing = -np.cos(TAU * warped)
    return height * np.where(rng.random((m, 1)) < 0.5, bump, swing)


def random_fourier(rng: np.random.Generator, t: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """A stationary GP sample by random Fourier features: frequencies (m, D) drawn from the kernel's spectrum."""
    d = frequencies.shape[1]
    weights, offsets = rng.standard_normal((len(t), 1, d)), rng.uniform(0, TAU, (len(t), 1, d))
    return np.sqrt(2.0 / d) * (weights * np.cos(t[:, :, None] * frequencies[:, None, :] + offsets)).sum(axis=2)


def kernel_component(
    rng: np.random.Generator, kind: str, m: int, length: int, integer_periods: float = 0.0
) -> np.ndarray:
    """One GP sample per row for a kernel kind, with random hyperparameters."""
    t = np.broadcast_to(np.arange(length, dtype=np.float64)[None, :], (m, length))
    if kind == "periodic":  # ExpSineSquared: a random Fourier series whose harmonics fall off with the length scale
        period = season_periods(rng, MIN_PERIOD, MAX_PERIOD, (m, 1, 1), integer_periods)
        k = np.arange(1, 11)[None, None, :]
        std = np.exp(-0.5 * (k * rng.uniform(0.15, 1.0, (m, 1, 1))) ** 2)
        coefficients = rng.standard_normal((m, 2, 10)) * std[:, 0, None, :]
        angle = TAU * k * (t[:, :, None] / period)
        return (coefficients[:, None, 0] * np.cos(angle) + coefficients[:, None, 1] * np.sin(angle)).sum(axis=2)
    if kind == "rbf":
        scale = log_uniform(rng, 3.0, length, (m, 1))
        return random_fourier(rng, t, rng.standard_normal((m, 32)) / scale)
    if kind == "rational_quadratic":  # a scale mixture of RBFs: per-feature precision ~ Gamma(alpha, 1/alpha)
        scale, alpha = log_uniform(rng, 3.0, length, (m, 1)), rng.uniform(0.1, 2.0, (m, 1))
        precision = rng.gamma(alpha, 1.0 / alpha, (m, 32))
        return random_fourier(rng, t, rng.standard_normal((m, 32)) * np.sqrt(precision) / scale)
    if kind == "linear":
        return (t - rng.uniform(-length, 2 * length, (m, 1))) / length
    return rng.standard_normal((m, length))  # white noise


KERNELS = ("periodic", "periodic", "rbf", "rational_quadratic", "linear", "white")  # periodic drawn twice as often


def kernel(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """KernelSynth: 1-3 kernels from the bank, combined by random sums and products."""
    series = np.zeros((m, length))
    parts = rng.integers(1, 4, m)
    for slot in range(3):
        kinds = rng.integers(0, len(KERNELS), m)
        component = np.zeros((m, length))
        for index, name in enumerate(KERNELS):
            rows = np.flatnonzero(kinds == index)
            if len(rows):
                component[rows] = standardize(kernel_component(rng, name, len(rows), length, integer_periods))
        white = (kinds == KERNELS.index("white"))[:, None]
        component = np.where(white, 0.2 * component, component)  # white noise stays a small part
        if slot == 0:
            series = component
            continue
        product = rng.random((m, 1)) < 0.3
        active = (slot < parts)[:, None]
        combined = np.where(product, series * component, series + component)
        series = np.where(active, combined, series)
    return series


def multi_season(rng: np.random.Generator, m: int, length: int, integer_periods: float = 0.0) -> np.ndarray:
    """Two seasons nested as days in a week: a short cycle of 4-60 steps (a day's profile: sine, harmonics or a
    shape) whose level and swing change from one cycle to the next by a pattern of 4-12 cycles (most often 7),
    as demand, traffic and call volumes have; on a third, a slow trend."""
    t = time_axis(rng, m, length)
    period = season_periods(rng, MIN_PERIOD, 60.0, (m, 1), integer_periods)
    days = np.where(rng.random((m, 1)) < 0.6, 7, rng.integers(4, 13, (m, 1)))
    profile = np.where(rng.random((m, 1)) < 0.3, np.sin(TAU * t / period), periodic_shapes(rng, m, t, period))
    day = np.mod(np.floor(t / period).astype(np.int64), days)  # which cycle of the pattern each step is in
    quiet = rng.random((m, 12)) < rng.uniform(0.0, 0.4, (m, 1))  # some cycles are quiet (a weekend)
    swing = np.where(quiet, rng.uniform(0.2, 0.7, (m, 12)), 1.0) * rng.uniform(0.85, 1.15, (m, 12))
    level = np.where(quiet, -rng.uniform(0.2, 1.0, (m, 1)), 0.0) + rng.normal(0, 0.15, (m, 12))
    rows = np.arange(m)[:, None]
    series = level[rows, day] + swing[rows, day] * standardize(profile)
    u = np.linspace(0, 1, length)[None, :]
    return series + (rng.random((m, 1)) < 0.33) * rng.normal(0, 1.0, (m, 1)) * u


FAMILIES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "reference_sines": reference_sines,
    "sines": sines,
    "shapes": shapes,
    "modulated": modulated,
    "trend_season": trend_season,
    "turning_trend": turning_trend,
    "stochastic": stochastic,
    "kernel": kernel,
    "cycles": cycles,
    "multi_season": multi_season,
}


def synthetic_series(
    rng: np.random.Generator,
    m: int,
    length: int,
    weights: dict[str, float] = FAMILY_WEIGHTS,
    integer_periods: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """`m` standardized series of `length` steps, each from a family drawn by weight; returns (series, family index).
    `integer_periods`: the fraction of seasons whose period is a whole number of steps (the rest: any real)."""
    names = list(weights)
    probabilities = np.array([weights[name] for name in names], np.float64)
    family = rng.choice(len(names), size=m, p=probabilities / probabilities.sum())
    series = np.zeros((m, length))
    for index, name in enumerate(names):
        rows = np.flatnonzero(family == index)
        if len(rows):
            series[rows] = standardize(FAMILIES[name](rng, len(rows), length, integer_periods))
    return series, family


@dataclass(frozen=True)
class SyntheticSource:
    """Training and validation windows from the synthetic family (a BatchSource, see training/train.py)."""

    features: int
    min_observed: int = 60
    max_observed: int = 300
    weights: tuple[tuple[str, float], ...] = tuple(FAMILY_WEIGHTS.items())
    max_amplitude_log10: float = 1.0
    max_offset: float = 5.0
    integer_periods: float = 0.0
    context: int = 0  # > 0: the model normalizes by the last `context` observed steps (a longer season look back)

    def batch(
        self,
        rng: np.random.Generator,
        n: int,
        observed: int,
        horizon: int,
        weights: dict[str, float] | None = None,
        noisy_target: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`n` windows (observed (n, observed, F), target (n, horizon, F)) of the source's family mix (or
        `weights`); the observation noise is on the observed part only, or on the target too."""
        length = observed + horizon
        mix = dict(self.weights) if weights is None else weights
        series, _ = synthetic_series(rng, n * self.features, length, mix, self.integer_periods)
        # A window whose observed part is (nearly) flat, e.g. between two pulses, says nothing of its future and
        # normalizes the target to huge values: such rows are drawn again from the plain sines. With `context`,
        # the part the model normalizes by (the last `context` observed steps) against it and the target.
        if self.context:
            seen = series[:, max(0, observed - self.context) :]
            flat = np.flatnonzero(seen[:, :-horizon].std(axis=1) < MIN_OBSERVED_STD * seen.std(axis=1))
        else:
            flat = np.flatnonzero(series[:, :observed].std(axis=1) < MIN_OBSERVED_STD)
        if len(flat):
            series[flat] = standardize(sines(rng, len(flat), length, self.integer_periods))
        waves = series.reshape(n, self.features, length).transpose(0, 2, 1)
        waves, amplitude, _ = scale_and_offset(rng, waves, self.max_amplitude_log10, self.max_offset)
        sigma = rng.uniform(0.0, MAX_NOISE, (n, 1, self.features)) * amplitude
        sigma *= rng.random((n, 1, self.features)) < NOISY_FRACTION
        if noisy_target:
            noisy = add_noise(rng, waves, sigma)
            return noisy[:, :observed], noisy[:, observed:]
        return add_noise(rng, waves[:, :observed], sigma), waves[:, observed:]

    def observed_range(self) -> tuple[int, int]:
        return self.min_observed, self.max_observed

    def validation_sets(self, config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
        """Clean unit reference sines (validation split) and synthetic windows at three observed lengths."""
        rng = np.random.default_rng(config.seed + 1_000_003)
        horizon, n = config.model.horizon, config.validation_waves
        unit = unit_waves(rng, n, 2 * horizon + horizon // 2, self.features, "validation", config.data)
        sets = [(unit[:, :-horizon], unit[:, -horizon:])]
        for observed in (self.min_observed + 40, (self.min_observed + self.max_observed) // 2, self.max_observed):
            sets.append(self.batch(rng, n, observed, horizon))
        return sets

    def calibration_sets(self, config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
        """Held-out synthetic windows for the prediction intervals, `config.validation_waves` at each of
        CALIBRATION_LENGTHS observed steps (inside the observed range)."""
        rng = np.random.default_rng(config.seed + 2_000_003)
        lengths = sorted({min(max(length, self.min_observed), self.max_observed) for length in CALIBRATION_LENGTHS})
        return [self.batch(rng, config.validation_waves, observed, config.model.horizon) for observed in lengths]

    def recorded_like_sets(self, config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
        """Held-out calibration windows that look like recorded series: RECORDED_LIKE_WAVES of the
        RECORDED_LIKE_FAMILIES at each of RECORDED_LIKE_LENGTHS observed steps, the target as noisy as the
        observed part."""
        rng = np.random.default_rng(config.seed + 3_000_003)
        horizon = config.model.horizon
        return [
            self.batch(rng, RECORDED_LIKE_WAVES, observed, horizon, RECORDED_LIKE_FAMILIES, noisy_target=True)
            for observed in RECORDED_LIKE_LENGTHS
            if self.min_observed <= observed <= self.max_observed
        ]

    def describe(self) -> dict:
        return {
            "source": "synthetic",
            "families": dict(self.weights),
            "periods": [MIN_PERIOD, MAX_PERIOD],
            "integer_periods": self.integer_periods,
            "observed": [self.min_observed, self.max_observed],
            "noisy_fraction": NOISY_FRACTION,
            "max_noise": MAX_NOISE,
            "max_amplitude_log10": self.max_amplitude_log10,
            "max_offset": self.max_offset,
        }


def synthetic_source_of(description: dict, features: int) -> SyntheticSource:
    """The SyntheticSource a manifest's `data` (as written by `SyntheticSource.describe`) was drawn from."""
    low, high = description["observed"]
    return SyntheticSource(
        features,
        min_observed=low,
        max_observed=high,
        weights=tuple(description["families"].items()),
        max_amplitude_log10=description["max_amplitude_log10"],
        max_offset=description["max_offset"],
        integer_periods=description.get("integer_periods", 0.0),
    )
