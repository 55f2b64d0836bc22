"""A time column over HTTP: CSV bodies with a date column, JSON `ds`, their continuation in the answers, and the
422s that name a wrong stamp; the shared reader of time columns (training/time_column.py) on its own."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from datetime import date, datetime, timedelta

import numpy as np
import pytest

from app.csv_io import read_csv
from app.routers.predict import continued
from tests.servers import ROOT
from training.data import unit_waves
from training.time_column import StampError, parse_stamps, stamp_texts, time_column

pytestmark = pytest.mark.anyio

STEPS, HORIZON = 120, 150


def wave(steps: int = STEPS, seed: int = 4) -> np.ndarray:
    """A real test-split wave (amplitude 3, offset 5), float64 (steps, 5)."""
    return 3.0 * unit_waves(np.random.default_rng(seed), 1, steps, split="test")[0].astype(np.float64) + 5.0


def months(start: date, count: int) -> list[date]:
    """`count` first days of consecutive months from `start` (a first of a month)."""
    return [date(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1, 1) for i in range(count)]


# (name, the stamps as written in the CSV, the next HORIZON stamps as the answer writes them, the frequency)
DAILY = [date(2026, 1, 1) + timedelta(days=i) for i in range(STEPS + HORIZON)]
HOURLY = [datetime(2026, 3, 28, 6) + timedelta(hours=i) for i in range(STEPS + HORIZON)]
MONTHLY = months(date(2010, 1, 1), STEPS + HORIZON)
CASES = [
    ("daily", [d.isoformat() for d in DAILY[:STEPS]], [d.isoformat() for d in DAILY[STEPS:]], "daily"),
    (
        "hourly",
        [t.strftime("%Y-%m-%d %H:%M") for t in HOURLY[:STEPS]],  # a space, no seconds: as spreadsheets write them
        [t.isoformat() for t in HOURLY[STEPS:]],
        "hourly",
    ),
    ("monthly", [d.isoformat() for d in MONTHLY[:STEPS]], [d.isoformat() for d in MONTHLY[STEPS:]], "monthly"),
    (
        "steps",
        [str(100 + 5 * i) for i in range(STEPS)],
        [100 + 5 * i for i in range(STEPS, STEPS + HORIZON)],
        "5 steps",
    ),
]


def csv_body(stamps: list[str] | None, values: np.ndarray, header: str | None = "date") -> str:
    rows = [[*([] if stamps is None else [stamps[i]]), *(f"{v:.6f}" for v in row)] for i, row in enumerate(values)]
    names = [*([] if stamps is None else [header]), "a", "b", "c", "d", "e"]
    return "\n".join(",".join(cells) for cells in ([names] if header else []) + rows) + "\n"


def post_csv(client, body: str, accept: str = "text/csv", path: str = "/predict"):
    headers = {"content-type": "text/csv", "accept": accept}
    return client.post(f"{path}?horizon={HORIZON}", content=body, headers=headers)


async def plain_prediction(client, values: np.ndarray) -> np.ndarray:
    response = await post_csv(client, csv_body(None, values), accept="application/json")
    assert response.status_code == 200, response.text
    return np.array(response.json()["prediction"])


def answer_rows(text: str) -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, rows


@pytest.mark.parametrize(("kind", "stamps", "expected", "frequency"), CASES, ids=[case[0] for case in CASES])
async def test_a_csv_time_column_is_no_feature_and_the_csv_answer_continues_it(
    client, kind, stamps, expected, frequency
):
    values = wave()
    header = "time" if kind == "steps" else "date"  # integer steps count as stamps under a time column's name
    response = await post_csv(client, csv_body(stamps, values, header))
    assert response.status_code == 200, response.text
    assert response.headers["x-wave-frequency"] == frequency
    names, rows = answer_rows(response.text)
    assert names == ["ds"] + [f"feature_{i}" for i in range(1, 6)]
    assert [row[0] for row in rows] == [str(stamp) for stamp in expected]
    # the same numbers as the wave without its time column: the stamps are no feature
    predicted = np.array([[float(cell) for cell in row[1:]] for row in rows])
    np.testing.assert_allclose(predicted, await plain_prediction(client, values), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("kind", "stamps", "expected", "frequency"), CASES, ids=[case[0] for case in CASES])
async def test_a_json_answer_carries_the_continued_ds_for_csv_and_json_bodies(
    client, kind, stamps, expected, frequency
):
    values = wave(seed=6)
    header = "time" if kind == "steps" else "date"
    from_csv = await post_csv(client, csv_body(stamps, values, header), accept="application/json")
    assert from_csv.status_code == 200, from_csv.text
    assert from_csv.json()["ds"] == expected and from_csv.json()["frequency"] == frequency

    ds = [int(s) for s in stamps] if kind == "steps" else stamps
    from_json = await client.post("/predict", json={"wave": values.tolist(), "ds": ds, "horizon": HORIZON})
    assert from_json.status_code == 200, from_json.text
    assert from_json.json()["ds"] == expected and from_json.json()["frequency"] == frequency
    np.testing.assert_allclose(from_json.json()["prediction"], from_csv.json()["prediction"], rtol=1e-5, atol=1e-5)


async def test_a_headerless_csv_with_a_date_column_and_a_month_end_series(client):
    ends = [date(2015 + (m + 1) // 12, (m + 1) % 12 + 1, 1) - timedelta(days=1) for m in range(STEPS + 3)]
    response = await client.post(
        "/predict?horizon=3",
        content=csv_body([d.isoformat() for d in ends[:STEPS]], wave(), header=None),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["ds"] == [d.isoformat() for d in ends[STEPS:]] == ["2025-01-31", "2025-02-28", "2025-03-31"]
    assert response.json()["frequency"] == "monthly, month end"


async def test_without_stamps_the_answers_are_as_before(client):
    response = await post_csv(client, csv_body(None, wave()))
    assert response.status_code == 200 and "x-wave-frequency" not in response.headers
    assert answer_rows(response.text)[0][0] == "feature_1"
    plain = await client.post("/predict", json={"wave": wave().tolist(), "horizon": 5})
    assert "ds" not in plain.json() and "frequency" not in plain.json()


def with_row(stamps: list[str], row: int, stamp: str) -> list[str]:
    changed = list(stamps)
    changed[row] = stamp
    return changed


DAYS = [d.isoformat() for d in DAILY[:STEPS]]
BAD_CSV = [
    ("repeated", with_row(DAYS, 5, DAYS[4]), "CSV line 7 (row 5), column 0: time stamp '2026-01-05' repeats row 4"),
    (
        "backwards",
        with_row(DAYS, 5, DAYS[2]),
        "CSV line 7 (row 5), column 0: time stamp '2026-01-03' is not after row 4",
    ),
    (
        "a missing day",
        DAYS[:40] + [d.isoformat() for d in DAILY[41 : STEPS + 1]],
        "CSV line 42 (row 40), column 0: time stamp '2026-02-11' breaks the regular steps of row 0 to row 39 (daily): "
        "irregular time stamps",
    ),
    ("unparsable", with_row(DAYS, 7, "2026-13-45"), "CSV line 9 (row 7), column 0: '2026-13-45' is not a time stamp"),
    ("empty", with_row(DAYS, 3, ""), "CSV line 5 (row 3), column 0: the time stamp is empty"),
]


@pytest.mark.parametrize(("case", "stamps", "message"), BAD_CSV, ids=[case[0] for case in BAD_CSV])
@pytest.mark.parametrize("path", ["/predict", "/csv"])
async def test_a_wrong_stamp_in_a_csv_is_a_422_naming_its_row(client, case, stamps, message, path):
    response = await post_csv(client, csv_body(stamps, wave()), path=path)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(message), response.json()["detail"]


BAD_JSON = [
    ({"ds": with_row(DAYS, 9, DAYS[8])}, "ds[9]: time stamp '2026-01-09' repeats ds[8]"),
    ({"ds": [*range(0, 2 * STEPS - 2, 2), 10**6]}, f"ds[{STEPS - 1}]: time stamp 1000000 breaks the regular"),
    ({"ds": DAYS[:-1]}, f"ds has {STEPS - 1} time stamps, the wave has {STEPS} steps"),
    ({"ds": [*DAYS[:-1], 7]}, f"ds[{STEPS - 1}]: 7: the time stamps mix integers and text"),
    ({"ds": with_row(DAYS, 2, "soon")}, "ds[2]: 'soon' is not a time stamp"),
    ({"ds": [*DAYS[:-1], 1.5]}, f"ds[{STEPS - 1}]: 1.5 is not a time stamp (ISO 8601 text or an integer)"),
    ({"ds": "2026-01-01"}, "ds must be a list of time stamps"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_JSON)
@pytest.mark.parametrize("path", ["/predict", "/predict/plot"])
async def test_a_wrong_json_ds_is_a_422_naming_its_index(client, extra, message, path):
    response = await client.post(path, json={"wave": wave().tolist(), "horizon": 5, **extra})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(message), response.json()["detail"]


async def test_batch_items_may_carry_ds_and_get_it_continued(client):
    waves = [wave(seed=1).tolist(), wave(90, seed=2).tolist()]
    body = {"waves": waves, "horizon": 2, "ds": [DAYS, None]}
    response = await client.post("/predict/batch", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["ds"] == [["2026-05-01", "2026-05-02"], None]
    assert response.json()["frequency"] == ["daily", None]
    wrong = await client.post("/predict/batch", json={**body, "ds": [None, with_row(DAYS[:90], 1, DAYS[0])]})
    assert wrong.status_code == 422 and wrong.json()["detail"].startswith("ds[1][1]: time stamp '2026-01-01' repeats")
    short = await client.post("/predict/batch", json={**body, "ds": [DAYS]})
    assert short.status_code == 422 and "one per wave (2) is needed" in short.json()["detail"]


async def test_the_csv_route_gives_the_page_the_stamps_and_the_feature_names(client):
    body = csv_body([t.strftime("%Y-%m-%d %H:%M") for t in HOURLY[:STEPS]], wave())
    response = await client.post("/csv", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["names"] == ["a", "b", "c", "d", "e"] and len(answer["wave"][0]) == 5
    assert answer["ds"][:2] == ["2026-03-28T06:00:00", "2026-03-28T07:00:00"] and len(answer["ds"]) == STEPS
    plain = await client.post("/csv", content="a,b\n1,2\n", headers={"content-type": "text/csv"})
    assert plain.json() == {"wave": [[1.0, 2.0]], "names": ["a", "b"], "ds": None}


async def test_the_openapi_documents_ds_in_requests_and_answers(client):
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert "ds" in schemas["PredictResponse"]["properties"] and "frequency" in schemas["PredictResponse"]["properties"]
    assert "ds" in schemas["PredictRequest"]["properties"] and "ds" in schemas["BatchPredictResponse"]["properties"]


def readme_blocks() -> list[str]:
    """The fenced blocks of the README's "Time stamps" section, without their language line."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Time stamps") : text.index("### Limits")]
    return [part.split("\n", 1)[1] for part in section.split("```")[1::2]]


