"""Open Inference Protocol V2 (KServe / Triton / Seldon) beside the native API, with Triton's binary tensor data.

Errors here are {"error": "..."} as the protocol says, not the native {"detail": ...}: the routes read and check
the body themselves instead of leaving it to FastAPI.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.routing import Match

from app.batching import DeadlineExceeded, Overloaded
from app.dependencies import current_model
from app.json_body import parse_json
from app.limits import LIMITS
from app.model_service import ServedModel
from app.security import api_key_header, require_api_key
from app.v2_schemas import (
    DATATYPE,
    INPUT_NAME,
    OUTPUT_NAME,
    ErrorBody,
    InferInputTensor,
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
    TensorMetadata,
)
from app.validation import WaveError, wave_array

logger = logging.getLogger("app")

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])

SERVER_NAME = "wave-completion"
PLATFORM = "tensorflow_keras"
EXTENSIONS = ["binary_tensor_data", "parameters"]
HEADER_LENGTH = "Inference-Header-Content-Length"
SHARED_MEMORY_KEYS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such model or version"},
    503: {"model": ErrorBody, "description": "the model is not loaded yet"},
}
INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the request is invalid; `error` says why"},
    401: {"model": ErrorBody, "description": "an API key is configured and the request lacks it"},
    **ERRORS,
    503: {"model": ErrorBody, "description": "not loaded yet, or the queue is full: retry after Retry-After seconds"},
    504: {"model": ErrorBody, "description": "the request's inference deadline passed"},
}


class V2Error(ValueError):
    """A client error; the message is sent as {"error": message}."""


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The protocol's error body."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every $ref replaced by its definition, to embed in the OpenAPI document."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


def find_model(request: Request, name: str, version: str | None) -> ServedModel | JSONResponse:
    """The served model if `name` (and `version`, when given) are its own; else the 404 / 503 to send."""
    model = current_model(request)
    if model is None:
        return error(503, "the model is not loaded yet", {"Retry-After": "1"})
    if name != model.ref.name:
        return error(404, f"unknown model {name!r}; this server serves {model.ref.name!r}")
    if version is not None and version != model.ref.version:
        return error(404, f"model {name!r} has no version {version!r}; the served version is {model.ref.version!r}")
    return model


def describe(exc: ValidationError) -> str:
    """The first problem pydantic found, in words."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    if first["type"] in ("model_type", "model_attributes_type") and not first["loc"]:
        return "request body must be a JSON object"
    if first["type"] == "missing":
        return f"field {loc!r} is required"
    if first["type"] == "extra_forbidden":
        return f"unknown field {loc!r}"
    if first["loc"][:2] == ("parameters", "horizon"):
        return "parameter 'horizon' must be an integer"
    return f"{loc}: {first['msg']}"


