"""Load benchmark: the service against the plain `model.predict` baseline, on the same model, in one run.

Starts each server as a real uvicorn process on 127.0.0.1, drives it with httpx async clients at several
concurrencies (a fixed number of requests, a bounded time), and prints throughput, latency percentiles, server
RSS, time to ready, the model's FLOPs per wave, the machine's matmul rate and the ratios to the baseline.
The service serves every model in the store, as by default; requests go to `--model` (default: the default
model). Its time to ready is measured twice: a first start on an empty XLA compile cache, then the restart that
runs the load, on the cache the first start filled. With Ray installed (the `ray` extra) it also serves the
same store on a local Ray cluster with 1 and 2 replicas (`--ray-replicas`) and drives it through Serve's HTTP
proxy (benchmarks/ray_serving.py, in a process of its own), so the proxy's cost is a ratio to the service.

The service also answers /predict/batch requests of --batch-waves waves from 4 clients, and the same waves as OIP V2
requests with binary tensors (float32 in and out, no number in JSON), against the model alone on the same waves
(the Predictor in batches of the service's largest batch on its inference workers). The model alone runs in a
process of its own (benchmarks/model_alone.py). `--isa native,avx2` (the default) runs all of it
twice: once with the CPU's own instructions, once with every compiled program of both servers and of the model
alone capped at AVX2 (XLA_FLAGS=--xla_cpu_max_isa=AVX2, added to any XLA flags already set), as on a host
without AVX-512; the Ray rows run with the first only. The end lists, per instruction set, the throughput ratio
at the highest concurrency, the time to ready of the service's restart over the baseline's, and /predict/batch and
V2 binary over the model alone (the throughput ratio at concurrency 32, or the highest one run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cores: float = float("nan")  # CPU seconds per second of the server process (all its threads)
    client_cores: float = float("nan")  # the same for this load generator, while the clock runs

    @property
    def throughput(self) -> float:
        return (self.requests - self.errors) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(app: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, float]:
    """Start uvicorn serving `app`; return the process, its URL and the seconds until /health/ready said 200."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() - started < 180:
        if process.poll() is not None:
            raise RuntimeError(f"{app} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return process, url, time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise TimeoutError(f"{app} not ready in 180 s")


def settle(pid: int, started: float, quiet: float = 0.05, limit: float = 300) -> float:
    """Seconds from `started` until process `pid` idles (under `quiet` of a core over a second): the service
    compiles its deferred programs in the background after it is ready, and the load waits for that."""
    while time.monotonic() - started < limit:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < quiet:
            return time.monotonic() - started - 1.0
    return float("nan")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


JSON = {"content-type": "application/json"}


async def drive(
    url: str,
    bodies: list[bytes],
    concurrency: int,
    requests: int,
    time_limit: float,
    path: str = "/predict",
    headers: list[dict[str, str]] | None = None,
) -> Run:
    """`requests` POST `path` calls from `concurrency` clients, stopping early at `time_limit` seconds; body i is
    sent with `headers[i]` (default: JSON's content type).

    Each client is its own httpx.AsyncClient on one keep-alive connection, like independent callers (one
    shared pool of many connections costs the load generator several ms of CPU per request at 64). The clients
    are made before the clock starts: making one takes milliseconds, which would land on the first requests.
    """
    latencies: list[float] = []
    errors = 0
    issued = 0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors, issued
        while issued < requests and time.perf_counter() - started < time_limit:
            body = bodies[issued % len(bodies)]
            head = headers[issued % len(bodies)] if headers else JSON
            issued += 1
            sent = time.perf_counter()
            try:
                response = await client.post(path, content=body, headers=head)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1

    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, limits=limits, timeout=60))
            for _ in range(concurrency)
        ]
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client_loop(client) for client in clients))
        seconds = time.perf_counter() - started
        client_cores = (time.process_time() - cpu_started) / seconds
    return Run(concurrency, len(latencies) + errors, errors, seconds, latencies, client_cores=client_cores)


