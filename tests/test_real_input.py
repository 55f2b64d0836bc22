"""Real recorded input over HTTP: gaps (JSON, CSV, V2), spreadsheet CSV dialects, strict numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.csv_io import read_csv, sniff_delimiter
from app.settings import Limits
from tests.conftest import DEFAULT_MODEL
from training.data import unit_waves
from training.gaps import fill_gaps

LIMITS = Limits()  # the defaults, which the tests' apps use

pytestmark = pytest.mark.anyio

HEADER_LENGTH = "Inference-Header-Content-Length"


def wave(steps: int = 120, seed: int = 0) -> np.ndarray:
    """A real test-split wave (amplitude 3, offset -20), float64 (steps, 5)."""
    return 3.0 * unit_waves(np.random.default_rng(seed), 1, steps, split="test")[0].astype(np.float64) - 20.0


def with_gaps(w: np.ndarray, cells: list[tuple[int, int]]) -> np.ndarray:
    gappy = w.copy()
    for row, column in cells:
        gappy[row, column] = np.nan
    return gappy


def as_json(w: np.ndarray) -> list[list[float | None]]:
    """NaN becomes JSON null."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in w]


GAPS = [(0, 1), (1, 1), (40, 2), (41, 2), (42, 2), (119, 4), (70, 0)]  # ends and inside


async def predicted(client, w, horizon: int = 150) -> np.ndarray:
    response = await client.post("/predict", json={"wave": as_json(w), "horizon": horizon})
    assert response.status_code == 200, response.text
    return np.array(response.json()["prediction"])


# ---------------------------------------------------------------- gaps in JSON


async def test_json_nulls_are_filled_before_the_model_and_counted(client):
    w = wave(seed=3)
    gappy = with_gaps(w, GAPS)
    response = await client.post("/predict", json={"wave": as_json(gappy), "horizon": 30})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["filled"] == len(GAPS)
    filled, _ = fill_gaps(gappy, LIMITS.max_gap_fraction)
    np.testing.assert_allclose(body["prediction"], await predicted(client, filled, 30), rtol=1e-6, atol=1e-5)
    assert (await client.post("/predict", json={"wave": w.tolist(), "horizon": 30})).json()["filled"] == 0


async def test_gaps_barely_change_the_completion_of_a_smooth_wave(client):
    w = wave(seed=5)
    gappy = with_gaps(w, [(row, row % 5) for row in range(20, 100, 3)])
    error = np.abs(await predicted(client, gappy) - await predicted(client, w)).mean() / 3.0
    assert error < 0.02, f"MAE / amplitude between the two completions {error:.4f}"


async def test_batch_says_filled_per_wave(client):
    waves = [wave(seed=1), with_gaps(wave(seed=2), GAPS), with_gaps(wave(90, seed=3), [(5, 0)])]
    response = await client.post("/predict/batch", json={"waves": [as_json(w) for w in waves], "horizon": 5})
    assert response.status_code == 200, response.text
    assert response.json()["filled"] == [0, len(GAPS), 1]


@pytest.mark.parametrize(
    ("path", "make", "message"),
    [
        ("/predict", lambda w: with_gaps(w, [(r, 3) for r in range(120)]), "wave: feature 3 has no value"),
        (
            "/predict",
            lambda w: with_gaps(w, [(r, 0) for r in range(61)]),
            "wave: feature 0 misses 61 of 120 steps (51%), more than the 50% allowed",
        ),
        ("/predict/batch", lambda w: with_gaps(w, [(r, 4) for r in range(120)]), "wave 1: feature 4 has no value"),
    ],
)
async def test_a_feature_with_too_many_gaps_is_a_422_naming_it(client, path, make, message):
    bad = as_json(make(wave()))
    body = {"wave": bad} if path == "/predict" else {"waves": [wave().tolist(), bad]}
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == message


async def test_half_missing_is_still_allowed(client):
    response = await client.post("/predict", json={"wave": as_json(with_gaps(wave(), [(r, 2) for r in range(60)]))})
    assert response.status_code == 200 and response.json()["filled"] == 60


async def test_the_gap_limit_holds_over_the_steps_the_model_reads(client):
    """A long wave whose last 300 steps (the model's context) are mostly missing is refused, though most of the
    whole wave is present."""
    long = wave(900, seed=4)
    body = {"wave": as_json(with_gaps(long, [(r, 1) for r in range(900 - 200, 900)]))}
    response = await client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "wave: feature 1 misses 200 of the last 300 steps, which the model reads (67%), more than the 50% allowed"
    )
    body = {"wave": as_json(with_gaps(long, [(r, 1) for r in range(900 - 150, 900)]))}
    assert (await client.post("/predict", json=body)).json()["filled"] == 150


async def test_integers_are_numbers(client):
    response = await client.post("/predict", json={"wave": np.rint(10 * wave()).astype(int).tolist(), "horizon": 3})
    assert response.status_code == 200, response.text


async def test_plot_draws_a_wave_with_gaps(client):
    response = await client.post("/predict/plot", json={"wave": as_json(with_gaps(wave(), GAPS)), "horizon": 20})
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


async def test_openapi_documents_gaps(client):
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    rows, flat = components["PredictRequest"]["properties"]["wave"]["oneOf"]
    assert {"type": "null"} in rows["items"]["items"]["anyOf"] and {"type": "null"} in flat["items"]["anyOf"]
    assert "filled" in components["PredictResponse"]["required"]
    assert components["BatchPredictResponse"]["properties"]["filled"]["items"] == {"type": "integer"}