def decoded_body(body: bytes, encoding: str) -> bytes:
    """The body with its Content-Encoding (gzip or deflate, as tritonclient sends them) undone."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise V2Error(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, LIMITS.max_body_bytes)
    except zlib.error as exc:
        raise V2Error(f"request body is not valid {encoding} data: {exc}") from None
    if inflater.unconsumed_tail:
        raise V2Error(f"decompressed request body is larger than {LIMITS.max_body_bytes} bytes")
    if not inflater.eof:
        raise V2Error(f"request body is truncated {encoding} data")
    return data


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes | None]:
    """(JSON header, binary tail); the tail is None when the request has no binary data."""
    if header_length is None:
        return body, None
    try:
        length = int(header_length)
    except ValueError:
        raise V2Error(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
    if not 0 <= length <= len(body):
        raise V2Error(f"{HEADER_LENGTH} is {length}, but the request body has {len(body)} bytes")
    return body[:length], body[length:]


def parse_request(body: bytes) -> InferRequest:
    """The JSON header as an InferRequest, or V2Error naming the problem."""
    try:
        payload = parse_json(body)
    except (ValueError, RecursionError) as exc:
        raise V2Error(f"request body is not valid JSON: {exc}") from None
    try:
        return InferRequest.model_validate(payload)
    except ValidationError as exc:
        raise V2Error(describe(exc)) from None


def flat_values(data: list[Any], shape: list[int]) -> list[float]:
    """Every value of JSON `data` (flat or nested), row-major, `null` as NaN (a gap); V2Error at the first one that
    is not a number."""
    values: list[float] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if item is None:
                values.append(math.nan)
                continue
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise V2Error(f"input {INPUT_NAME!r}: {where(len(values), shape)} is not a number")
            try:
                values.append(float(item))
            except OverflowError:
                raise V2Error(f"input {INPUT_NAME!r}: {where(len(values), shape)} is too large") from None
        else:
            stack.pop()
    return values


def where(index: int, shape: list[int]) -> str:
    """Flat value `index` as 'value at wave w, row r, column c' for a [B, T, F] shape."""
    _, steps, features = shape
    if steps * features == 0:
        return f"value {index}"
    wave, rest = divmod(index, steps * features)
    row, column = divmod(rest, features)
    return f"value at wave {wave}, row {row}, column {column}"


def input_batch(tensor: InferInputTensor, tail: bytes | None, model: ServedModel) -> np.ndarray:
    """The input tensor as a (B, T, F) array, its data taken from JSON or from the binary tail."""
    if tensor.name != INPUT_NAME:
        raise V2Error(f"unknown input {tensor.name!r}; the model takes one input, {INPUT_NAME!r}")
    if tensor.datatype != DATATYPE:
        raise V2Error(f"input {INPUT_NAME!r} has datatype {tensor.datatype!r}; the model takes {DATATYPE!r}")
    shape = tensor.shape
    if len(shape) != 3 or min(shape) < 0:
        raise V2Error(f"input {INPUT_NAME!r} has shape {shape}; it must be [waves, steps, features]")
    waves, steps, features = shape
    if features != model.features:
        raise V2Error(
            f"input {INPUT_NAME!r} has {features} features (shape {shape}); the model expects {model.features}"
        )
    if waves < 1:
        raise V2Error(f"input {INPUT_NAME!r} has no waves (shape {shape})")
    if waves > LIMITS.max_waves:
        raise V2Error(f"input {INPUT_NAME!r} has {waves} waves, at most {LIMITS.max_waves} are allowed")
    if steps > LIMITS.max_steps:
        raise V2Error(f"input {INPUT_NAME!r} has {steps} steps per wave, at most {LIMITS.max_steps} are allowed")
    if waves * steps > LIMITS.max_total_steps:
        total, limit = waves * steps, LIMITS.max_total_steps
        raise V2Error(f"input {INPUT_NAME!r} has {total} observed steps in all, at most {limit} are allowed")
    count = waves * steps * features
    parameters = tensor.parameters.model_dump(exclude_none=True) if tensor.parameters else {}
    if any(key in parameters for key in SHARED_MEMORY_KEYS):
        raise V2Error("shared memory is not supported; send the data in the request")
    size = parameters.get("binary_data_size")
    if size is None:
        if tensor.data is None:
            raise V2Error(f"input {INPUT_NAME!r} has no 'data' and no binary_data_size")
        values = flat_values(tensor.data, shape)
        if len(values) != count:
            raise V2Error(f"input {INPUT_NAME!r} has {len(values)} values; shape {shape} needs {count}")
        return np.array(values, np.float64).reshape(shape)
    if tensor.data is not None:
        raise V2Error(f"input {INPUT_NAME!r} has both 'data' and binary_data_size; send one")
    if tail is None:
        raise V2Error(f"input {INPUT_NAME!r} has binary_data_size but the request has no {HEADER_LENGTH} header")
    if size != 4 * count:
        raise V2Error(
            f"input {INPUT_NAME!r} has binary_data_size {size}; shape {shape} of {DATATYPE} needs {4 * count}"
        )
    if len(tail) != size:
        raise V2Error(f"the request has {len(tail)} bytes of binary data; input {INPUT_NAME!r} takes {size}")
    return np.frombuffer(tail, dtype="<f4").reshape(shape)


def check_inputs(request: InferRequest, tail: bytes | None) -> InferInputTensor:
    """The one input tensor; V2Error if there are others or binary bytes nobody reads."""
    if len(request.inputs) != 1:
        names = [tensor.name for tensor in request.inputs]
        raise V2Error(f"the model takes exactly one input, {INPUT_NAME!r}; the request has {names}")
    (tensor,) = request.inputs
    if tail and (tensor.parameters is None or tensor.parameters.binary_data_size is None):
        raise V2Error(f"the request has {len(tail)} bytes of binary data but no input with binary_data_size")
    return tensor


def requested_horizon(request: InferRequest, model: ServedModel) -> int:
    """The 'horizon' request parameter, default the model's horizon."""
    horizon = request.parameters.horizon if request.parameters else None
    if horizon is None:
        return model.horizon
    if not 1 <= horizon <= model.horizon:
        raise V2Error(f"parameter 'horizon' must be an integer between 1 and {model.horizon}, got {horizon}")
    return horizon


