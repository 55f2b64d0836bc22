"""The HTTP contract, in-process over ASGI, on the committed default model."""

import asyncio
import json

import numpy as np
import pytest

from app.schemas import example_wave
from app.settings import DEFAULT_STORE
from model_store import resolve_version
from tests.conftest import DEFAULT_MODEL
from training.data import unit_waves
from training.loading import load_model
from training.predict import Predictor

LATEST = str(resolve_version(DEFAULT_STORE, DEFAULT_MODEL))  # the default model: its latest version

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def reference_predict(default_store):
    """The training package's own prediction for the default model, loaded separately."""
    return Predictor(load_model(default_store, DEFAULT_MODEL).model)


def wave(steps=120, seed=0, amplitude=3.0, offset=-20.0):
    return (amplitude * unit_waves(np.random.default_rng(seed), 1, steps, split="test")[0] + offset).tolist()


@pytest.mark.parametrize(("start", "steps"), [(0, 200), (57, 200), (133, 150), (0, 1000)])
async def test_predict_completes_a_wave_seen_from_any_moment(client, start, steps):
    """Real observations start anywhere in a cycle, and inputs longer than the context are cropped."""
    truth = 3.0 * unit_waves(np.random.default_rng(11), 4, steps + 150, split="test", start=np.full(4, start)) - 20.0
    response = await client.post("/predict/batch", json={"waves": truth[:, :steps].tolist()})
    assert response.status_code == 200
    error = np.abs(np.array(response.json()["predictions"]) - truth[:, steps:]).mean() / 3.0
    assert error < 0.1, f"MAE / amplitude {error:.3f}"


async def test_predict_matches_the_training_package(client, reference_predict):
    w = wave()
    response = await client.post("/predict", json={"wave": w})
    assert response.status_code == 200
    body = response.json()
    assert body["horizon"] == 150 and body["model"] == {"name": DEFAULT_MODEL, "version": LATEST}
    prediction = np.array(body["prediction"])
    assert prediction.shape == (150, 5)
    expected = reference_predict(np.array([w], np.float32))[0]
    np.testing.assert_allclose(prediction, expected, rtol=1e-5, atol=1e-4)


async def test_horizon_truncates_the_completion(client):
    w = wave(seed=1)
    full = (await client.post("/predict", json={"wave": w})).json()["prediction"]
    short = (await client.post("/predict", json={"wave": w, "horizon": 7})).json()
    assert short["horizon"] == 7 and len(short["prediction"]) == 7
    np.testing.assert_allclose(short["prediction"], full[:7], atol=1e-5)


async def test_results_are_deterministic(client):
    body = {"wave": wave(seed=2), "horizon": 150}
    first, second = [(await client.post("/predict", json=body)).json()["prediction"] for _ in range(2)]
    assert first == second


async def test_batch_items_equal_single_predictions_in_order(client):
    waves = [wave(steps=n, seed=n) for n in (60, 200, 120, 60, 450)]
    response = await client.post("/predict/batch", json={"waves": waves, "horizon": 100})
    assert response.status_code == 200
    body = response.json()
    assert body["horizon"] == 100 and len(body["predictions"]) == 5
    for w, batched in zip(waves, body["predictions"], strict=True):
        single = (await client.post("/predict", json={"wave": w, "horizon": 100})).json()["prediction"]
        np.testing.assert_allclose(batched, single, atol=1e-4)


async def test_concurrent_requests_each_get_their_own_answer(client, reference_predict):
    waves = [wave(steps=60 + 10 * (i % 4), seed=100 + i) for i in range(24)]
    responses = await asyncio.gather(*(client.post("/predict", json={"wave": w}) for w in waves))
    for w, response in zip(waves, responses, strict=True):
        assert response.status_code == 200
        expected = reference_predict(np.array([w], np.float32))[0]
        np.testing.assert_allclose(response.json()["prediction"], expected, atol=1e-4)


