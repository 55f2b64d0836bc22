"""Structured logs: one JSON object per line, each with the request id of the request it belongs to."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

from app.middleware import request_id


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: str = "info", json_lines: bool = True) -> None:
    """Route the service's and uvicorn's logs to stderr, as JSON lines or plain text."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    fields = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
    handler.setFormatter(JsonFormatter(fields) if json_lines else logging.Formatter(fields))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # app.access logs every request with its id
