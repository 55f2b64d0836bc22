"""Every client error becomes a 4xx JSON body {"detail": "...", "errors": [...]} that says what is wrong; load
becomes 503 (with Retry-After) or 504. A server failure is answered by app/middleware.py (RequestContext)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.batching import DeadlineExceeded, Overloaded
from app.intervals import LEVEL_RULE
from app.registry import UnknownModelError
from app.settings import Limits
from app.validation import WaveError

SHOWN_ERRORS = 5  # problems listed one by one; the rest are counted


def location(loc: list[Any]) -> tuple[str, list[int]]:
    """Split a pydantic location into a label ("wave", "wave 2", "horizon", ...) and the row/column indices."""
    if not loc:
        return "request body", []
    if loc[0] == "waves" and len(loc) > 1 and isinstance(loc[1], int):
        return f"wave {loc[1]}", [p for p in loc[2:] if isinstance(p, int)]
    return str(loc[0]), [p for p in loc[1:] if isinstance(p, int)]


def describe(error: dict[str, Any], limits: Limits) -> str:
    """One pydantic error in words."""
    kind, ctx = error["type"], error.get("ctx", {})
    loc = [p for p in error["loc"] if p not in ("body", "rows", "flat")]  # the wave's shape is no part of its place
    label, indices = location(loc)
    field = label.split()[0]
    flat = "flat" in error["loc"]
    if kind == "json_invalid":
        return f"request body is not valid JSON: {ctx.get('error', error['msg'])}"
    if kind in ("model_attributes_type", "dict_type") and not loc:
        if isinstance(error.get("input"), bytes | str):
            return "request body must be JSON sent with Content-Type: application/json"
        return "request body must be a JSON object"
    if kind == "missing":
        return f"field {'.'.join(map(str, loc))!r} is required"
    if kind == "extra_forbidden":
        return f"unknown field {'.'.join(map(str, loc))!r}"
    if field == "horizon":
        return f"horizon must be an integer between 1 and {limits.max_horizon}"
    if field == "level":
        return f"level must be {LEVEL_RULE}; got {error.get('input')!r}" if not indices else level_value(error)
    if field == "ds":
        return stamp_value(error, indices)
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        bound = "at least" if kind == "too_short" else "at most"
        actual = ctx.get("actual_length")
        if field == "waves" and not indices:
            return f"request has {actual} waves, {bound} {limit} are allowed"
        if len(indices) == 0:
            return f"{label} has {actual} steps, {bound} {limit} are {'needed' if kind == 'too_short' else 'allowed'}"
        return f"{label}: row {indices[0]} has {actual} values, {bound} {limit} are allowed"
    if len(indices) == 2 or (flat and len(indices) == 1):
        place = f"row {indices[0]}" + ("" if flat else f", column {indices[1]}")
        value = error.get("input")
        if kind == "finite_number" or (isinstance(value, float) and not math.isfinite(value)):
            return f"{label}: value at {place} is not finite"
        if kind in ("less_than_equal", "greater_than_equal"):
            return f"{label}: value at {place} exceeds {limits.max_abs_value:g} in magnitude"
        return f"{label}: value at {place} is not a number"
    if kind == "list_type":
        if indices:
            return f"{label}: row {indices[0]} must be a list of numbers"
        if label == "waves":
            return "waves must be a list of waves"
        return f"{label} must be a list of rows, or of numbers for one feature"
    return f"{'.'.join(map(str, loc)) or 'request body'}: {error['msg']}"


def stamp_value(error: dict[str, Any], indices: list[int]) -> str:
    """A bad `ds` (time stamps), or a bad stamp inside it."""
    place = "ds" + "".join(f"[{i}]" for i in indices)
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "too_long":
        return f"{place} has {ctx.get('actual_length')} time stamps, at most {ctx.get('max_length')} are allowed"
    if kind == "list_type":
        return f"{place} must be a list of time stamps (ISO 8601 text or integers), one per observed step"
    return f"{place}: {error.get('input')!r} is not a time stamp (ISO 8601 text or an integer)"


def level_value(error: dict[str, Any]) -> str:
    """A bad value inside `level`."""
    value = error.get("input")
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"level must be {LEVEL_RULE}; {value:g} is not between 0 and 100"
    return f"level must be {LEVEL_RULE}; {value!r} is not a number"


def capped(messages: list[str]) -> list[str]:
    """The distinct messages: the first SHOWN_ERRORS, then one '... and N more problems'."""
    distinct = list(dict.fromkeys(messages))
    if len(distinct) <= SHOWN_ERRORS:
        return distinct
    return [*distinct[:SHOWN_ERRORS], f"... and {len(distinct) - SHOWN_ERRORS} more problems"]


def error_response(status: int, messages: list[str], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": messages[0], "errors": messages}, status_code=status, headers=headers)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    limits = request.app.state.settings.limits
    return error_response(422, capped([describe(e, limits) for e in exc.errors()]) or ["invalid request"])


async def wave_error(request: Request, exc: WaveError) -> JSONResponse:
    return error_response(422, [str(exc)])


async def unknown_model(request: Request, exc: UnknownModelError) -> JSONResponse:
    return error_response(404, [str(exc)])


async def overloaded(request: Request, exc: Overloaded) -> JSONResponse:
    return error_response(503, [f"server is busy ({exc}): retry later"], {"Retry-After": "1"})


async def deadline_exceeded(request: Request, exc: DeadlineExceeded) -> JSONResponse:
    return error_response(504, [f"inference deadline exceeded: {exc}"])


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, [detail], getattr(exc, "headers", None))


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(WaveError, wave_error)
    app.add_exception_handler(UnknownModelError, unknown_model)
    app.add_exception_handler(Overloaded, overloaded)
    app.add_exception_handler(DeadlineExceeded, deadline_exceeded)
    app.add_exception_handler(StarletteHTTPException, http_error)
