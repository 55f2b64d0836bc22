"""Prediction intervals by split conformal prediction, per horizon step: the calibration record and the bands
(numpy only: the service uses it too; the calibration run is training/calibrate.py, coverage reports
training/coverage.py).

A score is a window's absolute error at one step divided by the wave's difficulty: the model's normalization
scale (per-wave, per-feature standard deviation of the observed window it reads) times exp(x . beta_step), where
x describes the observed window (how many steps, piecewise linear in log(steps) since the error grows steeply
below about 80 steps; how rough; how fast; where in its cycle it starts, as the first value and first slope in
units of the scale and speed, and their second harmonics; how well it repeats itself, as the log of seasonal
naive's in-sample error over the scale, the season being the autocorrelation peak's lag). Series are grouped:
by roughness (NOISE_EDGES: smooth, slightly noisy, noisy), by observed steps (fewer than LENGTH_EDGES or more)
and by how closely they repeat themselves (REPEAT_EDGES on the repetition error). beta is fitted per step and per
noise x repeat group by least squares on log(|error| / scale) on one half of the calibration windows; on the
other half the scores' quantiles per step and per group, with the finite-sample correction (the
ceil((n + 1) level)-th smallest of n), are taken on a grid of levels.
A band is prediction +- quantile x difficulty. Channel-independent models treat every feature the same way,
so their features are pooled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.seasonality import estimate_periods, seasonal_naive_error

LEVEL_GRID = (*range(1, 100), 99.5, 99.9)
NOISE_EDGES = (0.05, 0.2)  # roughness (std of second differences / std): smooth, slightly noisy, noisy series
SMOOTHING_STEPS = 9  # beta is averaged over this many neighbouring steps
LENGTH_KNOTS = (60, 75, 100, 150, 225)  # observed steps; the model's context is the last knot
LENGTH_EDGES = (100,)  # observed steps (up to the context) that separate short windows' quantiles from the rest
START_TERMS = ("start level", "start slope", "start level x slope", "start level^2 - slope^2")
SEASON_TERM = "log(seasonal-naive error)"
SEASON_ERROR_RANGE = (1e-3, 3.0)  # in-sample seasonal-naive MAE over the scale, clipped: exact repeats are not free
REPEAT_EDGES = (0.05, 0.1, 0.2)  # repetition errors that group series from exact repeats to none
MIN_LOG_ERROR = 1e-6
MIN_FITTING_SERIES = 200  # a coefficient group with fewer fitting series takes the coefficients fitted on all
HORIZON_BUCKETS = ((1, 10), (11, 50), (51, 100), (101, 150))  # steps whose coverage is reported together


class CalibrationError(ValueError):
    """Too few calibration windows, or a calibration record this code cannot use."""


def length_knots(context: int) -> list[int]:
    """Knots of the piecewise-linear length terms for a model that reads `context` steps."""
    return [knot for knot in LENGTH_KNOTS if knot < context] + [context]


def describe(
    waves: np.ndarray, knots: Sequence[int], start_terms: bool = True, season_term: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per series of observed waves (n, T, F): the normalization scale (n, F), the design (n, F, terms), the
    roughness (n, F) and the repetition error (n, F: seasonal naive's in-sample MAE over the scale; with no
    season, repeating half the window); only the last knots[-1] (the model's context) steps count, as in the
    model. Records made before the start or season terms existed are read with `start_terms=False` or
    `season_term=False`."""
    recent = np.asarray(waves, np.float64)[:, -knots[-1] :]
    mean = recent.mean(axis=1)
    scale = recent.std(axis=1) + 1e-7 * np.abs(mean) + 1e-12  # as training.layers.WaveNormalizer
    roughness = np.clip(np.diff(recent, n=2, axis=1).std(axis=1) / scale, 0.0, 2.0)
    speed = np.clip(np.diff(recent, axis=1).std(axis=1) / scale, 1e-3, 2.0)
    rows = np.moveaxis(recent, 1, 2).reshape(-1, recent.shape[1])  # (n F, T)
    periods = estimate_periods(rows, recent.shape[1] // 2)
    periods = np.where(periods > 1, periods, recent.shape[1] // 2)  # no season: how far it wanders in half the window
    repeat_error = seasonal_naive_error(rows, periods).reshape(scale.shape)
    repetition = np.clip(repeat_error / scale, *SEASON_ERROR_RANGE)
    at = np.interp(np.log(recent.shape[1]), np.log(knots), np.arange(len(knots)))
    hats = np.clip(1 - np.abs(at - np.arange(len(knots))), 0, None)  # weights of the knots, summing to 1
    terms = [np.broadcast_to(hats, (*scale.shape, len(knots))), roughness[..., None], np.log(speed)[..., None]]
    if start_terms:  # the phase where the window starts: (level, slope) ~ (sin, cos) of it for a sinusoid
        level = np.clip((recent[:, 0] - mean) / scale, -3.0, 3.0)
        slope = np.clip((recent[:, 3] - recent[:, 0]) / (3 * scale * speed), -3.0, 3.0)
        terms.append(np.stack([level, slope, level * slope, level**2 - slope**2], axis=-1))
    if season_term:
        terms.append(np.log(repetition)[..., None])
    return scale, np.concatenate(terms, axis=-1), roughness, repetition


def groups_of(
    roughness: np.ndarray,
    repetition: np.ndarray,
    steps: int,
    noise_edges: np.ndarray,
    length_edges: Sequence[int],
    repeat_edges: Sequence[float],
) -> np.ndarray:
    """Quantile group (n, F) of each series: by roughness, then by how many steps the model reads, then by how
    well it repeats itself (records without repeat edges have one repetition group)."""
    length_group = int(np.searchsorted(np.asarray(length_edges), steps, side="right"))
    noise_group = np.searchsorted(noise_edges, roughness, side="right")
    repeat_group = np.searchsorted(np.asarray(repeat_edges, np.float64), repetition, side="right")
    return (noise_group * (len(length_edges) + 1) + length_group) * (len(repeat_edges) + 1) + repeat_group


def coefficient_group(group: np.ndarray, lengths: int, repeats: int) -> np.ndarray:
    """The coefficient set of each quantile group: its noise group x repeats + repeat group (the length groups
    share one), for `lengths` length groups and `repeats` repeat groups."""
    return group // (lengths * repeats) * repeats + group % repeats


def log_difficulty(design: np.ndarray, sets: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """design (n, F, terms) . coefficients[sets] (n, F, horizon): each series' own coefficient set of
    `coefficients` (sets, terms, horizon)."""
    return np.einsum("nfd,nfdh->nfh", design, coefficients[sets])


@dataclass(frozen=True)
class Calibration:
    """A version's calibration record (its calibration.json), decoded once."""

    levels: tuple[float, ...]
    knots: tuple[int, ...]
    noise_edges: np.ndarray
    length_edges: tuple[int, ...]
    repeat_edges: tuple[float, ...]
    start_terms: bool
    season_term: bool
    coefficients: np.ndarray  # (noise x repeat groups, or 1, design, horizon)
    quantiles: np.ndarray  # (groups, levels, horizon, 1 or features)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Calibration:
        try:
            groups, levels, horizon, columns = record["quantile_shape"]
            quantiles = parse_rows(record["quantiles"]).reshape(groups, levels, columns, horizon).transpose(0, 1, 3, 2)
            return cls(
                levels=tuple(record["levels"]),
                knots=tuple(record["length_knots"]),
                noise_edges=np.asarray(record["noise_edges"], np.float64),
                length_edges=tuple(record.get("length_edges", ())),
                repeat_edges=tuple(record.get("repeat_edges", ())),
                start_terms=START_TERMS[0] in record["design"],
                season_term=SEASON_TERM in record["design"],
                coefficients=parse_rows(record["coefficients"]).reshape(
                    record.get("coefficient_groups", 1), -1, record["quantile_shape"][2]
                ),
                quantiles=quantiles,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"unusable calibration record: {error}") from error

    def difficulty(self, waves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Difficulty (n, F, horizon) and quantile group (n, F) of each series of observed waves (n, T, F)."""
        scale, design, roughness, repetition = describe(waves, self.knots, self.start_terms, self.season_term)
        steps = min(waves.shape[1], self.knots[-1])
        group = groups_of(roughness, repetition, steps, self.noise_edges, self.length_edges, self.repeat_edges)
        sets = (
            coefficient_group(group, len(self.length_edges) + 1, len(self.repeat_edges) + 1)
            if len(self.coefficients) > 1
            else np.zeros_like(group)  # records from before the coefficient sets have one
        )
        return scale[..., None] * np.exp(log_difficulty(design, sets, self.coefficients)), group

    def bounds(self, level: float) -> bool:
        """Whether the stored levels reach `level`: always when the grid's top was calibrated (higher levels
        then use it), otherwise only up to the highest level its windows could bound."""
        return level <= self.levels[-1] or self.levels[-1] == LEVEL_GRID[-1]

    def level_index(self, level: float) -> int:
        """The stored level to use for `level`: the smallest one at least as high (the conservative choice), or
        the highest stored when `level` is above it."""
        return next((i for i, stored in enumerate(self.levels) if stored >= level), len(self.levels) - 1)


def bands(
    prediction: np.ndarray, observed: np.ndarray, calibration: Calibration, levels: Sequence[float]
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """{level: (lower, upper)} for predictions (n, H, F) of observed waves (n, T, F) of equal length; H may be
    shorter than the calibrated horizon."""
    horizon = prediction.shape[1]
    spread, group = calibration.difficulty(observed)
    result = {}
    for level in levels:
        q = calibration.quantiles[:, calibration.level_index(level), :horizon, :]  # (groups, H, 1 or F)
        per_series = np.moveaxis(q, -1, 0)  # (1 or F, groups, H)
        features = np.arange(group.shape[1]) % per_series.shape[0]
        half = per_series[features[None, :], group] * spread[..., :horizon]  # (n, F, H)
        half = np.moveaxis(half, 1, 2)
        result[level] = (prediction - half, prediction + half)
    return result


def conformal_quantile(scores: np.ndarray, level: float) -> np.ndarray:
    """The ceil((n + 1) level)-th smallest of n scores along axis 0 (level in (0, 1))."""
    n = len(scores)
    rank = math.ceil((n + 1) * level - 1e-9)
    if rank > n:
        raise CalibrationError(f"{n} scores cannot bound level {level:g}")
    return np.partition(scores, rank - 1, axis=0)[rank - 1]


def fit(
    predictions: Sequence[np.ndarray],
    observed: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    context: int,
    pooled: bool,
    seed: int = 0,
) -> dict[str, Any]:
    """A calibration record from held-out windows, given as batches of equal length: predictions and targets
    (n, H, F), observed (n, T, F). `pooled`: one set of quantiles for all features (channel-independent models)."""
    errors, designs, scales, groups = [], [], [], []
    edges, knots = np.asarray(NOISE_EDGES), length_knots(context)
    for prediction, seen, target in zip(predictions, observed, targets, strict=True):
        scale, design, roughness, repetition = describe(seen, knots)
        group = groups_of(roughness, repetition, min(seen.shape[1], knots[-1]), edges, LENGTH_EDGES, REPEAT_EDGES)
        errors.append(np.abs(np.asarray(prediction, np.float64) - target).transpose(0, 2, 1))  # (n, F, H)
        designs.append(design)
        scales.append(scale)
        groups.append(group)
    error, design, scale, group = (np.concatenate(a) for a in (errors, designs, scales, groups))
    windows, features, horizon = error.shape
    order = np.random.default_rng(seed).permutation(windows)
    fitting, scoring = order[: windows // 2], order[windows // 2 :]

    log_error = np.log(np.maximum(error[fitting] / scale[fitting, :, None], MIN_LOG_ERROR)).reshape(-1, horizon)
    sets = coefficient_group(group, len(LENGTH_EDGES) + 1, len(REPEAT_EDGES) + 1)
    flat_design, fitting_sets = design[fitting].reshape(-1, design.shape[-1]), sets[fitting].ravel()
    count = (len(edges) + 1) * (len(REPEAT_EDGES) + 1)
    beta = np.stack([fit_coefficients(flat_design, log_error, fitting_sets == k) for k in range(count)])

    score = error[scoring] / (scale[scoring, :, None] * np.exp(log_difficulty(design[scoring], sets[scoring], beta)))
    score_groups = group[scoring]
    columns = [slice(None)] if pooled else [slice(f, f + 1) for f in range(features)]
    per_group = []
    for g in range((len(edges) + 1) * (len(LENGTH_EDGES) + 1) * (len(REPEAT_EDGES) + 1)):
        own = [score[:, c][score_groups[:, c] == g] for c in columns]  # each (count, H)
        whole = [score[:, c].reshape(-1, horizon) for c in columns]
        per_group.append([o if len(o) >= 200 else w for o, w in zip(own, whole, strict=True)])
    smallest = min(len(s) for g in per_group for s in g)
    levels = [level for level in LEVEL_GRID if math.ceil((smallest + 1) * level / 100 - 1e-9) <= smallest]
    if not levels:
        raise CalibrationError(f"{smallest} calibration series are too few for any level")
    quantiles = [
        [np.stack([conformal_quantile(s, level / 100) for s in sets], axis=-1) for level in levels]
        for sets in per_group
    ]
    return {
        "method": "split conformal per horizon step; score = |error| / (scale * exp(design . coefficients[set, step]))",
        "design": [f"length knot {knot}" for knot in knots] + ["roughness", "log(speed)", *START_TERMS, SEASON_TERM],
        "length_knots": knots,
        "windows": int(windows),
        "series_scored": {f"group {g}": int(sum(len(s) for s in sets)) for g, sets in enumerate(per_group)},
        "pooled_features": pooled,
        "noise_edges": list(NOISE_EDGES),
        "length_edges": list(LENGTH_EDGES),
        "repeat_edges": list(REPEAT_EDGES),
        "groups": "(noise group x (length edges + 1) + length group) x (repeat edges + 1) + repeat group",
        "coefficient_groups": len(beta),  # one set per noise group x (repeat edges + 1) + repeat group
        "coefficients": rows(beta.reshape(-1, horizon)),
        "levels": levels,
        "quantile_shape": list(np.shape(quantiles)),  # groups, levels, horizon, 1 or features
        "quantiles": rows(np.moveaxis(np.asarray(quantiles), 2, 3).reshape(-1, horizon)),  # one row per step curve
    }


def fit_coefficients(design: np.ndarray, log_error: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Least-squares coefficients (terms, horizon) of log errors (series, horizon) on the design (series, terms),
    from the selected rows (all of them when fewer than MIN_FITTING_SERIES), smoothed along the horizon."""
    rows = rows if rows.sum() >= MIN_FITTING_SERIES else np.ones_like(rows)
    return smooth(np.linalg.lstsq(design[rows], log_error[rows], rcond=None)[0], SMOOTHING_STEPS)


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average along the last axis, edges padded with their own values."""
    kernel = np.ones(width) / width
    padded = np.pad(values, [(0, 0), (width // 2, width // 2)], mode="edge")
    return np.stack([np.convolve(row, kernel, mode="valid") for row in padded])


def rows(values: np.ndarray) -> list[str]:
    """A 2-D array as one line of numbers (5 significant digits) per row: the manifest stays small."""
    return [" ".join(f"{v:.5g}" for v in row) for row in values]


def parse_rows(lines: Sequence[str]) -> np.ndarray:
    """The inverse of `rows`."""
    return np.array([line.split() for line in lines], np.float64)
