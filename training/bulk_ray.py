"""`wave-complete --ray [ADDRESS]`: the same completion as a Ray Data pipeline (the `ray` extra).

Read: a Datasource with one read task per input file, streaming the file's series in chunks with the same reader
as one machine (training/datafiles.py; the files must be readable from every node). Complete: `map_batches` with
a pool of actors (one CPU each, as many as the cluster has CPUs) that each load the model once and run the same
checks, gap filling, model calls, bands and scores as one machine (training/bulk_complete.py's Run). Write: the
driver takes the completed chunks in order and writes the one output file, whole or not at all (TableWriter). The
same output, the same skipped-series report as one machine.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from training.bulk_complete import CHUNK_VALUES, Run, Score, new_run, signals_raise
from training.datafiles import DataFileError, Series, series_chunks
from training.progress import Progress
from training.table_output import TableWriter, check_output

SERIES_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("name", pa.string()),
        ("values", pa.list_(pa.float64())),
        ("steps", pa.list_(pa.int64())),  # integer time stamps, or null
        ("times", pa.list_(pa.timestamp("ms"))),  # time stamps, or null
    ]
)


def _series_table(path: Path, chunk: list[Series]) -> pa.Table:
    """A chunk of series as rows (one per series)."""
    integers = [s.stamps if s.stamps is not None and np.issubdtype(s.stamps.dtype, np.integer) else None for s in chunk]
    times = [s.stamps if s.stamps is not None and np.issubdtype(s.stamps.dtype, np.datetime64) else None for s in chunk]
    return pa.table(
        {
            "file": [path.name] * len(chunk),
            "name": [s.name for s in chunk],
            "values": [s.values for s in chunk],
            "steps": integers,
            "times": times,
        },
        schema=SERIES_SCHEMA,
    )


def _table_series(table: pa.Table) -> Iterator[tuple[str, Series]]:
    """Rows back into (file name, Series)."""
    columns = {name: table.column(name).to_pylist() for name in ("file", "name", "steps", "times")}
    values = table.column("values")
    for row in range(table.num_rows):
        stamps = columns["steps"][row] if columns["steps"][row] is not None else columns["times"][row]
        stamps = None if stamps is None else np.asarray(stamps, np.int64 if columns["steps"][row] else "datetime64[ms]")
        yield columns["file"][row], Series(columns["name"][row], values[row].values.to_numpy(), stamps)


def _read_file(path: Path) -> Iterator[pa.Table]:
    for chunk in series_chunks(path, CHUNK_VALUES).chunks:
        if chunk:
            yield _series_table(path, chunk)


class SeriesFiles(Datasource):
    """One read task per file, yielding its series in chunks (rows: file, name, values, steps, times)."""

    def __init__(self, paths: list[Path]):
        super().__init__()
        self.paths = [Path(path).resolve() for path in paths]

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(path.stat().st_size for path in self.paths)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None) -> list:
        return [
            ReadTask(partial(_read_file, path), BlockMetadata(None, path.stat().st_size, None, (str(path),)))
            for path in self.paths
        ]


class CompleteSeries:
    """A Ray Data actor: loads the model once, completes batches of series rows. Each output row holds one
    completed chunk (`output`: its rows as an Arrow IPC stream) and what the run saw (`report`, JSON)."""

    def __init__(self, args: argparse.Namespace):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
        self.args = args
        self.run = new_run(args, workers=1)
        self.run.completer.predictor.warm_up()

    def __call__(self, batch: pa.Table) -> pa.Table:
        run = Run(
            self.run.completer,
            self.run.cross_validation,
            self.run.step,
            self.run.max_gap_fraction,
            self.run.several_files,
        )
        tasks = []
        for file, series in _table_series(batch):
            tasks += run.tasks(Path(file), [series])
        output = b""
        if tasks:
            predictions, bands = run.completer.collect(
                run.completer.submit([t.observed.values for t in tasks]), [t.observed.values for t in tasks]
            )
            sink = io.BytesIO()
            table = run.table(tasks, predictions, bands)
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            output = sink.getvalue()
        report = {
            "series": run.series,
            "filled": run.filled,
            "filled_series": run.filled_series,
            "skipped": run.skipped,
            "no_frequency": run.no_frequency,
            "scores": {
                key: {**asdict(score), "inside": list(score.inside.items())} for key, score in run.scores.items()
            },
        }
        return pa.table({"output": pa.array([output], pa.binary()), "report": [json.dumps(report)]})


def _merge(run: Run, report: dict) -> None:
    run.series += report["series"]
    run.filled += report["filled"]
    run.filled_series += report["filled_series"]
    run.skipped += [tuple(item) for item in report["skipped"]]
    run.no_frequency += [tuple(item) for item in report["no_frequency"]]
    for key, fields in report["scores"].items():
        inside = dict(fields.pop("inside"))
        run.scores[key] = Score(**fields, inside={float(level): count for level, count in inside.items()})


def _data_file_error(error: BaseException | None) -> DataFileError | None:
    """The reader's own DataFileError inside Ray's wrappers (their `cause`s and `__cause__`s), if there is one."""
    seen = set()
    while error is not None and id(error) not in seen:
        if type(error) is DataFileError:
            return error
        seen.add(id(error))
        error = getattr(error, "cause", None) or error.__cause__
    return None


def complete_on_ray(args: argparse.Namespace) -> Run:
    """The Ray Data pipeline (see the module docstring); returns the merged run for the summary."""
    started = time.monotonic()
    check_output(args.output)
    for path in args.inputs:
        series_chunks(path)  # the file's type and header: checked here, as on one machine
    run = new_run(args, workers=1)  # the request checked against the model (horizon, levels) before the cluster
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a failure is the command's own one line
    ray.init(
        address=args.ray or None,
        include_dashboard=False,
        log_to_driver=False,
        ignore_reinit_error=True,
        logging_level=logging.ERROR if args.quiet else logging.WARNING,
    )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the output in the files' order, as on one machine
    context.enable_progress_bars = False
    actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # reading is light next to the model calls: it takes no CPU from the actors (which take them all)
    dataset = ray.data.read_datasource(SeriesFiles(args.inputs), num_cpus=0).map_batches(
        CompleteSeries,
        fn_constructor_args=(args,),
        batch_format="pyarrow",
        batch_size=None,
        num_cpus=1,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
    )
    progress = Progress(enabled=not args.quiet)
    writer = TableWriter(args.output, group=run.completer.horizon)
    try:
        with signals_raise():
            for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                run.loading = run.loading or time.monotonic() - started  # until the first chunk: the actors' loading
                for output, report in zip(
                    batch.column("output").to_pylist(), batch.column("report").to_pylist(), strict=True
                ):
                    if output:
                        table = pa.ipc.open_stream(output).read_all()
                        run.ds_type = run.ds_type or table.schema.field("ds").type
                        writer.write(table)
                    _merge(run, json.loads(report))
                progress.update(run.series, None)
            writer.commit(run.schema())
    except Exception as error:  # a file's content is read on a node: its DataFileError comes wrapped by Ray
        writer.discard()
        original = _data_file_error(error)
        if original is None:
            raise
        raise DataFileError(str(original)) from None
    except BaseException:
        writer.discard()
        raise
    finally:
        progress.close()
        run.completer.close()
    return run
