"""`wave-complete` (`python -m training.complete`): complete every series of CSV, Parquet or NumPy files with a
published model, or cross-validate it on their history, and write the long-form table (README: Complete a file).

On one machine by default (training/bulk_complete.py); with `--ray [ADDRESS]` as a Ray Data pipeline
(training/bulk_ray.py, imported only then). Never imports the web service.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the service: inference runs under XLA

import argparse
import sys
import time
from pathlib import Path

from model_store import StoreError
from model_store.defaults import DEFAULT_MODEL, DEFAULT_STORE
from training.bulk_complete import complete_files, cross_validation_report, summary
from training.completion import CompletionError
from training.datafiles import DataFileError
from training.gaps import MAX_GAP_FRACTION
from training.table_output import OutputError
from training.xla_flags import available_cpus


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wave-complete",
        description="Complete every series of CSV, Parquet or NumPy files (wide, or long unique_id, ds, y) with a "
        "published model; write unique_id, ds, model, y_hat (and lo-/hi- columns per --level) to OUTPUT.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help=".csv, .parquet, .npy or .npz files")
    parser.add_argument("--output", "-o", required=True, type=Path, help="the table to write: .parquet or .csv")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help="model store (default: the committed one)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="NAME or NAME/VERSION (default: %(default)s, latest)")
    parser.add_argument("--horizon", type=int, help="steps to predict (default: the model's horizon)")
    parser.add_argument("--level", type=float, nargs="+", default=[], help="prediction interval levels, e.g. 80 95")
    parser.add_argument("--cross-validation", type=int, metavar="N", help="score N origins at the end of each series")
    parser.add_argument(
        "--step", type=int, metavar="S", help="steps between cross-validation origins (default: horizon)"
    )
    parser.add_argument("--max-gap-fraction", type=float, default=MAX_GAP_FRACTION, help="as the service's limit")
    parser.add_argument("--workers", type=int, default=available_cpus(), help="model calls in parallel (default: CPUs)")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run as a Ray Data pipeline on the cluster at ADDRESS ('auto': the running one; none: a local one)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    args = parser.parse_args(argv)
    if args.cross_validation is not None and args.cross_validation < 1:
        parser.error("--cross-validation needs at least 1 origin")
    if args.step is not None and (args.cross_validation is None or args.step < 1):
        parser.error("--step is a positive number of steps, with --cross-validation")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        if args.ray is None:
            run = complete_files(args)
        else:
            from training.bulk_ray import complete_on_ray  # Ray is optional: imported only here

            run = complete_on_ray(args)
    except (CompletionError, DataFileError, OutputError, StoreError) as error:
        print(f"wave-complete failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wave-complete: interrupted, no output written", file=sys.stderr)
        return 130
    except SystemExit as stop:
        print("wave-complete: stopped by a signal, no output written", file=sys.stderr)
        return int(stop.code or 1)
    if run.cross_validation:
        print(cross_validation_report(run))
    if not args.quiet:
        print(summary(run, time.monotonic() - started), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
