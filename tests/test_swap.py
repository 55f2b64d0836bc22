"""Model swap under load, with versions that answer differently, and a version that loads but fails its smoke test."""

from __future__ import annotations

import asyncio
import json
import re
import shutil

import numpy as np
import pytest

from app.schemas import example_wave
from model_store import write_version
from tests.conftest import DEFAULT_MODEL, started_app

pytestmark = pytest.mark.anyio

ADMIN = {"Authorization": "Bearer adm1n"}
HORIZON = 20


@pytest.fixture(scope="module")
def swap_store(tmp_path_factory, default_store, tiny_store):
    """`wave` 1: the committed default model; 2: the tiny model the CLI trains; 3: tiny with NaN output weights.

    Version 3 has valid files and checksums and loads, but every prediction it makes is NaN.
    """
    from model_store import resolve_version
    from training.loading import load_model

    store = tmp_path_factory.mktemp("swap")
    default = default_store / DEFAULT_MODEL / str(resolve_version(default_store, DEFAULT_MODEL))
    shutil.copytree(default, store / DEFAULT_MODEL / "1")
    shutil.copytree(tiny_store / "tiny" / "1", store / DEFAULT_MODEL / "2")
    manifest = json.loads((store / DEFAULT_MODEL / "2" / "manifest.json").read_text())
    poisoned = load_model(tiny_store, "tiny", 1).model
    last = poisoned.weights[-1]
    last.assign(np.full(last.shape, np.nan, dtype=np.float32))
    path = tmp_path_factory.mktemp("poisoned") / "model.keras"
    poisoned.save(path)
    kept = {k: v for k, v in manifest.items() if k not in ("name", "version", "files")}
    assert write_version(store, DEFAULT_MODEL, path, kept) == 3
    return store


def waves(count: int) -> list[list[list[float]]]:
    return [example_wave(90 + i % 7, i) for i in range(count)]


async def answers(http, batch: list) -> tuple[str, np.ndarray]:
    response = await http.post("/predict/batch", json={"waves": batch, "horizon": HORIZON})
    assert response.status_code == 200, response.text
    return response.json()["model"]["version"], np.array(response.json()["predictions"])


async def queue_depth(http) -> float:
    """wave_queue_depth from /metrics, summed over its label sets."""
    text = (await http.get("/metrics")).text
    return sum(float(v) for v in re.findall(r"^wave_queue_depth(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE))


async def test_queued_requests_finish_on_the_version_they_started_with(swap_store):
    batch = waves(96)
    async with started_app(store=swap_store, model_version="2", admin_token="adm1n", max_batch_size=1) as (_, http):
        assert (await answers(http, batch))[0] == "2"
        swap_back = await http.post("/admin/reload", json={"version": "1"}, headers=ADMIN)
        assert swap_back.status_code == 200, swap_back.text
        version, expected_1 = await answers(http, batch)
        assert version == "1"
        reload_2 = await http.post("/admin/reload", json={"version": "2"}, headers=ADMIN)
        assert reload_2.status_code == 200
        version, expected_2 = await answers(http, batch)
        assert version == "2"
        assert np.abs(expected_1 - expected_2).mean() > 0.05  # the two versions answer differently
        swap_back = await http.post("/admin/reload", json={"version": "1"}, headers=ADMIN)
        assert swap_back.status_code == 200

        # one wave per request, on the slower default model, one wave per model call: a queue builds up
        inflight = [asyncio.create_task(http.post("/predict", json={"wave": w, "horizon": HORIZON})) for w in batch]
        queued = 0.0
        while queued < 8 and not all(task.done() for task in inflight):
            queued = await queue_depth(http)
            await asyncio.sleep(0.005)  # an in-process call may never suspend: let the requests run
        assert queued >= 8, "the requests did not queue up; the test proves nothing"
        swap = await http.post("/admin/reload", json={"version": "2"}, headers=ADMIN)
        assert swap.status_code == 200 and swap.json()["current"]["version"] == "2"
        results = await asyncio.gather(*inflight)

    assert all(r.status_code == 200 for r in results)
    versions = [r.json()["model"]["version"] for r in results]
    assert versions.count("1") >= queued  # every request queued before the swap stayed on version 1
    for i, (response, version) in enumerate(zip(results, versions, strict=True)):
        expected = (expected_1 if version == "1" else expected_2)[i]
        np.testing.assert_allclose(response.json()["prediction"], expected, rtol=1e-5, atol=1e-4)


async def test_a_version_that_fails_its_smoke_test_is_refused_and_the_old_one_keeps_serving(swap_store):
    batch = waves(4)
    async with started_app(store=swap_store, model_version="2", admin_token="adm1n", max_batch_size=1) as (_, http):
        before = await answers(http, batch)
        refused = await http.post("/admin/reload", json={"version": "3"}, headers=ADMIN)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert "smoke prediction failed" in detail and f"still serving {DEFAULT_MODEL} version 2" in detail
        after = await answers(http, batch)
        assert after[0] == "2"
        np.testing.assert_array_equal(after[1], before[1])
        assert np.isfinite(after[1]).all()
        assert (await http.get("/model/summary")).json()["version"] == "2"
