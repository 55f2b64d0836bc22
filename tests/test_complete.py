"""`wave-complete`: the same numbers as /predict/batch, ds continued, gaps filled, series skipped, bad files named,
no partial output, cross-validation on a case computed by hand (the committed default model, no mock)."""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from tests.conftest import DEFAULT_MODEL
from training.complete import main
from training.datafiles import read_data_file
from training.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = (60, 75, 140, 300, 450)  # shorter than, as long as and longer than the context (300)


def series_values(length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return 4 * np.sin(t / (5 + seed) + seed) + 0.05 * t + rng.normal(0, 0.2, length) + 10 * seed


def gappy(values: np.ndarray, seed: int) -> np.ndarray:
    values = values.copy()
    if seed % 2:
        values[[0, 7, 8, len(values) - 1]] = np.nan  # at the start, inside and at the end
    return values


def write_long(path: Path, series: dict[str, np.ndarray], stamps=None) -> Path:
    ids, ds, ys = [], [], []
    for key, values in series.items():
        ids += [key] * len(values)
        ds += list(stamps[: len(values)]) if stamps is not None else list(range(len(values)))
        ys += [None if np.isnan(v) else float(v) for v in values]
    table = pa.table({"unique_id": ids, "ds": ds, "y": pa.array(ys, pa.float64())})
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pyarrow.csv.write_csv(table, path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def mixed_series() -> dict[str, np.ndarray]:
    return {f"s{i}": gappy(series_values(length, i), i) for i, length in enumerate(LENGTHS)}


@pytest.fixture(scope="module")
def completed(tmp_path_factory, mixed_series) -> pa.Table:
    """The mixed series completed 150 steps ahead with 80 % and 95 % bands (Parquet in, Parquet out)."""
    folder = tmp_path_factory.mktemp("complete")
    source = write_long(folder / "in.parquet", mixed_series)
    assert main([str(source), "--output", str(folder / "out.parquet"), "--level", "80", "95", "--quiet"]) == 0
    return pq.read_table(folder / "out.parquet")


@pytest.mark.anyio
async def test_output_equals_predict_batch_of_the_same_series(completed, mixed_series, client):
    assert completed.column_names == ["unique_id", "ds", "model", "y_hat", "lo-80", "hi-80", "lo-95", "hi-95"]
    waves = [[[None if np.isnan(v) else float(v)] for v in values] for values in mixed_series.values()]
    response = await client.post("/predict/batch", json={"waves": waves, "horizon": 150, "level": [80, 95]})
    assert response.status_code == 200, response.text
    answer = response.json()
    table = completed.to_pydict()
    for i, (key, values) in enumerate(mixed_series.items()):
        rows = [r for r, name in enumerate(table["unique_id"]) if name == key]
        assert [table["ds"][r] for r in rows] == list(range(len(values), len(values) + 150))
        assert {table["model"][r] for r in rows} == {DEFAULT_MODEL}
        expected = np.asarray(answer["predictions"][i])[:, 0]
        np.testing.assert_allclose([table["y_hat"][r] for r in rows], expected, atol=1e-5, rtol=1e-5)
        for level in ("80", "95"):
            band = answer["intervals"][i][level]
            for side, column in (("lower", f"lo-{level}"), ("upper", f"hi-{level}")):
                got = [table[column][r] for r in rows]
                np.testing.assert_allclose(got, np.asarray(band[side])[:, 0], atol=1e-5, rtol=1e-5)
    assert answer["filled"] == [0, 4, 0, 4, 0]


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        (np.datetime64("2024-01-01") + np.arange(200), ["2024-07-19", "2024-07-20", "2024-07-21"]),
        (
            np.datetime64("2024-01-01T00:00") + np.arange(200) * np.timedelta64(1, "h"),
            ["2024-01-09T08:00:00", "2024-01-09T09:00:00", "2024-01-09T10:00:00"],
        ),
        (np.datetime64("2000-01", "M") + np.arange(200), ["2016-09-01", "2016-10-01", "2016-11-01"]),
        (np.arange(200) * 5 + 3, ["1003", "1008", "1013"]),
    ],
    ids=["daily", "hourly", "monthly", "integers"],
)
def test_ds_continues_the_series_own_stamps(tmp_path, capsys, stamps, expected):
    text = [str(s) for s in stamps.astype("datetime64[D]" if "M" in str(stamps.dtype) else stamps.dtype)]
    values = series_values(200, 1)
    rows = ["unique_id,ds,y", *(f"a,{s},{v}" for s, v in zip(text, values, strict=True))]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    code, _, _ = run(capsys, tmp_path / "in.csv", "--output", tmp_path / "out.csv", "--horizon", 3, "--quiet")
    assert code == 0
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "unique_id,ds,model,y_hat"
    assert [line.split(",")[1] for line in lines[1:]] == expected


