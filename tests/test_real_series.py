import json

import numpy as np
import pytest

from training.real_series import (
    SERIES,
    evaluate_real,
    markdown_table,
    persistence,
    seasonal_naive,
    window_mean,
    windows,
)


def test_the_four_held_aside_series_are_marked():
    held = {s.name for s in SERIES if s.held_aside}
    assert held == {"sunspots_monthly", "electricity_halfhourly", "co2_weekly", "sst_monthly"}
    assert len({s.domain for s in SERIES}) >= 5


@pytest.mark.parametrize("series", SERIES, ids=lambda s: s.name)
def test_every_series_ships_with_its_package_and_fits_a_window(series):
    values = series.load()
    assert values.ndim == 1 and np.isfinite(values).all()
    observed, target = windows(values, 300, 150, series.period)
    assert target.shape == (len(observed), 150)
    assert observed.shape[1] >= max(60, series.period)
    assert values.std() > 0


def test_windows_are_contiguous_cuts_from_the_end():
    values = np.arange(1000.0)
    observed, target = windows(values, 300, 150, 12, max_windows=5)
    assert observed.shape == (5, 300) and target.shape == (5, 150)
    np.testing.assert_array_equal(target[:, 0], observed[:, -1] + 1)
    assert target[0, -1] == 999  # the first window ends with the series
    assert len(set(target[:, -1])) == 5
    short_observed, _ = windows(values[:400], 300, 150, 12)
    assert short_observed.shape == (1, 250)
    with pytest.raises(ValueError, match="too short"):
        windows(values[:200], 300, 150, 12)


def test_simple_forecasts():
    observed = np.tile(np.array([1.0, 2.0, 3.0]), 4)[None, :]
    np.testing.assert_array_equal(seasonal_naive(observed, 7, 3), [[1, 2, 3, 1, 2, 3, 1]])
    np.testing.assert_array_equal(persistence(observed, 2), [[3, 3]])
    np.testing.assert_array_equal(window_mean(observed, 2), [[2, 2]])


def test_seasonal_naive_scores_one_and_the_table_lists_every_series():
    reports = [
        evaluate_real(lambda o, h, period=item.period: seasonal_naive(o, h, period), 300, series=(item,))
        for item in SERIES
    ]
    assert all(r["geometric_mean"]["model"] == 1.0 and r["meets_targets"] for r in reports)
    report = evaluate_real(window_mean, 300)
    assert report["geometric_mean"]["model"] == report["geometric_mean"]["window_mean"] > 1.0
    assert not report["meets_targets"]
    table = markdown_table(report)
    assert all(s.name in table for s in SERIES)


def test_cli_scores_a_trained_model_on_real_series(tiny_store, capsys):
    from training.cli import main

    assert main(["evaluate", "--store", str(tiny_store), "--name", "tiny", "--real"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["series"]) == {s.name for s in SERIES}
    ratios = [e["relative_mae"]["model"] for e in report["series"].values()]
    assert all(np.isfinite(r) and r > 0 for r in ratios)
    assert report["context"] == 300 and report["geometric_mean"]["model"] > 0
    for entry in report["series"].values():  # the tiny model is calibrated: its bands are scored too
        bands = entry["intervals"]
        assert 0 <= bands["80"]["coverage"] <= bands["95"]["coverage"] <= 1
        assert 0 < bands["80"]["width_over_mae"] < bands["95"]["width_over_mae"]
    mean = np.mean([e["intervals"]["95"]["coverage"] for e in report["series"].values()])
    assert report["mean_coverage"]["95"] == pytest.approx(mean, abs=1e-4)
    assert main(["evaluate", "--store", str(tiny_store), "--name", "tiny", "--real", "--markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("| 80 % / 95 % band coverage |") and lines[-1].count("%") == 2


def test_a_synthetic_model_records_its_zero_shot_real_score(tmp_path, capsys):
    """`train --synthetic` (the general model's recipe) stores the real-series evaluation in the manifest."""
    from model_store import load_manifest
    from training.cli import main

    args = ["train", "--store", str(tmp_path), "--name", "g", "--quick", "--synthetic", "--max-steps", "4"]
    assert main([*args, "--curriculum-steps", "0", "--eval-waves", "10"]) == 0
    manifest = load_manifest(tmp_path, "g", 1)
    assert manifest["data"]["source"] == "synthetic"
    real = manifest["real_evaluation"]
    assert set(real["series"]) == {s.name for s in SERIES} and real["geometric_mean"]["model"] > 0
    assert "start level" in manifest["calibration"]["design"]
    assert set(real["mean_coverage"]) == {"80", "95"}

    # `calibrate` redoes a synthetic model's calibration on its own family's validation windows
    capsys.readouterr()
    assert main(["calibrate", "--store", str(tmp_path), "--name", "g", "--eval-waves", "10"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (
        answer["version"] == 2 and answer["calibrated_from"] == 1 and set(answer["real_mean_coverage"]) == {"80", "95"}
    )
    again = load_manifest(tmp_path, "g", 2)
    assert again["calibration"]["source"].startswith("sines, validation split: 2000 windows of each of unit, scaled")
    assert again["calibration"]["quantiles"] == manifest["calibration"]["quantiles"]  # same seed, same windows
    assert again["real_evaluation"]["series"] == real["series"] and again["sha256"] == manifest["sha256"]


def test_calibrate_refuses_a_model_trained_on_files(tmp_path, capsys):
    from model_store import write_version
    from training.cli import main

    folder = tmp_path / "store"
    model = tmp_path / "model.keras"
    model.write_bytes(b"not read before the refusal")
    write_version(folder, "f", model, {"data": {"source": "files"}, "architecture": {}})
    assert main(["calibrate", "--store", str(folder), "--name", "f"]) == 1
    assert "trained on files; `train` calibrates such models" in capsys.readouterr().err
