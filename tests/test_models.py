"""Several models served side by side: choosing one per request, /models, V2, metrics, reload, OpenAPI, page."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from app.openapi import CommonLimits, common_limits, fit_to_models
from app.registry import ModelRegistry, UnknownModelError, chosen_models
from app.schemas import ModelInfo, example_wave, request_models
from app.settings import DEFAULT_STORE, Limits, Settings, parse_model_list
from app.validation import WaveError, wave_array
from model_store import ModelNotFoundError, resolve_version
from tests.conftest import started_app
from training.loading import load_model
from training.predict import Predictor

W = example_wave(90, 5)
DEFAULT_VERSION = str(
    resolve_version(DEFAULT_STORE, "general")
)  # the default model's latest, as two_model_store has it
CSV_BODY = "\n".join(",".join(str(v) for v in row) for row in W)


@pytest.fixture(scope="module")
async def two_models(two_model_store):
    """An app serving `general` (the default) and `tiny` from one store, and an ASGI client to it."""
    async with started_app(store=two_model_store, max_batch_size=1) as (app, http):
        yield app, http


@pytest.fixture(scope="module")
def tiny_predict(two_model_store):
    """The training package's own prediction for `tiny`, loaded separately."""
    return Predictor(load_model(two_model_store, "tiny").model, max_batch=1)


# ---------------------------------------------------------------- choosing a model (no model loaded)


def test_model_list_parses_names_and_versions():
    assert parse_model_list("wave:3, tiny ,general:latest") == {"wave": "3", "tiny": None, "general": "latest"}
    for bad, message in [("wave,,tiny", "empty model name"), ("wave,wave:2", "named twice"), (":3", "empty")]:
        with pytest.raises(ValueError, match=message):
            parse_model_list(bad)


def test_served_models_are_the_store_or_the_list_with_the_default_among_them(two_model_store):
    store = {"store": two_model_store}
    assert chosen_models(Settings(**store)) == {"tiny": "latest", "general": "latest"}
    assert chosen_models(Settings(**store, model_version="2")) == {"tiny": "latest", "general": "2"}
    assert chosen_models(Settings(**store, models="tiny:1,general")) == {"tiny": "1", "general": "latest"}
    assert chosen_models(Settings(**store, models="general:1", model_version="2")) == {"general": "1"}
    assert chosen_models(Settings(**store, model_name="tiny", models="tiny")) == {"tiny": "latest"}
    with pytest.raises(ModelNotFoundError, match=r"default model 'general' is not in WAVE_MODELS \(it has 'tiny'\)"):
        chosen_models(Settings(**store, models="tiny"))
    with pytest.raises(ModelNotFoundError, match="default model 'nope' is not in the store"):
        chosen_models(Settings(**store, model_name="nope"))
    with pytest.raises(ValueError, match="named twice"):
        Settings(models="wave,wave")
    assert Settings(models=" ").models is None  # blank: every model in the store


class Fake:
    """Just the attributes the registry and the schema fitting read (no model behind it)."""

    def __init__(self, name: str, features: int | None, horizon: int = 150, min_steps: int = 60):
        self.ref = type("Ref", (), {"name": name})()
        self.features, self.horizon, self.min_steps = features, horizon, min_steps


def test_registry_names_the_served_models_for_an_unknown_one():
    registry = ModelRegistry({"wave": Fake("wave", 5), "tiny": Fake("tiny", 5)}, default="wave")
    assert registry.get() is registry.get("wave") and registry.get("tiny").ref.name == "tiny"
    with pytest.raises(UnknownModelError, match=r"unknown model 'nope'; this server serves 'wave' \(default\), 'tiny'"):
        registry.get("nope")
    with pytest.raises(ValueError, match="default model 'x' is not among"):
        ModelRegistry({"wave": Fake("wave", 5)}, default="x")


@pytest.mark.parametrize(
    ("widths", "expected"),
    [((5, 5), 5), ((5, None), 5), ((None, None), None), ((5, 3), None), ((None, 3, 3), 3)],
)
def test_openapi_fits_only_the_row_width_every_model_takes(widths, expected):
    models = {f"m{i}": Fake(f"m{i}", width, horizon=150 - 10 * i, min_steps=60 + i) for i, width in enumerate(widths)}
    limits = common_limits(ModelRegistry(models, default="m0"))
    assert limits.features == expected
    assert limits.horizon == 150 - 10 * (len(widths) - 1) and limits.min_steps == 60 + len(widths) - 1
    assert limits.names == sorted(models)