# ---------------------------------------------------------------- CSV dialects and gaps


def csv_text(w, delimiter: str = ",", decimal: str = ".", quote: bool = False, newline: str = "\n", bom: bool = False):
    """`w` as a spreadsheet would export it; NaN as an empty cell."""

    def cell(v: float) -> str:
        text = "" if np.isnan(v) else repr(float(v)).replace(".", decimal)
        return f'"{text}"' if quote else text

    lines = [delimiter.join(f"feature {i}" for i in range(w.shape[1]))]
    lines += [delimiter.join(cell(v) for v in row) for row in w]
    return ("\ufeff" if bom else "") + newline.join(lines) + newline


DIALECTS = {
    "comma": {},
    "semicolon, decimal comma, BOM, CRLF, quoted": {
        "delimiter": ";",
        "decimal": ",",
        "quote": True,
        "newline": "\r\n",
        "bom": True,
    },
    "tab, decimal comma": {"delimiter": "\t", "decimal": ","},
    "semicolon, decimal point": {"delimiter": ";"},
    "comma, quoted, CRLF, BOM": {"quote": True, "newline": "\r\n", "bom": True},
}


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_csv_dialect_gets_the_same_answer_as_json(client, dialect):
    w = with_gaps(wave(seed=8), [(10, 1), (11, 1)])
    text = csv_text(w, **DIALECTS[dialect])
    response = await client.post(
        "/predict?horizon=40", content=text.encode("utf-8"), headers={"content-type": "text/csv; charset=utf-8"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["filled"] == 2
    expected = await client.post("/predict", json={"wave": as_json(w), "horizon": 40})
    assert body["prediction"] == expected.json()["prediction"]


async def test_csv_gap_spellings_and_csv_answer_header(client):
    w = wave(seed=4)
    text = csv_text(w).splitlines()
    text[5] = text[5].split(",", 1)[1].join(["", ","])  # empty first cell
    rows = [line.split(",") for line in text]
    rows[6][1], rows[7][2], rows[8][3] = "nan", "NaN", "NA"
    response = await client.post(
        "/predict?horizon=5",
        content="\n".join(",".join(r) for r in rows),
        headers={"content-type": "text/csv", "accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-wave-filled"] == "4"
    assert response.text.startswith("feature_1,") and len(response.text.splitlines()) == 6


@pytest.mark.parametrize("horizon", ["true", "1.5", "-3"])
async def test_csv_horizon_must_be_an_integer(client, horizon):
    response = await client.post(
        f"/predict?horizon={horizon}", content=csv_text(wave()), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "horizon must be an integer between 1 and 150"


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("1,5;2,5;3\n4;5;6\n", ";"),
        ("1.5,2.5,3\n4,5,6\n", ","),
        ("1,5\t2,5\n3\t4\n", "\t"),
        ('"a;b","c"\n1,2\n', ","),  # a delimiter inside quotes does not count
        ("1\n2\n", ","),
    ],
)
def test_sniff_delimiter(text, delimiter):
    assert sniff_delimiter(text) == delimiter


def test_read_csv_reads_decimal_commas_only_with_another_delimiter():
    assert read_csv('x;y\r\n"1,5";-2,25\r\n;NA\r\n').rows == [[1.5, -2.25], [None, None]]
    assert read_csv("1.5,2\n,nan\n").rows == [[1.5, 2.0], [None, None]]


# ---------------------------------------------------------------- V2


def v2_body(batch: np.ndarray) -> dict:
    data = [None if np.isnan(v) else float(v) for v in batch.ravel()]
    return {"inputs": [{"name": "wave", "shape": list(batch.shape), "datatype": "FP32", "data": data}]}


async def test_v2_json_gaps_nan_and_null_are_filled(client):
    batch = np.stack([with_gaps(wave(80, seed=1), GAPS[:3]), wave(80, seed=2)]).astype(np.float32)
    body = json.dumps(v2_body(batch)).replace("null", "NaN", 1)  # one gap as NaN, the others as null
    response = await client.post(
        f"/v2/models/{DEFAULT_MODEL}/infer", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["parameters"]["filled"] == [3, 0]
    prediction = np.array(answer["outputs"][0]["data"]).reshape(answer["outputs"][0]["shape"])
    filled, _ = fill_gaps(batch[0], LIMITS.max_gap_fraction)
    np.testing.assert_allclose(prediction[0], await predicted(client, filled.astype(np.float64)), rtol=1e-5, atol=1e-4)


async def test_v2_binary_nan_is_a_gap_and_too_many_is_named(client):
    batch = with_gaps(wave(80, seed=6), [(3, 2)])[None].astype(np.float32)
    raw = batch.astype("<f4").tobytes()
    header = {"inputs": [{"name": "wave", "shape": [1, 80, 5], "datatype": "FP32"}]}
    header["inputs"][0]["parameters"] = {"binary_data_size": len(raw)}
    head = json.dumps(header).encode()
    response = await client.post(
        f"/v2/models/{DEFAULT_MODEL}/infer", content=head + raw, headers={HEADER_LENGTH: str(len(head))}
    )
    assert response.status_code == 200, response.text
    assert response.json()["parameters"]["filled"] == [1]

    empty = batch.copy()
    empty[0, :, 4] = np.nan
    response = await client.post(f"/v2/models/{DEFAULT_MODEL}/infer", json=v2_body(empty))
    assert response.status_code == 400 and response.json()["error"] == "wave 0: feature 4 has no value"
