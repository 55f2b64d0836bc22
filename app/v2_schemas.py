"""Pydantic models of the Open Inference Protocol V2 (KServe / Triton "predict protocol v2") requests and responses."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from app.schemas import example_wave
from app.settings import Limits

INPUT_NAME = "wave"
OUTPUT_NAME = "prediction"
DATATYPE = "FP32"


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong, in words")


class ServerMetadata(BaseModel):
    name: str = Field(description="server name")
    version: str = Field(description="server version")
    extensions: list[str] = Field(description="protocol extensions supported by the server")


class ServerLive(BaseModel):
    live: bool = Field(description="true while the process runs")


class ServerReady(BaseModel):
    ready: bool = Field(description="true once the model is loaded and warmed up")


class ModelReady(BaseModel):
    name: str = Field(description="model name")
    ready: bool = Field(description="true when the model can take inference requests")


class TensorMetadata(BaseModel):
    name: str = Field(description="tensor name")
    datatype: str = Field(description="element type, e.g. FP32")
    shape: list[int] = Field(description="dimensions; -1 for a dynamic dimension")


class ModelMetadata(BaseModel):
    name: str = Field(description="model name")
    versions: list[str] = Field(description="versions of the model this server serves")
    platform: str = Field(description="framework the model runs on")
    inputs: list[TensorMetadata] = Field(description="the input tensors")
    outputs: list[TensorMetadata] = Field(description="the output tensors")


class InferParameters(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    horizon: StrictInt | None = Field(
        None, description="steps to predict, 1 to the model's horizon (its metadata's output shape); default: all"
    )
    binary_data_output: StrictBool | None = Field(
        None, description="send every output as raw bytes after the JSON header, unless the output says otherwise"
    )
    level: Any = Field(
        None,
        description="prediction intervals: 1 to 4 levels in percent strictly between 0 and 100 (a list, or one "
        "number); adds outputs lower_<level> and upper_<level>, e.g. lower_80, upper_80",
    )


class InputParameters(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    binary_data_size: StrictInt | None = Field(
        None, ge=0, description="the tensor's data is this many raw little-endian bytes of the binary tail"
    )


class InferInputTensor(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: StrictStr = Field(description=f"input name: {INPUT_NAME!r}")
    shape: list[StrictInt] = Field(description="[waves, steps, features]: B waves of T steps of F values")
    datatype: StrictStr = Field(description=f"element type: {DATATYPE!r}")
    parameters: InputParameters | None = Field(None, description="tensor parameters (binary_data_size)")
    data: list[Any] | None = Field(
        None,
        description=(
            "the B*T*F values, flat in row-major order or nested; absent when sent as binary data. "
            "NaN or `null` is a gap, filled before the model"
        ),
    )


class OutputParameters(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    binary_data: StrictBool | None = Field(None, description="send this output as raw bytes after the JSON header")


class RequestedOutput(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: StrictStr = Field(description=f"output name: {OUTPUT_NAME!r}")
    parameters: OutputParameters | None = Field(None, description="output parameters (binary_data)")


def _example_request() -> dict[str, Any]:
    wave = example_wave(Limits.model_fields["min_steps"].default, 1)  # as long as the default limits need
    return {
        "id": "example",
        "parameters": {"horizon": 10},
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": [1, len(wave), len(wave[0])],
                "datatype": DATATYPE,
                "data": np.ravel(wave).tolist(),
            }
        ],
        "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": False}}],
    }


class InferRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [_example_request()]})

    id: StrictStr | None = Field(None, description="request id, echoed in the response")
    parameters: InferParameters | None = Field(None, description="request parameters (horizon, binary_data_output)")
    inputs: list[InferInputTensor] = Field(description=f"exactly one input, {INPUT_NAME!r}")
    outputs: list[RequestedOutput] | None = Field(None, description=f"the outputs wanted (default: {OUTPUT_NAME!r})")


class OutputTensor(BaseModel):
    name: str = Field(description="output name")
    shape: list[int] = Field(description="[waves, horizon, features]")
    datatype: str = Field(description="element type")
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size when the data is sent as raw bytes")
    data: list[float] | None = Field(None, description="the values, flat in row-major order (absent when binary)")


class InferResponse(BaseModel):
    model_name: str = Field(description="model name")
    model_version: str = Field(description="model version")
    id: str | None = Field(None, description="the request's id")
    parameters: dict[str, Any] = Field(description="`filled`: gaps (NaN or `null` in the input) filled per wave")
    outputs: list[OutputTensor] = Field(description="the requested outputs")