@pytest.mark.parametrize(("features", "shapes"), [(None, 2), (1, 2), (5, 1)])
def test_the_schema_offers_a_flat_wave_only_when_every_model_takes_one_feature(features, shapes):
    schema = request_models(Limits(min_steps=70)).predict.model_json_schema()
    fit_to_models(schema, CommonLimits(features=features, horizon=100, min_steps=80, names=["m"]))
    wave = schema["properties"]["wave"]
    if shapes == 2:
        rows, flat = wave["oneOf"]
        assert flat["x-wave-flat"] and flat["minItems"] == rows["minItems"] == 80
    else:
        assert "oneOf" not in wave and wave["minItems"] == 80 and wave["items"]["maxItems"] == 5
    assert schema["properties"]["horizon"]["maximum"] == 100 and "observed steps" in wave["description"]


def test_a_model_that_takes_any_number_of_features():
    assert ModelInfo.model_validate(
        {"name": "g", "version": "1", "default": False, "features": "any", "horizon": 150, "metrics": {},
         "input_length": {"min": 60, "max": 5000, "context": 300}}
    ).features == "any"  # fmt: skip
    with pytest.raises(ValueError):
        ModelInfo.model_validate({"features": "many"})
    one, limits = [[float(t)] for t in range(70)], Limits()
    assert wave_array(one, None, 60, limits)[0].shape == (70, 1)
    three = [[float(t), 1.0, -1.0] for t in range(70)]
    assert wave_array(three, None, 60, limits)[0].shape == (70, 3)
    with pytest.raises(WaveError, match="row 5 has 2 values, row 0 has 3"):
        wave_array([row[:2] if i == 5 else row for i, row in enumerate(three)], None, 60, limits)
    with pytest.raises(WaveError, match="row 0 has 3 values, the model expects 5"):
        wave_array(three, 5, 60, limits)


# ---------------------------------------------------------------- two real models served


@pytest.mark.anyio
async def test_models_lists_every_served_model_default_first(two_models):
    app, http = two_models
    response = await http.get("/models")
    assert response.status_code == 200
    models = response.json()["models"]
    assert [(m["name"], m["default"]) for m in models] == [("general", True), ("tiny", False)]
    for model in models:
        assert set(model) == {"name", "version", "default", "features", "horizon", "input_length", "metrics"}
        served = app.state.registry.get(model["name"])
        assert model["features"] == ("any" if served.features is None else 5) and model["horizon"] == 150
        context = {"general": 1200, "tiny": 300}[model["name"]]  # general/12 reads 1200 steps for its look back
        assert model["input_length"] == {"min": 60, "max": 5000, "context": context}
        assert "variants" in model["metrics"]
    assert models[1]["version"] == "1"


@pytest.mark.anyio
async def test_each_request_chooses_its_model(two_models, tiny_predict):
    _, http = two_models
    tiny = await http.post("/predict", json={"wave": W, "model": "tiny", "horizon": 20})
    default = await http.post("/predict", json={"wave": W, "horizon": 20})
    named = await http.post("/predict", json={"wave": W, "model": "general", "horizon": 20})
    assert tiny.status_code == default.status_code == 200
    assert tiny.json()["model"] == {"name": "tiny", "version": "1"}
    assert default.json()["model"]["name"] == named.json()["model"]["name"] == "general"
    assert default.json()["prediction"] == named.json()["prediction"]
    expected = tiny_predict([np.array(W, np.float32)])[0][:20]
    np.testing.assert_allclose(tiny.json()["prediction"], expected, rtol=1e-5, atol=1e-4)
    assert np.abs(np.array(tiny.json()["prediction"]) - default.json()["prediction"]).max() > 1e-3

    batch = await http.post("/predict/batch", json={"waves": [W, W[:70]], "model": "tiny", "horizon": 20})
    assert batch.status_code == 200 and batch.json()["model"]["name"] == "tiny"
    np.testing.assert_allclose(batch.json()["predictions"][0], tiny.json()["prediction"], atol=1e-5)

    csv = await http.post("/predict", content=CSV_BODY, params={"model": "tiny", "horizon": 20},
                          headers={"content-type": "text/csv"})  # fmt: skip
    assert csv.status_code == 200 and csv.json()["model"]["name"] == "tiny"
    np.testing.assert_allclose(csv.json()["prediction"], tiny.json()["prediction"], atol=1e-5)

    plot = await http.post("/predict/plot", json={"wave": W, "model": "tiny", "horizon": 20})
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/predict", {"json": {"wave": W, "model": "nope"}}),
        ("POST", "/predict/batch", {"json": {"waves": [W], "model": "nope"}}),
        ("POST", "/predict/plot", {"json": {"wave": W, "model": "nope"}}),
        (
            "POST",
            "/predict",
            {"content": CSV_BODY, "params": {"model": "nope"}, "headers": {"content-type": "text/csv"}},
        ),
        ("GET", "/model/summary", {"params": {"model": "nope"}}),
        ("GET", "/samples", {"params": {"model": "nope"}}),
    ],
)
async def test_unknown_model_is_a_404_naming_the_served_ones(two_models, method, path, kwargs):
    _, http = two_models
    response = await http.request(method, path, **kwargs)
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    assert response.json()["detail"] == "unknown model 'nope'; this server serves 'general' (default), 'tiny'"


