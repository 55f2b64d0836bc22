"""Pydantic models of every request and response, with real example waves; the request models carry an app's
limits (`request_models`), so they are built per app from its settings."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidatorFunctionWrapHandler, WrapValidator

from app.intervals import LEVEL_RULE
from app.settings import Limits
from training.data import unit_waves

ROW, HORIZON, STEPS, MODEL, FLAT = "x-wave-row", "x-wave-horizon", "x-wave-steps", "x-wave-model", "x-wave-flat"


def example_wave(steps: int, seed: int) -> list[list[float]]:
    """A real test-split wave (amplitude 2, offset 10), rounded for a readable example."""
    wave = unit_waves(np.random.default_rng(seed), 1, steps, split="test")[0]
    return np.round(2.0 * wave + 10.0, 4).tolist()


ModelName = Annotated[
    str | None,
    Field(
        description="the model to complete with (GET /models lists them); default: the default model",
        json_schema_extra={MODEL: True},
    ),
]
Levels = Annotated[
    list[Annotated[float, Field(strict=True, gt=0, lt=100)]] | None,
    Field(
        min_length=1,
        max_length=4,
        description=(
            f"prediction intervals to add: {LEVEL_RULE}; "
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


Completion = list[list[float]] | list[float]  # flat for a wave sent flat (one feature)
Stamp = (
    Annotated[int, Field(strict=True, ge=-(2**53), le=2**53, description="an integer step")]
    | Annotated[str, Field(min_length=1, max_length=40, description="an ISO 8601 date or time")]
)
CONTINUED = (
    "with `ds` in the request (or a time column in a CSV body): the stamps of the predicted steps, continuing the "
    "request's at its frequency (integers by their step); step numbers from the number of observed steps when no "
    "frequency can be inferred (one stamp)"
)
FREQUENCY = "with `ds`: the frequency the stamps were continued at ('daily', 'monthly', 'step', ...; 'none: why')"


def wave_shape(wave: Any) -> str:
    """'flat' for a wave sent as one list of values (one feature), else 'rows' (also for a wave as an array)."""
    if isinstance(wave, np.ndarray):
        return "flat" if wave.ndim == 1 else "rows"
    return "flat" if isinstance(wave, list) and wave and not isinstance(wave[0], list) else "rows"


NUMBERS = {float, int}  # a JSON number; bool (true/false) is neither


def checked_array(wave: Any, limits: Limits) -> np.ndarray | None:
    """The wave (a JSON list of steps, each a list of numbers, or one flat list of them) as float64 when it is
    certainly valid: no gap, every value a finite number within limits, rows of one width, as many steps and
    features as the limits allow. None otherwise: the full validation then takes it and names any problem."""
    if not isinstance(wave, list) or not wave:
        return None
    flat = not isinstance(wave[0], list)
    if not flat and set(map(type, wave)) != {list}:
        return None
    if not set(map(type, wave if flat else chain.from_iterable(wave))) <= NUMBERS:
        return None
    try:
        array = np.array(wave, dtype=np.float64)
    except (ValueError, OverflowError):  # rows of different widths; an integer too large for a float
        return None
    if array.ndim != (1 if flat else 2) or not limits.min_steps <= len(array) <= limits.max_steps:
        return None
    if not flat and not 1 <= array.shape[1] <= limits.max_features:
        return None
    return array if (np.abs(array) <= limits.max_abs_value).all() else None  # not NaN (a JSON NaN) or infinite


def fast_wave(limits: Limits) -> WrapValidator:
    """Validation of a wave that skips pydantic's per-value checks when numpy can vouch for every value (validation
    and conversion of a clean wave in about half the time); the schema's own validation runs otherwise, and names
    what is wrong."""

    def validate(wave: Any, handler: ValidatorFunctionWrapHandler) -> np.ndarray | list:
        array = checked_array(wave, limits)
        return array if array is not None else handler(wave)

    return WrapValidator(validate)


def request_models(limits: Limits) -> RequestModels:
    """The request bodies of the completion endpoints, with `limits` in their validation and schema."""
    Value = (
        Annotated[
            float,
            Field(strict=True, ge=-limits.max_abs_value, le=limits.max_abs_value, description="a finite number"),
        ]
        | None
    )
    Row = Annotated[
        list[Value],
        Field(
            min_length=1,
            max_length=limits.max_features,
            description="one time step: one value per feature; `null` is a gap",
            json_schema_extra={ROW: True},
        ),
    ]
    steps = {"min_length": limits.min_steps, "max_length": limits.max_steps}
    Stamps = Annotated[
        list[Stamp] | None,
        Field(
            max_length=limits.max_steps,
            description=(
                "optional time stamps, one per observed step (ISO 8601 text such as '2026-01-31' or "
                "'2026-01-31T08:00', or integer steps), each after the one before at regular steps (a fixed step, "
                "or a fixed number of months): a stamp that repeats, goes back or breaks the steps is a 422 naming "
                "it; the answer's `ds` continues them"
            ),
        ),
    ]
    Wave = Annotated[
        Annotated[
            list[Row],
            Tag("rows"),
            Field(**steps, description="one row per step", json_schema_extra={STEPS: True}),
        ]
        | Annotated[
            list[Value],
            Tag("flat"),
            Field(**steps, description="one feature: one value per step", json_schema_extra={STEPS: True, FLAT: True}),
        ],
        Discriminator(wave_shape),
        fast_wave(limits),
        Field(
            description=(
                f"observed steps, oldest first: {limits.min_steps} to {limits.max_steps} rows of F finite numbers "
                "each (F = the model's features, any number for a model whose `features` is 'any'), or one list of "
                "numbers for a single feature (the answer is then flat too); only the most recent steps up to the "
                "model's context are read. Gaps (`null`) are filled before the model, linearly inside and with the "
                f"nearest value at the ends; a feature may miss at most {limits.max_gap_fraction:.0%} of its steps"
            ),
        ),
    ]
    Horizon = Annotated[
        int,
        Field(
            strict=True,
            ge=1,
            le=limits.max_horizon,
            description=f"steps to predict, 1 to {limits.max_horizon} (the model's horizon)",
            json_schema_extra={HORIZON: True},
        ),
    ]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"wave": example_wave(limits.min_steps, 1), "horizon": limits.max_horizon}]
            },
        )

        wave: Wave
        horizon: Horizon = limits.max_horizon
        model: ModelName = None
        level: Levels = None
        ds: Stamps = None

    class BatchPredictRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {
                        "waves": [example_wave(limits.min_steps, 2), example_wave(limits.min_steps + 20, 3)],
                        "horizon": min(50, limits.max_horizon),
                    }
                ]
            },
        )

        waves: list[Wave] = Field(
            min_length=1,
            max_length=limits.max_waves,
            description=(
                f"1 to {limits.max_waves} waves, at most {limits.max_total_steps} observed steps in all; lengths "
                "may differ, and each may be flat"
            ),
        )
        horizon: Horizon = limits.max_horizon
        model: ModelName = None
        level: Levels = None
        ds: list[Stamps] | None = Field(
            None,
            max_length=limits.max_waves,
            description="optional time stamps per wave, in order (`null` for a wave without), as `ds` of /predict",
        )

    return RequestModels(predict=PredictRequest, batch=BatchPredictRequest)


@dataclass(frozen=True)
class RequestModels:
    """An app's request bodies: /predict and /predict/plot, /predict/batch."""

    predict: type[BaseModel]
    batch: type[BaseModel]


