"""Wave completion endpoints (JSON, and CSV for single waves): the native protocol onto app/inference.py.

The routes are built per app (`build_router`), since their request bodies carry the app's limits. This module
has no `from __future__ import annotations`: FastAPI reads the body types of the route functions defined inside
`build_router` from their annotations, which must be the classes themselves.
"""

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response

from app.csv_io import CSV, FILLED_HEADER, FREQUENCY_HEADER, CsvOrJsonRoute, to_csv, wants_csv
from app.dependencies import RegistryDep
from app.inference import Bands, Completion, complete
from app.model_service import ServedModel
from app.schemas import (
    Band,
    BatchPredictResponse,
    ErrorResponse,
    Intervals,
    PredictResponse,
    RequestModels,
    ServerErrorResponse,
    wave_shape,
)
from app.security import require_api_key
from app.validation import WaveError, stamps_array
from training.stamps import continue_stamps
from training.time_column import stamp_texts

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "an API key is configured and the request lacks it"},
    404: {"model": ErrorResponse, "description": "no such model; `detail` names the served ones"},
    413: {"model": ErrorResponse, "description": "the request body is too large"},
    415: {"model": ErrorResponse, "description": "the Content-Type is neither JSON nor CSV"},
    422: {"model": ErrorResponse, "description": "the request is invalid; `detail` says why"},
    500: {"model": ServerErrorResponse, "description": "the server failed; `request_id` finds it in the log"},
    503: {"model": ErrorResponse, "description": "not ready, or the queue is full: retry after Retry-After seconds"},
    504: {"model": ErrorResponse, "description": "the request's deadline passed"},
}


def as_rows(wave: list) -> list | np.ndarray:
    """The wave as rows of values: a flat wave (one feature) becomes one-value rows, as an array (steps, 1) made in
    one call (a gap, None, becomes NaN)."""
    return np.asarray(wave, np.float64)[:, None] if wave_shape(wave) == "flat" else wave


def shaped(values: np.ndarray, flat: bool) -> list:
    """A (horizon, F) answer as JSON lists, flat again for a wave sent flat."""
    return (values[:, 0] if flat else values).tolist()


def band_answer(bands: Bands, flat: bool) -> Intervals:
    """Bands as the JSON answer's intervals, shaped like the wave's prediction."""
    return {
        key: Band.model_construct(lower=shaped(lower, flat), upper=shaped(upper, flat))
        for key, (lower, upper) in bands.items()
    }


def continued(ds: list | None, wave: list, horizon: int, label: str) -> tuple[list[int | str] | None, str | None]:
    """The stamps of the `horizon` predicted steps and the frequency they follow, continuing the request's `ds`
    (checked: WaveError names a wrong one) by training/stamps.py's rules, as the bulk command does; step numbers
    from len(wave) on where no frequency can be inferred. (None, None) without `ds`."""
    stamps = stamps_array(ds, len(wave), label)
    if stamps is None:
        return None, None
    continuation = continue_stamps(stamps, len(wave), horizon)
    frequency = f"none: {continuation.reason}" if continuation.reason else continuation.frequency
    return stamp_texts(continuation.stamps), frequency


async def completed(
    request: Request, model: ServedModel, waves: list, labels: list[str], horizon: int, levels: list[float] | None
) -> list[Completion]:
    """The inference core's answers for the request's waves, with the app's limits and deadline."""
    settings = request.app.state.settings
    rows = [as_rows(wave) for wave in waves]
    return await complete(model, rows, labels, horizon, levels, settings.limits, settings.request_timeout_s)


