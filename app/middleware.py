"""ASGI middleware: the body-size limit, and per-request id, access log, metrics and the answer to a server failure."""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextvars import ContextVar

from app.metrics import Metrics

request_id: ContextVar[str] = ContextVar("request_id", default="-")
access_log = logging.getLogger("app.access")
logger = logging.getLogger("app")


def server_failure(rid: str) -> str:
    """What a 500 says: that the server failed, and the request id to find the details in the log; nothing more."""
    return f"internal server error (request id {rid}); the service's log has the details"


def _json_error(status: int, message: str, headers: list | None = None, **extra: str) -> tuple[dict, dict]:
    body = json.dumps({"detail": message, "errors": [message], **extra}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return (
        {"type": "http.response.start", "status": status, "headers": head + (headers or [])},
        {"type": "http.response.body", "body": body},
    )


class BodySizeLimit:
    """Answer 413 for a body larger than `max_bytes`, from Content-Length before reading, or while reading."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body is larger than {self.max_bytes} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            for event in _json_error(413, message):
                await send(event)
            return None
        received = 0
        started = refused = False

        async def limited_receive():
            nonlocal received, refused
            event = await receive()
            if event["type"] == "http.request" and not refused:
                received += len(event.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        for reply in _json_error(413, message):
                            await send(reply)
                    return {"type": "http.disconnect"}  # the app stops reading; its answer is dropped
            return event

        async def tracking_send(event):
            nonlocal started
            if refused:
                return
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not refused:
                raise


class RequestContext:
    """Give every request an id (echoed in X-Request-ID), count it, time it and log it as one JSON line.

    An exception that escapes the app is logged with the request id and answered 500 with a generic message
    naming that id (app/routers/v2.py answers its own, in the protocol's form).
    """

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
        token = request_id.set(rid)
        status, status_sent = 500, False
        started = time.perf_counter()

        async def send_with_id(event):
            nonlocal status, status_sent
            if event["type"] == "http.response.start":
                status, status_sent = event["status"], True
                event["headers"] = [*event.get("headers", []), (b"x-request-id", rid.encode())]
            await send(event)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("request failed")
            if status_sent:
                raise  # the answer has begun: nothing else can be said
            for event in _json_error(500, server_failure(rid), request_id=rid):
                await send_with_id(event)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id.reset(token)
