"""Completing many recorded series with a published model: the shared engine of `wave-complete`.

Each series is one one-feature wave, checked and gap-filled as the service does (training/gaps.py: the gap limit
over the whole series and over the steps the model reads), completed by the compiled Predictor (its length
buckets; the model reads the last `context` steps) on one thread per core, and, with levels, given the bands
of the model's calibration (`series_bands`, the one place they are computed).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from training.calibration import Calibration, bands
from training.gaps import GapError, fill_observed
from training.loading import LoadedModel, calibration_of
from training.predict import Predictor

Bands = dict[float, tuple[np.ndarray, np.ndarray]]


class CompletionError(ValueError):
    """The model or the request cannot be used (a fixed-width model, a horizon or level it cannot give)."""


@dataclass(frozen=True)
class Observed:
    """A series' observed steps ready for the model: gap-filled (float32, as the service reads them), how many
    values were filled, and the filled steps in float64 (for scores against the truth)."""

    values: np.ndarray
    filled: int
    exact: np.ndarray


def series_bands(
    predictor: Predictor,
    observed: Sequence[np.ndarray],
    predictions: np.ndarray,
    calibration: Calibration,
    levels: Sequence[float],
) -> Bands:
    """{level: (lower, upper)}, each (n, H), of predictions (n, H) of observed series (each (T_i,), whole and
    gap-filled), as the service's bands of the same waves: the model also completes each series' backtest inputs
    (its first steps up to each backtest origin)."""
    horizon = predictions.shape[1]
    inputs = [[part[0] for part in calibration.backtest_inputs(values[None, :, None])] for values in observed]
    flat = [part for parts in inputs for part in parts]
    completed = list(predictor(flat)) if flat else []
    ends = np.cumsum([0] + [len(parts) for parts in inputs])
    lower = {level: np.zeros((len(observed), horizon)) for level in levels}
    upper = {level: np.zeros((len(observed), horizon)) for level in levels}
    lengths = np.array([len(values) for values in observed])
    for length in np.unique(lengths):  # series of one length share the backtest origins and one vectorized call
        rows = np.flatnonzero(lengths == length)
        waves = np.stack([observed[row] for row in rows])[..., None]
        tried = [np.stack([completed[ends[row] + i] for row in rows]) for i in range(ends[rows[0] + 1] - ends[rows[0]])]
        for level, (low, high) in bands(predictions[rows][..., None], waves, calibration, levels, tried).items():
            lower[level][rows], upper[level][rows] = low[..., 0], high[..., 0]
    return {level: (lower[level], upper[level]) for level in levels}


class Completer:
    """A loaded model's Predictor on `workers` threads (one compiled call keeps one core busy)."""

    def __init__(self, loaded: LoadedModel, horizon: int | None, levels: Sequence[float], workers: int):
        self.predictor = Predictor(loaded.model)
        if self.predictor.features is not None:
            raise CompletionError(
                f"model {loaded.name}/{loaded.version} takes waves of exactly {self.predictor.features} features: "
                f"completing series one by one needs a model that takes any number (a channel-independent one)"
            )
        self.name = loaded.name
        self.horizon = horizon or self.predictor.horizon
        if not 1 <= self.horizon <= self.predictor.horizon:
            raise CompletionError(f"--horizon must be between 1 and {self.predictor.horizon}")
        self.min_steps = int(loaded.manifest["architecture"]["min_input_length"])
        self.context = self.predictor.context
        self.levels = tuple(levels)
        self.calibration = self._checked_calibration(loaded) if self.levels else None
        self.batch_rows, first = self.predictor.buckets[-1], self.predictor.buckets[0]
        # calls of `batch_rows` and a remainder per bucket: the largest and the smallest row count of each length
        # are compiled (as many programs as one length had), a remainder runs padded to the largest
        self.predictor.defer(shape for shape in self.predictor.shapes if shape[0] not in (self.batch_rows, first))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")

    def _checked_calibration(self, loaded: LoadedModel) -> Calibration:
        calibration = calibration_of(loaded)
        if calibration is None:
            raise CompletionError(f"model {loaded.name}/{loaded.version} has no calibrated bands: give no --level")
        for level in self.levels:
            if not 0 < level < 100:
                raise CompletionError(f"--level {level:g}: a level is strictly between 0 and 100")
            if not calibration.bounds(level):
                raise CompletionError(
                    f"model {loaded.name}/{loaded.version} has bands up to level {calibration.levels[-1]:g}: "
                    f"--level {level:g} is too high"
                )
        return calibration

    def observe(self, values: np.ndarray, max_gap_fraction: float, label: str) -> Observed:
        """The series checked and filled as the service does; ValueError (shown as the skip reason) when it is
        too short, has no value or too many gaps."""
        if len(values) < self.min_steps:
            raise ValueError(f"{len(values)} steps, the model needs at least {self.min_steps}")
        try:
            filled, count = fill_observed(values[:, None], max_gap_fraction, label, self.predictor.windows)
        except GapError as error:
            raise ValueError(str(error).removeprefix(f"{label}: ").replace("feature 0 ", "")) from None
        return Observed(filled[:, 0].astype(np.float32), count, filled[:, 0])

    def observe_clean(self, series: Sequence[np.ndarray]) -> list[Observed | None]:
        """`observe` of many series at once where it has nothing to check or fill (long enough, no gap); None for
        the others (observe them one by one)."""
        lengths = np.array([len(values) for values in series], np.int64)
        ends = np.cumsum(lengths)
        flat = np.concatenate(series) if len(series) else np.zeros(0)
        gaps = np.concatenate([[0], np.cumsum(np.isnan(flat))])
        clean = (gaps[ends] == gaps[ends - lengths]) & (lengths >= self.min_steps)
        narrow = flat.astype(np.float32)
        return [
            Observed(narrow[end - length : end], 0, values) if ready else None
            for values, end, length, ready in zip(series, ends.tolist(), lengths.tolist(), clean.tolist(), strict=True)
        ]

    def _by_bucket(self, observed: Sequence[np.ndarray]) -> np.ndarray:
        """The order series are completed in: by length bucket (stable), so a model call pays for one length."""
        return np.argsort([self.predictor.length_bucket(values) for values in observed], kind="stable")

    def submit(self, observed: Sequence[np.ndarray]) -> list[Future]:
        """Start completing observed series (each (T_i,)) on the pool, `batch_rows` per model call, each call's
        series of one length bucket."""
        futures = []
        for _, group in groupby(self._by_bucket(observed), key=lambda i: self.predictor.length_bucket(observed[i])):
            waves = [observed[i][-self.context :, None] for i in group]
            for start in range(0, len(waves), self.batch_rows):
                futures.append(self.pool.submit(self.predictor, waves[start : start + self.batch_rows]))
        return futures

    def collect(self, futures: list[Future], observed: Sequence[np.ndarray]) -> tuple[np.ndarray, Bands]:
        """The predictions (n, horizon) of submitted series, in their order, and, with levels, their bands."""
        parts = [future.result()[:, : self.horizon, 0] for future in futures]
        predictions = np.zeros((len(observed), self.horizon), np.float32)
        if parts:
            predictions[self._by_bucket(observed)] = np.concatenate(parts)
        if self.calibration is None or not len(predictions):
            return predictions, {}
        return predictions, series_bands(self.predictor, observed, predictions, self.calibration, self.levels)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
