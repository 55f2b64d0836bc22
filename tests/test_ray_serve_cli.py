"""The README's command: `serve run deploy/ray/serve.yaml` starts a local cluster that serves the app, and SIGTERM
stops it with every process it started (Serve's CLI ignores SIGINT without a terminal)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

pytest.importorskip("ray", reason="the [ray] extra is not installed")

from tests.conftest import DEFAULT_MODEL
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "ray" / "serve.yaml"


def session_processes(session: int) -> list[int]:
    """Pids of the live processes in session `session` (the one `serve run` was started in)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # the session id, not a zombie
            pids.append(int(stat.parent.name))
    return pids


def test_serve_run_with_the_config_file_serves_the_app_and_stops(tmp_path):
    config = yaml.safe_load(CONFIG.read_text())
    port, metrics_port = free_port(), free_port()
    config["http_options"] = {**config["http_options"], "host": "127.0.0.1", "port": port}
    (application,) = config["applications"]
    application["args"] = {"settings": {"models": DEFAULT_MODEL}, "metrics_port": metrics_port}
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    serve = Path(sys.executable).parent / "serve"
    env = {**os.environ, "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "app.ray_serve:proxy_middlewares"}
    with tempfile.NamedTemporaryFile(prefix="serve-run-", suffix=".log") as log:
        process = subprocess.Popen(
            [str(serve), "run", str(path)],
            cwd=tmp_path,  # the app is imported from the installed project, as a user's `serve run` does
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240
            while not ready(url):
                assert process.poll() is None, Path(log.name).read_text()[-3000:]
                assert time.monotonic() < deadline, Path(log.name).read_text()[-3000:]
                time.sleep(1)
            wave = [[math.sin(t / 12 + f) for f in range(5)] for t in range(60)]
            answer = httpx.post(f"{url}/predict", json={"wave": wave, "horizon": 4}, timeout=60)
            assert answer.status_code == 200 and len(answer.json()["prediction"]) == 4
            assert httpx.get(f"{url}/models", timeout=30).json()["models"][0]["name"] == DEFAULT_MODEL
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
            assert 'route="/predict",status="200"' in metrics and 'replica="' in metrics
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the session this test started, by its id
                process.wait()
            end = time.monotonic() + 60
            while session_processes(process.pid) and time.monotonic() < end:
                time.sleep(0.5)
            left = session_processes(process.pid)
            if left:
                os.killpg(process.pid, signal.SIGKILL)
            assert not left, f"serve run left processes {left}"


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
