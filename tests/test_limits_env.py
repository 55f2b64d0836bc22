"""Limits set through WAVE_LIMIT_* (read into the app's settings by a real server process) and the API key on every
route."""

from __future__ import annotations

import json

import httpx
import pytest

from app.schemas import example_wave
from tests.servers import idle_connection, running_server

KEY = {"X-API-Key": "limits-key"}
ENV = {
    "WAVE_API_KEY": "limits-key",
    "WAVE_MAX_BATCH_SIZE": "1",
    "WAVE_LOG_LEVEL": "warning",
    "WAVE_KEEP_ALIVE_S": "1",
    "WAVE_LIMIT_MIN_STEPS": "70",
    "WAVE_LIMIT_MAX_STEPS": "100",
    "WAVE_LIMIT_MAX_HORIZON": "20",
    "WAVE_LIMIT_MAX_WAVES": "3",
    "WAVE_LIMIT_MAX_TOTAL_STEPS": "250",
    "WAVE_LIMIT_MAX_BODY_BYTES": "40000",
    "WAVE_LIMIT_MAX_ABS_VALUE": "1000",
    "WAVE_LIMIT_MAX_GAP_FRACTION": "0.1",
}


@pytest.fixture(scope="module")
def url():
    with running_server(env=ENV) as (base, _):
        yield base


def test_an_idle_connection_is_closed_after_the_keep_alive(url):
    assert idle_connection(url, 3.0) == (200, False)


def post(url: str, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, headers=KEY if headers is None else headers, timeout=120)


def with_gaps(wave: list[list[float]], count: int) -> list[list[float | None]]:
    return [[None if column == 1 and row < count else v for column, v in enumerate(r)] for row, r in enumerate(wave)]


W = example_wave(80, 1)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/predict", {"wave": example_wave(69, 1)}, "wave has 69 steps, at least 70 are needed"),
        ("/predict", {"wave": example_wave(101, 1)}, "wave has 101 steps, at most 100 are allowed"),
        ("/predict", {"wave": W, "horizon": 21}, "horizon must be an integer between 1 and 20"),
        ("/predict/batch", {"waves": [W] * 4}, "request has 4 waves, at most 3 are allowed"),
        ("/predict/batch", {"waves": [example_wave(90, 1)] * 3}, "270 observed steps in all, at most 250"),
        ("/predict", {"wave": [[1001.0, *r[1:]] for r in W]}, "row 0, column 0 exceeds 1000"),
        ("/predict", {"wave": with_gaps(W, 9)}, "feature 1 misses 9 of 80 steps (11%), more than the 10% allowed"),
    ],
)
def test_limits_from_the_environment_are_enforced(url, path, body, message):
    response = post(url, path, body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


def test_values_at_the_limits_are_accepted(url):
    edge = [[1000.0, *r[1:]] for r in example_wave(100, 2)]
    response = post(url, "/predict", {"wave": with_gaps(edge, 10), "horizon": 20})
    assert response.status_code == 200, response.text
    assert response.json()["filled"] == 10 and len(response.json()["prediction"]) == 20
    assert post(url, "/predict", {"wave": example_wave(70, 3), "horizon": 1}).status_code == 200
    assert post(url, "/predict/batch", {"waves": [W, W, example_wave(90, 5)]}).status_code == 200  # 250 steps


def test_body_limit_from_the_environment(url):
    body = json.dumps({"wave": example_wave(100, 4)}) + " " * 40_000
    response = httpx.post(
        f"{url}/predict", content=body, headers={**KEY, "content-type": "application/json"}, timeout=120
    )
    assert response.status_code == 413


def test_openapi_shows_the_limits_from_the_environment(url):
    schema = httpx.get(f"{url}/openapi.json", timeout=60).json()
    request = schema["components"]["schemas"]["PredictRequest"]["properties"]
    assert all(shape["minItems"] == 70 and shape["maxItems"] == 100 for shape in request["wave"]["oneOf"])
    assert request["horizon"]["maximum"] == 20
    batch = schema["components"]["schemas"]["BatchPredictRequest"]["properties"]["waves"]
    assert batch["maxItems"] == 3


@pytest.mark.parametrize(("path", "body"), [("/predict", {"wave": W}), ("/predict/batch", {"waves": [W, W[:75]]})])
def test_api_key_guards_single_and_batch_predictions(url, path, body):
    missing = post(url, path, body, headers={})
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["detail"]
    wrong = post(url, path, body, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    assert post(url, path, body).status_code == 200
    assert httpx.get(f"{url}/health/ready", timeout=60).status_code == 200  # probes stay open


@pytest.mark.anyio
async def test_each_app_keeps_the_limits_of_its_own_settings():
    """Limits are settings of an app, not of the process: two apps made side by side each document and enforce
    their own (no models are loaded: the schema and the body limit do not need them)."""
    from app.main import create_app
    from app.settings import Limits, Settings

    small = create_app(Settings(limits=Limits(min_steps=70, max_horizon=20, max_waves=3, max_body_bytes=2048)))
    default = create_app(Settings())
    for app, (steps, horizon, waves) in ((small, (70, 20, 3)), (default, (60, 150, 256))):
        schemas = app.openapi()["components"]["schemas"]
        assert all(shape["minItems"] == steps for shape in schemas["PredictRequest"]["properties"]["wave"]["oneOf"])
        assert schemas["PredictRequest"]["properties"]["horizon"]["maximum"] == horizon
        assert schemas["BatchPredictRequest"]["properties"]["waves"]["maxItems"] == waves
    body = json.dumps({"wave": example_wave(60, 1)})  # about 6 kB
    for app, status in ((small, 413), (default, 503)):  # 503: too small for one, not loaded for the other
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.post("/predict", content=body, headers={"content-type": "application/json"})
            assert response.status_code == status, response.text
