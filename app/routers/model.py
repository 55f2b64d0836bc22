"""What models are served."""

from fastapi import APIRouter

from app.dependencies import ModelDep, RegistryDep
from app.schemas import ErrorResponse, ModelInfo, ModelsResponse, ModelSummary

router = APIRouter(tags=["model"])


@router.get(
    "/models",
    response_model=ModelsResponse,
    summary="Every served model with its limits and held-out metrics",
    responses={503: {"model": ErrorResponse}},
)
async def models(registry: RegistryDep) -> ModelsResponse:
    """The default model first; `features` is a number, or "any" for a model that takes any number of features."""
    served = sorted(registry, key=lambda model: model.ref.name != registry.default)
    return ModelsResponse(
        models=[
            ModelInfo(
                name=model.ref.name,
                version=model.ref.version,
                default=model.ref.name == registry.default,
                features=model.summary.features,
                horizon=model.horizon,
                input_length=model.summary.input_length,
                metrics=model.summary.metrics,
            )
            for model in served
        ]
    )


@router.get(
    "/model/summary",
    response_model=ModelSummary,
    summary="Architecture, limits and held-out metrics of one served model (the default one without ?model=)",
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def summary(model: ModelDep) -> ModelSummary:
    return model.summary
