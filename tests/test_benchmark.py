"""The load benchmark runs end to end. Tiny numbers: this checks that the script works, not how fast anything is."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_prints_latency_ratios_and_the_compute_bound():
    command = [sys.executable, "-m", "benchmarks.serving", "--requests", "8", "--baseline-requests", "4"]
    command += ["--concurrency", "1,2", "--time-limit", "30", "--ray-replicas", "1" if ray_installed() else ""]
    command += ["--isa", "native", "--batch-waves", "3", "--batch-requests", "4"]
    env = {**os.environ, "WAVE_MODELS": DEFAULT_MODEL}  # one model to compile (the benchmark starts the service twice)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    servers = (["service"], ["baseline"], ["ray-1"])
    rows = [row for row in map(str.split, lines) if row[:1] in servers and row[1].isdigit()]
    assert [(row[0], row[1], row[3]) for row in rows] == [
        ("service", "1", "0"),
        ("service", "2", "0"),
        ("baseline", "1", "0"),
        ("baseline", "2", "0"),
        *([("ray-1", "1", "0"), ("ray-1", "2", "0")] if ray_installed() else []),
    ]  # server, concurrency, errors
    assert all(float(row[4]) > 0 and float(row[8]) > 0 for row in rows)  # throughput, server CPU cores
    assert lines[0].endswith(f"the service serves {DEFAULT_MODEL}")
    ready = next(line for line in lines if line.startswith("service: time to ready"))
    assert "on a first start (empty compile cache)" in ready and "on a restart (every program compiled after" in ready
    assert re.search(r"compiled after \d+\.\d s: the load starts then\); RSS after load \d+ MB", ready)
    assert any(line.startswith("  concurrency   2: throughput x") for line in lines)
    assert any(line.startswith("model alone") for line in lines)
    assert lines[1].startswith("instruction set: native (XLA_FLAGS=")
    assert any(line.startswith("time to ready, service restart / baseline: x") for line in lines)
    batch = next(line for line in lines if line.startswith("/predict/batch (3 waves per request, 4 clients, 0 errors)"))
    assert "% of the model alone on the same waves" in batch
    binary = next(line for line in lines if line.startswith("V2 binary tensors (the same waves as float32"))
    assert "4 clients, 0 errors): " in binary and "% of the model alone; cores: server " in binary
    assert re.search(r"cores: server \d+\.\d\d, load generator \d+\.\d\d$", batch)
    assert any(line.startswith("  concurrency   2:") and "req/s" in line and " ms, at most " in line for line in lines)
    assert any("% of the matmul rate" in line for line in lines)
    if ray_installed():  # the service through Serve's proxy, one replica of both CPUs
        assert any(line.startswith("ray-1: 1 replica(s) of ") and "time to ready" in line for line in lines)
        assert any(line.startswith("ratios (ray-1 through Serve's proxy / service):") for line in lines)


def test_the_isa_mode_caps_both_servers_programs_keeping_other_xla_flags(monkeypatch):
    from benchmarks.serving import isa_env, parse_args

    assert parse_args([]).isas == ["native", "avx2"]
    assert parse_args(["--isa", "AVX2"]).isas == ["avx2"]
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_max_isa=AVX512")
    env = {"WAVE_COMPILE_CACHE": "/tmp/x"}
    assert isa_env("avx2", env) == {
        "WAVE_COMPILE_CACHE": "/tmp/x",
        "XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_max_isa=AVX2",
    }
    assert isa_env("native", env)["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="
    monkeypatch.delenv("XLA_FLAGS")
    assert isa_env("avx2", {})["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX2"


def ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def test_httpx_clients_do_not_retry_a_failed_import_per_request(monkeypatch):
    """Without sniffio, httpcore re-runs a failing `import sniffio` on every request (encode/httpcore#1103): a quarter
    of the load generator's CPU. Count the failed attempts over real async requests to a local HTTP server."""
    import asyncio
    import builtins
    import tomllib

    import httpx

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(dependency.startswith("sniffio") for dependency in declared)

    attempts, failures = [], []
    real_import = builtins.__import__

    def counting_import(name, *args, **kwargs):
        if name == "sniffio":
            attempts.append(name)
            try:
                return real_import(name, *args, **kwargs)
            except ImportError:
                failures.append(name)
                raise
        return real_import(name, *args, **kwargs)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    async def requests() -> list[int]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setattr(builtins, "__import__", counting_import)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                return [(await http.get("/")).status_code for _ in range(20)]
        finally:
            monkeypatch.undo()
            server.close()

    assert asyncio.run(requests()) == [200] * 20
    assert len(attempts) >= 20  # httpcore asks for sniffio on each request...
    assert not failures  # ...and finds it


def test_real_anchor_methods_are_stopped_after_their_timeout(monkeypatch):
    """A classical method that runs too long on a series is stopped and reported, not waited for."""
    import time

    import numpy as np

    from benchmarks import real_anchors

    monkeypatch.setattr(real_anchors, "forecast_windows", lambda name, period, observed: time.sleep(60) or observed)
    assert real_anchors.forecast_within("AutoARIMA", 12, np.zeros((2, 40)), timeout=1.0) is None  # not an array
    monkeypatch.setattr(real_anchors, "forecast_windows", lambda name, period, observed: observed[:, :3] + period)
    finished = real_anchors.forecast_within("AutoETS", 12, np.zeros((2, 40)), timeout=30.0)
    np.testing.assert_array_equal(finished, np.full((2, 3), 12.0))
