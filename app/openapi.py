"""The OpenAPI document, fitted to the served models: the limits every one of them accepts, and their names.

Each model's own limits are in GET /models; the document keeps to what all of them accept, so every request it
describes as valid is answered by whichever model the request names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.registry import ModelRegistry
from app.schemas import FLAT, HORIZON, MODEL, ROW, STEPS

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@dataclass(frozen=True)
class CommonLimits:
    """What every served model accepts."""

    features: int | None  # None: no one width all take (or all take any); the schema keeps 1..max_features
    horizon: int
    min_steps: int
    names: list[str]


def common_limits(registry: ModelRegistry) -> CommonLimits:
    """The widest limits all served models accept: one row width if all fixed ones agree, the least horizon, the
    largest minimum length."""
    widths = {model.features for model in registry if model.features is not None}
    return CommonLimits(
        features=widths.pop() if len(widths) == 1 else None,
        horizon=min(model.horizon for model in registry),
        min_steps=max(model.min_steps for model in registry),
        names=sorted(model.ref.name for model in registry),
    )


def fit_to_models(node: Any, limits: CommonLimits) -> None:
    """Set the limits that depend on the models on every schema marked with one of the x-wave-* keys."""
    if isinstance(node, dict):
        if limits.features not in (None, 1) and any(option.get(FLAT) for option in node.get("oneOf", [])):
            # a flat wave is one feature, which not every model takes: only rows are documented
            (rows,) = [option for option in node.pop("oneOf") if not option.get(FLAT)]
            node.pop("discriminator", None)
            node.update({**rows, "description": node.get("description", rows.get("description"))})
        if node.get(ROW) and limits.features is not None:
            node["minItems"] = node["maxItems"] = limits.features
        if node.get(HORIZON):
            # the least of WAVE_LIMIT_MAX_HORIZON and the models' horizons
            node["maximum"] = min(node.get("maximum", limits.horizon), limits.horizon)
        if node.get(STEPS):
            node["minItems"] = max(node.get("minItems", 0), limits.min_steps)
        if node.get(MODEL):
            choices = next((option for option in node.get("anyOf", []) if option.get("type") == "string"), node)
            choices["enum"] = limits.names
        for value in node.values():
            fit_to_models(value, limits)
    elif isinstance(node, list):
        for value in node:
            fit_to_models(value, limits)


def use_error_schema_for_422(schema: dict) -> None:
    """FastAPI documents 422 as its default validation error; this app answers ErrorResponse instead."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response["content"] = {"application/json": {"schema": ERROR_REF}}
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)


def install(app: FastAPI) -> None:
    """Replace app.openapi: the document is built once the models are served, and again after a model swap."""

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        use_error_schema_for_422(schema)
        registry = app.state.registry
        if registry is None:
            return schema  # not cached: the limits are fitted once the models are loaded
        fit_to_models(schema, common_limits(registry))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