async def curl(client, line: str, folder) -> str:
    """What the README's `curl -s 'localhost:8000...' -H ... --data-binary @file` line gets from the app."""
    path = re.search(r"'localhost:8000([^']*)'", line).group(1)
    headers = dict(re.findall(r"-H '([^:]+): ([^']+)'", line))
    body = (folder / re.search(r"--data-binary @(\S+)", line).group(1)).read_bytes()
    return (await client.post(path, content=body, headers=headers)).text


async def test_readme_examples_give_the_outputs_shown(client, tmp_path):
    commands, shown, more = readme_blocks()
    generate, csv_out = [line for line in commands.splitlines() if line and not line.startswith("#")]
    subprocess.run(generate, shell=True, check=True, cwd=tmp_path)
    got, expected = (
        list(csv.reader(io.StringIO(text.strip()))) for text in (await curl(client, csv_out, tmp_path), shown)
    )
    assert [row[0] for row in got] == [row[0] for row in expected] == ["ds", "2026-04-01", "2026-04-02", "2026-04-03"]
    np.testing.assert_allclose([float(row[1]) for row in got[1:]], [float(row[1]) for row in expected[1:]], atol=1e-4)

    json_out, edit, refused = [line for line in more.splitlines() if line and not line.startswith("#")]
    answer = json.loads(await curl(client, json_out, tmp_path))
    assert json_out.endswith(f"# {answer['ds']} {answer['frequency']}")
    subprocess.run(edit, shell=True, check=True, cwd=tmp_path)
    detail = json.loads(await curl(client, refused, tmp_path))["detail"]
    assert refused.endswith(f'# {{"detail":"{detail}",...}}'), detail


