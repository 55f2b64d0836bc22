"""Wave completion endpoints (JSON, and CSV for single waves)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from app.batching import DeadlineExceeded, Overloaded
from app.csv_io import CSV, FILLED_HEADER, CsvOrJsonRoute, to_csv, wants_csv
from app.dependencies import RegistryDep
from app.intervals import require_calibration, wave_bands
from app.limits import LIMITS
from app.model_service import ServedModel
from app.schemas import (
    Band,
    BatchPredictRequest,
    BatchPredictResponse,
    ErrorResponse,
    Intervals,
    PredictRequest,
    PredictResponse,
)
from app.security import require_api_key
from app.validation import WaveError, wave_array

router = APIRouter(tags=["predict"], route_class=CsvOrJsonRoute, dependencies=[Depends(require_api_key)])

ERRORS = {
    401: {"model": ErrorResponse, "description": "an API key is configured and the request lacks it"},
    404: {"model": ErrorResponse, "description": "no such model; `detail` names the served ones"},
    413: {"model": ErrorResponse, "description": "the request body is too large"},
    415: {"model": ErrorResponse, "description": "the Content-Type is neither JSON nor CSV"},
    422: {"model": ErrorResponse, "description": "the request is invalid; `detail` says why"},
    503: {"model": ErrorResponse, "description": "not ready, or the queue is full: retry after Retry-After seconds"},
    504: {"model": ErrorResponse, "description": "the request's deadline passed"},
}
CSV_EXAMPLE = "f1,f2,f3,f4,f5\n" + "\n".join(
    ",".join(f"{v:g}" for v in row) for row in PredictRequest.model_json_schema()["examples"][0]["wave"]
)


Bands = dict[str, tuple[np.ndarray, np.ndarray]]


async def complete(
    model: ServedModel, waves: list, labels: list[str], horizon: int, request: Request, levels: list[float] | None
) -> tuple[list[list[list[float]]], list[int], list[Bands] | None]:
    """Check the waves and fill their gaps, run them through the model's batcher: the completions, the number
    of values filled per wave, and with `levels` their bands; overload and deadline become 503 and 504."""
    if horizon > model.horizon:
        raise WaveError(f"horizon must be between 1 and {model.horizon}")
    calibration = (
        require_calibration(model.calibration, f"{model.ref.name} v{model.ref.version}", levels) if levels else None
    )
    total = sum(len(w) for w in waves)
    if total > LIMITS.max_total_steps:
        raise WaveError(f"request has {total} observed steps in all, at most {LIMITS.max_total_steps} are allowed")
    checked = [
        wave_array(w, model.features, model.min_steps, label, model.context)
        for w, label in zip(waves, labels, strict=True)
    ]
    arrays, filled = [array for array, _ in checked], [count for _, count in checked]
    timeout = request.app.state.settings.request_timeout_s
    try:
        completions = await model.batcher.complete(arrays, timeout=timeout)
    except Overloaded as error:
        raise HTTPException(503, f"server is busy ({error}): retry later", headers={"Retry-After": "1"}) from None
    except DeadlineExceeded as error:
        raise HTTPException(504, f"inference deadline exceeded: {error}") from None
    completions = [c[:horizon] for c in completions]
    bands = wave_bands(calibration, arrays, completions, levels) if calibration is not None and levels else None
    return [c.tolist() for c in completions], filled, bands


def band_answer(bands: Bands) -> Intervals:
    """Bands as the JSON answer's intervals."""
    return {key: Band(lower=lower.tolist(), upper=upper.tolist()) for key, (lower, upper) in bands.items()}


@router.post(
    "/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    summary="Complete one wave (JSON or CSV)",
    responses={
        **ERRORS,
        200: {
            "content": {CSV: {"example": "feature_1,feature_2,...\n0.12,..."}},
            "headers": {FILLED_HEADER: {"description": "gaps filled in the wave", "schema": {"type": "integer"}}},
        },
    },
    openapi_extra={
        "parameters": [
            {
                "name": "horizon",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": LIMITS.max_horizon},
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
                "description": "the model for a CSV body (JSON bodies carry `model` inside); default: the default model",
            },
        ],
        "requestBody": {"content": {CSV: {"schema": {"type": "string"}, "example": CSV_EXAMPLE}}},
    },
)
async def predict(body: PredictRequest, registry: RegistryDep, request: Request):
    """Send the observed steps of a wave; get the next `horizon` steps.

    Gaps: `null` values are filled before the model (linear inside, the nearest value at the ends); `filled`
    says how many. A feature with no value, or more than the allowed share of its steps missing, is a 422.

    CSV works too: send `Content-Type: text/csv` (one row per step, one column per feature, optional header row,
    `?horizon=` in the query; `,`, `;` or tab delimited, decimal commas with `;` or tab, an empty cell or
    `nan`/`NA` is a gap) and/or `Accept: text/csv` to get CSV back (gaps filled in the `X-Wave-Filled` header).
    """
    model = registry.get(body.model)
    (prediction,), (filled,), bands = await complete(model, [body.wave], ["wave"], body.horizon, request, body.level)
    if wants_csv(request):
        csv = to_csv(prediction, bands[0] if bands else None)
        return Response(csv, media_type=CSV, headers={FILLED_HEADER: str(filled)})
    intervals = band_answer(bands[0]) if bands else None
    return PredictResponse(
        prediction=prediction, horizon=body.horizon, filled=filled, model=model.ref, intervals=intervals
    )


@router.post(
    "/predict/batch",
    response_model=BatchPredictResponse,
    response_model_exclude_none=True,
    summary="Complete several waves (lengths may differ)",
    responses=ERRORS,
)
async def predict_batch(body: BatchPredictRequest, registry: RegistryDep, request: Request) -> BatchPredictResponse:
    """Each prediction equals what /predict returns for that wave alone."""
    model = registry.get(body.model)
    labels = [f"wave {i}" for i in range(len(body.waves))]
    predictions, filled, bands = await complete(model, body.waves, labels, body.horizon, request, body.level)
    intervals = [band_answer(b) for b in bands] if bands else None
    return BatchPredictResponse(
        predictions=predictions, horizon=body.horizon, filled=filled, model=model.ref, intervals=intervals
    )
