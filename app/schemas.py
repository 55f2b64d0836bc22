"""Pydantic models of every request and response, with the limits and real example waves."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.limits import LIMITS
from training.data import unit_waves


def example_wave(steps: int, seed: int) -> list[list[float]]:
    """A real test-split wave (amplitude 2, offset 10), rounded for a readable example."""
    wave = unit_waves(np.random.default_rng(seed), 1, steps, split="test")[0]
    return np.round(2.0 * wave + 10.0, 4).tolist()


Value = (
    Annotated[
        float,
        Field(strict=True, ge=-LIMITS.max_abs_value, le=LIMITS.max_abs_value, description="a finite number"),
    ]
    | None
)
Row = Annotated[
    list[Value],
    Field(
        min_length=1,
        max_length=LIMITS.max_features,
        description="one time step: one value per feature; `null` is a gap",
        json_schema_extra={"x-wave-row": True},
    ),
]
Wave = Annotated[
    list[Row],
    Field(
        min_length=LIMITS.min_steps,
        max_length=LIMITS.max_steps,
        description=(
            f"observed steps, oldest first: {LIMITS.min_steps} to {LIMITS.max_steps} rows of F finite numbers each (F = the model's "
            "features, 5 for the default model); only the most recent steps up to the model's context are read. "
            "Gaps (`null`) are filled before the model, linearly inside and with the nearest value at the ends; "
            f"a feature may miss at most {LIMITS.max_gap_fraction:.0%} of its steps"
        ),
        json_schema_extra={"x-wave-steps": True},
    ),
]
Horizon = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=LIMITS.max_horizon,
        description=f"steps to predict, 1 to {LIMITS.max_horizon} (the model's horizon)",
        json_schema_extra={"x-wave-horizon": True},
    ),
]


ModelName = Annotated[
    str | None,
    Field(
        description="the model to complete with (GET /models lists them); default: the default model",
        json_schema_extra={"x-wave-model": True},
    ),
]
Levels = Annotated[
    list[Annotated[float, Field(strict=True, gt=0, lt=100)]] | None,
    Field(
        min_length=1,
        max_length=4,
        description=(
            "prediction intervals to add: 1 to 4 levels in percent, each strictly between 0 and 100 (e.g. [80, 95]); "
            "the model's calibration is used at the nearest calibrated level at or above each (1, 2, ... 99, 99.5, "
            "99.9; higher levels get the 99.9 band); a model calibrated on too few windows for a level answers 422 "
            "naming its highest level"
        ),
    ),
]
ANY_FEATURES = "any"
Features = Annotated[
    int | Literal["any"],
    Field(description="values per row the model takes: a number, or 'any' (a channel-independent model)"),
]


class ModelRef(BaseModel):
    name: str = Field(description="model name in the store")
    version: str = Field(description="model version in the store")


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"wave": example_wave(LIMITS.min_steps, 1), "horizon": 150}]}
    )

    wave: Wave
    horizon: Horizon = LIMITS.max_horizon
    model: ModelName = None
    level: Levels = None


class Band(BaseModel):
    lower: list[list[float]] = Field(description="lower bounds, shaped like `prediction`")
    upper: list[list[float]] = Field(description="upper bounds, shaped like `prediction`")


Intervals = dict[str, Band]
INTERVALS_DESCRIPTION = (
    "with `level`: the band per level (keys as `f'{level:g}'`, e.g. '80'): lower <= prediction <= upper, and a "
    "higher level's band holds a lower one's"
)


class PredictResponse(BaseModel):
    prediction: list[list[float]] = Field(description="`horizon` rows of F values: the completion")
    horizon: int = Field(description="number of predicted steps")
    filled: int = Field(description="gaps (`null` values) filled in the wave before the model")
    model: ModelRef
    intervals: Intervals | None = Field(None, description=INTERVALS_DESCRIPTION)


class BatchPredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"waves": [example_wave(LIMITS.min_steps, 2), example_wave(LIMITS.min_steps + 20, 3)], "horizon": 50}
            ]
        },
    )

    waves: list[Wave] = Field(
        min_length=1,
        max_length=LIMITS.max_waves,
        description=(
            f"1 to {LIMITS.max_waves} waves, at most {LIMITS.max_total_steps} observed steps in all; lengths may differ"
        ),
    )
    horizon: Horizon = LIMITS.max_horizon
    model: ModelName = None
    level: Levels = None


class BatchPredictResponse(BaseModel):
    predictions: list[list[list[float]]] = Field(description="one completion per wave, in request order")
    horizon: int
    filled: list[int] = Field(description="gaps (`null` values) filled per wave, in request order")
    model: ModelRef
    intervals: list[Intervals] | None = Field(None, description="with `level`: one intervals object per wave, in order")


class InputLength(BaseModel):
    min: int = Field(description="fewest observed steps accepted")
    max: int = Field(description="most observed steps accepted")
    context: int = Field(description="most recent steps the model reads; earlier ones are ignored")


class LayerInfo(BaseModel):
    name: str
    type: str
    output_shape: str
    params: int


class ModelSummary(BaseModel):
    name: str
    version: str
    features: Features
    trained_features: int = Field(description="values per row of the waves the model was trained on")
    horizon: int
    input_length: InputLength
    total_params: int
    trainable_params: int
    layers: list[LayerInfo]
    text: str = Field(description="the Keras summary as text")
    metrics: dict = Field(description="held-out evaluation from the model's manifest")
    trained_at: str | None


class ModelInfo(BaseModel):
    name: str = Field(description="model name: send it as `model` to choose this model")
    version: str = Field(description="the served version")
    default: bool = Field(description="true for the model that answers requests naming none")
    features: Features
    horizon: int = Field(description="most steps it predicts")
    input_length: InputLength
    metrics: dict = Field(description="held-out evaluation from the model's manifest")


class ModelsResponse(BaseModel):
    models: list[ModelInfo] = Field(description="every served model, the default first")


class HealthStatus(BaseModel):
    status: str = Field(description="'ok', or why the service is not ready")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what is wrong with the request, in words")
    errors: list[str] = Field(default_factory=list, description="every problem found, when there are several")