@pytest.mark.anyio
async def test_a_channel_independent_model_completes_any_number_of_features(two_models):
    app, http = two_models
    if app.state.registry.get().features is not None:
        pytest.skip("the default model takes a fixed number of features")
    five = np.array(W)
    waves = {1: five[:, :1], 3: five[:, 1:4], 7: np.concatenate([five, five[:, :2] * 2.0], axis=1)}
    for width, wave in waves.items():
        response = await http.post("/predict", json={"wave": wave.tolist(), "horizon": 12})
        assert response.status_code == 200, response.text
        assert np.shape(response.json()["prediction"]) == (12, width)
    full = (await http.post("/predict", json={"wave": W, "horizon": 12})).json()["prediction"]
    one = (await http.post("/predict", json={"wave": five[:, 2:3].tolist(), "horizon": 12})).json()["prediction"]
    np.testing.assert_allclose(np.array(one)[:, 0], np.array(full)[:, 2], atol=1e-4)  # each feature on its own
    ragged = await http.post("/predict", json={"wave": [row[: 2 + i % 2] for i, row in enumerate(W)]})
    assert ragged.status_code == 422 and "row 1 has 3 values, row 0 has 2" in ragged.json()["detail"]
    models = (await http.get("/models")).json()["models"]
    assert models[0]["features"] == "any"
    metadata = (await http.get("/v2/models/general")).json()
    assert metadata["inputs"][0]["shape"] == [-1, -1, -1]


@pytest.mark.anyio
async def test_summary_and_samples_per_model(two_models):
    _, http = two_models
    assert (await http.get("/model/summary")).json()["name"] == "general"
    tiny = (await http.get("/model/summary", params={"model": "tiny"})).json()
    assert tiny["name"] == "tiny" and tiny["version"] == "1" and tiny["trained_features"] == 5
    assert tiny["total_params"] < (await http.get("/model/summary")).json()["total_params"]
    samples = (await http.get("/samples", params={"model": "tiny", "count": 2})).json()
    assert samples["features"] == 5 and len(samples["samples"][0]["truth"]) == 150


@pytest.mark.anyio
async def test_open_inference_protocol_serves_every_model(two_models):
    _, http = two_models
    for name, version in (("general", DEFAULT_VERSION), ("tiny", "1")):
        metadata = await http.get(f"/v2/models/{name}")
        assert metadata.status_code == 200 and metadata.json()["versions"] == [version]
        assert (await http.get(f"/v2/models/{name}/versions/{version}/ready")).json() == {"name": name, "ready": True}
        batch = np.array([W], np.float32)
        body = {"inputs": [{"name": "wave", "shape": list(batch.shape), "datatype": "FP32",
                            "data": batch.ravel().tolist()}], "parameters": {"horizon": 10}}  # fmt: skip
        infer = await http.post(f"/v2/models/{name}/infer", json=body)
        assert infer.status_code == 200 and infer.json()["model_name"] == name
        native = await http.post("/predict", json={"wave": W, "model": name, "horizon": 10})
        np.testing.assert_allclose(
            np.reshape(infer.json()["outputs"][0]["data"], (10, 5)), native.json()["prediction"], atol=1e-4
        )
    unknown = await http.get("/v2/models/nope")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown model 'nope'; this server serves 'general' (default), 'tiny'"
    wrong_version = await http.get("/v2/models/tiny/versions/3")
    assert wrong_version.status_code == 404 and "the served version is '1'" in wrong_version.json()["error"]


