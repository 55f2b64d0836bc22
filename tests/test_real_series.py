import json

import numpy as np
import pytest

from training.baselines import persistence, seasonal_naive, window_mean
from training.real_series import CHECK_SERIES, SERIES, RealSeries, evaluate_real, windows
from training.report import real_table


def test_the_four_held_aside_series_are_marked():
    held = {s.name for s in SERIES if s.held_aside}
    assert held == {"sunspots_monthly", "electricity_halfhourly", "co2_weekly", "sst_monthly"}
    assert len({s.domain for s in SERIES}) >= 5


def test_the_check_series_are_apart_from_the_eight():
    assert all(s.check and not s.held_aside for s in CHECK_SERIES) and not any(s.check for s in SERIES)
    assert not {s.name for s in CHECK_SERIES} & {s.name for s in SERIES}


@pytest.mark.parametrize("series", SERIES + CHECK_SERIES, ids=lambda s: s.name)
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
    features = np.stack([observed, 10 * observed], axis=2)  # (1, 12, 2): the same forecasts per feature
    np.testing.assert_array_equal(seasonal_naive(features, 4, 3)[0, :, 1], [10, 20, 30, 10])
    np.testing.assert_array_equal(persistence(features, 2)[0], [[3, 30], [3, 30]])
    np.testing.assert_array_equal(window_mean(features, 1)[0], [[2, 20]])
    with pytest.raises(ValueError, match="period 13 needs at least 13 observed steps"):
        seasonal_naive(observed, 2, 13)


# Two 64-step series with period 4, scored with a 60-step context and a 4-step horizon: one window each, observed
# steps 0..59, target steps 60..63. On the ramp t, seasonal naive repeats 56..59 (MAE 4), persistence 59 (errors
# 1, 2, 3, 4: MAE 2.5), the window mean 29.5 (errors 30.5..33.5: MAE 32). On t + (0, 2, 0, -2) repeating, seasonal
# naive is t - 4 again (MAE 4), persistence 57 against 60, 63, 62, 61 (MAE 4.5), the window mean 29.5 (MAE 32).
RAMP = RealSeries("ramp", "test", 4, True, "t", lambda: np.arange(64.0))
SAW = RealSeries("saw", "test2", 4, False, "t + (0, 2, 0, -2)", lambda: np.arange(64.0) + np.tile([0, 2, 0, -2], 16))


def last_plus_two(observed: np.ndarray, horizon: int) -> np.ndarray:
    """The last value, rising one per step, one too high: errors 1, 1, 1, 1 on the ramp, 1, 3, 1, 1 on the saw."""
    return observed[:, -1:] + np.arange(2, horizon + 2)


def test_relative_maes_and_their_geometric_mean_on_a_hand_computed_case():
    report = evaluate_real(last_plus_two, 60, horizon=4, series=(RAMP, SAW))
    ramp, saw = report["series"]["ramp"], report["series"]["saw"]
    assert (ramp["windows"], ramp["observed_steps"]) == (1, 60)
    assert ramp["seasonal_naive_mae"] == saw["seasonal_naive_mae"] == 4.0
    assert ramp["relative_mae"] == {"model": 0.25, "window_mean": 8.0, "persistence": 0.625}
    assert saw["relative_mae"] == {"model": 0.375, "window_mean": 8.0, "persistence": 1.125}
    assert report["geometric_mean"] == {
        "model": round(np.sqrt(0.25 * 0.375), 4),
        "window_mean": 8.0,
        "persistence": round(np.sqrt(0.625 * 1.125), 4),
    }
    assert report["held_aside_geometric_mean"] == 0.25  # the ramp only
    assert report["meets_targets"]  # 0.31 <= 1 and 0.375 <= 1.25
    assert not evaluate_real(window_mean, 60, horizon=4, series=(RAMP, SAW))["meets_targets"]  # 8 > 1

    def uneven(observed: np.ndarray, horizon: int) -> np.ndarray:
        """As above on the ramp; on the saw 58..61 - 4 against 60, 63, 62, 61: MAE 6, 1.5x seasonal naive's."""
        on_saw = observed[0, 1] == 3
        return observed[:, -1:] + np.arange(1, horizon + 1) - 4 if on_saw else last_plus_two(observed, horizon)

    uneven_report = evaluate_real(uneven, 60, horizon=4, series=(RAMP, SAW))
    assert uneven_report["series"]["saw"]["relative_mae"]["model"] == 1.5
    assert uneven_report["geometric_mean"]["model"] == round(np.sqrt(0.25 * 1.5), 4)  # 0.61: within its target,
    assert not uneven_report["meets_targets"]  # but one series is above 1.25