class Band(BaseModel):
    lower: Completion = Field(description="lower bounds, shaped like `prediction`")
    upper: Completion = Field(description="upper bounds, shaped like `prediction`")


Intervals = dict[str, Band]
INTERVALS_DESCRIPTION = (
    "with `level`: the band per level (keys as `f'{level:g}'`, e.g. '80'): lower <= prediction <= upper, and a "
    "higher level's band holds a lower one's"
)


class PredictResponse(BaseModel):
    prediction: Completion = Field(
        description="`horizon` rows of F values: the completion (`horizon` values for a wave sent flat)"
    )
    horizon: int = Field(description="number of predicted steps")
    filled: int = Field(description="gaps (`null` values) filled in the wave before the model")
    model: ModelRef
    intervals: Intervals | None = Field(None, description=INTERVALS_DESCRIPTION)
    ds: list[Stamp] | None = Field(None, description=CONTINUED)
    frequency: str | None = Field(None, description=FREQUENCY)


class BatchPredictResponse(BaseModel):
    predictions: list[Completion] = Field(description="one completion per wave, in request order, shaped like it")
    horizon: int
    filled: list[int] = Field(description="gaps (`null` values) filled per wave, in request order")
    model: ModelRef
    intervals: list[Intervals] | None = Field(None, description="with `level`: one intervals object per wave, in order")
    ds: list[list[Stamp] | None] | None = Field(None, description=f"per wave (`null` for a wave without): {CONTINUED}")
    frequency: list[str | None] | None = Field(None, description=f"per wave: {FREQUENCY}")


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


class CsvWave(BaseModel):
    wave: list[list[float | None]] = Field(description="the rows of the CSV, one per step; `null` is a gap")
    names: list[str] | None = Field(description="the header row's names, when the CSV has a header row")
    ds: list[Stamp] | None = Field(
        None, description="the time column's stamps (ISO 8601 or integers), when the CSV has one: not a feature"
    )


class HealthStatus(BaseModel):
    status: str = Field(description="'ok', or why the service is not ready")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what is wrong with the request, in words")
    errors: list[str] = Field(
        default_factory=list, description="the problems found, when there are several (the first few, then a count)"
    )


class ServerErrorResponse(BaseModel):
    detail: str = Field(description="that the server failed, with the request id; never internal details")
    errors: list[str] = Field(default_factory=list, description="the same message")
    request_id: str = Field(description="the request's id (also in the X-Request-ID header), to find it in the log")