def build_router(models: RequestModels) -> APIRouter:
    """/predict and /predict/batch with the app's request bodies."""
    router = APIRouter(tags=["predict"], route_class=CsvOrJsonRoute, dependencies=[Depends(require_api_key)])
    PredictRequest, BatchPredictRequest = models.predict, models.batch
    example = PredictRequest.model_json_schema()["examples"][0]
    csv_example = "f1,f2,f3,f4,f5\n" + "\n".join(",".join(f"{v:g}" for v in row) for row in example["wave"])
    horizon_schema = {"type": "integer", "minimum": 1, "maximum": example["horizon"], "x-wave-horizon": True}

    @router.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        summary="Complete one wave (JSON or CSV)",
        responses={
            **ERRORS,
            200: {
                "content": {CSV: {"example": "feature_1,feature_2,...\n0.12,..."}},
                "headers": {
                    FILLED_HEADER: {"description": "gaps filled in the wave", "schema": {"type": "integer"}},
                    FREQUENCY_HEADER: {
                        "description": "with a time column: the frequency its `ds` column continues it at, or "
                        "'none: why' (then `ds` counts steps)",
                        "schema": {"type": "string"},
                    },
                },
            },
        },
        openapi_extra={
            "parameters": [
                {
                    "name": "horizon",
                    "in": "query",
                    "required": False,
                    "schema": horizon_schema,
                    "description": "steps to predict for a CSV body (JSON bodies carry `horizon` inside)",
                },
                {
                    "name": "level",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "array",
                        "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
                    },
                    "description": "prediction intervals for a CSV body, e.g. ?level=80&level=95: adds columns "
                    "<feature>_lo80, <feature>_hi80, ... to a CSV answer",
                },
                {
                    "name": "model",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "x-wave-model": True},
                    "description": "the model for a CSV body (JSON bodies carry `model` inside); default: the default "
                    "model",
                },
            ],
            "requestBody": {"content": {CSV: {"schema": {"type": "string"}, "example": csv_example}}},
        },
    )
    async def predict(body: PredictRequest, registry: RegistryDep, request: Request):
        """Send the observed steps of a wave; get the next `horizon` steps.

        A single feature may be sent as one flat list of numbers; the prediction (and bands) are flat then too.

        Gaps: `null` values are filled before the model (linear inside, the nearest value at the ends); `filled`
        says how many. A feature with no value, or more than the allowed share of its steps missing, is a 422.

        CSV works too: send `Content-Type: text/csv` (one row per step, one column per feature, optional header
        row, `?horizon=` in the query; `,`, `;` or tab delimited, decimal commas with `;` or tab, an empty cell or
        `nan`/`NA` is a gap) and/or `Accept: text/csv` to get CSV back (gaps filled in the `X-Wave-Filled` header).

        Time stamps: `ds` (one per observed step), or a time column in a CSV body (named `ds`, `date`, `time`,
        `timestamp` or `datetime`, or a first column of ISO 8601 times), is checked (a stamp that repeats, goes
        back or breaks the regular steps is a 422 naming its row) and continued: the answer's `ds` (a first CSV
        column `ds`) holds the predicted steps' stamps, at the frequency named by `frequency` (the
        `X-Wave-Frequency` header of a CSV answer).
        """
        model = registry.get(body.model)
        ds, frequency = continued(body.ds, body.wave, body.horizon, "ds")
        (answer,) = await completed(request, model, [body.wave], ["wave"], body.horizon, body.level)
        if wants_csv(request):
            headers = {FILLED_HEADER: str(answer.filled)} | ({FREQUENCY_HEADER: frequency} if frequency else {})
            return Response(to_csv(answer.prediction, answer.bands or None, ds), media_type=CSV, headers=headers)
        flat = wave_shape(body.wave) == "flat"
        # the answer's own types, not validated again: validating its floats cost more than the model
        return PredictResponse.model_construct(
            prediction=shaped(answer.prediction, flat),
            horizon=body.horizon,
            filled=answer.filled,
            model=model.ref,
            intervals=band_answer(answer.bands, flat) if body.level else None,
            ds=ds,
            frequency=frequency,
        )

    @router.post(
        "/predict/batch",
        response_model=BatchPredictResponse,
        response_model_exclude_none=True,
        summary="Complete several waves (lengths may differ)",
        responses=ERRORS,
    )
    async def predict_batch(body: BatchPredictRequest, registry: RegistryDep, request: Request) -> BatchPredictResponse:
        """Each prediction equals what /predict returns for that wave alone (flat for a wave sent flat)."""
        model = registry.get(body.model)
        labels = [f"wave {i}" for i in range(len(body.waves))]
        stamps = None
        if body.ds is not None:
            if len(body.ds) != len(body.waves):
                raise WaveError(
                    f"ds has {len(body.ds)} lists of time stamps, one per wave ({len(body.waves)}) is needed"
                )
            pairs = enumerate(zip(body.ds, body.waves, strict=True))
            stamps = [continued(ds, wave, body.horizon, f"ds[{i}]") for i, (ds, wave) in pairs]
        answers = await completed(request, model, body.waves, labels, body.horizon, body.level)
        flat = [wave_shape(wave) == "flat" for wave in body.waves]
        return BatchPredictResponse.model_construct(  # as in /predict: no validation of the answer's own floats
            predictions=[shaped(a.prediction, f) for a, f in zip(answers, flat, strict=True)],
            horizon=body.horizon,
            filled=[a.filled for a in answers],
            model=model.ref,
            intervals=[band_answer(a.bands, f) for a, f in zip(answers, flat, strict=True)] if body.level else None,
            ds=None if stamps is None else [ds for ds, _ in stamps],
            frequency=None if stamps is None else [frequency for _, frequency in stamps],
        )

    return router
