"""CSV in and out: `Content-Type: text/csv` bodies become the JSON body the route expects; CSV answers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import numpy as np
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.json_body import JsonRequest
from app.validation import WaveError

CSV = "text/csv"
JSON = "application/json"


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def parse_csv(text: str) -> list[list[float]]:
    """Rows of numbers from CSV text: one row per step, one column per feature, an optional header row."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if rows and not all(_is_number(cell) for cell in rows[0]):
        rows = rows[1:]  # header
    wave = []
    for line, row in enumerate(rows):
        values = []
        for column, cell in enumerate(row):
            if not _is_number(cell):
                raise WaveError(f"CSV row {line}, column {column}: {cell.strip()[:40]!r} is not a number")
            values.append(float(cell))
        wave.append(values)
    return wave


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def to_csv(prediction: np.ndarray | list[list[float]]) -> str:
    """A completion as CSV with a header row feature_1..feature_F."""
    rows = np.asarray(prediction)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f"feature_{i + 1}" for i in range(rows.shape[1])])
    writer.writerows([[f"{v:.7g}" for v in row] for row in rows])
    return out.getvalue()


def unparsable_body(body: bytes) -> str:
    """Why FastAPI could not parse a JSON body."""
    try:
        json.loads(body)
    except RecursionError:
        return "request body is nested too deeply to parse"
    except (ValueError, UnicodeDecodeError) as error:
        return f"request body is not valid JSON: {error}"
    return "request body could not be parsed"


def wants_csv(request: Request) -> bool:
    """True when the client asks for CSV in its Accept header."""
    return CSV in request.headers.get("accept", "")


class CsvOrJsonRoute(APIRoute):
    """Routes that take JSON (parsed by pydantic-core) or CSV: a CSV body (plus ?horizon=) becomes the JSON body."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            kind = media_type(request.headers.get("content-type"))
            if request.method == "POST" and kind not in ("", JSON, CSV) and not kind.endswith("+json"):
                raise HTTPException(415, f"unsupported Content-Type {kind!r}: send {JSON} or {CSV}")
            request = await self._as_json(request) if kind == CSV else JsonRequest(request.scope, request.receive)
            try:
                return await handler(request)
            except StarletteHTTPException as error:  # FastAPI raises Starlette's for an unparsable body
                if error.status_code != 400:
                    raise
                raise HTTPException(400, unparsable_body(await request.body())) from None  # say why, not just 400

        return route_handler

    @staticmethod
    async def _as_json(request: Request) -> Request:
        try:
            text = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as error:
            raise WaveError(f"CSV body is not UTF-8 text: {error}") from None
        body: dict = {"wave": parse_csv(text)}
        if "horizon" in request.query_params:
            body["horizon"] = request.query_params["horizon"]
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
        scope = {**request.scope, "headers": [*headers, (b"content-type", JSON.encode())]}
        rewritten = JsonRequest(scope, request.receive)
        rewritten._body = json.dumps(body).encode()
        return rewritten