def test_the_real_table_shows_every_series_and_the_geometric_mean():
    report = evaluate_real(last_plus_two, 60, horizon=4, series=(RAMP, SAW))
    lines = real_table(report, "m/1").splitlines()
    assert lines[0] == "| series | domain | period | windows x observed | m/1 | window mean | persistence |"
    assert lines[2] == "| ramp (held aside) | test | 4 | 1 x 60 | **0.250** | 8.000 | 0.625 |"
    assert lines[3] == "| saw | test2 | 4 | 1 x 60 | **0.375** | 8.000 | 1.125 |"
    assert lines[4] == "| geometric mean | | | | **0.306** | 8.000 | 0.839 |"
    checked = evaluate_real(last_plus_two, 60, horizon=4, series=(RAMP, RealSeries(**{**vars(SAW), "check": True})))
    assert checked["series"]["saw"]["check"] is True and "check" not in checked["series"]["ramp"]
    assert real_table(checked, "m/1").splitlines()[3].startswith("| saw (check) | test2 |")


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
    assert lines[0].endswith("| 80 % / 95 % band coverage | 80 % band width / MAE |") and lines[-1].count("%") == 2
    width = next(e for e in report["series"].values())["intervals"]["80"]["width_over_mae"]
    assert lines[2].endswith(f" % | {width:.1f} |")
    assert main(["evaluate", "--store", str(tiny_store), "--name", "tiny", "--real", "--check-series"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert set(checked["series"]) == {s.name for s in SERIES + CHECK_SERIES}
    assert checked["series"]["co2_weekly"] == report["series"]["co2_weekly"]  # the eight score as without them
    with pytest.raises(SystemExit):
        main(["evaluate", "--store", str(tiny_store), "--name", "tiny", "--check-series"])
    assert "--check-series needs --real" in capsys.readouterr().err


def test_a_synthetic_model_records_its_zero_shot_real_score(tmp_path, capsys):
    """`train --synthetic` (the general model's recipe) stores the real-series evaluation in the manifest."""
    from training.cli import main
    from training.loading import load_model

    args = ["train", "--store", str(tmp_path), "--name", "g", "--quick", "--synthetic", "--max-steps", "4"]
    assert main([*args, "--curriculum-steps", "0", "--eval-waves", "10"]) == 0
    first = load_model(tmp_path, "g", 1)
    manifest = first.manifest
    assert manifest["data"]["source"] == "synthetic"
    real = manifest["real_evaluation"]
    assert set(real["series"]) == {s.name for s in SERIES} and real["geometric_mean"]["model"] > 0
    assert "start level" in first.calibration["design"]
    assert set(real["mean_coverage"]) == {"80", "95"}

    # `calibrate` redoes a synthetic model's calibration on its own family's validation windows
    capsys.readouterr()
    assert main(["calibrate", "--store", str(tmp_path), "--name", "g", "--eval-waves", "10"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (
        answer["version"] == 2 and answer["calibrated_from"] == 1 and set(answer["real_mean_coverage"]) == {"80", "95"}
    )
    second = load_model(tmp_path, "g", 2)
    assert second.calibration["source"].startswith("sines, validation split: 2000 windows of each of unit, scaled")
    assert second.calibration["quantiles"] == first.calibration["quantiles"]  # same seed, same windows
    again = second.manifest
    assert again["real_evaluation"]["series"] == real["series"]
    assert again["files"]["model.keras"] == manifest["files"]["model.keras"]


def test_calibrate_refuses_a_model_trained_on_files(tmp_path, capsys):
    from model_store import write_version
    from training.cli import main

    folder = tmp_path / "store"
    model = tmp_path / "model.keras"
    model.write_bytes(b"not read before the refusal")
    write_version(folder, "f", model, {"data": {"source": "files"}, "architecture": {}})
    assert main(["calibrate", "--store", str(folder), "--name", "f"]) == 1
    assert "trained on files; `train` calibrates such models" in capsys.readouterr().err