async def test_any_amplitude_and_offset_is_completed_in_proportion(client):
    w = np.array(wave(seed=3, amplitude=1.0, offset=0.0))
    base = np.array((await client.post("/predict", json={"wave": w.tolist()})).json()["prediction"])
    for amplitude, offset in [(0.01, 0.0), (1000.0, 0.0), (0.5, 250.0), (40.0, -1e4)]:
        scaled = (await client.post("/predict", json={"wave": (w * amplitude + offset).tolist()})).json()
        np.testing.assert_allclose(
            np.array(scaled["prediction"]), base * amplitude + offset, atol=2e-3 * amplitude + 1e-6 * abs(offset)
        )


async def test_examples_in_the_openapi_schema_work_as_is(client):
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    for name, path in (("PredictRequest", "/predict"), ("BatchPredictRequest", "/predict/batch")):
        example = components[name]["examples"][0]
        response = await client.post(path, json=example)
        assert response.status_code == 200, response.text


async def test_openapi_documents_limits_and_descriptions(client):
    schema = (await client.get("/openapi.json")).json()
    request = schema["components"]["schemas"]["PredictRequest"]["properties"]
    rows, flat = request["wave"]["oneOf"]  # rows of values, or one flat list for one feature
    assert rows["items"]["maxItems"] == 64 and flat["x-wave-flat"] and flat["items"]["anyOf"][0]["type"] == "number"
    assert all(shape["minItems"] == 60 and shape["maxItems"] == 5000 for shape in (rows, flat))
    assert request["horizon"]["minimum"] == 1 and request["horizon"]["maximum"] == 150
    assert "description" in request["wave"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_model_summary(client):
    response = await client.get("/model/summary")
    assert response.status_code == 200
    summary = response.json()
    assert summary["name"] == DEFAULT_MODEL and summary["version"] == LATEST
    assert summary["features"] == "any" and summary["trained_features"] == 5 and summary["horizon"] == 150
    assert summary["input_length"]["min"] == 60 and summary["input_length"]["max"] == 5000
    assert summary["total_params"] == summary["trainable_params"] > 0
    assert summary["total_params"] == sum(row["params"] for row in summary["layers"] if "/" not in row["name"])
    names = {row["name"] for row in summary["layers"]}
    assert {"normalize", "seq2seq", "seq2seq/decoder"} <= names
    assert "wave_completion" in summary["text"]
    assert set(summary["metrics"]["variants"]) == {"unit", "scaled", "noisy", "short", "shifted"}
    assert summary["trained_at"]


async def test_health(client, served_app):
    assert (await client.get("/health/live")).status_code == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


async def test_not_ready_before_the_model_is_loaded():
    import httpx

    from app.main import create_app

    app = create_app()  # lifespan not run: nothing loaded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 503
        response = await http.post("/predict", json={"wave": example_wave(60, 1)})
        assert response.status_code == 503 and "not loaded" in response.json()["detail"]


def replace_cell(w, row, column, value):
    w = [list(r) for r in w]
    w[row][column] = value
    return w


W = wave(steps=80, seed=9)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/predict", {"wave": W[:12]}, "wave has 12 steps, at least 60 are needed"),
        ("/predict", {"wave": W * 70}, "wave has 5600 steps, at most 5000 are allowed"),
        (
            "/predict",
            {"wave": [r[:4] if i == 17 else r for i, r in enumerate(W)]},
            "row 17 has 4 values, row 0 has 5",  # the default model takes any number of features, but one per wave
        ),
        ("/predict", {"wave": [[*r, 1.0] if i else r for i, r in enumerate(W)]}, "row 1 has 6 values, row 0 has 5"),
        ("/predict", {"wave": replace_cell(W, 3, 2, "abc")}, "value at row 3, column 2 is not a number"),
        ("/predict", {"wave": replace_cell(W, 3, 2, "0.1")}, "value at row 3, column 2 is not a number"),
        ("/predict", {"wave": replace_cell(W, 3, 2, True)}, "value at row 3, column 2 is not a number"),
        ("/predict", {"wave": replace_cell(W, 3, 2, False)}, "value at row 3, column 2 is not a number"),
        ("/predict", {"wave": W, "horizon": True}, "horizon must be an integer between 1 and 150"),
        ("/predict", {"wave": W, "horizon": "7"}, "horizon must be an integer between 1 and 150"),
        ("/predict", {"wave": W, "horizon": 7.0}, "horizon must be an integer between 1 and 150"),
        ("/predict", {"wave": replace_cell(W, 3, 2, 1e300)}, "value at row 3, column 2 exceeds 1e+12"),
        ("/predict", {"wave": W, "horizon": 0}, "horizon must be an integer between 1 and 150"),
        ("/predict", {"wave": W, "horizon": 151}, "horizon must be an integer between 1 and 150"),
        ("/predict", {"wave": W, "horizon": "soon"}, "horizon must be an integer between 1 and 150"),
        ("/predict", {"wave": "abc"}, "wave must be a list of rows"),
        ("/predict", {"wave": [[1.0] * 5] + [1.0] * 79}, "wave: row 1 must be a list of numbers"),
        ("/predict/batch", {"waves": "abc"}, "waves must be a list of waves"),
        ("/predict/batch", {"waves": [W, 7]}, "wave 1 must be a list of rows, or of numbers for one feature"),
        ("/predict", {"wave": [1.0, [1.0]] + [1.0] * 78}, "wave: value at row 1 is not a number"),
        ("/predict", {"wave": []}, "wave has 0 steps, at least 60 are needed"),
        ("/predict", {}, "field 'wave' is required"),
        ("/predict", {"wave": W, "extra": 1}, "unknown field 'extra'"),
        ("/predict", [1, 2], "request body must be a JSON object"),
        ("/predict/batch", {"waves": []}, "request has 0 waves, at least 1 are allowed"),
        ("/predict/batch", {"waves": [W, W[:30]]}, "wave 1 has 30 steps, at least 60 are needed"),
        (
            "/predict/batch",
            {"waves": [W, replace_cell(W, 5, 1, "x")]},
            "wave 1: value at row 5, column 1 is not a number",
        ),
        ("/predict/batch", {"waves": [W, [r[: 3 + i % 2] for i, r in enumerate(W)]]}, "wave 1: row 1 has 4 values"),
        ("/predict/batch", {"waves": [W], "horizon": True}, "horizon must be an integer between 1 and 150"),
        (
            "/predict/batch",
            {"waves": [W, replace_cell(W, 2, 4, "1")]},
            "wave 1: value at row 2, column 4 is not a number",
        ),
        ("/predict/batch", {"waves": [W] * 257}, "request has 257 waves, at most 256 are allowed"),
        ("/predict", {"wave": replace_cell(W, 2, 3, True)}, "wave: value at row 2, column 3 is not a number"),
        ("/predict/batch", {"waves": [W, replace_cell(W, 5, 0, False)]}, "wave 1: value at row 5, column 0 is not"),
        ("/predict", {"wave": replace_cell(W, 7, 1, 10**400)}, "wave: value at row 7, column 1 is not a number"),
        ("/predict", {"wave": replace_cell(W, 7, 1, [1.0])}, "wave: value at row 7, column 1 is not a number"),
    ],
)
async def test_invalid_requests_get_422_saying_what_is_wrong(client, path, body, message):
    response = await client.post(path, json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (
            json.dumps({"wave": replace_cell(W, 3, 2, 424242.0)}).replace("424242.0", "NaN").encode(),
            "row 3, column 2 is not finite",
        ),
        (
            json.dumps({"wave": replace_cell(W, 4, 0, 424242.0)}).replace("424242.0", "-Infinity").encode(),
            "row 4, column 0 is not finite",
        ),
        (
            json.dumps({"wave": replace_cell(W, 4, 0, 424242.0)}).replace("424242.0", "1e999").encode(),
            "row 4, column 0 is not finite",
        ),
    ],
)
async def test_malformed_json_gets_422(client, content, message):
    response = await client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert message in response.json()["detail"]


