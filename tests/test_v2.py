"""Open Inference Protocol V2: in-process over ASGI, and with the official tritonclient against a real server."""

from __future__ import annotations

import gzip
import json

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from app.batching import DeadlineExceeded, Overloaded
from tests.conftest import DEFAULT_MODEL
from tests.servers import running_server
from training.data import unit_waves

HEADER_LENGTH = "Inference-Header-Content-Length"


def wave(steps: int = 80, seed: int = 0, amplitude: float = 3.0, offset: float = -20.0) -> np.ndarray:
    """A real test-split wave, (steps, 5) float32."""
    unit = unit_waves(np.random.default_rng(seed), 1, steps, split="test")[0]
    return (amplitude * unit + offset).astype(np.float32)


def infer_body(batch: np.ndarray, **extra) -> dict:
    """A JSON infer request carrying `batch` (B, T, F) as flat FP32 data."""
    tensor = {"name": "wave", "shape": list(batch.shape), "datatype": "FP32", "data": batch.ravel().tolist()}
    return {"inputs": [tensor], **extra}


def binary_request(header: dict, raw: bytes) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a request with binary tensor data, the way tritonclient builds it."""
    head = json.dumps(header).encode()
    return head + raw, {HEADER_LENGTH: str(len(head))}


def split_response(response: httpx.Response) -> tuple[dict, bytes]:
    """(JSON header, binary tail) of a response that may carry binary output."""
    length = response.headers.get(HEADER_LENGTH)
    if length is None:
        return response.json(), b""
    return json.loads(response.content[: int(length)]), response.content[int(length) :]


async def native_prediction(client, w: np.ndarray, horizon: int) -> np.ndarray:
    """What POST /predict answers for wave `w`."""
    response = await client.post("/predict", json={"wave": w.tolist(), "horizon": horizon})
    assert response.status_code == 200, response.text
    return np.array(response.json()["prediction"])


@pytest.fixture
def ref(served_app) -> tuple[str, str]:
    model = served_app.state.registry.get()
    return model.ref.name, model.ref.version


BATCH = np.stack([wave(100, seed) for seed in (1, 2, 3)])


# ---------------------------------------------------------------- metadata and health


@pytest.mark.anyio
async def test_server_metadata(client, served_app):
    response = await client.get("/v2")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "wave-completion" and body["version"] == served_app.version
    assert {"binary_tensor_data", "parameters"} <= set(body["extensions"])


@pytest.mark.anyio
async def test_health_live_and_ready(client):
    live, ready = await client.get("/v2/health/live"), await client.get("/v2/health/ready")
    assert live.status_code == 200 and live.json() == {"live": True}
    assert ready.status_code == 200 and ready.json() == {"ready": True}


@pytest.mark.anyio
async def test_model_metadata_with_and_without_version(client, ref):
    name, version = ref
    expected = {
        "name": name,
        "versions": [version],
        "platform": "tensorflow_keras",
        "inputs": [{"name": "wave", "datatype": "FP32", "shape": [-1, -1, -1]}],  # any number of features
        "outputs": [  # the default model is calibrated: its 80 % and 95 % bands are listed too
            {"name": output, "datatype": "FP32", "shape": [-1, -1, -1]}
            for output in ("prediction", "lower_80", "upper_80", "lower_95", "upper_95")
        ],
    }
    for path in (f"/v2/models/{name}", f"/v2/models/{name}/versions/{version}"):
        response = await client.get(path)
        assert response.status_code == 200 and response.json() == expected


@pytest.mark.anyio
async def test_model_ready_with_and_without_version(client, ref):
    name, version = ref
    for path in (f"/v2/models/{name}/ready", f"/v2/models/{name}/versions/{version}/ready"):
        response = await client.get(path)
        assert response.status_code == 200 and response.json() == {"name": name, "ready": True}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v2/models/nope", "unknown model 'nope'"),
        ("GET", "/v2/models/nope/ready", "unknown model 'nope'"),
        ("GET", "/v2/models/{name}/versions/99", "has no version '99'"),
        ("GET", "/v2/models/{name}/versions/99/ready", "has no version '99'"),
        ("POST", "/v2/models/nope/infer", "unknown model 'nope'"),
        ("POST", "/v2/models/{name}/versions/99/infer", "has no version '99'"),
    ],
)
async def test_unknown_model_or_version_is_404(client, ref, method, path, message):
    response = await client.request(method, path.format(name=ref[0]), json=infer_body(BATCH))
    assert response.status_code == 404
    assert message in response.json()["error"]


@pytest.mark.anyio
async def test_unsupported_endpoints_and_methods_answer_in_protocol_form(client, ref):
    missing = await client.get(f"/v2/models/{ref[0]}/config")
    assert missing.status_code == 404 and "no such endpoint" in missing.json()["error"]
    assert (await client.post("/v2/repository/index")).json()["error"].startswith("no such endpoint")
    wrong_method = await client.get(f"/v2/models/{ref[0]}/infer")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert "method GET is not allowed" in wrong_method.json()["error"]


@pytest.mark.anyio
async def test_not_ready_before_the_model_is_loaded():
    from app.main import create_app

    app = create_app()  # lifespan not run: nothing loaded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.get("/v2/health/live")).status_code == 200
        ready = await http.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        for response in (
            await http.get("/v2/models/wave/ready"),
            await http.get("/v2/models/wave"),
            await http.post("/v2/models/wave/infer", json=infer_body(BATCH)),
        ):
            assert response.status_code == 503 and "not loaded" in response.json()["error"]
            assert response.headers["retry-after"] == "1"


# ---------------------------------------------------------------- inference


@pytest.mark.anyio
async def test_json_infer_equals_native_predict_for_each_wave(client, ref):
    name, version = ref
    body = infer_body(BATCH, id="req-1", parameters={"horizon": 30})
    response = await client.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    result = response.json()
    assert result["model_name"] == name and result["model_version"] == version and result["id"] == "req-1"
    (output,) = result["outputs"]
    assert output["name"] == "prediction" and output["datatype"] == "FP32" and output["shape"] == [3, 30, 5]
    prediction = np.array(output["data"]).reshape(output["shape"])
    for w, got in zip(BATCH, prediction, strict=True):
        np.testing.assert_allclose(got, await native_prediction(client, w, 30), atol=1e-4)


@pytest.mark.anyio
async def test_default_horizon_nested_data_and_versioned_path(client, ref):
    name, version = ref
    w = BATCH[:1]
    body = {"inputs": [{"name": "wave", "shape": [1, 100, 5], "datatype": "FP32", "data": w.tolist()}]}
    response = await client.post(f"/v2/models/{name}/versions/{version}/infer", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert "id" not in result
    (output,) = result["outputs"]
    assert output["shape"] == [1, 150, 5]
    np.testing.assert_allclose(
        np.reshape(output["data"], (150, 5)), await native_prediction(client, w[0], 150), atol=1e-4
    )


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["output parameter", "binary_data_output"])
async def test_binary_input_and_output(client, ref, how):
    name, _ = ref
    batch = BATCH[1:]
    raw = batch.astype("<f4").tobytes()
    tensor = {
        "name": "wave",
        "shape": list(batch.shape),
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(raw)},
    }
    header = {"id": "b", "inputs": [tensor], "parameters": {"horizon": 12}}
    if how == "output parameter":
        header["outputs"] = [{"name": "prediction", "parameters": {"binary_data": True}}]
    else:
        header["parameters"]["binary_data_output"] = True
    content, headers = binary_request(header, raw)
    response = await client.post(f"/v2/models/{name}/infer", content=content, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    result, tail = split_response(response)
    (output,) = result["outputs"]
    assert output["shape"] == [2, 12, 5] and "data" not in output
    assert output["parameters"] == {"binary_data_size": 2 * 12 * 5 * 4} == {"binary_data_size": len(tail)}
    prediction = np.frombuffer(tail, "<f4").reshape(output["shape"])
    for w, got in zip(batch, prediction, strict=True):
        np.testing.assert_allclose(got, await native_prediction(client, w, 12), atol=1e-4)


@pytest.mark.anyio
async def test_binary_input_json_output_and_output_choice_overrides_request_default(client, ref):
    name, _ = ref
    raw = BATCH[:1].tobytes()
    tensor = {"name": "wave", "shape": [1, 100, 5], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
    header = {
        "inputs": [tensor],
        "outputs": [{"name": "prediction", "parameters": {"binary_data": False}}],
        "parameters": {"horizon": 5, "binary_data_output": True},
    }
    content, headers = binary_request(header, raw)
    response = await client.post(f"/v2/models/{name}/infer", content=content, headers=headers)
    assert response.status_code == 200 and HEADER_LENGTH.lower() not in response.headers
    data = response.json()["outputs"][0]["data"]
    np.testing.assert_allclose(np.reshape(data, (5, 5)), await native_prediction(client, BATCH[0], 5), atol=1e-4)


@pytest.mark.anyio
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_request_body(client, ref, encoding):
    import zlib

    body = json.dumps(infer_body(BATCH[:1], parameters={"horizon": 3})).encode()
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    response = await client.post(f"/v2/models/{ref[0]}/infer", content=packed, headers={"content-encoding": encoding})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [1, 3, 5]


# ---------------------------------------------------------------- client errors: 400 {"error": ...}


W = wave(80, 9)


def with_value(value: object, wave_index: int = 0, row: int = 3, column: int = 2) -> dict:
    """A 2-wave request whose value at (wave, row, column) is `value` (nested data)."""
    data = np.stack([W, W]).tolist()
    data[wave_index][row][column] = value
    return {"inputs": [{"name": "wave", "shape": [2, 80, 5], "datatype": "FP32", "data": data}]}


def tensor(**changes) -> dict:
    """The input tensor of a valid one-wave request, with `changes`."""
    return {"name": "wave", "shape": [1, 80, 5], "datatype": "FP32", "data": W.ravel().tolist(), **changes}


def shape_only(shape: list[int]) -> dict:
    return {"inputs": [{"name": "wave", "shape": shape, "datatype": "FP32", "data": []}]}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "request body must be a JSON object"),
        ({}, "field 'inputs' is required"),
        ({"inputs": [tensor()], "extra": 1}, "unknown field 'extra'"),
        ({"inputs": [tensor(name="x")]}, "unknown input 'x'; the model takes one input, 'wave'"),
        ({"inputs": [tensor(), tensor()]}, "exactly one input"),
        ({"inputs": []}, "exactly one input"),
        ({"inputs": [tensor(datatype="FP64")]}, "has datatype 'FP64'; the model takes 'FP32'"),
        ({"inputs": [tensor(shape=[80, 5])]}, "has shape [80, 5]; it must be [waves, steps, features]"),
        ({"inputs": [tensor(shape=[1, 80, "5"])]}, "inputs.0.shape.2"),
        (shape_only([1, 80, 0]), "has 0 features, 1 to 64 are allowed"),
        (shape_only([1, 80, 65]), "has 65 features, 1 to 64 are allowed"),
        ({"inputs": [tensor(shape=[1, 81, 5])]}, "has 400 values; shape [1, 81, 5] needs 405"),
        ({"inputs": [tensor(data=None)]}, "has no 'data' and no binary_data_size"),
        ({"inputs": [tensor(shape=[1, 20, 5], data=W[:20].ravel().tolist())]}, "wave 0 has 20 steps, at least 60"),
        (shape_only([0, 80, 5]), "has no waves"),
        (shape_only([300, 80, 5]), "300 waves, at most 256"),
        (shape_only([1, 6000, 5]), "6000 steps per wave, at most 5000"),
        (shape_only([100, 2000, 5]), "200000 observed steps in all, at most 100000"),
        (with_value("abc"), "value at wave 0, row 3, column 2 is not a number"),
        (with_value(True), "value at wave 0, row 3, column 2 is not a number"),
        (with_value(1e300, 1), "wave 1: value at row 3, column 2 exceeds 1e+12"),
        (with_value(10**400, 1), "value at wave 1, row 3, column 2 is too large"),
        (
            {"inputs": [tensor()], "parameters": {"horizon": 0}},
            "parameter 'horizon' must be an integer between 1 and 150",
        ),
        ({"inputs": [tensor()], "parameters": {"horizon": 151}}, "between 1 and 150, got 151"),
        ({"inputs": [tensor()], "parameters": {"horizon": "soon"}}, "parameter 'horizon' must be an integer"),
        ({"inputs": [tensor()], "parameters": {"horizon": True}}, "parameter 'horizon' must be an integer"),
        ({"inputs": [tensor()], "parameters": {"binary_data_output": "yes"}}, "parameters.binary_data_output"),
        ({"inputs": [tensor()], "id": 5}, "id: Input should be a valid string"),
        (
            {"inputs": [tensor()], "outputs": [{"name": "out"}]},
            "unknown output 'out'; this request's outputs are prediction",
        ),
        (
            {"inputs": [tensor()], "outputs": [{"name": "prediction", "parameters": {"classification": 3}}]},
            "classification extension is not supported",
        ),
        (
            {"inputs": [tensor(data=None, parameters={"shared_memory_region": "r", "shared_memory_byte_size": 8})]},
            "shared memory is not supported",
        ),
        ({"inputs": [tensor(parameters={"binary_data_size": 1600})]}, "has both 'data' and binary_data_size"),
        (
            {"inputs": [tensor(data=None, parameters={"binary_data_size": 1600})]},
            "no Inference-Header-Content-Length header",
        ),
    ],
)
async def test_invalid_json_requests_get_400_naming_the_problem(client, ref, body, message):
    response = await client.post(f"/v2/models/{ref[0]}/infer", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]


def raw_cases() -> list[tuple[bytes, dict[str, str], str]]:
    """(body, headers, message) of malformed bodies and binary-data mistakes."""
    good = json.dumps({"inputs": [tensor()]})
    infinite = json.dumps(with_value(424242.0, 1)).replace("424242.0", "Infinity")
    raw = W[None].tobytes()
    infinite_raw = W[None].copy()
    infinite_raw[0, 5, 1] = -np.inf
    infinite_raw = infinite_raw.tobytes()
    binary = {"name": "wave", "shape": [1, 80, 5], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
    return [
        (b"{not json", {}, "request body is not valid JSON"),
        (b"\xff\xfe{", {}, "request body is not valid JSON"),
        (b"", {}, "request body is not valid JSON"),
        (infinite.encode(), {}, "wave 1: value at row 3, column 2 is not finite"),
        (good.replace('"data": [', '"data": [-Infinity, ').encode(), {}, "has 401 values"),
        (*binary_request({"inputs": [binary]}, infinite_raw), "wave 0: value at row 5, column 1 is not finite"),
        (*binary_request({"inputs": [binary]}, raw[:-4]), "has 1596 bytes of binary data; input 'wave' takes 1600"),
        (*binary_request({"inputs": [binary]}, raw + b"xxxx"), "has 1604 bytes of binary data"),
        (
            *binary_request({"inputs": [{**binary, "parameters": {"binary_data_size": 1200}}]}, raw[:1200]),
            "binary_data_size 1200; shape [1, 80, 5] of FP32 needs 1600",
        ),
        (*binary_request({"inputs": [tensor()]}, raw), "1600 bytes of binary data but no input with binary_data_size"),
        (good.encode(), {HEADER_LENGTH: "abc"}, "Inference-Header-Content-Length must be an integer"),
        (good.encode(), {HEADER_LENGTH: str(len(good) + 1)}, f"the request body has {len(good)} bytes"),
        (good.encode(), {HEADER_LENGTH: "10"}, "request body is not valid JSON"),
        (good.encode(), {"content-encoding": "br"}, "unsupported Content-Encoding 'br'"),
        (b"not gzip", {"content-encoding": "gzip"}, "request body is not valid gzip data"),
        (gzip.compress(good.encode())[:-12], {"content-encoding": "gzip"}, "truncated gzip data"),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("content", "headers", "message"), raw_cases())
async def test_malformed_bodies_get_400_naming_the_problem(client, ref, content, headers, message):
    response = await client.post(f"/v2/models/{ref[0]}/infer", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.anyio
async def test_api_key_is_required_when_configured(client, served_app, ref):
    settings = served_app.state.settings
    served_app.state.settings = settings.model_copy(update={"api_key": SecretStr("s3cret")})
    try:
        path = f"/v2/models/{ref[0]}/infer"
        refused = await client.post(path, json=infer_body(BATCH[:1]))
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
        accepted = await client.post(path, json=infer_body(BATCH[:1]), headers={"X-API-Key": "s3cret"})
        assert accepted.status_code == 200
        assert (await client.get(f"/v2/models/{ref[0]}")).status_code == 200  # metadata stays open
    finally:
        served_app.state.settings = settings


@pytest.mark.anyio
@pytest.mark.parametrize(("raised", "status"), [(Overloaded("queue full"), 503), (DeadlineExceeded("late"), 504)])
async def test_overload_and_deadline_answer_in_protocol_form(client, served_app, ref, monkeypatch, raised, status):
    async def failing(waves, timeout=None):
        raise raised

    monkeypatch.setattr(served_app.state.registry.get().batcher, "complete", failing)
    response = await client.post(f"/v2/models/{ref[0]}/infer", json=infer_body(BATCH[:1]))
    assert response.status_code == status and str(raised) in response.json()["error"]


@pytest.mark.anyio
async def test_openapi_documents_v2_and_its_example_works(client, ref):
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ):
        assert path in paths
    infer = paths["/v2/models/{name}/infer"]["post"]
    request_schema = infer["requestBody"]["content"]["application/json"]["schema"]
    assert set(request_schema["properties"]) == {"id", "parameters", "inputs", "outputs"}
    assert "description" in request_schema["properties"]["inputs"]
    assert infer["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    response = await client.post(f"/v2/models/{ref[0]}/infer", json=request_schema["examples"][0])
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [1, 10, 5]


# ---------------------------------------------------------------- the official client against a real server


BAND_OUTPUTS = ("lower_80", "upper_80", "lower_95", "upper_95")


def test_official_tritonclient_against_a_real_server():
    httpclient = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    waves = np.stack([wave(90, seed) for seed in (21, 22, 23)])
    with running_server() as (url, _), httpclient.InferenceServerClient(url.removeprefix("http://")) as triton:
        native = [
            np.array(
                httpx.post(f"{url}/predict", json={"wave": w.tolist(), "horizon": h}, timeout=60).json()["prediction"]
            )
            for h in (30, 150)
            for w in waves
        ]
        assert triton.is_server_live() and triton.is_server_ready()
        assert triton.get_server_metadata()["name"] == "wave-completion"
        metadata = triton.get_model_metadata(DEFAULT_MODEL)
        version = metadata["versions"][0]
        assert metadata["inputs"] == [{"name": "wave", "datatype": "FP32", "shape": [-1, -1, -1]}]
        assert [output["name"] for output in metadata["outputs"]] == ["prediction", *BAND_OUTPUTS]
        assert triton.get_model_metadata(DEFAULT_MODEL, version)["name"] == DEFAULT_MODEL
        assert triton.is_model_ready(DEFAULT_MODEL) and triton.is_model_ready(DEFAULT_MODEL, version)
        assert not triton.is_model_ready("nope") and not triton.is_model_ready(DEFAULT_MODEL, "99")

        for binary in (True, False):
            tensor = httpclient.InferInput("wave", list(waves.shape), "FP32")
            tensor.set_data_from_numpy(waves, binary_data=binary)
            output = httpclient.InferRequestedOutput("prediction", binary_data=binary)
            result = triton.infer(
                DEFAULT_MODEL, [tensor], outputs=[output], request_id=f"r{binary}", parameters={"horizon": 30}
            )
            assert result.get_response()["id"] == f"r{binary}"
            assert ("parameters" in result.get_output("prediction")) is binary
            prediction = result.as_numpy("prediction")
            assert prediction.shape == (3, 30, 5) and prediction.dtype == np.float32
            for got, expected in zip(prediction, native[:3], strict=True):
                np.testing.assert_allclose(got, expected, atol=1e-4)

        # no outputs named: the client asks for binary output of everything; default horizon; versioned; gzip
        tensor = httpclient.InferInput("wave", list(waves.shape), "FP32").set_data_from_numpy(waves)
        result = triton.infer(DEFAULT_MODEL, [tensor], model_version=version, request_compression_algorithm="gzip")
        for got, expected in zip(result.as_numpy("prediction"), native[3:], strict=True):
            np.testing.assert_allclose(got, expected, atol=1e-4)

        # prediction intervals: parameter 'level', outputs lower_80, upper_80, ... as binary tensors
        result = triton.infer(DEFAULT_MODEL, [tensor], parameters={"horizon": 30, "level": [80, 95]})
        prediction = result.as_numpy("prediction")
        bands = {name: result.as_numpy(name) for name in BAND_OUTPUTS}
        assert all(band.shape == (3, 30, 5) and band.dtype == np.float32 for band in bands.values())
        assert np.all(bands["lower_95"] <= bands["lower_80"]) and np.all(bands["lower_80"] <= prediction)
        assert np.all(prediction <= bands["upper_80"]) and np.all(bands["upper_80"] <= bands["upper_95"])

        four = httpclient.InferInput("wave", [1, 90, 4], "FP32").set_data_from_numpy(waves[:1, :, :4])
        completed = triton.infer(DEFAULT_MODEL, [four], parameters={"horizon": 30}).as_numpy("prediction")
        assert completed.shape == (1, 30, 4)  # any number of features: each one completed on its own
        np.testing.assert_allclose(completed[0], native[0][:, :4], atol=1e-4)
        bad = httpclient.InferInput("wave", [1, 20, 5], "FP32").set_data_from_numpy(waves[:1, :20])
        with pytest.raises(InferenceServerException) as refused:
            triton.infer(DEFAULT_MODEL, [bad], parameters={"horizon": 30})
        assert refused.value.status() == "400" and "wave 0 has 20 steps, at least 60" in refused.value.message()
        with pytest.raises(InferenceServerException) as unknown:
            triton.infer("nope", [tensor])
        assert unknown.value.status() == "404" and "unknown model 'nope'" in unknown.value.message()
