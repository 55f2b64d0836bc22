"""Open Inference Protocol V2 (KServe / Triton / Seldon) routes beside the native API, for every served model.

Errors here are {"error": "..."} as the protocol says, not the native {"detail": ...}: the routes read and check
the body themselves (with app/v2_codec.py, which also handles Triton's binary tensor data) instead of leaving it
to FastAPI.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.routing import Match

from app.batching import DeadlineExceeded, Overloaded
from app.dependencies import current_registry
from app.inference import complete
from app.intervals import level_key
from app.middleware import request_id, server_failure
from app.model_service import ServedModel
from app.registry import UnknownModelError
from app.security import api_key_header, require_api_key
from app.v2_codec import (
    HEADER_LENGTH,
    V2Error,
    binary_outputs,
    check_inputs,
    decoded_body,
    infer_response,
    input_batch,
    interval_outputs,
    parse_request,
    requested_horizon,
    requested_levels,
    split_body,
)
from app.v2_schemas import (
    DATATYPE,
    INPUT_NAME,
    OUTPUT_NAME,
    ErrorBody,
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
    TensorMetadata,
)
from app.validation import WaveError

logger = logging.getLogger("app")

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])

SERVER_NAME = "wave-completion"
PLATFORM = "tensorflow_keras"
EXTENSIONS = ["binary_tensor_data", "parameters"]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such model or version"},
    503: {"model": ErrorBody, "description": "the model is not loaded yet"},
}
INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the request is invalid; `error` says why"},
    401: {"model": ErrorBody, "description": "an API key is configured and the request lacks it"},
    **ERRORS,
    500: {"model": ErrorBody, "description": "the server failed; `error` gives the request id to find it in the log"},
    503: {"model": ErrorBody, "description": "not loaded yet, or the queue is full: retry after Retry-After seconds"},
    504: {"model": ErrorBody, "description": "the request's inference deadline passed"},
}


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
    """The served model `name` (if `version` is given, only when it is the served one); else the 404 / 503 to send."""
    registry = current_registry(request)
    if registry is None:
        return error(503, "the model is not loaded yet", {"Retry-After": "1"})
    try:
        model = registry.get(name)
    except UnknownModelError as exc:
        return error(404, str(exc))
    if version is not None and version != model.ref.version:
        return error(404, f"model {name!r} has no version {version!r}; the served version is {model.ref.version!r}")
    return model


async def run_inference(request: Request, name: str, version: str | None, api_key: str | None) -> Response:
    """Read and check the request, complete its waves with the inference core, and answer in JSON or binary form;
    every outcome in the protocol's form (a server failure: 500 with the request id, never internal text)."""
    try:
        await require_api_key(request, api_key)
    except HTTPException as exc:
        return error(exc.status_code, str(exc.detail), exc.headers)
    found = find_model(request, name, version)
    if isinstance(found, Response):
        return found
    model, settings = found, request.app.state.settings
    try:
        body = decoded_body(await request.body(), request.headers.get("content-encoding", ""), settings.limits)
        header, tail = split_body(body, request.headers.get(HEADER_LENGTH))
        infer = parse_request(header)
        tensor = check_inputs(infer, tail)
        horizon = requested_horizon(infer, model.horizon)
        levels = requested_levels(infer)
        binary = binary_outputs(infer, [OUTPUT_NAME, *interval_outputs(levels or [])])
        batch = input_batch(tensor, tail, model.features, settings.limits)
        labels = [f"wave {i}" for i in range(len(batch))]
        answers = await complete(model, batch, labels, horizon, levels, settings.limits, settings.request_timeout_s)
    except (V2Error, WaveError) as exc:
        return error(400, str(exc))
    except Overloaded as exc:
        return error(503, f"server is busy ({exc}): retry later", {"Retry-After": "1"})
    except DeadlineExceeded as exc:
        return error(504, f"inference deadline exceeded: {exc}")
    except Exception:
        logger.exception("v2 inference failed")
        return error(500, server_failure(request_id.get()))
    tensors = {OUTPUT_NAME: np.stack([answer.prediction for answer in answers])}
    for level in levels or []:
        key = level_key(level)
        tensors[f"lower_{key}"] = np.stack([answer.bands[key][0] for answer in answers])
        tensors[f"upper_{key}"] = np.stack([answer.bands[key][1] for answer in answers])
    filled = [answer.filled for answer in answers]
    content, media_type, headers = infer_response(model.ref, infer.id, tensors, filled, binary)
    return Response(content, media_type=media_type, headers=headers)


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
    if current_registry(request) is None:
        return JSONResponse({"ready": False}, status_code=503, headers={"Retry-After": "1"})
    return ServerReady(ready=True)


def metadata(model: ServedModel) -> ModelMetadata:
    """The model's name, version, platform and tensors (-1 for dynamic dimensions, features too for 'any')."""
    features = -1 if model.features is None else model.features
    names = [OUTPUT_NAME, *(interval_outputs(METADATA_LEVELS) if model.calibration is not None else [])]
    return ModelMetadata(
        name=model.ref.name,
        versions=[model.ref.version],
        platform=PLATFORM,
        inputs=[TensorMetadata(name=INPUT_NAME, datatype=DATATYPE, shape=[-1, -1, features])],
        outputs=[TensorMetadata(name=name, datatype=DATATYPE, shape=[-1, -1, features]) for name in names],
    )


METADATA_LEVELS = [80.0, 95.0]  # the interval outputs metadata lists; parameter 'level' asks for any level


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

    Parameter 'level' (e.g. [80, 95]; a calibrated model) adds outputs lower_80, upper_80, ... shaped like
    'prediction': its prediction intervals.

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