async def test_wrong_content_type_is_refused_in_words(client):
    response = await client.post("/predict", content=json.dumps({"wave": W}), headers={"content-type": "text/plain"})
    assert 400 <= response.status_code < 500
    assert "Content-Type" in response.json()["detail"]


async def test_unknown_route_is_a_json_404(client):
    response = await client.get("/nothing")
    assert response.status_code == 404 and response.json()["detail"] == "Not Found"


async def test_no_retracing_across_batch_sizes_and_lengths(client, served_app):
    served = served_app.state.registry.get()
    traces = served.predict.trace_count()
    waves = [wave(steps=n, seed=n) for n in (60, 61, 97, 150, 299, 300, 301, 1000)]
    await asyncio.gather(*(client.post("/predict", json={"wave": w}) for w in waves))
    await client.post("/predict/batch", json={"waves": waves * 3})
    assert served.predict.trace_count() == traces == 1


async def test_concurrent_requests_are_batched_together(client, served_app):
    registry = served_app.state.metrics.registry

    def sample(name: str) -> float:
        return registry.get_sample_value(f"wave_inference_batch_size_{name}", {"model": DEFAULT_MODEL}) or 0.0

    before_calls, before_waves = sample("count"), sample("sum")
    body = {"wave": wave(steps=200, seed=77)}
    responses = await asyncio.gather(*(client.post("/predict", json=body) for _ in range(32)))
    assert all(r.status_code == 200 for r in responses)
    calls = sample("count") - before_calls
    assert sample("sum") - before_waves == 32
    assert calls < 32  # several waves shared a model call


