"""`python -m training train/evaluate --data`: tiny --quick runs on CSV, Parquet and NPZ files, fine-tunes across
names, and bad files."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model_store import sha256_of
from training.cli import main
from training.loading import load_model

QUICK_RUN = ["--quick", "--max-steps", "8", "--curriculum-steps", "0"]


def seasonal(steps: int, period: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return 20 + 5 * np.sin(2 * np.pi * t / period) + 0.01 * t + 0.2 * rng.standard_normal(steps)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    a, b = seasonal(1000, 24, 0), seasonal(1000, 40, 1)
    lines = ["ds,a,b"] + [f"{t},{'' if t in (10, 11, 500) else a[t]},{b[t]}" for t in range(1000)]
    (folder / "wide.csv").write_text("\n".join(lines) + "\n")
    ids = ["x"] * 1000 + ["y"] * 800
    table = pa.table({"unique_id": ids, "ds": list(range(1000)) + list(range(800)), "y": np.r_[a, b[:800]]})
    pq.write_table(table, folder / "long.parquet")
    np.savez(folder / "arrays.npz", pair=np.stack([a, b], 1))
    return folder


@pytest.fixture(scope="module")
def data_store(tmp_path_factory, data_dir):
    """A store with `mine` version 1, trained on wide.csv."""
    store = tmp_path_factory.mktemp("data_store")
    assert (
        main(["train", "--store", str(store), "--name", "mine", *QUICK_RUN, "--data", str(data_dir / "wide.csv")]) == 0
    )
    return store


def test_training_on_a_csv_publishes_a_version_recording_files_split_and_evaluation(data_store, data_dir):
    manifest = load_model(data_store, "mine", 1).manifest
    [recorded] = manifest["data"]["files"]
    csv = data_dir / "wide.csv"
    assert recorded["name"] == "wide.csv" and recorded["size"] == csv.stat().st_size
    assert recorded["sha256"] == sha256_of(csv)
    split = manifest["data"]["split"]
    assert split["test_fraction"] == 0.2 and split["val_fraction"] == 0.1
    assert split["series"]["wide.csv:a"] | {"period": 0} == {
        "steps": 1000,
        "train": [0, 700],
        "validation": [700, 800],
        "test": [800, 1000],
        "gaps_filled": 3,
        "period": 0,
    }
    assert split["series"]["wide.csv:a"]["period"] == 24 and split["series"]["wide.csv:b"]["period"] == 40
    evaluation = manifest["evaluation"]
    assert evaluation["windows"] == 10 and set(evaluation["series"]) == {"wide.csv:a", "wide.csv:b"}
    for entry in evaluation["series"].values():
        assert set(entry["mae"]) == {"model", "seasonal_naive", "window_mean", "persistence"}
        assert entry["relative"]["model"] == pytest.approx(entry["mae"]["model"] / entry["mae"]["seasonal_naive"], 1e-3)
    assert load_model(data_store, "mine", 1).calibration is None  # no 150-step validation window
    assert "calibration.json" not in manifest["files"] and "mean_coverage" not in evaluation
    ratios = [entry["relative"]["model"] for entry in evaluation["series"].values()]
    assert evaluation["overall"]["model"] == pytest.approx(np.sqrt(np.prod(ratios)), 1e-3)
    assert evaluation["beats_seasonal_naive"] == (evaluation["overall"]["model"] < 1)
    assert manifest["training"]["initialized_from"] is None
    command = manifest["training"]["command"]  # paths relative to the folder holding the store: no machine's paths
    assert f"--store {data_store.name} " in command and f"--data {data_dir.name}/wide.csv" in command
    assert str(data_store.parent) not in command


def test_parquet_long_and_npz_files_train_together(tmp_path, data_dir):
    files = ["--data", str(data_dir / "long.parquet"), "--data", str(data_dir / "arrays.npz")]
    assert main(["train", "--store", str(tmp_path), "--name", "multi", *QUICK_RUN, *files]) == 0
    manifest = load_model(tmp_path, "multi").manifest
    assert [f["layout"] for f in manifest["data"]["files"]] == ["long", "array"]
    series = manifest["data"]["split"]["series"]
    assert list(series) == ["long.parquet:x", "long.parquet:y", "arrays.npz:pair[0]", "arrays.npz:pair[1]"]
    assert series["long.parquet:y"]["test"] == [640, 800]
    # an 800-step series has a 160-step test part: two windows (starts 640 and 650)
    assert manifest["evaluation"]["series"]["long.parquet:y"]["windows"] == 2


def test_fine_tuning_across_names_compares_with_the_model_it_started_from(data_store, data_dir, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(data_store, store)
    csv = str(data_dir / "wide.csv")
    args = ["train", "--store", str(store), "--name", "tuned", "--quick", "--max-steps", "2", "--curriculum-steps", "0"]
    assert main([*args, "--init-from", "mine", "--data", csv]) == 0
    assert main([*args, "--init-from", "mine/1", "--data", csv]) == 0
    parent = load_model(store, "mine", 1)
    for version in (1, 2):
        child = load_model(store, "tuned", version)
        lineage = child.manifest["training"]["initialized_from"]
        assert (lineage["name"], lineage["version"]) == ("mine", 1)
        overall = child.manifest["evaluation"]["overall"]
        # the parent on the same windows gives the parent's own published ratio
        assert overall["initial_model"] == pytest.approx(parent.manifest["evaluation"]["overall"]["model"], rel=1e-3)
        steps = [
            np.abs(a - b).max() for a, b in zip(parent.model.get_weights(), child.model.get_weights(), strict=True)
        ]
        assert 0 < max(steps) < 0.05  # two Adam steps from the parent, not a fresh start


def test_evaluate_with_data_prints_the_published_report(data_store, data_dir, capsys):
    csv = str(data_dir / "wide.csv")
    assert main(["evaluate", "--store", str(data_store), "--name", "mine", "--data", csv]) == 0
    report = json.loads(capsys.readouterr().out)
    published = load_model(data_store, "mine", 1).manifest["evaluation"]
    assert report["overall"] == pytest.approx(published["overall"], rel=1e-3)
    assert report["data"]["split"]["series"]["wide.csv:a"]["period"] == 24
    assert main(["evaluate", "--store", str(data_store), "--name", "mine", "--data", csv, "--markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| series | period | test windows | model |") and len(lines) == 2 + 2 + 1
    assert lines[-1].startswith("| overall (geometric mean) |")


def test_a_long_enough_validation_part_calibrates_bands_scored_on_the_test_part(tmp_path, data_dir, capsys):
    csv = str(data_dir / "wide.csv")
    args = ["--store", str(tmp_path), "--name", "banded"]
    assert main(["train", *args, *QUICK_RUN, "--data", csv, "--val-fraction", "0.2"]) == 0
    loaded = load_model(tmp_path, "banded", 1)
    manifest = loaded.manifest
    assert loaded.calibration["source"].startswith("validation windows of the training source")
    top = loaded.calibration["levels"][-1]  # 200 validation steps: one window per series, levels up to 83
    assert 80 <= top < 95
    evaluation = manifest["evaluation"]
    for entry in evaluation["series"].values():
        bands = entry["intervals"]  # only the levels its calibration can bound
        assert set(bands) == {"80"} and 0 <= bands["80"]["coverage"] <= 1 and bands["80"]["width_over_mae"] > 0
    capsys.readouterr()
    assert main(["evaluate", *args, "--data", csv]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mean_coverage"] == pytest.approx(evaluation["mean_coverage"], abs=1e-3)
    assert main(["evaluate", *args, "--data", csv, "--markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("| 80 % / 95 % band coverage |") and lines[-1].endswith(" % / - |")


@pytest.mark.parametrize("header", ["date", "when"])  # a time column's name, or a first column of times
def test_train_and_evaluate_take_a_wide_csv_whose_first_column_is_a_date(tmp_path, capsys, header):
    hours = np.datetime64("2026-01-01T00:00:00") + np.arange(1000) * np.timedelta64(1, "h")
    a, b = seasonal(1000, 24, 2), seasonal(1000, 12, 3)
    lines = [f"{header},a,b"] + [f"{stamp},{a[t]},{b[t]}" for t, stamp in enumerate(hours.astype(str))]
    assert lines[1].startswith("2026-01-01T00:00:00,")  # what the old reader refused as not a number
    csv = tmp_path / "dated.csv"
    csv.write_text("\n".join(lines) + "\n")
    args = ["--store", str(tmp_path / "s"), "--name", "dated"]
    assert main(["train", *args, "--quick", "--max-steps", "2", "--curriculum-steps", "0", "--data", str(csv)]) == 0
    assert list(load_model(tmp_path / "s", "dated").manifest["data"]["split"]["series"]) == [
        "dated.csv:a",
        "dated.csv:b",
    ]
    capsys.readouterr()
    assert main(["evaluate", *args, "--data", str(csv)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["series"]) == {"dated.csv:a", "dated.csv:b"}
    assert report["data"]["split"]["series"]["dated.csv:a"]["period"] == 24


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2\n3,4\n", "line 1 is not a header row"),
        ("a\n1\nx\n", "line 3, column 1 ('a'): 'x' is not a number"),
        ("a\n" + "1\n" * 50, "has 50 steps, too short for one window"),
    ],
)
def test_a_bad_data_file_fails_with_a_message_and_no_traceback(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["train", "--store", str(tmp_path / "s"), "--name", "m", *QUICK_RUN, "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"train failed: {path}" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "s" / "m").exists()


def test_unknown_init_from_model_and_unreadable_parquet_fail_cleanly(data_store, data_dir, tmp_path, capsys):
    csv = str(data_dir / "wide.csv")
    args = ["train", "--store", str(data_store), "--name", "x", *QUICK_RUN, "--data", csv]
    assert main([*args, "--init-from", "nope"]) == 1
    assert "train failed: no published versions of model 'nope'" in capsys.readouterr().err
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    assert (
        main(["evaluate", "--store", str(data_store), "--name", "mine", "--data", str(tmp_path / "broken.parquet")])
        == 1
    )
    assert "evaluate failed:" in capsys.readouterr().err


def test_file_batches_of_any_length_share_one_traced_train_step(data_dir):
    import keras

    from training.config import QUICK
    from training.datafiles import read_data_files
    from training.file_source import FileSource, Split
    from training.model import build_core
    from training.train import make_step_functions

    model = QUICK.model
    source = FileSource(read_data_files([data_dir / "wide.csv"], 210), Split(), model)
    core = build_core(model)
    train_step, validation_step = make_step_functions(core, keras.optimizers.Adam(), model.channel_independent)
    rng = np.random.default_rng(0)
    train_step(*source.batch(rng, 4, 100, 20))  # the first call traces (twice: Adam makes its variables)
    traced = train_step.experimental_get_tracing_count()
    for observed, horizon in ((60, 10), (300, 150), (123, 77)):
        assert np.isfinite(float(train_step(*source.batch(rng, 8, observed, horizon))))
    for pair in source.validation_sets(QUICK):
        assert np.isfinite(float(validation_step(*pair)))
    assert train_step.experimental_get_tracing_count() == traced
    assert validation_step.experimental_get_tracing_count() == 1
