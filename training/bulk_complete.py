"""Completing the series of files on one machine: the run's tasks, output rows, scores and summary, shared with
the Ray pipeline (training/bulk_ray.py), and the one-machine loop.

One machine, every core: the files are read in chunks (training/datafiles.py), each chunk's series are checked
and gap-filled as the service does and completed by the compiled Predictor on one thread per core while the next
chunk is read (training/completion.py); the output is written chunk by chunk into a temporary file that replaces
the output only when everything went well (training/table_output.py). Never imports the web service or Ray.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from training.baselines import geometric_mean, seasonal_naive, window_mean
from training.completion import Completer, Observed
from training.datafiles import Series, series_chunks
from training.heap import freeze_heap
from training.progress import Progress
from training.seasonality import estimate_period
from training.stamps import Continuation, continue_all
from training.table_output import TableWriter, check_output
from training.time_column import stamp_texts
from training.xla_flags import default_compile_cache, keep_calls_on_one_core, use_compile_cache

CHUNK_VALUES = 1 << 19  # observed values read per chunk (about 1700 series of 300 steps): 4 MiB as float64
TIME = pa.timestamp("ms")


@dataclass
class Task:
    """One completion: a series' observed steps, the stamps of what it predicts, and (cross-validation) the
    origin and the true values."""

    key: str
    observed: Observed
    ds: np.ndarray
    cutoff: object = None
    truth: np.ndarray | None = None


@dataclass
class Score:
    """One series' cross-validation sums."""

    windows: int = 0
    count: int = 0
    model: float = 0.0
    naive: float = 0.0
    mean: float = 0.0
    inside: dict[float, int] = field(default_factory=dict)


