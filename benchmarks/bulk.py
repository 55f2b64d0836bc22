"""Bulk completion benchmark: `wave-complete` on a Parquet file of many series against the model alone.

For each size in --series (default 10,000 and 100,000 series of --steps 300, long form unique_id, ds, y), writes
the file, runs the command in a child process (`python -m training.complete IN --output OUT.parquet`, every core)
and reads its rate after loading (from its summary line), its wall time and its peak memory (the child's RSS
high-water mark, from wait4's rusage). Then, in this process, the model alone: the same Predictor on the same
batches of the first size's series (`batch_rows` each, one thread per core, as the command), with no reading,
gap filling, bands or writing. With Ray installed (the `ray` extra; `--no-ray` to skip), also the command with
`--ray` on a local cluster of this machine's CPUs for the first size (its peak RSS is the driver's alone; the
actors are processes of the cluster). Prints one row per run and the command's rate over the model's.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the command and the service

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
RATE = re.compile(r"completed (\d+) series .* \(([\d,]+) series/s after it\)")


def write_series(path: Path, count: int, steps: int, seed: int = 0) -> None:
    """`count` noisy sines with trends (periods 8-100 steps), long form, written 1000 series at a time."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    with pq.ParquetWriter(
        path, pa.schema([("unique_id", pa.string()), ("ds", pa.int64()), ("y", pa.float64())])
    ) as out:
        for start in range(0, count, 1000):
            n = min(1000, count - start)
            period = rng.uniform(8, 100, (n, 1))
            values = rng.uniform(0.5, 5, (n, 1)) * np.sin(2 * np.pi * t / period + rng.uniform(0, 6, (n, 1)))
            values += rng.normal(0, 0.1, (n, steps)) + rng.normal(0, 0.01, (n, 1)) * t + rng.normal(0, 10, (n, 1))
            ids = np.repeat(np.char.add("s", np.arange(start, start + n).astype(str)), steps)
            out.write_table(pa.table({"unique_id": ids, "ds": np.tile(t, n), "y": values.reshape(-1)}))


def run_command(source: Path, output: Path, horizon: int, *options: str) -> dict:
    """The command in a child process: its rate after loading, its wall time and its peak RSS (MB)."""
    command = [
        sys.executable,
        "-m",
        "training.complete",
        str(source),
        "--output",
        str(output),
        "--horizon",
        str(horizon),
    ]
    command += options
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    found = RATE.search(err)
    if process.returncode != 0 or found is None:
        raise SystemExit(f"wave-complete failed ({process.returncode}): {err[-2000:]}")
    return {
        "series": int(found[1]),
        "rate": float(found[2].replace(",", "")),
        "wall": wall,
        "rss": usage.ru_maxrss / 1024,
    }


def model_alone(source: Path, horizon: int, workers: int) -> float:
    """Series per second of the Predictor alone on the command's batches of the file's series (after warm-up)."""
    from training.xla_flags import default_compile_cache, keep_calls_on_one_core, use_compile_cache

    keep_calls_on_one_core()
    use_compile_cache(default_compile_cache())
    from model_store.defaults import DEFAULT_MODEL, DEFAULT_STORE
    from training.loading import load_model
    from training.predict import Predictor

    predictor = Predictor(load_model(DEFAULT_STORE, DEFAULT_MODEL).model)
    table = pq.read_table(source)
    steps = table.num_rows // len(set(table.column("unique_id").to_pylist()))
    waves = table.column("y").to_numpy().astype(np.float32).reshape(-1, steps, 1)[:, -predictor.context :]
    rows, length = predictor.buckets[-1], predictor.length_bucket(waves[0])  # the program the command uses here
    predictor.defer(shape for shape in predictor.shapes if shape != (rows, length))
    predictor.warm_up()
    batches = [list(waves[start : start + rows]) for start in range(0, len(waves), rows)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(predictor, batches):
            assert result.shape[1] >= horizon
    return len(waves) / (time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    from training.xla_flags import available_cpus

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="10000,100000", help="sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="observed steps per series")
    parser.add_argument("--horizon", type=int, default=150, help="steps completed")
    parser.add_argument("--no-ray", action="store_true", help="no --ray run (default: one when Ray is installed)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.series.split(",")]
    workers = available_cpus()
    print(f"wave-complete on Parquet files of series x {args.steps} steps, {args.horizon} steps ahead, {workers} CPUs")
    print(f"{'run':<16}{'series':>10}{'series/s':>12}{'wall s':>10}{'peak RSS MB':>14}")
    rates = []
    with tempfile.TemporaryDirectory(prefix="bulk-") as folder:
        for size in sizes:
            source = Path(folder) / f"series-{size}.parquet"
            write_series(source, size, args.steps)
            result = run_command(source, Path(folder) / f"out-{size}.parquet", args.horizon)
            rates.append(result["rate"])
            row = f"{'wave-complete':<16}{result['series']:>10}{result['rate']:>12,.0f}{result['wall']:>10.1f}"
            print(f"{row}{result['rss']:>14.0f}", flush=True)
        source = Path(folder) / f"series-{sizes[0]}.parquet"
        if not args.no_ray and importlib.util.find_spec("ray") is not None:
            result = run_command(source, Path(folder) / "out-ray.parquet", args.horizon, "--ray")
            row = f"{'--ray (local)':<16}{result['series']:>10}{result['rate']:>12,.0f}{result['wall']:>10.1f}"
            print(f"{row}{result['rss']:>14.0f}", flush=True)
        alone = model_alone(source, args.horizon, workers)
    print(f"{'model alone':<16}{sizes[0]:>10}{alone:>12,.0f}")
    print(f"wave-complete / model alone ({sizes[0]} series): {rates[0] / alone:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
