"""The page people can try (GET /, assets under /static), the sample waves it offers (GET /samples), and the
service's CSV reader, which reads what is pasted into it (POST /csv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse

from app.csv_io import CSV, csv_text, media_type, read_csv
from app.dependencies import ModelDep
from app.samples import MAX_SAMPLES, SamplesResponse, sample_waves
from app.schemas import CsvWave, ErrorResponse
from app.validation import WaveError
from training.time_column import stamp_texts

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Everything the page loads or calls comes from this service: no CDN, no external fonts.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'"
)

router = APIRouter(tags=["page"])


@router.get("/", response_class=FileResponse, summary="The page to try the model in a browser", include_in_schema=False)
async def index() -> FileResponse:
    """One HTML page; its script and style sheet are served from /static."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


@router.get(
    "/samples",
    response_model=SamplesResponse,
    summary="Sample waves from the held-out test split, with the truth",
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def samples(
    model: ModelDep,
    count: Annotated[int, Query(ge=1, le=MAX_SAMPLES, description=f"how many samples, 1 to {MAX_SAMPLES}")] = 5,
    seed: Annotated[int, Query(ge=0, le=2**32 - 1, description="same seed, same samples")] = 0,
) -> SamplesResponse:
    """Observed parts of 100 to 300 steps with random amplitude and offset, and the next `horizon` true steps.

    For the model named by `?model=` (default: the default model): as many features as it takes (for a model
    that takes any number, as many as it was trained on) and its horizon.
    """
    features = model.example_features
    return SamplesResponse(
        seed=seed,
        split="test",
        features=features,
        horizon=model.horizon,
        samples=sample_waves(seed, count, features, model.horizon),
    )


@router.post(
    "/csv",
    response_model=CsvWave,
    summary="Read a CSV wave as /predict reads it (the page sends what is pasted into it here)",
    responses={
        413: {"model": ErrorResponse, "description": "the request body is too large"},
        415: {"model": ErrorResponse, "description": "the Content-Type is not text/csv"},
        422: {
            "model": ErrorResponse,
            "description": "a cell is not a number, or a time stamp is wrong (`detail` names its line and column)",
        },
    },
    openapi_extra={"requestBody": {"required": True, "content": {CSV: {"schema": {"type": "string"}}}}},
)
async def read_csv_wave(request: Request) -> CsvWave:
    """A `text/csv` body (one row per step, one column per feature, an optional header row; `,`, `;` or tab
    delimited, decimal commas with `;` or tab, an empty cell or `nan`/`NA` is a gap) as rows of numbers (`null`
    for a gap), the header's names and a time column's stamps (`ds`, checked: 422 naming the row of one that
    repeats, goes back or breaks the regular steps): exactly what a CSV body of POST /predict becomes."""
    kind = media_type(request.headers.get("content-type"))
    if kind != CSV:
        raise HTTPException(415, f"unsupported Content-Type {kind!r}: send {CSV}")
    table = read_csv(csv_text(await request.body()))
    if not table.rows:
        raise WaveError("the CSV has no data rows: one row per step, one column per feature")
    ds = None if table.stamps is None else stamp_texts(table.stamps)
    return CsvWave(wave=table.rows, names=table.names, ds=ds)
