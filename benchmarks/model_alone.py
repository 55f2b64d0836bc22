"""The model alone (no HTTP), in a process of its own so that the XLA_FLAGS it starts with apply (the serving
benchmark runs it once per instruction set): the compiled Predictor's rate at a few batch sizes and thread counts,
its rate on the waves of the benchmark's /predict/batch requests, the model's FLOPs per wave and the machine's
matmul rate. Prints one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def waves_per_second(model, waves: list, batch: int, threads: int, repeats: int = 3) -> float:
    """The Predictor on `waves` in calls of `batch` waves, `threads` calls at a time, as the service's workers."""
    from training.predict import Predictor

    predict = Predictor(model, max_batch=batch)
    calls = [waves[start : start + batch] for start in range(0, len(waves), batch)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(predict, calls))  # compile and warm
        started = time.perf_counter()
        for _ in range(repeats):
            list(pool.map(predict, calls))
        return len(waves) * repeats / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32, help="the service's largest batch")
    parser.add_argument("--threads", type=int, default=1, help="the service's inference workers")
    parser.add_argument("--batch-waves", type=int, default=32, help="waves per /predict/batch request")
    parser.add_argument("--batch-bodies", type=int, default=4, help="distinct /predict/batch bodies")
    args = parser.parse_args(argv)

    from training.xla_flags import keep_calls_on_one_core

    keep_calls_on_one_core()  # as in the service
    from app.settings import get_settings
    from benchmarks.flops import flops_per_wave, matmul_gflops, model_waves_per_second
    from benchmarks.serving import batch_waves
    from training.loading import load_model

    settings = get_settings()
    version = settings.model_version if args.model == settings.model_name else None
    loaded = load_model(settings.store, args.model, version)
    rates = {
        f"{batch}x{threads}": model_waves_per_second(loaded.model, args.steps, batch, threads)
        for batch, threads in [(1, 1), (args.batch, 1), (args.batch, args.threads)]
    }
    waves = [wave for body in batch_waves(args.steps, args.batch_bodies, args.batch_waves) for wave in body]
    result = {
        "version": loaded.version,
        "rates": rates,
        "batch_waves_per_second": waves_per_second(loaded.model, waves, args.batch, args.threads),
        "flops": flops_per_wave(loaded.manifest["architecture"], args.steps),
        "gflops": matmul_gflops(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