def binary_output(request: InferRequest) -> bool:
    """Whether 'prediction' goes out as raw bytes: its own binary_data, else the request's binary_data_output."""
    default = bool(request.parameters and request.parameters.binary_data_output)
    if not request.outputs:
        return default
    binary = default
    for output in request.outputs:
        if output.name != OUTPUT_NAME:
            raise V2Error(f"unknown output {output.name!r}; the model has one output, {OUTPUT_NAME!r}")
        parameters = output.parameters.model_dump(exclude_none=True) if output.parameters else {}
        if "classification" in parameters:
            raise V2Error("the classification extension is not supported")
        if any(key in parameters for key in SHARED_MEMORY_KEYS):
            raise V2Error("shared memory is not supported; outputs are sent in the response")
        binary = parameters.get("binary_data", default)
    return binary


def infer_response(
    model: ServedModel, request_id: str | None, prediction: np.ndarray, filled: list[int], binary: bool
) -> Response:
    """The JSON response, or with `binary` the JSON header followed by the raw little-endian float32 output;
    the response parameter `filled` says how many gaps (NaN) were filled per wave."""
    output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": DATATYPE, "shape": list(prediction.shape)}
    raw = prediction.astype("<f4").tobytes()
    if binary:
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = prediction.ravel().tolist()
    body: dict[str, Any] = {"model_name": model.ref.name, "model_version": model.ref.version}
    if request_id is not None:
        body["id"] = request_id
    body["parameters"] = {"filled": filled}
    body["outputs"] = [output]
    header = json.dumps(body, separators=(",", ":")).encode()
    if not binary:
        return Response(header, media_type="application/json")
    return Response(header + raw, media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(header))})


async def run_inference(request: Request, name: str, version: str | None, api_key: str | None) -> Response:
    """Check the request, complete every wave in it, and answer in JSON or binary form."""
    try:
        await require_api_key(request, api_key)
    except HTTPException as exc:
        return error(exc.status_code, str(exc.detail), exc.headers)
    found = find_model(request, name, version)
    if isinstance(found, Response):
        return found
    model = found
    try:
        body = decoded_body(await request.body(), request.headers.get("content-encoding", ""))
        header, tail = split_body(body, request.headers.get(HEADER_LENGTH))
        infer = parse_request(header)
        tensor = check_inputs(infer, tail)
        horizon = requested_horizon(infer, model)
        binary = binary_output(infer)
        batch = input_batch(tensor, tail, model)
        checked = [wave_array(w, model.features, model.min_steps, f"wave {i}") for i, w in enumerate(batch)]
        waves, filled = [wave for wave, _ in checked], [count for _, count in checked]
    except (V2Error, WaveError) as exc:
        return error(400, str(exc))
    try:
        completions = await model.batcher.complete(waves, timeout=request.app.state.settings.request_timeout_s)
    except Overloaded as exc:
        return error(503, f"server is busy ({exc}): retry later", {"Retry-After": "1"})
    except DeadlineExceeded as exc:
        return error(504, f"inference deadline exceeded: {exc}")
    except Exception as exc:  # a server-side failure, still answered in the protocol's form
        logger.exception("v2 inference failed")
        return error(500, f"inference failed: {exc}")
    prediction = np.stack([completion[:horizon] for completion in completions])
    return infer_response(model, infer.id, prediction, filled, binary)


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata(request: Request) -> ServerMetadata:
    """Name, version and the protocol extensions supported."""
    return ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=EXTENSIONS)


