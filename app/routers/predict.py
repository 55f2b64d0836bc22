"""Wave completion endpoints."""

from __future__ import annotations

from fastapi import APIRouter

from app.dependencies import ModelDep
from app.schemas import BatchPredictRequest, BatchPredictResponse, ErrorResponse, PredictRequest, PredictResponse
from app.validation import wave_array

router = APIRouter(tags=["predict"])

ERRORS = {422: {"model": ErrorResponse, "description": "the request is invalid; `detail` says why"}}


@router.post(
    "/predict",
    response_model=PredictResponse,
    summary="Complete one wave",
    responses={**ERRORS, 503: {"model": ErrorResponse}},
)
async def predict(request: PredictRequest, model: ModelDep) -> PredictResponse:
    """Send the observed steps of a wave; get the next `horizon` steps."""
    wave = wave_array(request.wave, model.features, model.min_steps)
    (completion,) = await model.batcher.complete([wave])
    return PredictResponse(prediction=completion[: request.horizon].tolist(), horizon=request.horizon, model=model.ref)


@router.post(
    "/predict/batch",
    response_model=BatchPredictResponse,
    summary="Complete several waves (lengths may differ)",
    responses={**ERRORS, 503: {"model": ErrorResponse}},
)
async def predict_batch(request: BatchPredictRequest, model: ModelDep) -> BatchPredictResponse:
    """Each prediction equals what /predict returns for that wave alone."""
    waves = [wave_array(w, model.features, model.min_steps, f"wave {i}") for i, w in enumerate(request.waves)]
    completions = await model.batcher.complete(waves)
    return BatchPredictResponse(
        predictions=[c[: request.horizon].tolist() for c in completions], horizon=request.horizon, model=model.ref
    )