def test_a_wide_csv_with_a_date_column_is_read_and_continued(tmp_path, capsys):
    days = np.datetime64("2025-03-01") + np.arange(120)
    values = series_values(120, 2)
    path = tmp_path / "demand.csv"
    path.write_text("date,demand\n" + "".join(f"{d},{v}\n" for d, v in zip(days, values, strict=True)))
    data = read_data_file(path, 100)  # as train --data and evaluate --data read it
    assert [s.name for s in data.series] == ["demand.csv:demand"]
    np.testing.assert_array_equal(data.series[0].stamps, days.astype("datetime64[ms]"))
    code, _, _ = run(capsys, path, "--output", tmp_path / "out.parquet", "--horizon", 2, "--quiet")
    assert code == 0
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("ds").type == pa.timestamp("ms")
    assert table.column("ds").to_numpy().astype("datetime64[D]").tolist() == [days[-1] + 1, days[-1] + 2]
    assert table.column("unique_id").to_pylist() == ["demand", "demand"]


def test_gaps_are_filled_and_counted_and_bad_series_skipped_with_reasons(tmp_path, capsys):
    good = series_values(120, 3)
    with_gaps = good.copy()
    with_gaps[[10, 11, 12]] = np.nan
    too_gappy = good.copy()
    too_gappy[:72] = np.nan
    too_gappy[0] = 1.0
    source = write_long(
        tmp_path / "in.parquet",
        {"good": good, "gaps": with_gaps, "gappy": too_gappy, "short": good[:59], "empty": np.full(80, np.nan)},
    )
    code, _, err = run(capsys, source, "--output", tmp_path / "out.parquet", "--horizon", 4)
    assert code == 0
    assert "completed 2 series (4 steps ahead) in " in err and " s of it loading the model (" in err
    assert "filled 3 missing values in 1 series; skipped 3" in err
    assert "skipped: in.parquet:short: 59 steps, the model needs at least 60" in err
    assert "skipped: in.parquet:gappy: misses 71 of 120 steps (59%), more than the 50% allowed" in err
    assert "skipped: in.parquet:empty: no value" in err
    assert pq.read_table(tmp_path / "out.parquet").column("unique_id").to_pylist() == ["good"] * 4 + ["gaps"] * 4


def write_daily_and_irregular(path: Path, names: list[str]) -> None:
    """Series of 120 values each, daily when their name starts with 'daily', else at irregular days."""
    values = series_values(120, 3)
    daily = np.datetime64("2024-01-01") + np.arange(120)
    irregular = np.datetime64("2024-01-01") + np.cumsum(np.arange(120) % 3 + 1)
    rows = [
        (name, str(stamp), value)
        for name in names
        for stamp, value in zip(daily if name.startswith("daily") else irregular, values, strict=True)
    ]
    path.write_text("unique_id,ds,y\n" + "".join(f"{n},{d},{v}\n" for n, d, v in rows))


@pytest.mark.parametrize("names", [["daily", "odd"], ["odd", "daily"]])
def test_a_series_without_a_frequency_continues_with_step_numbers(tmp_path, capsys, names):
    source = tmp_path / "odd.csv"
    write_daily_and_irregular(source, names)
    expected = {"daily": ["2024-04-30", "2024-05-01"], "odd": ["120", "121"]}
    for output in ("out.csv", "out.parquet"):
        code, _, err = run(capsys, source, "--output", tmp_path / output, "--horizon", 2)
        assert code == 0 and "ds as step numbers: odd.csv:odd: irregular time stamps: no frequency" in err
        table = (
            pq.read_table(tmp_path / output)
            if output.endswith(".parquet")
            else pyarrow.csv.read_csv(
                tmp_path / output, convert_options=pyarrow.csv.ConvertOptions(column_types={"ds": pa.string()})
            )
        )
        assert table.column("unique_id").to_pylist() == [name for name in names for _ in range(2)]
        assert table.column("ds").to_pylist() == [day for name in names for day in expected[name]]


