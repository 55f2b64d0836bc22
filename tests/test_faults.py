"""Real processes: start-up faults, SIGTERM during requests, overload, load and logs."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.schemas import example_wave
from tests.conftest import DEFAULT_MODEL
from tests.servers import ROOT, idle_connection, running_server, server_log, settled


def start_and_fail(env: dict[str, str]) -> tuple[int, str]:
    """Run the console entry point with `env`; it must exit by itself. Returns (exit code, output)."""
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env={**__import__("os").environ, "WAVE_PORT": "0", "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def faulty_store(two_version_store, tmp_path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(two_version_store, store)
    return store


@pytest.mark.parametrize(
    "fault",
    [
        "missing store",
        "missing version",
        "checksum mismatch",
        "edited calibration",
        "corrupt file",
        "unknown model",
        "no default",
    ],
)
def test_startup_faults_exit_nonzero_with_one_clear_line(faulty_store, fault):
    env = {"WAVE_STORE": str(faulty_store), "WAVE_MODEL_VERSION": "2"}
    model = faulty_store / DEFAULT_MODEL / "2" / "model.keras"
    expected = {
        "missing store": "does not exist",
        "missing version": "has no version '7'",
        "checksum mismatch": "checksum mismatch",
        "edited calibration": "checksum mismatch for " + str(model.parent / "calibration.json"),
        "corrupt file": "cannot load",
        "unknown model": "no published versions of model 'ghost'",
        "no default": f"the default model '{DEFAULT_MODEL}' is not in WAVE_MODELS",
    }[fault]
    if fault == "missing store":
        env["WAVE_STORE"] = str(faulty_store / "nowhere")
    elif fault == "missing version":
        env["WAVE_MODEL_VERSION"] = "7"
    elif fault == "unknown model":
        env["WAVE_MODELS"] = f"{DEFAULT_MODEL}:1,ghost"
    elif fault == "no default":
        env["WAVE_MODELS"] = "ghost"
    elif fault == "checksum mismatch":
        model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    elif fault == "edited calibration":  # a band made narrower by hand is refused like a changed model file
        path = model.parent / "calibration.json"
        record = json.loads(path.read_text())
        record["quantiles"][0] = " ".join(f"{float(value) / 2:.5g}" for value in record["quantiles"][0].split())
        path.write_text(json.dumps(record, indent=1))
    else:
        model.write_bytes(b"PK\x03\x04 not really a zip")
        manifest_path = model.parent / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["files"]["model.keras"] = __import__("hashlib").sha256(model.read_bytes()).hexdigest()
        manifest_path.write_text(json.dumps(manifest))
    code, output = start_and_fail(env)
    assert code == 2, output
    errors = [line for line in output.splitlines() if "cannot start" in line]
    assert len(errors) == 1, output
    record = json.loads(errors[0])
    assert record["levelname"] == "ERROR" and expected in record["message"]
    assert "Traceback" not in output


def queued_waves(text: str) -> float:
    """wave_queue_depth in a /metrics answer, summed over its label sets."""
    return sum(float(v) for v in re.findall(r"^wave_queue_depth(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE))


def test_sigterm_lets_inflight_requests_finish_and_exits_zero():
    waves = [example_wave(300, i) for i in range(48)]
    with running_server(env={"WAVE_MAX_BATCH_SIZE": "1"}) as (url, process):

        async def fire() -> tuple[list[httpx.Response], float]:
            async with httpx.AsyncClient(base_url=url, timeout=120) as http:
                tasks = [asyncio.create_task(http.post("/predict/batch", json={"waves": waves})) for _ in range(6)]
                queued = 0.0
                while queued == 0 and not any(task.done() for task in tasks):
                    queued = queued_waves((await http.get("/metrics")).text)
                    await asyncio.sleep(0.02)
                process.send_signal(signal.SIGTERM)  # now waves are known to wait in the queue
                return await asyncio.gather(*tasks), queued

        responses, queued = asyncio.run(fire())
        assert queued > 0, "no request was in flight when the signal was sent; the test proves nothing"
        assert [r.status_code for r in responses] == [200] * 6
        assert all(len(r.json()["predictions"]) == 48 for r in responses)
        assert process.wait(30) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health/live", timeout=2)


def test_overload_answers_503_with_retry_after_and_recovers():
    env = {"WAVE_MAX_QUEUE": "16", "WAVE_MAX_BATCH_SIZE": "8", "WAVE_LOG_LEVEL": "warning"}
    body = {"waves": [example_wave(300, i) for i in range(8)]}
    with running_server(env=env) as (url, _):

        async def flood() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                return await asyncio.gather(*(http.post("/predict/batch", json=body) for _ in range(64)))

        responses = asyncio.run(flood())
        statuses = [r.status_code for r in responses]
        assert set(statuses) == {200, 503}, statuses
        refused = [r for r in responses if r.status_code == 503]
        assert all(r.headers["retry-after"] == "1" and "busy" in r.json()["detail"] for r in refused)
        assert httpx.post(f"{url}/predict/batch", json=body, timeout=60).status_code == 200


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_load_64_clients_no_errors_and_memory_stays_flat():
    bodies = [json.dumps({"wave": example_wave(60 + (i % 5) * 50, i)}) for i in range(32)]

    async def drive(url: str, requests: int) -> list[int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            queue = list(range(requests))
            statuses: list[int] = []

            async def client() -> None:
                while queue:
                    i = queue.pop()
                    response = await http.post(
                        "/predict", content=bodies[i % len(bodies)], headers={"content-type": "application/json"}
                    )
                    statuses.append(response.status_code)

            await asyncio.wait_for(asyncio.gather(*(client() for _ in range(64))), timeout=300)
            return statuses

    with running_server() as (url, process):
        assert settled(process)  # the programs compiled in the background after ready are done
        assert set(asyncio.run(drive(url, 256))) == {200}  # warm-up
        warm = rss_kb(process.pid)
        started = time.monotonic()
        statuses = asyncio.run(drive(url, 1024))
        elapsed = time.monotonic() - started
        after = rss_kb(process.pid)
        assert statuses.count(200) == 1024, {s: statuses.count(s) for s in set(statuses)}
        assert after <= warm * 1.10, f"RSS grew from {warm} kB to {after} kB"
        print(f"1024 requests from 64 clients in {elapsed:.1f} s; RSS {warm} -> {after} kB")


@pytest.fixture(scope="module")
def plain_server():
    """One real server, as configured by default but for batching (not under test here): its log is checked."""
    with running_server(env={"WAVE_MAX_BATCH_SIZE": "1"}) as (url, process):
        yield url, process


def test_logs_are_json_lines_with_the_request_id(plain_server):
    url, process = plain_server
    response = httpx.post(f"{url}/predict", json={"wave": example_wave(60, 1)}, headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    deadline = time.monotonic() + 60  # the access line is written after the answer: wait for it, however slow
    while True:
        text = server_log(process)
        complete = text[: text.rfind("\n") + 1]  # a line may be half written
        records = [json.loads(line) for line in complete.splitlines() if line.strip()]  # only JSON
        access = [r for r in records if r.get("request_id") == "trace-42"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert access and access[0]["path"] == "/predict" and access[0]["status"] == 200
    assert any("loaded model" in r["message"] for r in records)


def test_server_answers_are_finite_for_a_random_wave_mix(plain_server):
    rng = np.random.default_rng(5)
    url, _ = plain_server
    for _ in range(5):
        steps = int(rng.integers(60, 400))
        wave = rng.normal(size=(steps, 5)) * 10 ** rng.uniform(-3, 6) + rng.uniform(-1e4, 1e4)
        response = httpx.post(f"{url}/predict", json={"wave": wave.tolist()}, timeout=120)
        assert response.status_code == 200 and np.isfinite(response.json()["prediction"]).all()


def test_an_idle_connection_outlives_a_client_pools_keep_alive(plain_server):
    # uvicorn's own default (5 s) equals httpx's pool expiry: a connection reused as the server closed it failed a
    # request under load; a proxy (60 s idle at nginx and AWS load balancers) turns that race into 502s
    url, _ = plain_server
    assert idle_connection(url, 6.0) == (200, True)