# ---------------------------------------------------------------- the shared reader


def test_the_time_column_is_found_by_its_name_or_by_a_first_cell_that_is_a_time():
    assert time_column(["x", "Date", "y"], ["1", "2026-01-01", "3"]) == 1
    assert time_column(["when", "y"], ["2026-01-01 08:00", "3"]) == 0
    assert time_column(["t", "y"], ["5", "3"]) is None and time_column(None, ["1.5", "2"]) is None
    assert read_csv("2026-01-01,1\n2026-01-02,2\n").stamps.dtype == np.dtype("datetime64[ms]")
    assert read_csv("ds;a\n1;0,5\n2;0,25\n").rows == [[0.5], [0.25]]  # ';' and decimal commas as ever


def test_stamps_are_parsed_once_and_written_back_at_their_own_unit():
    assert parse_stamps(["3", "4"]).dtype == np.int64
    assert stamp_texts(parse_stamps(["2026-01-01 00:00", "2026-01-02"])) == ["2026-01-01", "2026-01-02"]
    assert stamp_texts(parse_stamps(["2026-01-01 00:00:00.250"])) == ["2026-01-01T00:00:00.250"]
    with pytest.raises(StampError) as error:
        parse_stamps(["1", "2.5"])
    assert error.value.row == 1 and "neither a time stamp nor a whole step number" in str(error.value)


def test_without_a_frequency_the_answer_counts_steps_and_says_why():
    """One stamp has no frequency (the only such case left once irregular stamps are refused; a one-step wave
    needs WAVE_LIMIT_MIN_STEPS=1 and a model that takes it): ds counts steps from the observed ones."""
    assert continued(["2026-01-01"], [[1.0]], 3, "ds") == ([1, 2, 3], "none: one time stamp: no frequency")
    assert continued(None, [[1.0]], 3, "ds") == (None, None)
    assert continued([7, 9], [[1.0], [2.0]], 2, "ds") == ([11, 13], "2 steps")


def test_stamps_with_an_offset_are_read_as_utc_without_a_warning(recwarn):
    stamps = parse_stamps(["2026-01-01T00:00:00Z", "2026-01-01T03:00:00+02:00"])
    assert stamp_texts(stamps) == ["2026-01-01T00:00:00", "2026-01-01T01:00:00"]
    assert not [w for w in recwarn if "timezone" in str(w.message)]
