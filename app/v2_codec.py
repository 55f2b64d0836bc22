"""The Open Inference Protocol V2 codec: request bodies (compression, binary tensor data, JSON) to wave arrays,
and predictions to response bodies. Pure functions; the routes are in app/routers/v2.py.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.intervals import LEVEL_RULE, level_key
from app.json_body import parse_json
from app.schemas import ModelRef
from app.settings import Limits
from app.v2_schemas import DATATYPE, INPUT_NAME, InferInputTensor, InferRequest

HEADER_LENGTH = "Inference-Header-Content-Length"
SHARED_MEMORY_KEYS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


class V2Error(ValueError):
    """A client error; the message is sent as {"error": message}."""


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


def decoded_body(body: bytes, encoding: str, limits: Limits) -> bytes:
    """The body with its Content-Encoding (gzip or deflate, as tritonclient sends them) undone."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise V2Error(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, limits.max_body_bytes)
    except zlib.error as exc:
        raise V2Error(f"request body is not valid {encoding} data: {exc}") from None
    if inflater.unconsumed_tail:
        raise V2Error(f"decompressed request body is larger than {limits.max_body_bytes} bytes")
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


def input_batch(tensor: InferInputTensor, tail: bytes | None, model_features: int | None, limits: Limits) -> np.ndarray:
    """The input tensor as a (B, T, F) array, its data taken from JSON or from the binary tail.

    `model_features`: the F the model takes, or None when it takes any number (up to limits.max_features).
    """
    if tensor.name != INPUT_NAME:
        raise V2Error(f"unknown input {tensor.name!r}; the model takes one input, {INPUT_NAME!r}")
    if tensor.datatype != DATATYPE:
        raise V2Error(f"input {INPUT_NAME!r} has datatype {tensor.datatype!r}; the model takes {DATATYPE!r}")
    shape = tensor.shape
    if len(shape) != 3 or min(shape) < 0:
        raise V2Error(f"input {INPUT_NAME!r} has shape {shape}; it must be [waves, steps, features]")
    waves, steps, features = shape
    if model_features is not None and features != model_features:
        raise V2Error(
            f"input {INPUT_NAME!r} has {features} features (shape {shape}); the model expects {model_features}"
        )
    if not 1 <= features <= limits.max_features:
        raise V2Error(f"input {INPUT_NAME!r} has {features} features, 1 to {limits.max_features} are allowed")
    if waves < 1:
        raise V2Error(f"input {INPUT_NAME!r} has no waves (shape {shape})")
    if waves > limits.max_waves:
        raise V2Error(f"input {INPUT_NAME!r} has {waves} waves, at most {limits.max_waves} are allowed")
    if steps > limits.max_steps:
        raise V2Error(f"input {INPUT_NAME!r} has {steps} steps per wave, at most {limits.max_steps} are allowed")
    if waves * steps > limits.max_total_steps:
        total, limit = waves * steps, limits.max_total_steps
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


def requested_horizon(request: InferRequest, model_horizon: int) -> int:
    """The 'horizon' request parameter, default the model's horizon."""
    horizon = request.parameters.horizon if request.parameters else None
    if horizon is None:
        return model_horizon
    if not 1 <= horizon <= model_horizon:
        raise V2Error(f"parameter 'horizon' must be an integer between 1 and {model_horizon}, got {horizon}")
    return horizon


def requested_levels(request: InferRequest) -> list[float] | None:
    """The 'level' request parameter as a list of levels (a single number is a list of one), or None."""
    raw = request.parameters.level if request.parameters else None
    if raw is None:
        return None
    values = raw if isinstance(raw, list) else [raw]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 100 for v in values)
    if not numbers or not 1 <= len(values) <= 4:
        raise V2Error(f"parameter 'level' must be {LEVEL_RULE} (or one such number); got {raw!r}")
    return [float(v) for v in values]


def interval_outputs(levels: list[float]) -> list[str]:
    """The output names the bands of `levels` go out as: lower_80, upper_80, ..."""
    return [f"{side}_{level_key(level)}" for level in levels for side in ("lower", "upper")]


def binary_outputs(request: InferRequest, names: list[str]) -> dict[str, bool]:
    """{output: sent as raw bytes} for the outputs to send: the requested ones (all of `names` when the request
    names none), each by its own binary_data, else by the request's binary_data_output."""
    default = bool(request.parameters and request.parameters.binary_data_output)
    if not request.outputs:
        return dict.fromkeys(names, default)
    chosen = {}
    for output in request.outputs:
        if output.name not in names:
            raise V2Error(f"unknown output {output.name!r}; this request's outputs are {', '.join(names)}")
        parameters = output.parameters.model_dump(exclude_none=True) if output.parameters else {}
        if "classification" in parameters:
            raise V2Error("the classification extension is not supported")
        if any(key in parameters for key in SHARED_MEMORY_KEYS):
            raise V2Error("shared memory is not supported; outputs are sent in the response")
        chosen[output.name] = parameters.get("binary_data", default)
    return chosen


def infer_response(
    model: ModelRef,
    request_id: str | None,
    tensors: dict[str, np.ndarray],
    filled: list[int],
    binary: dict[str, bool],
) -> tuple[bytes, str, dict[str, str]]:
    """(body, media type, headers) of the answer with the outputs named in `binary`, in its order: JSON, or for
    the binary ones the JSON header followed by their raw little-endian float32 bytes; the response parameter
    `filled` says how many gaps (NaN) were filled per wave."""
    outputs, tail = [], b""
    for name, as_bytes in binary.items():
        tensor = tensors[name]
        output: dict[str, Any] = {"name": name, "datatype": DATATYPE, "shape": list(tensor.shape)}
        if as_bytes:
            raw = tensor.astype("<f4").tobytes()
            output["parameters"] = {"binary_data_size": len(raw)}
            tail += raw
        else:
            output["data"] = tensor.ravel().tolist()
        outputs.append(output)
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request_id is not None:
        body["id"] = request_id
    body["parameters"] = {"filled": filled}
    body["outputs"] = outputs
    header = json.dumps(body, separators=(",", ":")).encode()
    if not any(binary.values()):
        return header, "application/json", {}
    return header + tail, "application/octet-stream", {HEADER_LENGTH: str(len(header))}
