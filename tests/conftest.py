"""Shared fixtures: the committed default model, a tiny model trained by the project's own CLI, servers."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from app.settings import DEFAULT_STORE, Settings

DEFAULT_MODEL = Settings.model_fields["model_name"].default  # `general`


# Modules that start a Ray cluster or Serve: each head takes Ray's default port and address file, so under
# pytest-xdist (`make test` runs two workers) they run one after another on one worker.
RAY_MODULES = {"test_benchmark", "test_bulk_benchmark", "test_complete_ray", "test_ray_serve", "test_ray_serve_cli"}


def pytest_collection_modifyitems(config, items):
    """Group tests for `--dist loadgroup`: a module runs whole on one worker (its module fixtures set up once), the
    Ray modules all on the same one."""
    for item in items:
        module = item.path.stem
        item.add_marker(pytest.mark.xdist_group("ray" if module in RAY_MODULES else module))


@pytest.fixture(scope="session")
def default_store() -> Path:
    """The committed model store with the default model."""
    return DEFAULT_STORE


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A store holding `tiny` version 1, trained by `python -m training train --quick`."""
    from training.cli import main

    store = tmp_path_factory.mktemp("store")
    assert main(["train", "--store", str(store), "--name", "tiny", "--quick", "--eval-waves", "50"]) == 0
    return store


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
async def served_app(default_store):
    """The app on the committed store as shipped (`general`, the default, and `wave`), started through its lifespan
    (load, verify, warm up)."""
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(store=default_store, model_name=DEFAULT_MODEL))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(served_app):
    """An httpx client talking to the app in-process over ASGI."""
    import httpx

    transport = httpx.ASGITransport(app=served_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture(scope="session")
def two_version_store(tmp_path_factory, default_store) -> Path:
    """A copy of the default model published twice (versions 1 and 2) under the default's name."""
    import shutil

    from model_store import resolve_version

    store = tmp_path_factory.mktemp("two_versions")
    source = default_store / DEFAULT_MODEL / str(resolve_version(default_store, DEFAULT_MODEL))
    for version in ("1", "2"):
        shutil.copytree(source, store / DEFAULT_MODEL / version)
    return store


@pytest.fixture(scope="session")
def two_model_store(tmp_path_factory, default_store, tiny_store) -> Path:
    """The default model (`general` at its latest version) and `tiny` version 1, side by side."""
    import shutil

    from model_store import resolve_version

    store = tmp_path_factory.mktemp("two_models")
    source = default_store / DEFAULT_MODEL / str(resolve_version(default_store, DEFAULT_MODEL))
    shutil.copytree(source, store / DEFAULT_MODEL / source.name)
    shutil.copytree(tiny_store / "tiny", store / "tiny")
    return store


@asynccontextmanager
async def started_app(**settings):
    """An app with these settings, started through its lifespan, and an ASGI httpx client to it."""
    import httpx

    from app.main import create_app
    from app.settings import Settings

    defaults = {"store": DEFAULT_STORE, "model_name": DEFAULT_MODEL}
    if "store" not in settings:  # the committed store holds `general` too: serve only what the test is about
        defaults["models"] = DEFAULT_MODEL
    app = create_app(Settings(**{**defaults, **settings}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http
