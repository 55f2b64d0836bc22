"""Training on a user's recorded series: the split in time, training windows, validation and test windows.

Each series is split in time: the last `test_fraction` of its steps is the test part, the `val_fraction` before
it the validation part, the rest the training part. Gaps are filled within each part on its own, so no filled
value leans on a later part. Training windows (observed + horizon steps) lie wholly inside the training part.

Validation and test windows: the `horizon` predicted steps lie inside the part, starting at its first step and
then every `stride` steps (plus one window ending at the part's last step); the observed steps are the
`context` steps before the prediction (fewer when the series starts later) and may reach back into earlier parts,
as a forecast made at that moment could. A test part shorter than the horizon has no test window (the series
is trained on, not evaluated); a validation part shorter than the horizon gives one window predicting all of it.

The models are channel-independent (each feature is its own sequence), so F windows of one series or several
make one F-feature wave; `pack` and `unpack` do that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.config import ModelConfig, TrainConfig
from training.datafiles import DataFile, DataFileError
from training.gaps import GapError, fill_gaps
from training.seasonality import estimate_period

MAX_WINDOWS_PER_PART = 256


@dataclass(frozen=True)
class Split:
    """Fractions of every series held out at its end, and the window rule's stride."""

    test_fraction: float = 0.2
    val_fraction: float = 0.1
    max_gap_fraction: float = 0.5

    def to_dict(self) -> dict:
        return {
            "test_fraction": self.test_fraction,
            "val_fraction": self.val_fraction,
            "max_gap_fraction": self.max_gap_fraction,
        }


@dataclass(frozen=True)
class SplitSeries:
    """One series after the split: gap-filled values, where the gaps were, and the part boundaries."""

    name: str
    values: np.ndarray  # float32, filled
    known: np.ndarray  # bool: False where the file had a gap
    train_end: int
    val_end: int
    period: int

    def describe(self) -> dict:
        steps = len(self.values)
        return {
            "steps": steps,
            "train": [0, self.train_end],
            "validation": [self.train_end, self.val_end],
            "test": [self.val_end, steps],
            "gaps_filled": int((~self.known).sum()),
            "period": self.period,
        }


@dataclass(frozen=True)
class Windows:
    """Evaluation windows of one series: observed (n, L), target (n, horizon), target_known (n, horizon)."""

    series: SplitSeries
    starts: np.ndarray
    observed: np.ndarray
    target: np.ndarray
    target_known: np.ndarray


