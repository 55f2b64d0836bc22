"""CSV in and out: `Content-Type: text/csv` bodies become the JSON body the route expects; CSV answers."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.json_body import JsonRequest
from app.validation import WaveError
from training.stamps import stamp_problem
from training.time_column import StampError, is_time_text, parse_stamps, stamp_texts, time_column

CSV = "text/csv"
JSON = "application/json"
FILLED_HEADER = "X-Wave-Filled"
FREQUENCY_HEADER = "X-Wave-Frequency"  # with a time column: the frequency the answer's `ds` continues it at


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class CsvTable:
    """A CSV wave as read: its rows of values (None for a gap), the header row's names (without the time
    column's), if it has one, and the time column's stamps (int64 or datetime64[ms]), if it has one."""

    rows: list[list[float | None]]
    names: list[str] | None
    stamps: np.ndarray | None = None


def read_csv(text: str) -> CsvTable:
    """Rows of numbers from CSV text: one row per step, one column per feature, an optional header row, an optional
    time column.

    The delimiter is sniffed (`,`, `;` or tab); with `;` or tab a decimal comma is read as a point. An empty cell,
    `nan` or `NA` is a gap (None). CRLF line ends and quoted fields are fine (the routes strip a byte-order mark).
    A time column (training/time_column.py: named `ds`, `date`, `time`, `timestamp` or `datetime`, or a first
    column of ISO 8601 times) is no feature: its stamps must be times or whole step numbers, each after the one
    before at regular steps (training/stamps.py). A cell that is not a finite number, or a stamp that is wrong, is
    a WaveError naming its line in the text (from 1) and its row and column in the wave (from 0, without the header
    row, as every other wave error counts them).
    """
    delimiter = sniff_delimiter(text)
    decimal_comma = delimiter != ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    lines = [(reader.line_num, row) for row in reader if not _blank(row)]
    names = None
    if lines and not all(_is_value(cell, decimal_comma) or is_time_text(cell) for cell in lines[0][1]):
        names = [cell.strip() for cell in lines[0][1]]
        lines = lines[1:]
    time = time_column(names, lines[0][1] if lines else None)
    wave, cells = [], []
    for row, (line, row_cells) in enumerate(lines):
        values = []
        for column, cell in enumerate(row_cells):
            if column == time:
                cells.append(cell)
                continue
            if not _is_value(cell, decimal_comma):
                where = f"CSV line {line} (row {row}), column {column}"
                raise WaveError(f"{where}: {cell.strip()[:40]!r} is not a number")
            value = None if _is_gap(cell) else _number(cell, decimal_comma)
            if value is not None and not math.isfinite(value):
                raise WaveError(f"CSV line {line}: value at row {row}, column {column} is not finite")
            values.append(value)
        if time is not None and len(cells) <= row:
            raise WaveError(f"CSV line {line} (row {row}), column {time}: the time stamp is missing")
        wave.append(values)
    if time is None:
        return CsvTable(rows=wave, names=names)
    stamps = csv_stamps(cells, [line for line, _ in lines], time)
    return CsvTable(rows=wave, names=None if names is None else names[:time] + names[time + 1 :], stamps=stamps)


def csv_stamps(cells: list[str], lines: list[int], column: int) -> np.ndarray:
    """The time column's stamps; WaveError naming the line, row and column of the first wrong one."""

    def where(row: int) -> str:
        return f"CSV line {lines[row]} (row {row}), column {column}"

    try:
        stamps = parse_stamps(cells)
    except StampError as error:
        raise WaveError(f"{where(error.row)}: {error}") from None
    problem = stamp_problem(stamps)
    if problem is not None:
        row, why = problem
        raise WaveError(f"{where(row)}: time stamp {cells[row].strip()[:40]!r} {why}")
    return stamps


def csv_text(body: bytes) -> str:
    """A CSV body as text, its byte-order mark dropped; WaveError if it is not UTF-8."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise WaveError(f"CSV body is not UTF-8 text: {error}") from None


DELIMITERS = ("\t", ";", ",")  # in order of preference: a decimal comma makes commas appear in the other dialects
GAP_CELLS = ("", "nan", "na")


def sniff_delimiter(text: str, lines: int = 20) -> str:
    """The first of DELIMITERS that occurs equally often (and at least once) outside quotes on the first lines."""
    sample = [re.sub(r'"[^"]*"', "", line) for line in text.splitlines() if line.strip()][:lines]
    for delimiter in DELIMITERS:
        counts = {line.count(delimiter) for line in sample}
        if len(counts) == 1 and counts.pop() > 0:
            return delimiter
    return ","


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _is_gap(cell: str) -> bool:
    return cell.strip().lower() in GAP_CELLS


def _number(cell: str, decimal_comma: bool) -> float:
    return float(cell.replace(",", ".") if decimal_comma else cell)


def _is_value(cell: str, decimal_comma: bool) -> bool:
    if _is_gap(cell):
        return True
    try:
        _number(cell, decimal_comma)
    except ValueError:
        return False
    return True


def to_csv(
    prediction: np.ndarray | list[list[float]],
    bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ds: list[int | str] | None = None,
) -> str:
    """A completion as CSV with a header row feature_1..feature_F; with bands also feature_i_lo<level> and
    feature_i_hi<level> columns per level; with `ds` (one stamp per predicted step) a first column `ds`."""
    rows = np.asarray(prediction)
    names = [f"feature_{i + 1}" for i in range(rows.shape[1])]
    header, columns = list(names), [rows]
    for key, (lower, upper) in (bands or {}).items():
        for i, name in enumerate(names):
            header += [f"{name}_lo{key}", f"{name}_hi{key}"]
            columns.append(np.stack([lower[:, i], upper[:, i]], axis=1))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cells = [[f"{v:.7g}" for v in row] for row in np.concatenate(columns, axis=1)]
    if ds is not None:
        header, cells = ["ds", *header], [[stamp, *row] for stamp, row in zip(ds, cells, strict=True)]
    writer.writerow(header)
    writer.writerows(cells)
    return out.getvalue()


def _query_number(value: str) -> float | str:
    """A query value as a finite number; anything else stays a string, and the schema refuses it."""
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


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
    """Routes that take JSON (parsed by pydantic-core) or CSV: a CSV body (plus ?horizon=, ?model=) becomes the JSON body."""

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
        table = read_csv(csv_text(await request.body()))
        body: dict = {"wave": table.rows}
        if table.stamps is not None:
            body["ds"] = stamp_texts(table.stamps)
        if "model" in request.query_params:
            body["model"] = request.query_params["model"]
        if "level" in request.query_params:
            body["level"] = [_query_number(value) for value in request.query_params.getlist("level")]
        if "horizon" in request.query_params:
            horizon = request.query_params["horizon"].strip()
            body["horizon"] = int(horizon) if horizon.isdecimal() else horizon  # a string is refused as not an integer
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
        scope = {**request.scope, "headers": [*headers, (b"content-type", JSON.encode())]}
        rewritten = JsonRequest(scope, request.receive)
        rewritten._body = json.dumps(body).encode()
        return rewritten
