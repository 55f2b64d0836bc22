"""Start a real uvicorn process on 127.0.0.1 and a free port, and always stop it."""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.serving import cpu_seconds
from tests.conftest import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_log(process: subprocess.Popen) -> str:
    """Everything the server printed so far."""
    return process.log_path.read_text(errors="replace")  # type: ignore[attr-defined]


@contextlib.contextmanager
def running_server(
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
    whole_store: bool = False,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A uvicorn process serving `app.main:app`, run in `cwd` (default: the repo root).

    On the committed store it serves only the default model (one model to compile) unless `env` names a
    store or models, or `whole_store` asks for every model in it. Yields (base URL, process) once /health/ready
    says 200, and always stops the process.
    """
    port = free_port()
    environment = {**os.environ, "WAVE_HOST": "127.0.0.1", "WAVE_PORT": str(port)}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the service's own default (its log is JSON lines)
    environment.update(env or {})
    if whole_store:
        environment.pop("WAVE_MODELS", None)
    elif not {"WAVE_STORE", "WAVE_MODELS"} & set(env or {}):
        environment["WAVE_MODELS"] = DEFAULT_MODEL
    command = command or [sys.executable, "-m", "app"]
    # output goes to a file: a pipe nobody reads could fill up and block the server
    with tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(command, cwd=cwd or ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                output = server_log(process)
                raise RuntimeError(f"server exited with {process.returncode}:\n{output[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready within {timeout} s")
            time.sleep(0.2)
        yield url, process
    finally:
        stop(process)
        process.log_path.unlink(missing_ok=True)


def stop(process: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def compiled_everything(process, models: int = 1, timeout: float = 600) -> bool:
    """Wait until the server (logging at info) says, for `models` models, that the programs it deferred past
    ready are compiled."""
    deadline = time.monotonic() + timeout
    while process.log_path.read_text().count("compiled every program") < models:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def idle_connection(url: str, idle_s: float) -> tuple[int, bool]:
    """GET /health/live on one connection, leave it idle for `idle_s`, then: (the first status, whether the
    server kept the connection open)."""
    host, _, port = url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", "/health/live")
        response = connection.getresponse()
        response.read()
        time.sleep(idle_s)
        readable, _, _ = select.select([connection.sock], [], [], 0)
        closed = bool(readable) and connection.sock.recv(1, socket.MSG_PEEK) == b""
        return response.status, not closed
    finally:
        connection.close()


def settled(process, timeout: float = 300) -> bool:
    """Wait until the server idles (under 5 % of a core over a second): done with what it compiles after ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(process.pid)
        time.sleep(1.0)
        if cpu_seconds(process.pid) - before < 0.05:
            return True
    return False
