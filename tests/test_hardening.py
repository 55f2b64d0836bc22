"""Hostile and degenerate input, limits, backpressure, deadlines, keys and model swaps (in-process)."""

import asyncio
import json
import shutil

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.schemas import example_wave
from app.settings import Limits
from tests.conftest import DEFAULT_MODEL, started_app

LIMITS = Limits()  # the defaults, which the tests' apps use

pytestmark = pytest.mark.anyio

W = example_wave(80, 4)


async def test_body_larger_than_the_limit_is_413_before_parsing(client):
    declared = await client.post(
        "/predict", content=b"{}", headers={"content-type": "application/json", "content-length": "999999999"}
    )
    assert declared.status_code == 413 and "larger than" in declared.json()["detail"]

    async def chunks():  # no Content-Length: counted while streaming
        yield b'{"wave": ['
        for _ in range(LIMITS.max_body_bytes // 65536 + 2):
            yield b" " * 65536
        yield b"]}"

    streamed = await client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


async def test_too_many_steps_in_all_is_refused(client):
    waves = [example_wave(LIMITS.max_steps, 1)] * (LIMITS.max_total_steps // LIMITS.max_steps + 1)
    response = await client.post("/predict/batch", json={"waves": waves})
    assert response.status_code == 422
    assert f"at most {LIMITS.max_total_steps} are allowed" in response.json()["detail"]


@pytest.mark.parametrize("depth", [50, 100_000])
async def test_deep_nesting_is_a_4xx(client, depth):
    body = '{"wave": ' + "[" * depth + "]" * depth + "}"
    response = await client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500 and response.json()["detail"]
    if depth > 10_000:
        assert response.json()["detail"] == "request body is nested too deeply to parse"


async def test_float32_overflow_is_named(client):
    wave = [list(r) for r in W]
    wave[7][4] = 1e39
    response = await client.post("/predict", json={"wave": wave})
    assert response.status_code == 422 and "row 7, column 4 exceeds" in response.json()["detail"]


@pytest.mark.parametrize(
    "make",
    [
        lambda t: np.full((len(t), 5), 3.25),  # every feature flat
        lambda t: np.stack([np.sin(t / 12)] * 4 + [np.zeros_like(t)], axis=1),  # one flat feature
        lambda t: 1e11 * np.sin(t[:, None] / 15 + np.arange(5)),  # huge magnitudes
        lambda t: 5e5 + 1e-3 * np.sin(t[:, None] / 20 + np.arange(5)),  # tiny amplitude on a large offset
        lambda t: np.where(t[:, None] % 2 == 0, 1.0, -1.0) * np.ones(5),  # alternating spikes
        lambda t: np.cumsum(np.random.default_rng(0).normal(size=(len(t), 5)), axis=0),  # random walk
    ],
)
async def test_degenerate_but_valid_waves_get_finite_answers(client, make):
    wave = make(np.arange(120, dtype=np.float64))
    response = await client.post("/predict", json={"wave": wave.tolist()})
    assert response.status_code == 200, response.text
    prediction = np.array(response.json()["prediction"])
    assert prediction.shape == (150, 5) and np.isfinite(prediction).all()


async def test_flat_feature_stays_flat(client):
    wave = np.full((100, 5), -7.0)
    prediction = np.array((await client.post("/predict", json={"wave": wave.tolist()})).json()["prediction"])
    np.testing.assert_allclose(prediction, -7.0, atol=1e-4)


async def test_full_queue_answers_503_with_retry_after_then_recovers():
    async with started_app(max_queue=4, max_batch_size=1) as (_, http):
        response = await http.post("/predict/batch", json={"waves": [W] * 5})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["detail"]
        assert (await http.post("/predict/batch", json={"waves": [W] * 4})).status_code == 200


async def test_request_deadline_gives_504():
    async with started_app(request_timeout_s=1e-6, max_batch_size=1) as (_, http):
        response = await http.post("/predict", json={"wave": W})
        assert response.status_code == 504 and "deadline" in response.json()["detail"]
        assert (await http.get("/health/live")).status_code == 200


async def test_api_key_guards_inference_when_configured():
    async with started_app(api_key="s3cret", max_batch_size=1) as (_, http):
        missing = await http.post("/predict", json={"wave": W})
        assert missing.status_code == 401 and "X-API-Key" in missing.json()["detail"]
        wrong = await http.post("/predict", json={"wave": W}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        ok = await http.post("/predict", json={"wave": W}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert (await http.get("/health/ready")).status_code == 200  # probes stay open


async def test_admin_endpoints_are_off_without_a_token(client):
    response = await client.post("/admin/reload", json={"version": "1"})
    assert response.status_code == 404 and "WAVE_ADMIN_TOKEN" in response.json()["detail"]


async def test_reload_swaps_versions_and_refuses_broken_ones(two_version_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(two_version_store, store)
    broken = store / DEFAULT_MODEL / "3"
    shutil.copytree(store / DEFAULT_MODEL / "2", broken)
    data = bytearray((broken / "model.keras").read_bytes())
    data[100] ^= 0xFF
    (broken / "model.keras").write_bytes(bytes(data))
    admin = {"Authorization": "Bearer adm1n"}
    async with started_app(store=store, model_version="1", admin_token="adm1n", max_batch_size=1) as (_, http):
        assert (await http.post("/admin/reload", json={"version": "2"})).status_code == 401
        bad_token = await http.post("/admin/reload", json={"version": "2"}, headers={"Authorization": "Bearer x"})
        assert bad_token.status_code == 401

        # requests in flight while the swap happens all complete
        inflight = [asyncio.create_task(http.post("/predict", json={"wave": example_wave(90, i)})) for i in range(24)]
        swap = await http.post("/admin/reload", json={"version": "2"}, headers=admin)
        assert swap.status_code == 200
        assert swap.json() == {
            "previous": {"name": DEFAULT_MODEL, "version": "1"},
            "current": {"name": DEFAULT_MODEL, "version": "2"},
        }
        results = await asyncio.gather(*inflight)
        assert all(r.status_code == 200 for r in results)
        assert {r.json()["model"]["version"] for r in results} <= {"1", "2"}
        after = await http.post("/predict", json={"wave": W})
        assert after.json()["model"]["version"] == "2"

        corrupt = await http.post("/admin/reload", json={"version": "3"}, headers=admin)
        assert corrupt.status_code == 422 and "checksum mismatch" in corrupt.json()["detail"]
        assert f"still serving {DEFAULT_MODEL} version 2" in corrupt.json()["detail"]
        missing = await http.post("/admin/reload", json={"version": "9"}, headers=admin)
        assert missing.status_code == 404
        still = await http.post("/predict", json={"wave": W})
        assert still.status_code == 200 and still.json()["model"]["version"] == "2"
        assert (await http.get("/model/summary")).json()["version"] == "2"
        metrics = (await http.get("/metrics")).text
        assert f'wave_model_info{{model="{DEFAULT_MODEL}",version="2"}} 1.0' in metrics
        assert 'version="1"' not in metrics  # the replaced version is no longer reported


async def test_request_id_is_echoed_or_made(client):
    given = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/health/live")
    assert len(made.headers["x-request-id"]) == 32


def metric_samples(text: str) -> dict[tuple, float]:
    """Every sample of a Prometheus text page as {(name, labels...): value}."""
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_requests_batches_and_model(client):
    before = metric_samples((await client.get("/metrics")).text)
    answered = await client.post("/predict", json={"wave": W})
    refused = await client.post("/predict", json={"wave": W[:10]})
    assert answered.status_code == 200 and refused.status_code == 422
    after = metric_samples((await client.get("/metrics")).text)
    model, version = answered.json()["model"]["name"], answered.json()["model"]["version"]
    assert model == DEFAULT_MODEL

    def moved(name: str, **labels: str) -> float:
        key = (name, *sorted(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("wave_http_requests_total", method="POST", route="/predict", status="200") == 1
    assert moved("wave_http_requests_total", method="POST", route="/predict", status="422") == 1
    assert moved("wave_http_request_duration_seconds_count", route="/predict") == 2
    # the model that answered ran one call of one wave (the refused wave never reached it)
    assert moved("wave_inference_batch_size_count", model=model) == 1
    assert moved("wave_inference_batch_size_sum", model=model) == 1
    assert moved("wave_inference_seconds_count", model=model) == 1
    assert moved("wave_inference_seconds_sum", model=model) > 0
    others = {labels[0][1] for name, *labels in after if name == "wave_inference_batch_size_count"} - {model}
    assert others == {"wave"}  # served beside it, and untouched by these requests
    assert moved("wave_inference_batch_size_count", model="wave") == 0
    assert after[("wave_queue_depth", ("model", model))] == 0
    assert after[("wave_model_info", ("model", model), ("version", version))] == 1


async def test_csv_in_and_out(client):
    csv_body = "a,b,c,d,e\n" + "\n".join(",".join(str(v) for v in row) for row in W)
    as_csv = await client.post(
        "/predict", content=csv_body, params={"horizon": 12}, headers={"content-type": "text/csv", "accept": "text/csv"}
    )
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.strip().splitlines()
    assert lines[0] == "feature_1,feature_2,feature_3,feature_4,feature_5" and len(lines) == 13
    as_json = (await client.post("/predict", json={"wave": W, "horizon": 12})).json()["prediction"]
    np.testing.assert_allclose([[float(v) for v in line.split(",")] for line in lines[1:]], as_json, rtol=1e-6)
    no_header = "\n".join(",".join(str(v) for v in row) for row in W)
    json_back = await client.post("/predict", content=no_header, headers={"content-type": "text/csv"})
    assert json_back.status_code == 200 and len(json_back.json()["prediction"]) == 150


@pytest.mark.parametrize(
    ("csv_body", "message"),
    [
        ("1,2,3,4,5\n" * 10, "wave has 10 steps, at least 60 are needed"),
        ("1,2,3,4,5\n" * 70 + "1,2,x,4,5\n", "CSV line 71 (row 70), column 2: 'x' is not a number"),
        ("1,2,3,4,5\n" * 70 + "1,2,3,4\n", "row 70 has 4 values, row 0 has 5"),
        ("1,2,3,4,5\n" * 70 + "1,2,inf,4,5\n", "row 70, column 2 is not finite"),
        ("1,2,NA,4,5\n" * 70, "wave: feature 2 has no value"),
        ("1;2;3;4;5\n" * 70 + "1;2;3,5,1;4;5\n", "CSV line 71 (row 70), column 2: '3,5,1' is not a number"),
    ],
)
async def test_bad_csv_gets_422_in_words(client, csv_body, message):
    response = await client.post("/predict", content=csv_body, headers={"content-type": "text/csv"})
    assert response.status_code == 422 and message in response.json()["detail"]


async def test_unsupported_content_type_is_415(client):
    response = await client.post("/predict", content=json.dumps({"wave": W}), headers={"content-type": "text/plain"})
    assert response.status_code == 415 and "text/csv" in response.json()["detail"]


async def test_a_server_failure_is_a_500_with_the_request_id_and_no_internal_text(client, served_app, monkeypatch):
    """The served model's predictor raises (a fault inside inference): every protocol answers 500 with a generic
    message naming the request id, which the X-Request-ID header carries too; the exception's text stays inside."""
    served = served_app.state.registry.get()

    def failing_predictor(waves):
        raise RuntimeError("secret internal detail /srv/models")

    monkeypatch.setattr(served.batcher, "_predict", failing_predictor)
    native = await client.post("/predict", json={"wave": W}, headers={"X-Request-ID": "fault-1"})
    assert native.status_code == 500 and native.headers["x-request-id"] == "fault-1"
    assert native.json()["request_id"] == "fault-1" and "request id fault-1" in native.json()["detail"]
    batch = await client.post("/predict/batch", json={"waves": [W, W]})
    assert batch.status_code == 500 and batch.json()["request_id"] == batch.headers["x-request-id"]
    tensor = {"name": "wave", "datatype": "FP32", "shape": [1, len(W), 5], "data": np.ravel(W).tolist()}
    v2 = await client.post(
        f"/v2/models/{DEFAULT_MODEL}/infer", json={"inputs": [tensor]}, headers={"X-Request-ID": "fault-2"}
    )
    assert v2.status_code == 500 and set(v2.json()) == {"error"} and "request id fault-2" in v2.json()["error"]
    for answer in (native, batch, v2):
        assert "secret" not in answer.text and "RuntimeError" not in answer.text and "/srv" not in answer.text
    monkeypatch.undo()
    assert (await client.post("/predict", json={"wave": W})).status_code == 200  # the model serves again
