"""The load benchmark's Ray rows: the service on a local Ray cluster, driven through Serve's HTTP proxy.

Run by `python -m benchmarks.serving` in a process of its own (Ray stays out of the plain benchmark's process);
prints one JSON object per replica count: time to ready, replicas' RSS, and per concurrency the requests,
errors, seconds, latencies and the CPU cores used by the proxy and the replicas. The machine's CPUs are shared
out evenly: 1 replica gets them all, 2 replicas half each.
"""

import argparse
import asyncio
import json
import os
import sys
import time

import ray
from ray import serve

from app.ray_serve import ServeArgs, build
from benchmarks.serving import cpu_seconds, drive, free_port, request_bodies, rss_mb
from training.xla_flags import available_cpus

APP = "wave"


def serving_pids() -> tuple[list[int], list[int]]:
    """(proxy pids, replica pids) of the running Serve application."""
    from ray._private.state import actors

    alive = actors(actor_state_name="ALIVE").values()
    proxies = [info["Pid"] for info in alive if info["ActorClassName"] == "ProxyActor"]
    replicas = [info["Pid"] for info in alive if info["Name"].startswith(f"SERVE_REPLICA::{APP}#")]
    return proxies, replicas


def measure(replicas: int, url: str, bodies: list[bytes], levels: list[int], args) -> dict:
    cpus = max(1, available_cpus() // replicas)
    deployment = build(ServeArgs(metrics_port=None))._bound_deployment
    started = time.monotonic()
    serve.run(
        deployment.options(num_replicas=replicas, ray_actor_options={"num_cpus": cpus}).bind({}, None),
        name=APP,
        route_prefix="/",
    )
    ready_seconds = time.monotonic() - started
    proxies, replica_pids = serving_pids()
    assert len(replica_pids) == replicas, replica_pids
    asyncio.run(drive(url, bodies, 4, 16, 30))  # warm the connection path
    runs = []
    for level in levels:
        before = sum(cpu_seconds(pid) for pid in proxies + replica_pids)
        run = asyncio.run(drive(url, bodies, level, max(args.requests, 4 * level), args.time_limit))
        server_cores = (sum(cpu_seconds(pid) for pid in proxies + replica_pids) - before) / run.seconds
        runs.append({**vars(run), "server_cores": server_cores})
    rss = sum(rss_mb(pid) for pid in replica_pids)
    serve.delete(APP)
    return {
        "name": f"ray-{replicas}",
        "replicas": replicas,
        "cpus_per_replica": cpus,
        "ready_seconds": ready_seconds,
        "rss_mb": rss,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--model", required=True)
    args = parser.parse_args(argv)
    bodies = request_bodies(args.steps, args.model)
    # a request whose replica died gets 503 + Retry-After, as in deploy/ray/serve.yaml
    os.environ["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = "app.ray_serve:proxy_middlewares"
    ray.init(num_cpus=available_cpus(), include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    try:
        port = free_port()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        for replicas in (int(count) for count in args.replicas.split(",")):
            levels = [int(level) for level in args.concurrency.split(",")]
            print(json.dumps(measure(replicas, f"http://127.0.0.1:{port}", bodies, levels, args)), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
