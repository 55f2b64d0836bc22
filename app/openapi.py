"""The OpenAPI document, fitted to the served model: exact row width, horizon and minimum length."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ROW, HORIZON, WAVE = "x-wave-row", "x-wave-horizon", "x-wave-steps"
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def fit_to_model(node: Any, features: int, horizon: int, min_steps: int) -> None:
    """Set the limits that depend on the model on every schema marked with one of the x-wave-* keys."""
    if isinstance(node, dict):
        if node.get(ROW):
            node["minItems"] = node["maxItems"] = features
        if node.get(HORIZON):
            node["maximum"] = horizon
        if node.get(WAVE):
            node["minItems"] = max(node.get("minItems", 0), min_steps)
        for value in node.values():
            fit_to_model(value, features, horizon, min_steps)
    elif isinstance(node, list):
        for value in node:
            fit_to_model(value, features, horizon, min_steps)


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
    """Replace app.openapi: the document is built once a model is served, and again after a model swap."""

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        use_error_schema_for_422(schema)
        served = app.state.served_model
        if served is None:
            return schema  # not cached: the limits are fitted once the model is loaded
        fit_to_model(schema, served.features, served.horizon, served.min_steps)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
