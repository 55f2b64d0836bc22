"""Shared state for the routers: the served model, once it is ready."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.model_service import ServedModel


def current_model(request: Request) -> ServedModel | None:
    """The model being served, or None before it is loaded (and while the app is not started)."""
    return request.app.state.served_model


async def served_model(request: Request) -> ServedModel:
    """The loaded model, or 503 while none is ready."""
    model = current_model(request)
    if model is None:
        raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "1"})
    return model


ModelDep = Annotated[ServedModel, Depends(served_model)]
