"""The FastAPI application: `app.main:app`, started by the `wave-serve` console script."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fastapi import FastAPI

from app import errors
from app.routers import health, model, predict
from app.settings import Settings, get_settings

DESCRIPTION = """
Completes multi-feature waves. Send the observed part of a wave (T steps x F features, F = 5 for the default
model) and get the next steps (up to 150) back, predicted by a sequence-to-sequence LSTM.

Rows and columns in error messages are counted from 0.
"""


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Load, verify and warm up the model before serving; stop the batcher on shutdown."""
    from app.model_service import load_served_model

    settings: Settings = app.state.settings
    served = load_served_model(settings)
    served.batcher.start()
    app.state.served_model = served
    try:
        yield
    finally:
        app.state.served_model = None
        await served.batcher.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new application configured by `settings` (default: from the environment)."""
    app = FastAPI(
        title="Wave completion service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings or get_settings()
    app.state.served_model = None
    errors.install(app)
    app.include_router(predict.router)
    app.include_router(model.router)
    app.include_router(health.router)
    return app


app = create_app()


def run() -> None:
    """Console script `wave-serve` (and `python -m app`): uvicorn with the configured host, port and log level."""
    import signal
    import sys

    import uvicorn

    settings = get_settings()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: exit 0 instead of dying by the signal
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run("app.main:app", host=settings.host, port=settings.port, log_level=settings.log_level.lower())