def split_series(name: str, raw: np.ndarray, split: Split, model: ModelConfig) -> SplitSeries:
    """Split one series in time, fill each part's gaps, estimate its period on the training part."""
    steps = len(raw)
    test = round(steps * split.test_fraction)
    val = round(steps * split.val_fraction)
    train_end, val_end = steps - test - val, steps - test
    window = model.min_input_length + model.horizon
    if train_end < window:
        raise DataFileError(
            f"series {name!r} has {steps} steps: its training part (the first {train_end}) is too short for one "
            f"training window of {window} steps ({model.min_input_length} observed + {model.horizon} horizon)"
        )
    parts = []
    for part, (lo, hi) in {
        "training": (0, train_end),
        "validation": (train_end, val_end),
        "test": (val_end, steps),
    }.items():
        if hi > lo:
            label = f"series {name!r}, its {part} part (steps {lo}..{hi - 1})"
            try:
                filled, _ = fill_gaps(raw[lo:hi, None], split.max_gap_fraction, label)
            except GapError as error:
                raise DataFileError(str(error)) from None
            parts.append(filled[:, 0])
    values = np.concatenate(parts).astype(np.float32)
    period = estimate_period(values[:train_end], min(model.max_context, train_end // 2))
    return SplitSeries(name, values, ~np.isnan(raw), train_end, val_end, period)


def window_starts(lo: int, hi: int, horizon: int, stride: int) -> np.ndarray:
    """Prediction starts of the windows whose `horizon` steps lie in [lo, hi): every `stride`, and the last."""
    if hi - lo < horizon:
        return np.zeros(0, int)
    starts = np.unique(np.append(np.arange(lo, hi - horizon + 1, stride), hi - horizon))
    if len(starts) > MAX_WINDOWS_PER_PART:  # very long parts: evenly spread windows
        starts = starts[np.linspace(0, len(starts) - 1, MAX_WINDOWS_PER_PART).round().astype(int)]
    return starts


def part_windows(series: SplitSeries, part: str, model: ModelConfig, stride: int) -> Windows:
    """The validation or test windows of one series (see the module docstring for the rule)."""
    lo, hi = (series.train_end, series.val_end) if part == "validation" else (series.val_end, len(series.values))
    horizon = min(model.horizon, hi - lo) if part == "validation" else model.horizon
    starts = window_starts(lo, hi, horizon, stride) if horizon > 0 else np.zeros(0, int)
    observed_steps = min(model.reads, lo)
    steps = np.arange(-observed_steps, horizon)
    index = starts[:, None] + steps[None, :]
    values, known = series.values[index], series.known[index]
    return Windows(series, starts, values[:, :observed_steps], values[:, observed_steps:], known[:, observed_steps:])


def pack(windows: np.ndarray, features: int) -> np.ndarray:
    """(n, T) windows -> (ceil(n / features), T, features) waves; the last wave repeats the first windows."""
    waves = -(-len(windows) // features)
    order = np.arange(waves * features) % len(windows)
    return windows[order].reshape(waves, features, -1).transpose(0, 2, 1)


def unpack(waves: np.ndarray, count: int) -> np.ndarray:
    """(m, T, features) completions -> the first `count` windows (count, T), the inverse of `pack`."""
    return waves.transpose(0, 2, 1).reshape(-1, waves.shape[1])[:count]


class FileSource:
    """A BatchSource over recorded series (see training/train.py's Protocol)."""

    def __init__(self, files: list[DataFile], split: Split, model: ModelConfig, stride: int | None = None):
        if not model.channel_independent:
            raise DataFileError("training on data files needs a channel-independent model (not --reference-layout)")
        self.files, self.split, self.model = files, split, model
        self.stride = stride or max(1, model.horizon // 10)
        self.series = [split_series(s.name, s.values, split, model) for f in files for s in f.series]
        for part in ("validation", "test"):
            if not any(len(self.windows(s, part).starts) for s in self.series):
                longest = max(self.series, key=lambda s: len(s.values))
                needs = f"{model.horizon} steps (one horizon)" if part == "test" else "a step"
                raise DataFileError(
                    f"no series has a {part} part of {needs}: the longest, {longest.name!r} "
                    f"({len(longest.values)} steps), needs a larger --{'val' if part == 'validation' else 'test'}"
                    f"-fraction, or use longer series"
                )

    def windows(self, series: SplitSeries, part: str) -> Windows:
        return part_windows(series, part, self.model, self.stride)

    def batch(self, rng: np.random.Generator, n: int, observed: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        features = self.model.features
        length = observed + horizon
        choices = np.array([max(s.train_end - length + 1, 0) for s in self.series], np.float64)
        picks = rng.choice(len(self.series), size=n * features, p=choices / choices.sum())
        starts = (rng.random(n * features) * choices[picks]).astype(int)
        windows = np.stack([self.series[i].values[s : s + length] for i, s in zip(picks, starts, strict=True)])
        waves = windows.reshape(n, features, length).transpose(0, 2, 1)
        return waves[:, :observed], waves[:, observed:]

    def observed_range(self) -> tuple[int, int]:
        longest = max(s.train_end for s in self.series)
        return self.model.min_input_length, min(self.model.reads, longest - self.model.horizon)

    def validation_sets(self, config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
        by_length: dict[tuple[int, int], list[Windows]] = {}
        for series in self.series:
            windows = self.windows(series, "validation")
            if len(windows.starts):
                by_length.setdefault((windows.observed.shape[1], windows.target.shape[1]), []).append(windows)
        sets = []
        for group in by_length.values():
            observed = np.concatenate([w.observed for w in group])
            target = np.concatenate([w.target for w in group])
            sets.append((pack(observed, self.model.features), pack(target, self.model.features)))
        return sets

    def describe(self) -> dict:
        return {
            "source": "files",
            "files": [f.describe() for f in self.files],
            "split": {
                **self.split.to_dict(),
                "window_stride": self.stride,
                "series": {s.name: s.describe() for s in self.series},
            },
        }
