"""Liveness and readiness probes."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.dependencies import current_registry
from app.schemas import HealthStatus

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=HealthStatus, summary="200 while the process runs")
async def live() -> HealthStatus:
    return HealthStatus(status="ok")


@router.get(
    "/ready",
    response_model=HealthStatus,
    summary="200 once every model is loaded and warmed up, 503 before",
    responses={503: {"model": HealthStatus}},
)
async def ready(request: Request):
    if current_registry(request) is None:
        return JSONResponse({"status": "model not loaded"}, status_code=503)
    return HealthStatus(status="ok")