def request_bodies(steps: int, model: str, count: int = 64) -> list[bytes]:
    from training.data import unit_waves

    waves = 3.0 * unit_waves(np.random.default_rng(0), count, steps, split="test").astype(np.float64) + 1.0
    return [json.dumps({"wave": np.round(w, 5).tolist(), "model": model}).encode() for w in waves]  # 5 decimals


def batch_waves(steps: int, bodies: int, per_body: int) -> list[np.ndarray]:
    """The waves of the /predict/batch bodies: `bodies` arrays of `per_body` waves (steps, features), as the
    /predict bodies' waves (rounded as sent)."""
    from training.data import unit_waves

    waves = unit_waves(np.random.default_rng(1), bodies * per_body, steps, split="test").astype(np.float64)
    waves = np.round(3.0 * waves + 1.0, 5)  # in float64: 5 decimals in the JSON, as a client sends them
    return [waves[start : start + per_body] for start in range(0, len(waves), per_body)]


def batch_bodies(steps: int, model: str, bodies: int, per_body: int) -> list[bytes]:
    return [json.dumps({"waves": w.tolist(), "model": model}).encode() for w in batch_waves(steps, bodies, per_body)]


def binary_bodies(steps: int, bodies: int, per_body: int) -> tuple[list[bytes], list[dict[str, str]]]:
    """The /predict/batch bodies' waves as OIP V2 requests with binary tensors (Triton's extension): a JSON header,
    then the waves as raw little-endian float32; the answer's prediction asked for in binary too."""
    from app.v2_codec import HEADER_LENGTH

    contents, headers = [], []
    for waves in batch_waves(steps, bodies, per_body):
        raw = waves.astype("<f4").tobytes()
        tensor = {"name": "wave", "shape": list(waves.shape), "datatype": "FP32"}
        tensor["parameters"] = {"binary_data_size": len(raw)}
        header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
        contents.append(header + raw)
        headers.append({"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))})
    return contents, headers


def isa_env(isa: str, env: dict[str, str]) -> dict[str, str]:
    """`env` for servers whose compiled programs use at most the instruction set `isa` ("native": the CPU's own),
    keeping any other XLA flags of this process's environment."""
    from training.xla_flags import with_max_isa

    return {**env, "XLA_FLAGS": with_max_isa(os.environ.get("XLA_FLAGS", ""), isa)}


def model_alone(env: dict[str, str], model: str, args, batch: int, workers: int) -> dict:
    """benchmarks.model_alone in a process of its own, with `env` (so its XLA flags apply)."""
    command = [sys.executable, "-m", "benchmarks.model_alone", "--model", model, "--steps", str(args.steps)]
    command += ["--batch", str(batch), "--threads", str(workers), "--batch-waves", str(args.batch_waves)]
    command += ["--batch-bodies", str(BATCH_BODIES)]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"benchmarks.model_alone failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


BATCH_BODIES = 4  # distinct /predict/batch bodies, sent in turn


def timed(pid: int, load) -> Run:
    """The run of the coroutine `load` (a `drive`), with the CPU the server process `pid` used meanwhile."""
    before = cpu_seconds(pid)
    run = asyncio.run(load)
    run.server_cores = (cpu_seconds(pid) - before) / run.seconds
    return run


def first_start_seconds(app: str, env: dict) -> float:
    """Seconds until ready on a first start (env's compile cache empty); the server is stopped again."""
    process, _, seconds = start(app, env)
    stop(process)
    return seconds


def measure(
    name: str, app: str, env: dict, bodies: list[bytes], levels: list[int], args, batch=None, model: str = ""
) -> dict:
    """The server's runs at each concurrency, and with `batch` (bodies, concurrency) its /predict/batch run and the
    same waves as V2 binary tensors to `model`."""
    started = time.monotonic()
    process, url, ready_seconds = start(app, env)
    try:
        settled_seconds = settle(process.pid, started)
        asyncio.run(drive(url, bodies, 4, 16, 30))  # warm the connection path
        runs = []
        for level in levels:
            count = max(args.requests, 4 * level)
            runs.append(timed(process.pid, drive(url, bodies, level, count, args.time_limit)))
        result = {"name": name, "ready_seconds": ready_seconds, "settled_seconds": settled_seconds}
        result |= {"rss_mb": rss_mb(process.pid), "runs": runs}
        if batch is not None:
            batch_bodies, concurrency = batch
            asyncio.run(drive(url, batch_bodies, concurrency, concurrency, 60, "/predict/batch"))  # warm
            count = max(args.batch_requests, concurrency)
            result["batch"] = timed(
                process.pid, drive(url, batch_bodies, concurrency, count, args.time_limit, "/predict/batch")
            )
            contents, headers = binary_bodies(args.steps, BATCH_BODIES, args.batch_waves)
            v2 = f"/v2/models/{model}/infer"
            asyncio.run(drive(url, contents, concurrency, concurrency, 60, v2, headers))  # warm
            result["binary"] = timed(
                process.pid, drive(url, contents, concurrency, count, args.time_limit, v2, headers)
            )
        return result
    finally:
        stop(process)


def measure_ray(replicas: str, env: dict, model: str, levels: list[int], args) -> list[dict]:
    """The Ray rows: benchmarks.ray_serving in its own process, one result per replica count."""
    command = [sys.executable, "-m", "benchmarks.ray_serving", "--replicas", replicas, "--model", model]
    command += ["--concurrency", ",".join(map(str, levels)), "--requests", str(args.requests)]
    command += ["--time-limit", str(args.time_limit), "--steps", str(args.steps)]
    with tempfile.TemporaryDirectory(prefix="wave-xla-cache-") as cache:
        environment = {**os.environ, **env, "WAVE_COMPILE_CACHE": cache, "TF_CPP_MIN_LOG_LEVEL": "3"}
        result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"benchmarks.ray_serving failed:\n{result.stderr[-3000:]}")
    results = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    for entry in results:
        entry["runs"] = [Run(**run) for run in entry["runs"]]
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level (at least 4x it)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds at most per level")
    parser.add_argument("--steps", type=int, default=300, help="observed steps per request wave")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--baseline-requests", type=int, default=200, help="requests per level for the baseline")
    parser.add_argument("--model", help="the served model the requests name (default: the default model)")
    parser.add_argument(
        "--isa",
        default="native,avx2",
        help="instruction sets, comma-separated: each runs the whole measurement with both servers' compiled "
        "programs capped at it (XLA_FLAGS=--xla_cpu_max_isa=AVX2 for avx2; native: the CPU's own) "
        "(default: %(default)s)",
    )
    parser.add_argument("--batch-waves", type=int, default=32, help="waves per /predict/batch request")
    parser.add_argument("--batch-requests", type=int, default=64, help="/predict/batch requests (4 clients)")
    parser.add_argument(
        "--ray-replicas",
        default="1,2" if importlib.util.find_spec("ray") else "",
        help="replica counts of the Ray rows (native only), empty for none (default: 1,2 when Ray is installed)",
    )
    args = parser.parse_args(argv)
    args.isas = [isa.strip().lower() for isa in args.isa.split(",") if isa.strip()]
    if not args.isas:
        parser.error("--isa needs at least one instruction set")
    return args


BATCH_CONCURRENCY = 4  # /predict/batch clients: enough waves queued for every inference worker


def measure_isa(isa: str, args, model: str, settings, levels: list[int]) -> dict:
    """Every measurement with both servers' (and the model alone's) programs capped at `isa`."""
    bodies = request_bodies(args.steps, model)
    cache = tempfile.TemporaryDirectory(prefix="wave-xla-cache-")
    env = isa_env(isa, {"WAVE_LOG_LEVEL": "warning", "WAVE_COMPILE_CACHE": cache.name})
    first_ready = first_start_seconds("app.main:app", env)
    batch = (batch_bodies(args.steps, model, BATCH_BODIES, args.batch_waves), BATCH_CONCURRENCY)
    service = measure("service", "app.main:app", env, bodies, levels, args, batch, model)
    cache.cleanup()
    baseline_args = argparse.Namespace(requests=args.baseline_requests, time_limit=args.time_limit)
    baseline_env = {**env, "WAVE_MODEL_NAME": model}
    baseline = measure("baseline", "benchmarks.baseline_app:app", baseline_env, bodies, levels, baseline_args)
    ray_results = []
    if args.ray_replicas and isa == args.isas[0]:
        ray_results = measure_ray(args.ray_replicas, env, model, levels, args)
    alone = model_alone(env, model, args, settings.max_batch_size, settings.inference_workers)
    return {
        "isa": isa,
        "xla_flags": env["XLA_FLAGS"],
        "first_ready": first_ready,
        "service": service,
        "baseline": baseline,
        "ray": ray_results,
        "alone": alone,
    }


def report(result: dict, levels: list[int], cpus: int, largest: int, workers: int, waves: int) -> None:
    """One instruction set's table, times to ready and ratios."""
    service, baseline, ray_results, alone = result["service"], result["baseline"], result["ray"], result["alone"]
    print(f"instruction set: {result['isa']} (XLA_FLAGS={result['xla_flags']!r})")
    header = (
        f"{'server':9} {'conc':>4} {'reqs':>5} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'cores: server':>13} {'client':>6}"
    )
    print(header)
    for entry in (service, baseline, *ray_results):
        for run in entry["runs"]:
            print(
                f"{entry['name']:9} {run.concurrency:4d} {run.requests:5d} {run.errors:4d} {run.throughput:8.1f}"
                f" {run.percentile(50):8.1f} {run.percentile(95):8.1f} {run.percentile(99):8.1f}"
                f" {run.server_cores:13.2f} {run.client_cores:6.2f}"
            )
    print(
        f"service: time to ready {result['first_ready']:.1f} s on a first start (empty compile cache), "
        f"{service['ready_seconds']:.1f} s on a restart (every program compiled after "
        f"{service['settled_seconds']:.1f} s: the load starts then); RSS after load {service['rss_mb']:.0f} MB"
    )
    print(f"baseline: time to ready {baseline['ready_seconds']:.1f} s, RSS after load {baseline['rss_mb']:.0f} MB")
    print(f"time to ready, service restart / baseline: x{service['ready_seconds'] / baseline['ready_seconds']:.2f}")
    for entry in ray_results:
        print(
            f"{entry['name']}: {entry['replicas']} replica(s) of {entry['cpus_per_replica']} CPU(s) behind Serve's"
            f" proxy, time to ready {entry['ready_seconds']:.1f} s, replicas' RSS {entry['rss_mb']:.0f} MB"
        )
    print("ratios (service / baseline):")
    for s, b in zip(service["runs"], baseline["runs"], strict=True):
        print(
            f"  concurrency {s.concurrency:3d}: throughput x{s.throughput / b.throughput:.1f},"
            f" p50 latency x{s.percentile(50) / b.percentile(50):.2f}"
        )
    for entry in ray_results:
        print(f"ratios ({entry['name']} through Serve's proxy / service):")
        for r, s in zip(entry["runs"], service["runs"], strict=True):
            print(
                f"  concurrency {r.concurrency:3d}: throughput x{r.throughput / s.throughput:.2f},"
                f" p50 latency x{r.percentile(50) / s.percentile(50):.2f}"
            )
    print(f"service CPU per request (server + load generator), and the rate {cpus} CPUs allow at that cost:")
    for run in service["runs"]:
        cpu_ms = (run.server_cores + run.client_cores) / run.throughput * 1000
        print(f"  concurrency {run.concurrency:3d}: {cpu_ms:.2f} ms, at most {cpus * 1000 / cpu_ms:.0f} req/s")
    combos = [(1, 1), (largest, 1), (largest, workers)]
    print(
        "model alone (in process, no HTTP): "
        + ", ".join(
            f"batch {b} x {t} thread{'s' * (t > 1)}: {alone['rates'][f'{b}x{t}']:.0f} waves/s" for b, t in combos
        )
    )
    batch_run, batch_alone = service["batch"], alone["batch_waves_per_second"]
    batch_rate = batch_run.throughput * waves
    print(
        f"/predict/batch ({waves} waves per request, {batch_run.concurrency} clients, {batch_run.errors} errors): "
        f"{batch_rate:.0f} waves/s = {batch_rate / batch_alone:.0%} of the model alone on the same waves "
        f"({batch_alone:.0f} waves/s, batches of {largest} on {workers} thread{'s' * (workers > 1)}); "
        f"cores: server {batch_run.server_cores:.2f}, load generator {batch_run.client_cores:.2f}"
    )
    binary_run = service["binary"]
    binary_rate = binary_run.throughput * waves
    print(
        f"V2 binary tensors (the same waves as float32, {binary_run.concurrency} clients, {binary_run.errors} "
        f"errors): {binary_rate:.0f} waves/s = {binary_rate / batch_alone:.0%} of the model alone; "
        f"cores: server {binary_run.server_cores:.2f}, load generator {binary_run.client_cores:.2f}"
    )
    best = max(run.throughput for run in service["runs"])
    flops, gflops = alone["flops"], alone["gflops"]
    print(f"FLOPs per wave {flops / 1e6:.1f} M; matmul {gflops:.1f} GFLOP/s; best service throughput")
    print(
        f"  {best:.1f} waves/s = {best * flops / 1e9:.2f} GFLOP/s = {100 * best * flops / 1e9 / gflops:.1f}% of the matmul rate"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    from app.settings import get_settings
    from model_store import list_models
    from training.xla_flags import available_cpus

    settings = get_settings()
    model = args.model or settings.model_name
    results = [measure_isa(isa, args, model, settings, levels) for isa in args.isas]

    cpus = available_cpus()
    served = ", ".join(settings.models.split(",") if settings.models else list_models(settings.store))
    version = results[0]["alone"]["version"]
    print(f"model {model} v{version}, {args.steps} observed steps per wave, {cpus} CPUs; the service serves {served}")
    for result in results:
        report(result, levels, cpus, settings.max_batch_size, settings.inference_workers, args.batch_waves)
    if len(results) > 1:
        top = 32 if 32 in levels else max(levels)  # the headline concurrency
        print(f"throughput ratio (service / baseline) at concurrency {top}, per instruction set:")
        for result in results:
            s = next(run for run in result["service"]["runs"] if run.concurrency == top)
            b = next(run for run in result["baseline"]["runs"] if run.concurrency == top)
            ready = result["service"]["ready_seconds"] / result["baseline"]["ready_seconds"]
            alone = result["alone"]["batch_waves_per_second"] / args.batch_waves
            batch, binary = (result["service"][kind].throughput / alone for kind in ("batch", "binary"))
            print(
                f"  {result['isa']:7} x{s.throughput / b.throughput:.1f}; time to ready x{ready:.2f} of the "
                f"baseline's; /predict/batch {batch:.0%} of the model alone, V2 binary {binary:.0%}"
            )
    runs = [run for result in results for entry in (result["service"], *result["ray"]) for run in entry["runs"]]
    batches = [result["service"][kind] for result in results for kind in ("batch", "binary")]
    return 0 if all(run.errors == 0 for run in runs + batches) else 1


if __name__ == "__main__":
    sys.exit(main())
