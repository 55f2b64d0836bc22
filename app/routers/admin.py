"""Model lifecycle: load another version of a served model, verified and smoke-tested, and swap it in atomically."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.dependencies import RegistryDep
from app.model_service import load_served_model
from app.schemas import ErrorResponse, ModelName, ModelRef
from app.security import require_admin
from model_store import ModelNotFoundError, StoreError
from training.heap import freeze_heap

logger = logging.getLogger("app.admin")
router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class ReloadRequest(BaseModel):
    model: ModelName = None
    version: str = Field("latest", description="version number in the store, or 'latest'", examples=["latest"])


class ReloadResponse(BaseModel):
    previous: ModelRef = Field(description="the version served before")
    current: ModelRef = Field(description="the version served now")


@router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Load a version of a served model and swap it in (needs the admin bearer token)",
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse, "description": "admin is off, or no such model or version"},
        422: {"model": ErrorResponse, "description": "the version failed verification; the old one still serves"},
        503: {"model": ErrorResponse, "description": "the models are not loaded yet"},
    },
)
async def reload(body: ReloadRequest, registry: RegistryDep, request: Request) -> ReloadResponse:
    """Checksum, load and smoke-test the version first; on any failure the current version keeps serving.

    `model` names the served model to reload (default: the default model). Requests already queued finish on the
    version they started with; the other models are not touched.
    """
    app = request.app
    async with app.state.reload_lock:
        old = registry.get(body.model)
        name, serving = old.ref.name, f"still serving {old.ref.name} version {old.ref.version}"
        try:
            new = await run_in_threadpool(load_served_model, app.state.settings, app.state.metrics, name, body.version)
        except ModelNotFoundError as error:
            raise HTTPException(404, f"{error}; {serving}") from None
        except StoreError as error:
            raise HTTPException(422, f"version {body.version} was not loaded: {error}; {serving}") from None
        new.start(app.state.warmer)
        registry.replace(new)
        app.openapi_schema = None  # limits are fitted to the served models
        app.state.metrics.serving(new.ref, previous=old.ref)
        old.stop_warming()
        task = asyncio.get_running_loop().create_task(old.batcher.drain_and_stop())
        app.state.retiring.add(task)
        task.add_done_callback(app.state.retiring.discard)
        task.add_done_callback(lambda _: freeze_heap())  # the retired model's objects can now be collected
        logger.info("now serving %s version %s", new.ref.name, new.ref.version)
    return ReloadResponse(previous=old.ref, current=new.ref)
