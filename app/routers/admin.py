"""Model lifecycle: load another version, verified and smoke-tested, and swap it in atomically."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.heap import freeze_heap
from app.model_service import ServedModel, load_served_model
from app.schemas import ErrorResponse, ModelRef
from app.security import require_admin
from model_store import ModelNotFoundError, StoreError

logger = logging.getLogger("app.admin")
router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class ReloadRequest(BaseModel):
    version: str = Field("latest", description="version number in the store, or 'latest'", examples=["latest"])


class ReloadResponse(BaseModel):
    previous: ModelRef | None = Field(description="the model served before")
    current: ModelRef = Field(description="the model served now")


@router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Load a version of the served model and swap it in (needs the admin bearer token)",
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse, "description": "admin is off, or no such version"},
        422: {"model": ErrorResponse, "description": "the version failed verification; the old model still serves"},
    },
)
async def reload(body: ReloadRequest, request: Request) -> ReloadResponse:
    """Checksum, load and smoke-test the version first; on any failure the current model keeps serving.

    Requests already queued finish on the model they started with.
    """
    app = request.app
    async with app.state.reload_lock:
        old: ServedModel | None = app.state.served_model
        serving = f"still serving {old.ref.name} version {old.ref.version}" if old else "no model is served"
        try:
            new = await run_in_threadpool(load_served_model, app.state.settings, app.state.metrics, body.version)
        except ModelNotFoundError as error:
            raise HTTPException(404, f"{error}; {serving}") from None
        except StoreError as error:
            raise HTTPException(422, f"version {body.version} was not loaded: {error}; {serving}") from None
        new.batcher.start()
        app.state.served_model = new
        app.openapi_schema = None  # limits are fitted to the served model
        app.state.metrics.model.info({"name": new.ref.name, "version": new.ref.version})
        if old is not None:
            task = asyncio.get_running_loop().create_task(old.batcher.drain_and_stop())
            app.state.retiring.add(task)
            task.add_done_callback(app.state.retiring.discard)
            task.add_done_callback(lambda _: freeze_heap())  # the retired model's objects can now be collected
        logger.info("now serving %s version %s", new.ref.name, new.ref.version)
    return ReloadResponse(previous=old.ref if old else None, current=new.ref)