def test_a_later_chunk_with_step_numbers_turns_a_parquet_ds_of_times_into_text(tmp_path, capsys, monkeypatch):
    """The first chunks fix Parquet's ds as times; a later chunk mixing in step numbers is kept aside and the file
    rewritten with ds as text at the end: the same cells as the CSV output, nothing left beside the output."""
    import training.bulk_complete

    monkeypatch.setattr(training.bulk_complete, "CHUNK_VALUES", 240)  # two series of 120 steps per chunk
    names = [f"daily{i}" for i in range(5)] + ["odd"] + [f"daily{i}" for i in range(5, 9)]
    source = tmp_path / "in.csv"
    write_daily_and_irregular(source, names)
    tables = {}
    for output in ("out.csv", "out.parquet"):
        code, _, err = run(capsys, source, "--output", tmp_path / output, "--horizon", 3, "--quiet")
        assert code == 0, err
        tables[output] = (
            pq.read_table(tmp_path / output)
            if output.endswith(".parquet")
            else pyarrow.csv.read_csv(
                tmp_path / output, convert_options=pyarrow.csv.ConvertOptions(column_types={"ds": pa.string()})
            )
        )
    assert pa.types.is_string(tables["out.parquet"].schema.field("ds").type)
    ds = tables["out.parquet"].column("ds").to_pylist()
    assert ds == tables["out.csv"].column("ds").to_pylist()
    assert ds[:3] == ["2024-04-30", "2024-05-01", "2024-05-02"] and ds[15:18] == ["120", "121", "122"]
    np.testing.assert_allclose(
        tables["out.parquet"].column("y_hat").to_numpy(), tables["out.csv"].column("y_hat").to_numpy(), rtol=1e-6
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv", "out.csv", "out.parquet"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text.csv", "a,b\n1,2\n3,oops\n", "text.csv: line 3, column 2 ('b'): 'oops' is not a number"),
        (
            "unsorted.csv",
            "unique_id,ds,y\nx,2,1\nx,1,1\n",
            "unsorted.csv: line 3: ds '1' of series 'x' does not come after '2'",
        ),
        ("bad.parquet", "not parquet", "bad.parquet: unreadable Parquet file"),
    ],
)
def test_a_bad_file_stops_with_one_line_naming_it_and_writes_nothing(tmp_path, capsys, name, content, message):
    (tmp_path / name).write_text(content)
    code, out, err = run(capsys, tmp_path / name, "--output", tmp_path / "out.csv", "--quiet")
    assert code == 1 and out == ""
    assert err.startswith("wave-complete failed: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_quiet_prints_nothing_and_a_terminal_gets_a_progress_bar(tmp_path, capsys):
    source = write_long(tmp_path / "in.csv", {"a": series_values(90, 4)})
    code, out, err = run(capsys, source, "--output", tmp_path / "out.csv", "--horizon", 1, "--quiet")
    assert (code, out, err) == (0, "", "")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = Progress(stream)
        time.sleep(0.01)
        bar.update(25, 100)
        bar.close()
    assert "25/100 series" in terminal.getvalue() and "/s  ETA " in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_a_signal_mid_run_leaves_no_output_and_no_temporary_file(tmp_path):
    rng = np.random.default_rng(0)
    count, steps = 20_000, 120
    values = np.sin(np.arange(steps)[None, :] / 7 + rng.uniform(0, 6, (count, 1))).reshape(-1)
    table = pa.table(
        {
            "unique_id": np.repeat(np.arange(count), steps).astype(str),
            "ds": np.tile(np.arange(steps), count),
            "y": values,
        }
    )
    pq.write_table(table, tmp_path / "big.parquet")
    out = tmp_path / "out" / "completed.parquet"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "training.complete",
        str(tmp_path / "big.parquet"),
        "--output",
        str(out),
        "--quiet",
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not any(out.parent.iterdir()) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read()
        assert next(p.name for p in out.parent.iterdir()).startswith(".completed.parquet.partial-")  # mid-run
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM and "no output written" in err
    assert list(out.parent.iterdir()) == []


def test_cross_validation_of_a_periodic_series_matches_the_hand_computed_scores(tmp_path, capsys):
    pattern = np.array([3.0, 5.0, 4.0, 9.0, 1.0, 2.0, 8.0, 6.0, 7.0, 5.0, 2.0, 4.0])  # period 12, mean 4.75
    values = pattern[np.arange(480) % 12]
    source = write_long(tmp_path / "periodic.csv", {"p": values})
    code, out, _ = run(
        capsys,
        source,
        "--output",
        tmp_path / "cv.parquet",
        "--cross-validation",
        3,
        "--step",
        12,
        "--horizon",
        24,
        "--level",
        80,
        "--quiet",
    )
    assert code == 0
    table = pq.read_table(tmp_path / "cv.parquet").to_pydict()
    assert list(table) == ["unique_id", "ds", "cutoff", "y", "y_hat", "lo-80", "hi-80"]
    cutoffs = sorted(set(table["cutoff"]))
    assert cutoffs == [480 - 24 - 24 - 1, 480 - 24 - 12 - 1, 480 - 24 - 1]  # the last one `horizon` before the end
    assert len(table["ds"]) == 3 * 24
    for ds, cutoff, y in zip(table["ds"], table["cutoff"], table["y"], strict=True):
        assert cutoff < ds <= cutoff + 24 and y == values[ds]
    y, y_hat = np.array(table["y"]), np.array(table["y_hat"])
    lower, upper = np.array(table["lo-80"]), np.array(table["hi-80"])
    header, row, overall = (line.split() for line in out.splitlines())
    assert header == [
        "series",
        "windows",
        "mae",
        "naive_mae",
        "window_mean_mae",
        "mae/naive",
        "window_mean/naive",
        "coverage-80",
    ]
    assert row[:2] == ["p", "3"] and overall[0] == "overall"
    assert float(row[2]) == pytest.approx(np.abs(y - y_hat).mean(), rel=1e-5)
    assert float(row[3]) == 0.0  # seasonal naive repeats the cycle exactly
    # the window mean of the last 300 observed steps (25 whole cycles) is the pattern's mean
    assert float(row[4]) == pytest.approx(np.abs(pattern - pattern.mean()).mean(), rel=1e-5)  # 2.0833...
    assert row[5] == "nan" and row[6] == "nan"  # no ratio to a zero error
    assert float(row[7].rstrip("%")) == pytest.approx(100 * ((lower <= y) & (y <= upper)).mean(), abs=0.05)
    assert not math.isnan(float(overall[2]))


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced block of the README's "Complete a file" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Complete a file") : text.index("## Training")]
    parts = section.split("```")[1::2]
    return [(part.split("\n", 1)[0], part.split("\n", 1)[1]) for part in parts]


def same_numbers(got: str, expected: str) -> None:
    """Equal text, numbers equal to 1e-4 (the committed model's answers vary in their last float32 bits)."""
    split = [[line.replace(",", " ").split() for line in text.strip().splitlines()] for text in (got, expected)]
    assert [len(line) for line in split[0]] == [len(line) for line in split[1]], got
    for mine, theirs in zip(split[0], split[1], strict=True):
        for a, b in zip(mine, theirs, strict=True):
            try:
                assert float(a) == pytest.approx(float(b), rel=1e-4, abs=1e-5, nan_ok=True), (a, b)
            except ValueError:
                assert a == b


def test_readme_examples_give_the_outputs_shown(tmp_path, capsys, monkeypatch):
    blocks = readme_blocks()
    (_, first), (_, forecast), (_, cv_command), (_, cv_table) = blocks
    generate, complete = [line for line in first.splitlines() if line and not line.startswith(("#", "cat"))]
    monkeypatch.chdir(tmp_path)
    subprocess.run(generate, shell=True, check=True, cwd=tmp_path)
    assert complete.startswith("wave-complete ")
    code, _, _ = run(capsys, *complete.split()[1:], "--quiet")
    assert code == 0
    same_numbers((tmp_path / "forecast.csv").read_text(), forecast)
    code, out, _ = run(capsys, *cv_command.split()[1:])
    assert code == 0
    same_numbers(out, cv_table)


def test_the_command_imports_neither_the_web_service_nor_ray():
    code = "import sys, training.complete; print(sorted({m.split('.')[0] for m in sys.modules} & {'app', 'ray', 'fastapi'}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