@router.get("/health/live", response_model=ServerLive, summary="200 while the process runs")
async def server_live() -> ServerLive:
    return ServerLive(live=True)


@router.get(
    "/health/ready",
    response_model=ServerReady,
    summary="200 once the model is loaded and warmed up, 503 before",
    responses={503: {"model": ServerReady}},
)
async def server_ready(request: Request):
    if current_model(request) is None:
        return JSONResponse({"ready": False}, status_code=503, headers={"Retry-After": "1"})
    return ServerReady(ready=True)


def metadata(model: ServedModel) -> ModelMetadata:
    """The model's name, version, platform and tensors (-1 for dynamic dimensions)."""
    return ModelMetadata(
        name=model.ref.name,
        versions=[model.ref.version],
        platform=PLATFORM,
        inputs=[TensorMetadata(name=INPUT_NAME, datatype=DATATYPE, shape=[-1, -1, model.features])],
        outputs=[TensorMetadata(name=OUTPUT_NAME, datatype=DATATYPE, shape=[-1, -1, model.features])],
    )


@router.get("/models/{name}", response_model=ModelMetadata, summary="Model metadata", responses=ERRORS)
@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    summary="Model metadata of one version",
    responses=ERRORS,
)
async def model_metadata(request: Request, name: str, version: str | None = None):
    """Inputs [waves, steps, F] and outputs [waves, horizon, F], FP32; with a version, only the served one."""
    found = find_model(request, name, version)
    return found if isinstance(found, Response) else metadata(found)


@router.get("/models/{name}/ready", response_model=ModelReady, summary="200 when the model is ready", responses=ERRORS)
@router.get(
    "/models/{name}/versions/{version}/ready",
    response_model=ModelReady,
    summary="200 when this version of the model is ready",
    responses=ERRORS,
)
async def model_ready(request: Request, name: str, version: str | None = None):
    found = find_model(request, name, version)
    return found if isinstance(found, Response) else ModelReady(name=found.ref.name, ready=True)


ApiKey = Annotated[str | None, Security(api_key_header)]  # read here, checked in run_inference: errors as {"error"}
INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            f"JSON, or with the {HEADER_LENGTH} header that many bytes of JSON followed by the binary data of "
            "inputs that have `parameters.binary_data_size` (raw little-endian float32, in input order)."
        ),
        "content": {
            "application/json": {"schema": inline_schema(InferRequest)},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "JSON; or, when an output asks for `binary_data`, a JSON header of "
            f"{HEADER_LENGTH} bytes followed by the output as raw little-endian float32"
        ),
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    **INFER_ERRORS,
}


@router.post(
    "/models/{name}/infer",
    response_model=InferResponse,
    summary="Complete a batch of waves",
    openapi_extra=INFER_DOC,
    responses=INFER_RESPONSES,
)
@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferResponse,
    summary="Complete a batch of waves with one version of the model",
    openapi_extra=INFER_DOC,
    responses=INFER_RESPONSES,
)
async def infer(request: Request, name: str, api_key: ApiKey, version: str | None = None) -> Response:
    """Input 'wave' [B, T, F] FP32; output 'prediction' [B, horizon, F]; parameter 'horizon' (default the model's).

    With a version in the path, only the served version answers.
    """
    return await run_inference(request, name, version, api_key)


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], include_in_schema=False
)
async def unknown(request: Request, path: str) -> JSONResponse:
    """Any other /v2 path: 404 (or 405 for a known path with another method) in the protocol's form."""
    allowed = sorted(
        method
        for route in router.routes
        if route.endpoint is not unknown and route.matches(request.scope)[0] == Match.PARTIAL
        for method in getattr(route, "methods", None) or ()
    )
    if allowed:
        message = f"method {request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}"
        return error(405, message, {"Allow": ", ".join(allowed)})
    return error(404, f"no such endpoint: {request.method} {request.url.path} (extension not supported)")
