"""End to end against a real uvicorn process on 127.0.0.1."""

import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.schemas import example_wave
from tests.conftest import DEFAULT_MODEL
from tests.servers import running_server
from training.loading import load_model
from training.predict import Predictor


@pytest.fixture(scope="module")
def server():
    """The service as `make serve` starts it: every model in the committed store."""
    with running_server(whole_store=True) as (url, process):
        yield url, process


def test_server_completes_waves_like_the_training_package(server, default_store):
    url, _ = server
    wave = example_wave(150, 11)
    response = httpx.post(f"{url}/predict", json={"wave": wave, "horizon": 150}, timeout=30)
    assert response.status_code == 200
    expected = Predictor(load_model(default_store, DEFAULT_MODEL).model)(np.array([wave], np.float32))[0]
    np.testing.assert_allclose(response.json()["prediction"], expected, atol=1e-4)


def test_server_contract_endpoints(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/health/live").status_code == 200
        assert http.get("/health/ready").json() == {"status": "ok"}
        assert http.get("/model/summary").json()["trained_features"] == 5
        assert http.get("/models").json()["models"][0] | {"metrics": None} == {
            "name": "general", "version": http.get("/model/summary").json()["version"], "default": True,
            "features": "any", "horizon": 150, "input_length": {"min": 60, "max": 5000, "context": 1200}, "metrics": None,
        }  # fmt: skip
        names = [(m["name"], m["default"]) for m in http.get("/models").json()["models"]]
        assert names == [("general", True), ("wave", False)]  # the default first
        other = http.post("/predict", json={"wave": example_wave(120, 3), "horizon": 7, "model": "wave"})
        assert other.status_code == 200 and other.json()["model"]["name"] == "wave"
        assert http.get("/openapi.json").json()["info"]["title"] == "Wave completion service"
        batch = http.post("/predict/batch", json={"waves": [example_wave(60, 1), example_wave(90, 2)], "horizon": 5})
        assert [len(p) for p in batch.json()["predictions"]] == [5, 5]
        bad = http.post("/predict", json={"wave": example_wave(60, 1)[:10]})
        assert bad.status_code == 422 and "at least 60" in bad.json()["detail"]


def test_console_script_starts_the_service_from_environment_settings(default_store):
    script = Path(sys.executable).with_name("wave-serve")
    if not script.exists():
        pytest.skip("package not installed (wave-serve missing)")
    with running_server(command=[str(script)], env={"WAVE_STORE": str(default_store)}) as (url, _):
        summary = httpx.get(f"{url}/model/summary", timeout=30).json()
        assert summary["name"] == DEFAULT_MODEL


def test_server_stops_cleanly_on_sigterm():
    from tests.servers import stop

    with running_server() as (url, process):
        assert httpx.get(f"{url}/health/live").status_code == 200
        assert stop(process) == 0