@pytest.mark.anyio
async def test_metrics_are_labelled_by_model(two_models):
    app, http = two_models
    await http.post("/predict", json={"wave": W, "model": "tiny"})
    await http.post("/predict", json={"wave": W})
    text = (await http.get("/metrics")).text
    for name, version in (("general", DEFAULT_VERSION), ("tiny", "1")):
        assert f'wave_model_info{{model="{name}",version="{version}"}} 1.0' in text
        assert f'wave_queue_depth{{model="{name}"}} 0.0' in text
        assert app.state.metrics.registry.get_sample_value("wave_inference_batch_size_count", {"model": name}) >= 1
        assert app.state.metrics.registry.get_sample_value("wave_inference_seconds_count", {"model": name}) >= 1


@pytest.mark.anyio
async def test_each_model_has_its_own_batcher_and_compiled_function(two_models):
    app, _ = two_models
    default, tiny = app.state.registry.get("general"), app.state.registry.get("tiny")
    assert default.batcher is not tiny.batcher and default.predict is not tiny.predict
    assert default.predict.buckets == tiny.predict.buckets and len(default.predict.buckets) == 1  # max_batch_size=1


@pytest.mark.anyio
async def test_openapi_enumerates_the_models_and_fits_common_limits(two_models):
    app, http = two_models
    schema = (await http.get("/openapi.json")).json()
    request = schema["components"]["schemas"]["PredictRequest"]["properties"]
    string = next(option for option in request["model"]["anyOf"] if option.get("type") == "string")
    assert string["enum"] == ["general", "tiny"]
    assert request["horizon"]["maximum"] == 150
    if all(model.features is None for model in app.state.registry):  # both take any number of features
        rows, flat = request["wave"]["oneOf"]  # so a flat wave (one feature) is documented too
        assert rows["items"]["minItems"] == 1 and rows["items"]["maxItems"] == 64
        assert rows["minItems"] == flat["minItems"] == 60 and flat["x-wave-flat"]
    else:  # a fixed width: rows of it, and no flat wave (one feature), which the fixed model refuses
        rows = request["wave"]
        assert "oneOf" not in rows and rows["minItems"] == 60
        assert rows["items"]["minItems"] == rows["items"]["maxItems"] == 5
    summary = {p["name"]: p for p in schema["paths"]["/model/summary"]["get"]["parameters"]}
    assert next(o for o in summary["model"]["schema"]["anyOf"] if o.get("type") == "string")["enum"] == [
        "general",
        "tiny",
    ]
    csv = {p["name"]: p for p in schema["paths"]["/predict"]["post"]["parameters"]}
    assert csv["model"]["schema"]["enum"] == ["general", "tiny"]
    assert "/models" in schema["paths"]


@pytest.mark.anyio
async def test_reload_swaps_one_model_and_leaves_the_others(two_model_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(two_model_store, store)
    shutil.copytree(store / "tiny" / "1", store / "tiny" / "2")
    admin = {"Authorization": "Bearer adm1n"}
    async with started_app(store=store, models="general,tiny:1", admin_token="adm1n", max_batch_size=1) as (app, http):
        default_before = app.state.registry.get("general")
        swap = await http.post("/admin/reload", json={"model": "tiny", "version": "2"}, headers=admin)
        assert swap.status_code == 200, swap.text
        assert swap.json() == {
            "previous": {"name": "tiny", "version": "1"},
            "current": {"name": "tiny", "version": "2"},
        }
        assert app.state.registry.get("general") is default_before
        answer = await http.post("/predict", json={"wave": W, "model": "tiny"})
        assert answer.json()["model"] == {"name": "tiny", "version": "2"}
        assert (await http.post("/predict", json={"wave": W})).json()["model"]["name"] == "general"
        versions = {m["name"]: m["version"] for m in (await http.get("/models")).json()["models"]}
        assert versions == {"general": DEFAULT_VERSION, "tiny": "2"}
        metrics = (await http.get("/metrics")).text
        assert 'wave_model_info{model="tiny",version="2"} 1.0' in metrics
        assert 'wave_model_info{model="tiny",version="1"}' not in metrics

        unknown = await http.post("/admin/reload", json={"model": "nope"}, headers=admin)
        assert (
            unknown.status_code == 404 and "this server serves 'general' (default), 'tiny'" in unknown.json()["detail"]
        )
        missing = await http.post("/admin/reload", json={"model": "tiny", "version": "9"}, headers=admin)
        assert missing.status_code == 404 and "still serving tiny version 2" in missing.json()["detail"]
        default = await http.post("/admin/reload", json={}, headers=admin)
        assert default.json()["current"] == {"name": "general", "version": DEFAULT_VERSION}
