"""Shared state for the routers: the served models, once they are ready."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from app.model_service import ServedModel
from app.registry import ModelRegistry


def current_registry(request: Request) -> ModelRegistry | None:
    """The served models, or None before they are loaded (and while the app is not started)."""
    return request.app.state.registry


async def served_registry(request: Request) -> ModelRegistry:
    """The served models, or 503 while they are not ready."""
    registry = current_registry(request)
    if registry is None:
        raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "1"})
    return registry


RegistryDep = Annotated[ModelRegistry, Depends(served_registry)]


async def chosen_model(
    registry: RegistryDep,
    model: Annotated[
        str | None,
        Query(
            description="model name (GET /models lists them); default: the default model",
            json_schema_extra={"x-wave-model": True},
        ),
    ] = None,
) -> ServedModel:
    """The model named by `?model=`, the default one without it; unknown: 404 naming the served models."""
    return registry.get(model)


ModelDep = Annotated[ServedModel, Depends(chosen_model)]
