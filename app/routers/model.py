"""What model is served."""

from fastapi import APIRouter

from app.dependencies import ModelDep
from app.schemas import ErrorResponse, ModelSummary

router = APIRouter(prefix="/model", tags=["model"])


@router.get(
    "/summary",
    response_model=ModelSummary,
    summary="Architecture, limits and held-out metrics of the served model",
    responses={503: {"model": ErrorResponse}},
)
async def summary(model: ModelDep) -> ModelSummary:
    return model.summary
