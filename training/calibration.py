"""Prediction intervals by split conformal prediction, per horizon step: the calibration record and the bands
(numpy only: the service uses it too; the calibration run is training/calibrate.py, coverage reports
training/coverage.py).

A score is a window's absolute error at one step divided by the wave's difficulty: the model's normalization
scale (per-wave, per-feature standard deviation of the observed window it reads) times exp(x . beta_step), where
x describes the observed window (how many steps, piecewise linear in log(steps) since the error grows steeply
below about 80 steps; how rough; how fast; where in its cycle it starts, as the first value and first slope in
units of the scale and speed, and their second harmonics; how well it repeats itself, as the log of seasonal
naive's in-sample error over the scale, the season being the autocorrelation peak's lag; since `general/9`, how
well the model completed the wave's own past: its backtests, completions from BACKTEST_STEPS_BACK steps before
the end of the observed wave compared with the steps that followed, as the log of their MAE over the scale).
Series are grouped: by roughness (NOISE_EDGES: smooth, slightly noisy, noisy), by observed steps (fewer than
LENGTH_EDGES or more), by how closely they repeat themselves (REPEAT_EDGES on the repetition error) and by the
backtest error (BACKTEST_EDGES; one more group for waves too short for a backtest). beta is fitted per step and per
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
BACKTEST_STEPS_BACK = (150, 100, 50)  # backtest origins: this many steps before the end of the observed wave
BACKTEST_MIN_STEPS = 60  # a backtest needs this many observed steps before its origin
BACKTEST_EDGES = (0.05, 0.15, 0.4)  # backtest MAE over the scale that separate the backtest groups
BACKTEST_ERROR_RANGE = (1e-3, 10.0)  # backtest MAE over the scale, clipped
BACKTEST_TERMS = ("log(backtest error)", "backtest made")


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


def backtest_origins(steps: int, steps_back: Sequence[int], min_steps: int) -> list[int]:
    """Where the backtests of a wave of `steps` observed steps start: `steps_back` before its end, each with at
    least `min_steps` steps before it."""
    return [steps - back for back in steps_back if steps - back >= min_steps]


def backtest_error(observed: np.ndarray, backtests: Sequence[np.ndarray], origins: Sequence[int], context: int):
    """(log of the backtests' MAE over the scale, whether there was one), each (n, F), for observed waves
    (n, T, F) and their backtests (n, H, F) from `origins` (zeros where there is none); the scale is the model's,
    over the last `context` steps."""
    recent = np.asarray(observed, np.float64)[:, -context:]
    scale = recent.std(axis=1) + 1e-7 * np.abs(recent.mean(axis=1)) + 1e-12
    total, steps = np.zeros(scale.shape), 0
    for origin, backtest in zip(origins, backtests, strict=True):
        compared = min(observed.shape[1] - origin, np.shape(backtest)[1])
        error = np.abs(observed[:, origin : origin + compared] - np.asarray(backtest, np.float64)[:, :compared])
        total, steps = total + error.sum(axis=1), steps + compared
    if not steps:
        return np.zeros(scale.shape), np.zeros(scale.shape, bool)
    return np.log(np.clip(total / steps / scale, *BACKTEST_ERROR_RANGE)), np.ones(scale.shape, bool)


def with_backtests(design: np.ndarray, group: np.ndarray, log_error: np.ndarray, made: np.ndarray, edges):
    """The design with the backtest terms appended, and the group refined by the backtest group (0: none made)."""
    backtest_group = np.where(made, np.searchsorted(np.log(edges), log_error, side="right") + 1, 0)
    terms = np.stack([log_error * made, made.astype(np.float64)], axis=-1)
    return np.concatenate([design, terms], axis=-1), group * (len(edges) + 2) + backtest_group


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
    backtest_steps_back: tuple[int, ...] = ()  # none: the record has no backtest terms
    backtest_min_steps: int = BACKTEST_MIN_STEPS
    backtest_edges: tuple[float, ...] = ()

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Calibration:
        try:
            stored, levels, horizon, columns = record["quantile_shape"]
            quantiles = parse_rows(record["quantiles"]).reshape(stored, levels, columns, horizon).transpose(0, 1, 3, 2)
            quantiles = quantiles[np.asarray(record.get("quantile_rows", range(stored)))]  # groups that share one
            backtest = record.get("backtest", {})
            return cls(
                backtest_steps_back=tuple(backtest.get("steps_back", ())),
                backtest_min_steps=backtest.get("min_steps", BACKTEST_MIN_STEPS),
                backtest_edges=tuple(backtest.get("edges", ())),
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

    def backtest_inputs(self, observed: np.ndarray) -> list[np.ndarray]:
        """What the model must complete for the bands of observed waves (n, T, F) besides the waves themselves:
        their first steps up to each backtest origin (none for a record without backtest terms)."""
        origins = backtest_origins(np.shape(observed)[1], self.backtest_steps_back, self.backtest_min_steps)
        return [observed[:, :origin] for origin in origins]

    def difficulty(self, waves: np.ndarray, backtests: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Difficulty (n, F, horizon) and quantile group (n, F) of each series of observed waves (n, T, F), given
        the completions of their `backtest_inputs`."""
        scale, design, roughness, repetition = describe(waves, self.knots, self.start_terms, self.season_term)
        steps = min(waves.shape[1], self.knots[-1])
        group = groups_of(roughness, repetition, steps, self.noise_edges, self.length_edges, self.repeat_edges)
        sets = (
            coefficient_group(group, len(self.length_edges) + 1, len(self.repeat_edges) + 1)
            if len(self.coefficients) > 1
            else np.zeros_like(group)  # records from before the coefficient sets have one
        )
        if self.backtest_steps_back:
            origins = backtest_origins(waves.shape[1], self.backtest_steps_back, self.backtest_min_steps)
            if len(backtests) != len(origins):
                raise ValueError(f"{len(origins)} backtests needed for {waves.shape[1]} steps, {len(backtests)} given")
            log_error, made = backtest_error(waves, backtests, origins, self.knots[-1])
            design, group = with_backtests(design, group, log_error, made, self.backtest_edges)
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
    prediction: np.ndarray,
    observed: np.ndarray,
    calibration: Calibration,
    levels: Sequence[float],
    backtests: Sequence[np.ndarray] = (),
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """{level: (lower, upper)} for predictions (n, H, F) of observed waves (n, T, F) of equal length, given the
    completions (n, H', F) of `calibration.backtest_inputs(observed)`; H may be shorter than the calibrated
    horizon."""
    horizon = prediction.shape[1]
    spread, group = calibration.difficulty(observed, backtests)
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
    backtests: Sequence[Sequence[np.ndarray]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A calibration record from held-out windows, given as batches of equal length: predictions and targets
    (n, H, F), observed (n, T, F), and the completions of each batch's backtest inputs (`backtest_origins`;
    None: a record without the backtest terms and groups). `pooled`: one set of quantiles for all features
    (channel-independent models)."""
    errors, designs, scales, groups = [], [], [], []
    edges, knots = np.asarray(NOISE_EDGES), length_knots(context)
    backtest_edges = BACKTEST_EDGES if backtests is not None else None
    backtests = [None] * len(observed) if backtests is None else backtests
    for prediction, seen, target, tried in zip(predictions, observed, targets, backtests, strict=True):
        scale, design, roughness, repetition = describe(seen, knots)
        group = groups_of(roughness, repetition, min(seen.shape[1], knots[-1]), edges, LENGTH_EDGES, REPEAT_EDGES)
        if backtest_edges is not None:
            origins = backtest_origins(seen.shape[1], BACKTEST_STEPS_BACK, BACKTEST_MIN_STEPS)
            made = backtest_error(seen, tried, origins, context)
            design, group = with_backtests(design, group, *made, backtest_edges)
        errors.append(np.abs(np.asarray(prediction, np.float64) - target).transpose(0, 2, 1))  # (n, F, H)
        designs.append(design)
        scales.append(scale)
        groups.append(group)
    error, design, scale, group = (np.concatenate(a) for a in (errors, designs, scales, groups))
    windows, features, horizon = error.shape
    order = np.random.default_rng(seed).permutation(windows)
    fitting, scoring = order[: windows // 2], order[windows // 2 :]

    log_error = np.log(np.maximum(error[fitting] / scale[fitting, :, None], MIN_LOG_ERROR)).reshape(-1, horizon)
    backtest_groups = 1 if backtest_edges is None else len(backtest_edges) + 2
    sets = coefficient_group(group // backtest_groups, len(LENGTH_EDGES) + 1, len(REPEAT_EDGES) + 1)
    flat_design, fitting_sets = design[fitting].reshape(-1, design.shape[-1]), sets[fitting].ravel()
    count = (len(edges) + 1) * (len(REPEAT_EDGES) + 1)
    beta = np.stack([fit_coefficients(flat_design, log_error, fitting_sets == k) for k in range(count)])

    score = error[scoring] / (scale[scoring, :, None] * np.exp(log_difficulty(design[scoring], sets[scoring], beta)))
    score_groups = group[scoring]
    columns = [slice(None)] if pooled else [slice(f, f + 1) for f in range(features)]
    whole = [score[:, c].reshape(-1, horizon) for c in columns]
    per_group, quantile_rows = [whole], []  # groups with too few scored series share the row of all of them
    for g in range((len(edges) + 1) * (len(LENGTH_EDGES) + 1) * (len(REPEAT_EDGES) + 1) * backtest_groups):
        own = [score[:, c][score_groups[:, c] == g] for c in columns]  # each (count, H)
        if min(len(o) for o in own) >= 200:
            per_group.append(own)
        quantile_rows.append(len(per_group) - 1 if min(len(o) for o in own) >= 200 else 0)
    smallest = min(len(s) for g in per_group for s in g)
    levels = [level for level in LEVEL_GRID if math.ceil((smallest + 1) * level / 100 - 1e-9) <= smallest]
    if not levels:
        raise CalibrationError(f"{smallest} calibration series are too few for any level")
    quantiles = [
        [np.stack([conformal_quantile(s, level / 100) for s in sets], axis=-1) for level in levels]
        for sets in per_group
    ]
    backtest_terms = [] if backtest_edges is None else list(BACKTEST_TERMS)
    record = {
        "method": "split conformal per horizon step; score = |error| / (scale * exp(design . coefficients[set, step]))",
        "design": [f"length knot {knot}" for knot in knots]
        + ["roughness", "log(speed)", *START_TERMS, SEASON_TERM, *backtest_terms],
        "length_knots": knots,
        "windows": int(windows),
        "series_scored": {f"row {row}": int(sum(len(s) for s in sets)) for row, sets in enumerate(per_group)},
        "pooled_features": pooled,
        "noise_edges": list(NOISE_EDGES),
        "length_edges": list(LENGTH_EDGES),
        "repeat_edges": list(REPEAT_EDGES),
        "groups": "((noise group x (length edges + 1) + length group) x (repeat edges + 1) + repeat group) x "
        "(backtest edges + 2, or 1 without backtests) + backtest group (0: no backtest)",
        "coefficient_groups": len(beta),  # one set per noise group x (repeat edges + 1) + repeat group
        "coefficients": rows(beta.reshape(-1, horizon)),
        "levels": levels,
        "quantile_rows": quantile_rows,  # each group's row of the quantiles (row 0: all scored series)
        "quantile_shape": list(np.shape(quantiles)),  # rows, levels, horizon, 1 or features
        "quantiles": rows(np.moveaxis(np.asarray(quantiles), 2, 3).reshape(-1, horizon)),  # one row per step curve
    }
    if backtest_edges is not None:
        steps_back = list(BACKTEST_STEPS_BACK)
        record["backtest"] = {"steps_back": steps_back, "min_steps": BACKTEST_MIN_STEPS, "edges": list(backtest_edges)}
    return record


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
