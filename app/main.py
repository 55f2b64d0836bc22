"""The FastAPI application: `app.main:app`, started by the `wave-serve` console script."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

# level 3: the service's log stays JSON lines; TensorFlow's C++ notes (and XLA's false alarms when it loads cached
# programs, openxla/xla#44565) are not the service's, and its failures surface as Python exceptions, logged as JSON
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# inference runs under XLA, where oneDNN's rewrites do not help (measured); off, TensorFlow logs nothing at import
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import app.keras_import as keras_first  # noqa: F401  before any Keras import: see the module
from app import errors, openapi
from app.metrics import Metrics
from app.middleware import BodySizeLimit, RequestContext
from app.registry import load_registry
from app.routers import admin, health, metrics, model, page, plot, predict, v2
from app.schemas import request_models
from app.settings import Settings, get_settings
from training.heap import freeze_heap
from training.xla_flags import keep_calls_on_one_core, use_compile_cache

keep_calls_on_one_core()  # one inference worker per core (see app/batching.py)

logger = logging.getLogger("app")

DESCRIPTION = """
Completes multi-feature waves. Send the observed part of a wave (T steps x F features: any F for a model whose
`features` is "any" in GET /models, as the default model's is) and get the next steps (up to 150) back,
predicted by a sequence-to-sequence LSTM.

Several models may be served: `GET /models` lists them with their own limits (features, horizon, input length);
a request chooses one with `"model": "NAME"` in its JSON body (`?model=NAME` for CSV bodies and GET endpoints),
otherwise the default model answers. The limits in this document are those every served model accepts.

Rows and columns in error messages are counted from 0.
"""


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Load, verify and warm up the models before serving (unless preloaded); stop their batchers on shutdown."""
    registry = app.state.preloaded or load_registry(app.state.settings, app.state.metrics)
    app.state.preloaded = None
    # one thread compiles the programs each model deferred at loading, one after the other, while serving
    app.state.warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warm-up")
    for served in registry:
        served.start(app.state.warmer)
        app.state.metrics.serving(served.ref)
    app.state.registry = registry
    freeze_heap()
    try:
        yield
    finally:
        current, app.state.registry = app.state.registry, None
        app.state.warmer.shutdown(wait=False, cancel_futures=True)
        await asyncio.gather(*app.state.retiring)
        await asyncio.gather(*(served.batcher.stop() for served in current))


def create_app(settings: Settings | None = None, preloaded=None) -> FastAPI:
    """A new application configured by `settings` (default: from the environment), its request limits too.

    `preloaded` is an already loaded ModelRegistry (the console script loads it first to fail fast and clearly).
    """
    app = FastAPI(
        title="Wave completion service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    settings = app.state.settings = settings or get_settings()
    # before the first XLA compilation in the process
    use_compile_cache(settings.compile_cache, settings.compile_cache_max_mb)
    app.state.metrics = Metrics()
    app.state.preloaded = preloaded
    app.state.registry = None
    app.state.reload_lock = asyncio.Lock()
    app.state.retiring = set()
    errors.install(app)
    openapi.install(app)
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    app.add_middleware(BodySizeLimit, max_bytes=app.state.settings.limits.max_body_bytes)
    bodies = request_models(app.state.settings.limits)
    app.include_router(predict.build_router(bodies))
    app.include_router(plot.build_router(bodies))
    app.include_router(model.router)
    app.include_router(health.router)
    app.include_router(v2.router)
    app.include_router(page.router)
    app.include_router(metrics.router)
    app.include_router(admin.router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    return app


app = create_app()


def run() -> None:
    """Console script `wave-serve` (and `python -m app`): load the models, then serve them with uvicorn.

    A missing store or version, a corrupt file or a checksum mismatch ends the process with one log line and
    exit code 2. SIGTERM stops accepting, lets in-flight requests finish, and exits 0.
    """
    import signal
    import sys

    import uvicorn

    from app.logging_setup import configure_logging
    from model_store import StoreError

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format == "json")
    application = create_app(settings)
    try:
        application.state.preloaded = load_registry(settings, application.state.metrics)
    except StoreError as error:
        logger.error("cannot start: %s", error)
        sys.exit(2)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: exit 0 instead of dying by the signal
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        timeout_keep_alive=settings.keep_alive_s,
        log_level=settings.log_level.lower(),
        log_config=None,
    )