@dataclass
class Run:
    """What the command did, for the summary."""

    completer: Completer
    cross_validation: int | None
    step: int
    max_gap_fraction: float
    several_files: bool
    series: int = 0
    filled: int = 0
    filled_series: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    no_frequency: list[tuple[str, str]] = field(default_factory=list)
    scores: dict[str, Score] = field(default_factory=dict)
    ds_type: pa.DataType | None = None
    loading: float = 0.0  # seconds spent loading and compiling the model

    def key(self, path: Path, series: Series) -> str:
        """The output's unique_id: the series' name in its file (with the file's name when there are several)."""
        return series.name if self.several_files else series.name[len(path.name) + 1 :]

    def tasks(self, path: Path, chunk: list[Series]) -> list[Task]:
        """The completions of a chunk's series; a series that cannot be completed is listed with its reason."""
        tasks: list[Task] = []
        if self.cross_validation:
            ready, continued = [None] * len(chunk), [None] * len(chunk)
        else:  # most series at once: those without gaps, and integer stamps
            ready = self.completer.observe_clean([series.values for series in chunk])
            steps = [len(series.values) for series in chunk]
            stamps = [series.stamps if len(series.values) else None for series in chunk]  # empty: skipped below
            continued = continue_all(stamps, steps, self.completer.horizon)
        for series, observed, continuation in zip(chunk, ready, continued, strict=True):
            try:
                if self.cross_validation:
                    made = self._cross_validation(path, series)
                else:
                    if observed is None:
                        observed = self._observe(series.values, series.name)
                    made = [self._forecast(path, series, observed, continuation)]
            except ValueError as error:
                self.skipped.append((series.name, str(error)))
                continue
            observed = made[0].observed
            self.series += 1
            self.filled += observed.filled
            self.filled_series += observed.filled > 0
            tasks += made
        return tasks

    def _observe(self, values: np.ndarray, name: str) -> Observed:
        if np.isnan(values).all():
            raise ValueError("no value")
        return self.completer.observe(values, self.max_gap_fraction, name)

    def _forecast(self, path: Path, series: Series, observed: Observed, continued: Continuation) -> Task:
        if continued.reason:
            self.no_frequency.append((series.name, continued.reason))
        return Task(self.key(path, series), observed, continued.stamps)

    def _cross_validation(self, path: Path, series: Series) -> list[Task]:
        horizon, values = self.completer.horizon, series.values
        cutoffs = [len(values) - horizon - i * self.step for i in range(self.cross_validation)][::-1]
        tasks, reason = [], "too short for one origin"
        stamps = series.stamps if series.stamps is not None else np.arange(len(values))
        for cutoff in cutoffs:
            if cutoff < 1:
                continue
            try:
                observed = self._observe(values[:cutoff], series.name)
            except ValueError as error:
                reason = f"origin at step {cutoff}: {error}"
                continue
            truth = values[cutoff : cutoff + horizon]
            tasks.append(
                Task(self.key(path, series), observed, stamps[cutoff : cutoff + horizon], stamps[cutoff - 1], truth)
            )
        if not tasks:
            raise ValueError(f"{len(values)} steps, {reason} (needs {self.completer.min_steps} + {horizon} steps)")
        return tasks

    def table(self, tasks: list[Task], predictions: np.ndarray, bands: dict) -> pa.Table:
        """The output rows of completed tasks (and their cross-validation scores)."""
        horizon = self.completer.horizon
        keys = pa.array([task.key for task in tasks]).take(np.repeat(np.arange(len(tasks)), horizon))
        columns = {"unique_id": keys, "ds": self._ds([task.ds for task in tasks], horizon)}
        if self.cross_validation:
            columns["cutoff"] = self._ds([np.asarray([task.cutoff]) for task in tasks], 1).take(
                np.repeat(np.arange(len(tasks)), horizon)
            )
            truth = np.concatenate([task.truth for task in tasks])
            columns["y"] = pa.array(truth, mask=np.isnan(truth))
            self._score(tasks, predictions, bands)
        else:
            columns["model"] = pa.repeat(pa.scalar(self.completer.name), len(keys))
        columns["y_hat"] = pa.array(predictions.reshape(-1).astype(np.float64))
        for level, (lower, upper) in bands.items():
            columns[f"lo-{level:g}"] = pa.array(lower.reshape(-1))
            columns[f"hi-{level:g}"] = pa.array(upper.reshape(-1))
        return pa.table(columns)

    def _ds(self, stamps: list[np.ndarray], horizon: int) -> pa.Array:
        """The tasks' stamps as one column: integers or times (ms) when they are all of one kind, else text (times
        in ISO 8601 beside step numbers, each task at its own resolution); the output's writer makes the kinds of
        its pieces agree (training/table_output.py)."""
        times = [value.dtype.kind == "M" for value in stamps]
        if all(times) or not any(times):
            kind = TIME if stamps and times[0] else pa.int64()
            unit = "datetime64[ms]" if kind == TIME else np.int64
            column = pa.array(np.concatenate(stamps).astype(unit) if stamps else np.zeros(0, unit), type=kind)
        else:
            column = pa.array([str(cell) for value in stamps for cell in stamp_texts(value)], pa.string())
        self.ds_type = self.ds_type or column.type
        return column

    def _score(self, tasks: list[Task], predictions: np.ndarray, bands: dict) -> None:
        horizon, context = self.completer.horizon, self.completer.context
        for row, task in enumerate(tasks):
            history = task.observed.exact
            period = estimate_period(history, min(context, len(history) // 2))
            naive = seasonal_naive(history[None], horizon, period)[0]
            mean = window_mean(history[None, -context:], horizon)[0]
            known = ~np.isnan(task.truth)
            truth = task.truth[known]
            score = self.scores.setdefault(task.key, Score())
            score.windows += 1
            score.count += int(known.sum())
            score.model += float(np.abs(predictions[row][known] - truth).sum())
            score.naive += float(np.abs(naive[known] - truth).sum())
            score.mean += float(np.abs(mean[known] - truth).sum())
            for level, (lower, upper) in bands.items():
                inside = (lower[row][known] <= truth) & (truth <= upper[row][known])
                score.inside[level] = score.inside.get(level, 0) + int(inside.sum())

    def schema(self) -> pa.Schema:
        """The output's columns (for an output with no row)."""
        names = ["unique_id", "ds", *(["cutoff", "y"] if self.cross_validation else ["model"]), "y_hat"]
        names += [f"{side}-{level:g}" for level in self.completer.levels for side in ("lo", "hi")]
        ds = self.ds_type or pa.int64()
        types = {"unique_id": pa.string(), "model": pa.string(), "ds": ds}
        types["cutoff"] = types["ds"]
        return pa.schema([(name, types.get(name, pa.float64())) for name in names])


def cross_validation_report(run: Run) -> str:
    """Per series and overall: windows, the MAE of the model, of seasonal naive and of the window mean, the
    model's and the window mean's MAE / seasonal-naive MAE, and the coverage of each band (overall ratios: geometric mean over the series that have one)."""
    levels = run.completer.levels
    header = ["series", "windows", "mae", "naive_mae", "window_mean_mae", "mae/naive", "window_mean/naive"]
    header += [f"coverage-{level:g}" for level in levels]
    lines = [header]
    total = Score()
    ratios: dict[str, list[float]] = {"model": [], "mean": []}

    def row(name: str, score: Score, model_ratio: float, mean_ratio: float) -> list[str]:
        count = max(score.count, 1)
        cells = [
            name,
            str(score.windows),
            *(f"{total / count:.6g}" for total in (score.model, score.naive, score.mean)),
        ]
        cells += [f"{model_ratio:.4f}", f"{mean_ratio:.4f}"]
        return cells + [f"{score.inside.get(level, 0) / count:.1%}" for level in levels]

    for name, score in run.scores.items():
        naive = score.naive if score.naive > 0 else np.nan
        if score.naive > 0:
            ratios["model"].append(score.model / score.naive)
            ratios["mean"].append(score.mean / score.naive)
        lines.append(row(name, score, score.model / naive, score.mean / naive))
        total.windows += score.windows
        total.count += score.count
        total.model, total.naive, total.mean = (
            total.model + score.model,
            total.naive + score.naive,
            total.mean + score.mean,
        )
        for level, inside in score.inside.items():
            total.inside[level] = total.inside.get(level, 0) + inside
    overall = [geometric_mean(ratios[name]) if ratios[name] else np.nan for name in ("model", "mean")]
    lines.append(row("overall", total, *overall))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def summary(run: Run, seconds: float) -> str:
    """The closing lines: series, steps filled, series skipped and why, wall time (and the part of it spent
    loading and compiling the model)."""
    rate = run.series / max(seconds - run.loading, 1e-9)
    what = "cross-validated" if run.cross_validation else "completed"
    lines = [
        f"{what} {run.series} series ({run.completer.horizon} steps ahead) in {seconds:.1f} s, "
        f"{run.loading:.1f} s of it loading the model ({rate:,.0f} series/s after it); "
        f"filled {run.filled} missing values in {run.filled_series} series; skipped {len(run.skipped)}"
    ]
    for label, items in (("skipped", run.skipped), ("ds as step numbers", run.no_frequency)):
        for name, reason in items[:20]:
            lines.append(f"  {label}: {name}: {reason}")
        if len(items) > 20:
            lines.append(f"  ... and {len(items) - 20} more {label}")
    return "\n".join(lines)


@contextlib.contextmanager
def signals_raise():
    """SIGTERM and SIGHUP end the command as Ctrl-C does (so the temporary output is removed)."""

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return
    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def short_gil_turns(seconds: float = 0.0005):
    """Let a thread that waits for the GIL have it after `seconds` (Python's default: 5 ms). Each model call
    returns to Python on its inference thread; while the main thread reads, checks or writes a chunk, that thread
    waited up to a whole turn with its core idle (a model of it, two threads of 10 ms calls beside a main thread
    busy 20 % of the time: 17 % fewer calls with 5 ms turns, 10 % with 0.5 ms)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def new_run(args: argparse.Namespace, workers: int) -> Run:
    """The command's run: its model loaded and checked against the request (horizon, levels), `workers` threads."""
    keep_calls_on_one_core()
    use_compile_cache(default_compile_cache())
    from training.loading import load_model

    name, _, version = args.model.partition("/")
    completer = Completer(load_model(args.store, name, version or None), args.horizon, args.level, workers)
    step = args.step or completer.horizon
    return Run(completer, args.cross_validation, step, args.max_gap_fraction, len(args.inputs) > 1)


def complete_files(args: argparse.Namespace) -> Run:
    """Read, complete and write (see the module docstring); the output appears whole or not at all."""
    started = time.monotonic()
    check_output(args.output)
    streams = [(path, series_chunks(path, CHUNK_VALUES)) for path in args.inputs]
    run = new_run(args, args.workers)
    completer = run.completer
    progress = Progress(enabled=not args.quiet)
    writer = TableWriter(args.output, group=completer.horizon)
    pending: deque = deque()
    done = 0

    def write_oldest() -> None:
        nonlocal done
        tasks, futures = pending.popleft()
        observed = [task.observed.values for task in tasks]
        predictions, bands = completer.collect(futures, observed)
        if tasks:
            writer.write(run.table(tasks, predictions, bands))
        done += len({task.key for task in tasks})
        total = sum(stream.count or 0 for _, stream in streams) if all(s.count for _, s in streams) else None
        progress.update(done, total)

    try:
        with signals_raise(), short_gil_turns():
            completer.predictor.warm_up()
            freeze_heap()  # a full collection would walk TensorFlow's objects while holding the GIL (0.2-0.7 s)
            run.loading = time.monotonic() - started
            for path, stream in streams:
                for chunk in stream.chunks:
                    tasks = run.tasks(path, chunk)
                    pending.append((tasks, completer.submit([task.observed.values for task in tasks])))
                    while len(pending) > 1:  # the next chunk is computed while this one is written
                        write_oldest()
            while pending:
                write_oldest()
            writer.commit(run.schema())
    except BaseException:
        writer.discard()
        raise
    finally:
        progress.close()
        completer.close()
        gc.unfreeze()  # the command may run inside a longer process (tests): its objects are collectable again
    return run