async def test_a_flat_wave_is_one_feature_and_answered_flat(client):
    """A single series sent as one list of numbers: the same completion as one-value rows, flat, on every route."""
    flat = [row[2] for row in W]
    as_rows = (await client.post("/predict", json={"wave": [[v] for v in flat], "horizon": 20, "level": [80]})).json()
    answer = await client.post("/predict", json={"wave": flat, "horizon": 20, "level": [80]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["prediction"]) == 20 and all(isinstance(v, float) for v in body["prediction"])
    assert body["prediction"] == [row[0] for row in as_rows["prediction"]]
    band = body["intervals"]["80"]
    assert band["lower"] == [row[0] for row in as_rows["intervals"]["80"]["lower"]]
    assert all(lo <= p <= hi for lo, p, hi in zip(band["lower"], body["prediction"], band["upper"], strict=True))
    batch = (await client.post("/predict/batch", json={"waves": [flat, W], "horizon": 20, "level": [80]})).json()
    assert batch["predictions"][0] == body["prediction"] and len(batch["predictions"][1][0]) == 5
    assert batch["intervals"][0]["80"]["upper"] == band["upper"]
    plot = await client.post("/predict/plot", json={"wave": flat, "horizon": 20})
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    gap = await client.post("/predict", json={"wave": [None, *flat[1:]], "horizon": 5})
    assert gap.status_code == 200 and gap.json()["filled"] == 1 and len(gap.json()["prediction"]) == 5


async def test_repeated_errors_are_capped(client):
    """One error per bad row would flood the answer: the first few are listed, then a count."""
    bad = [[v if c else "x" for c, v in enumerate(row)] for row in W]  # every row: column 0 is not a number
    answer = await client.post("/predict", json={"wave": bad})
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert errors[:5] == [f"wave: value at row {r}, column 0 is not a number" for r in range(5)]
    assert errors[5:] == [f"... and {len(W) - 5} more problems"]
