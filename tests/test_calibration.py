"""Prediction intervals: the conformal quantile, the fitted bands on known error laws, the CLI and the default model."""

import json
import math
import shutil

import numpy as np
import pytest

from model_store import list_versions, load_manifest, resolve_version, verify_version
from training.calibration import (
    BACKTEST_MIN_STEPS,
    BACKTEST_STEPS_BACK,
    START_TERMS,
    Calibration,
    CalibrationError,
    backtest_origins,
    bands,
    conformal_quantile,
    fit,
    parse_rows,
    rows,
)
from training.cli import main
from training.coverage import coverage_report, series_coverage
from training.loading import load_model

HORIZON = 20


def test_conformal_quantile_is_the_finite_sample_corrected_order_statistic():
    scores = np.arange(1.0, 101.0)[:, None]  # 1..100
    assert conformal_quantile(scores, 0.8)[0] == math.ceil(101 * 0.8)  # the 81st smallest, not the 80th
    assert conformal_quantile(scores, 0.5)[0] == 51
    with pytest.raises(CalibrationError):
        conformal_quantile(scores, 0.995)  # ceil(101 * 0.995) = 101 > 100 scores


def windows(rng, n, steps, features=3, noise=0.0):
    """Sine waves of random amplitude and offset, and a 'model' whose error grows with the step and with the
    wave's amplitude: prediction = truth + N(0, (0.02 + 0.01 step) amplitude)."""
    t = np.arange(steps + HORIZON)[None, :, None]
    amplitude = 10 ** rng.uniform(-2, 3, (n, 1, features))
    wave = np.sin(t / rng.uniform(11, 31, (n, 1, features)) + rng.random((n, 1, features))) * amplitude
    wave = wave + rng.uniform(-100, 100, (n, 1, features))
    observed = wave[:, :steps] + noise * amplitude * rng.standard_normal((n, steps, features))
    target = wave[:, steps:]
    spread = (0.02 + 0.01 * np.arange(1, HORIZON + 1))[None, :, None] * amplitude
    prediction = target + spread * rng.standard_normal(target.shape)
    return observed, target, prediction, amplitude


def synthetic_sets(seed, count):
    rng = np.random.default_rng(seed)
    data = [windows(rng, 200, steps, noise=noise) for steps in (60, 90, 150, 300) for noise in (0.0, 0.05)]
    return [[d[i] for d in data] for i in range(4)][:count]


@pytest.fixture(scope="module")
def record():
    observed, target, prediction = synthetic_sets(0, 3)
    return Calibration.from_record(fit(prediction, observed, target, context=300, pooled=True))


def test_bands_cover_fresh_windows_at_their_level_and_widen_with_the_step(record):
    observed, target, prediction, amplitude = synthetic_sets(1, 4)
    report = coverage_report(prediction, observed, target, amplitude, [[]] * 8, record, levels=(50, 80, 95))
    for level in (50, 80, 95):
        assert abs(report[f"{level}"]["coverage"] - level / 100) < 0.03
    lower, upper = bands(prediction[0], observed[0], record, [80])[80]
    width = (upper - lower).mean(axis=(0, 2))
    assert width[-1] > 3 * width[0]  # the error law grows 6x over the horizon


def test_bands_are_nested_hold_the_prediction_and_scale_with_the_wave(record):
    observed, _, prediction = synthetic_sets(2, 3)
    seen, predicted = observed[3], prediction[3]
    result = bands(predicted, seen, record, [50, 80, 95, 99.9])
    assert np.all(result[50][0] <= predicted) and np.all(predicted <= result[50][1])
    for narrow, wide in ((50, 80), (80, 95), (95, 99.9)):
        assert np.all(result[wide][0] <= result[narrow][0]) and np.all(result[narrow][1] <= result[wide][1])
    scaled = bands(predicted * 1000 + 5, seen * 1000 + 5, record, [80])[80]
    np.testing.assert_allclose(scaled[1] - scaled[0], 1000 * (result[80][1] - result[80][0]), rtol=1e-6)
    short = bands(predicted[:, :5], seen, record, [80])[80]
    np.testing.assert_allclose(short[0], result[80][0][:, :5])


def test_one_series_coverage_counts_only_known_values(record):
    observed, target, prediction, _ = synthetic_sets(1, 4)
    seen, truth, predicted = observed[5][:, :, 0], target[5][:, :, 0], prediction[5][:, :, 0]  # 150 steps, noisy
    report = series_coverage(predicted, seen, truth, [], record)
    assert abs(report["80"]["coverage"] - 0.8) < 0.05 and abs(report["95"]["coverage"] - 0.95) < 0.03
    assert 0 < report["80"]["width_over_mae"] < report["95"]["width_over_mae"]
    assert set(report["80"]["per_horizon"]) == {"1-10", "11-50"}  # a 20-step horizon
    lower, upper = bands(predicted[..., None], seen[..., None], record, [80])[80]
    inside = (lower[..., 0] <= truth) & (truth <= upper[..., 0])
    assert report["80"]["per_horizon"]["1-10"] == pytest.approx(inside[:, :10].mean(), abs=1e-4)
    known = np.zeros(truth.shape, bool)
    known[:, :5] = True  # only the first steps are known: their narrow bands and small errors count alone
    gappy = np.where(known, truth, np.nan)
    first = series_coverage(predicted[:, :5], seen, truth[:, :5], [], record)
    assert series_coverage(predicted, seen, gappy, [], record, known=known) == first


def test_a_requested_level_uses_the_next_stored_level_up(record):
    levels = record.levels
    assert levels[record.level_index(80)] == 80
    assert levels[record.level_index(80.2)] == 81
    assert levels[record.level_index(0.5)] == 1
    assert levels[record.level_index(99.99)] == levels[-1] >= 99.5


def phase_and_length_windows(rng, n, steps, features=3):
    """Sines starting anywhere in their cycle whose 'model' errs exp(0.7 sin(start phase)) times more, and,
    below 100 observed steps, with a heavy tail (mostly small errors, one in ten large); returns the windows and
    whether each series starts in the upper half of its cycle."""
    t = np.arange(steps + HORIZON)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, features))
    amplitude = 10 ** rng.uniform(-2, 3, (n, 1, features))
    wave = np.sin(t / rng.uniform(5, 10, (n, 1, features)) + phase) * amplitude + rng.uniform(-100, 100, (n, 1, 1))
    observed, target = wave[:, :steps], wave[:, steps:]
    spread = (0.02 + 0.01 * np.arange(1, HORIZON + 1))[None, :, None] * amplitude * np.exp(0.7 * np.sin(phase))
    noise = rng.standard_normal(target.shape)
    if steps < 100:
        noise *= np.where(rng.random(target.shape) < 0.1, 6.0, 0.5)
    upper_half = np.broadcast_to(np.sin(phase) > 0, target.shape)
    return observed, target, target + spread * noise, upper_half


def test_bands_follow_where_the_window_starts_and_short_windows_heavier_tails():
    """Coverage holds within each half of the start phase and in each length group, not only on average: the
    start terms and the length groups carry it (without them the halves miss by 10+ points)."""
    rng = np.random.default_rng(4)
    sets = [phase_and_length_windows(rng, 400, steps) for steps in (60, 70, 80, 90, 110, 150, 220, 300)]
    observed, target, prediction, _ = zip(*sets, strict=True)
    calibration = Calibration.from_record(fit(prediction, observed, target, context=300, pooled=True))
    assert calibration.start_terms and calibration.length_edges == (100,)
    for steps in (65, 120, 200):
        seen, truth, predicted, upper_half = phase_and_length_windows(rng, 600, steps)
        for level, (lower, upper) in bands(predicted, seen, calibration, [80, 95]).items():
            inside = (lower <= truth) & (truth <= upper)
            for half in (upper_half, ~upper_half):
                assert abs(inside[half].mean() - level / 100) < 0.035, (steps, level)


# Upper ends of the bands around a zero prediction of one noisy 120-step sine (`fixed_wave`), at steps 1, 50 and
# 150 of feature 0 (80 %) and step 150 of feature 4 (95 %), computed from the records as they sat inside the
# manifests of general/8 and wave/9 before the calibration moved into calibration.json.
BANDS_BEFORE_THE_MOVE = {
    ("wave", 9): (0.14987212744913062, 0.11859198082608195, 0.2915267289921013, 0.5432411691818507),
}


def fixed_wave() -> np.ndarray:
    t = np.arange(120)[:, None]
    return (np.sin(t / 9 + np.arange(5)) * 3 + 1 + 0.05 * np.random.default_rng(0).standard_normal((120, 5)))[None]


@pytest.mark.parametrize(("name", "version"), list(BANDS_BEFORE_THE_MOVE))
def test_the_committed_calibrations_give_the_bands_they_gave_inside_the_manifest(default_store, name, version):
    """The committed versions' calibration.json (checksummed in the manifest) holds the record unchanged;
    wave/9's is from before the season term and the coefficient sets, and is read the way it was fitted."""
    loaded = load_model(default_store, name, version)
    calibration = Calibration.from_record(loaded.calibration)
    assert calibration.season_term == (name == "general") and calibration.start_terms
    result = bands(np.zeros((1, 150, 5)), fixed_wave(), calibration, [80, 95])
    upper80, upper95 = result[80][1][0], result[95][1][0]
    got = (upper80[0, 0], upper80[49, 0], upper80[149, 0], upper95[149, 4])
    np.testing.assert_allclose(got, BANDS_BEFORE_THE_MOVE[name, version], rtol=1e-6)
    assert "calibration" not in loaded.manifest and set(loaded.manifest["files"]) == {"model.keras", "calibration.json"}


def test_records_from_before_the_start_terms_are_read_the_way_they_were_fitted():
    """Records published before the start terms (wave/4 to wave/7 and general/2, in git history) have no start
    coefficients: they are read without those terms, and every coefficient meets its own design term."""
    observed, target, prediction = synthetic_sets(5, 3)
    full = fit(prediction, observed, target, context=300, pooled=True)
    design = full["design"]
    keep = [i for i, term in enumerate(design) if term not in START_TERMS]
    groups, horizon = full["coefficient_groups"], full["quantile_shape"][2]
    coefficients = parse_rows(full["coefficients"]).reshape(groups, len(design), horizon)[:, keep]
    old = {**full, "design": [design[i] for i in keep], "coefficients": rows(coefficients.reshape(-1, horizon))}
    calibration = Calibration.from_record(old)
    assert not calibration.start_terms and calibration.coefficients.shape[1] == len(keep) == len(design) - 4
    lower, upper = bands(prediction[6], observed[6], calibration, [80])[80]
    assert np.all(lower < prediction[6]) and np.all(prediction[6] < upper) and np.all(np.isfinite(upper))
    assert not np.allclose(upper, bands(prediction[6], observed[6], Calibration.from_record(full), [80])[80][1])


def repeating_or_wandering_windows(rng, n, steps):
    """Half sines (they repeat themselves) whose 'model' errs by 1 % of the amplitude, half smooth random walks
    (they do not) whose 'model' errs by 20 %; both equally smooth, so only the repetition tells them apart."""
    t = np.arange(steps + HORIZON)[None, :, None]
    sines = np.sin(2 * np.pi * t / rng.integers(12, 40, (n, 1, 1)) + rng.uniform(0, 2 * np.pi, (n, 1, 1)))
    walks = np.cumsum(np.cumsum(rng.standard_normal((n, steps + HORIZON, 1)), axis=1), axis=1)
    walks = (walks - walks.mean(axis=1, keepdims=True)) / walks.std(axis=1, keepdims=True)
    repeats = (np.arange(n) < n // 2)[:, None, None]
    wave = np.where(repeats, sines, walks)
    target = wave[:, steps:]
    prediction = target + np.where(repeats, 0.01, 0.2) * rng.standard_normal(target.shape)
    return wave[:, :steps], target, prediction, np.broadcast_to(repeats, target.shape)


def test_bands_narrow_on_series_that_repeat_themselves():
    """Sines the model completes well get their own narrow bands beside series it completes badly: coverage
    holds in each half (one set of coefficients and quantiles for both covers the sines ~100 %)."""
    rng = np.random.default_rng(6)
    sets = [repeating_or_wandering_windows(rng, 800, steps) for steps in (60, 75, 100, 150, 225, 300)]
    observed, target, prediction, _ = zip(*sets, strict=True)
    calibration = Calibration.from_record(fit(prediction, observed, target, context=300, pooled=True))
    assert calibration.season_term and calibration.coefficients.shape[0] == 12  # 3 noise x 4 repeat groups
    for steps in (120, 200):
        seen, truth, predicted, repeats = repeating_or_wandering_windows(rng, 800, steps)
        for level, (lower, upper) in bands(predicted, seen, calibration, [80, 95]).items():
            inside = (lower <= truth) & (truth <= upper)
            for half in (repeats, ~repeats):
                assert abs(inside[half].mean() - level / 100) < 0.04, (steps, level)
            assert np.median((upper - lower)[repeats]) < 0.2 * np.median((upper - lower)[~repeats])


def hard_or_easy_windows(rng, n, steps):
    """Alike sines (same periods, amplitudes, noise) whose 'model' errs 1 % of the amplitude on half of them and
    8 % on the other half, on the future as on the wave's own past: only its backtests tell the halves apart.
    Returns the windows, the backtests from the calibration's origins, and which series are hard."""
    t = np.arange(steps + HORIZON)[None, :, None]
    wave = np.sin(2 * np.pi * t / rng.uniform(15, 40, (n, 1, 1)) + rng.uniform(0, 2 * np.pi, (n, 1, 1)))
    hard = (np.arange(n) % 2 == 1)[:, None, None]
    spread = np.where(hard, 0.08, 0.01)

    def model(origin: int) -> np.ndarray:  # completes the wave from `origin`: the truth after it, erring as told
        truth = wave[:, origin : origin + HORIZON]
        return truth + spread * rng.standard_normal(truth.shape)

    origins = backtest_origins(steps, BACKTEST_STEPS_BACK, BACKTEST_MIN_STEPS)
    backtests = [model(origin) for origin in origins]
    return wave[:, :steps], wave[:, steps:], model(steps), backtests, np.broadcast_to(hard, (n, HORIZON, 1))


def test_bands_follow_how_well_the_model_completed_the_wave_s_own_past():
    """Series alike in every descriptor but how well the model completes them: with the backtest terms and
    groups the bands hold in each half and are several times narrower on the easy half; without them, one band
    for both covers the easy half almost always and the hard half far too rarely."""
    rng = np.random.default_rng(7)
    sets = [hard_or_easy_windows(rng, 600, steps) for steps in (120, 150, 200, 300)]
    observed, target, prediction, backtests, _ = zip(*sets, strict=True)
    with_backtests = Calibration.from_record(fit(prediction, observed, target, 300, True, backtests=backtests))
    without = Calibration.from_record(fit(prediction, observed, target, 300, True))
    assert with_backtests.backtest_steps_back == BACKTEST_STEPS_BACK and not without.backtest_steps_back
    seen, truth, predicted, tried, hard = hard_or_easy_windows(rng, 1000, 250)
    assert len(with_backtests.backtest_inputs(seen)) == len(tried) == 3
    for level in (80, 95):
        lower, upper = bands(predicted, seen, with_backtests, [level], tried)[level]
        inside = (lower <= truth) & (truth <= upper)
        for half in (hard, ~hard):
            assert abs(inside[half].mean() - level / 100) < 0.04, level
        assert np.median((upper - lower)[~hard]) < 0.25 * np.median((upper - lower)[hard])
        lower, upper = bands(predicted, seen, without, [level])[level]
        inside = (lower <= truth) & (truth <= upper)
        assert inside[~hard].mean() > 0.99 and inside[hard].mean() < level / 100 - 0.02
    with pytest.raises(ValueError, match="3 backtests needed"):
        bands(predicted, seen, with_backtests, [80])


def test_few_windows_store_only_the_levels_they_can_bound():
    rng = np.random.default_rng(3)
    observed, target, prediction, _ = windows(rng, 60, 100)
    small = fit([prediction], [observed], [target], context=300, pooled=True)  # 30 scored windows x 3 features
    assert small["levels"][-1] < 99 and 80 in small["levels"]
    per_feature = fit([prediction], [observed], [target], context=300, pooled=False)
    assert Calibration.from_record(per_feature).quantiles.shape[-1] == 3


def test_calibrate_publishes_a_new_version_with_the_same_weights(tiny_store, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)  # the session's tiny store keeps its single version
    before = list_versions(store, "tiny")
    args = ["calibrate", "--store", str(store), "--name", "tiny", "--version", "1", "--waves", "60"]
    assert main([*args, "--eval-waves", "20"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["version"] == before[-1] + 1 and answer["calibrated_from"] == 1
    old, new = load_manifest(store, "tiny", 1), load_manifest(store, "tiny", answer["version"])
    assert new["files"]["model.keras"] == old["files"]["model.keras"] and new["calibrated_from"]["version"] == 1
    assert load_model(store, "tiny", answer["version"]).calibration["windows"] == 300
    assert new["training"] == old["training"]
    assert new["calibrated_from"]["command"].startswith("python -m training calibrate --store store --name tiny")
    assert set(answer["intervals"]["unit"]) == {"80", "95"}
    assert main(["evaluate", "--store", str(store), "--name", "tiny", "--version", str(answer["version"])]) == 0
    report = json.loads(capsys.readouterr().out)
    coverage = report["variants"]["unit"]["intervals"]["80"]
    assert set(coverage["per_horizon"]) == {"1-10", "11-50", "51-100", "101-150"}
    assert 0 < coverage["coverage"] <= 1 and coverage["width"] > 0


def test_training_publishes_a_calibrated_version(tiny_store):
    loaded = load_model(tiny_store, "tiny", 1)
    assert {80, 95} <= set(loaded.calibration["levels"])
    assert "intervals" in loaded.manifest["evaluation"]["variants"]["noisy"]


@pytest.mark.parametrize("name", ["wave", "general"])
def test_the_committed_models_are_calibrated_and_meet_the_coverage_and_width_targets(default_store, name):
    """Issue 15's targets, on the held-out test sets as published: coverage within 3 points of each level on
    every sine set, the 80 % band at most 4x the MAE wide (`general` since version 8)."""
    version = resolve_version(default_store, name)
    _, manifest = verify_version(default_store, name, version)
    assert {80, 95} <= set(json.loads((default_store / name / str(version) / "calibration.json").read_text())["levels"])
    assert len(manifest["evaluation"]["variants"]) == 5
    for test_set, variant in manifest["evaluation"]["variants"].items():
        for level in (80, 95):
            assert abs(variant["intervals"][f"{level}"]["coverage"] - level / 100) <= 0.03, (test_set, level)
        assert variant["intervals"]["80"]["width_over_mae"] <= 4


def test_the_general_model_bands_hold_on_real_series_it_never_saw(default_store):
    """Zero-shot, as published: issue 27's targets on the project's eight recorded series: no series below 60 % at
    the 80 % level, the mean coverage within 5 points of both levels (`general/12`: 83.6 % / 96.2 %, `general/11`
    84.1 % / 97.8 %; `general/10` over-covered at 86.2 %, docs/intervals.md)."""
    manifest = load_manifest(default_store, "general", resolve_version(default_store, "general"))
    coverage = manifest["real_evaluation"]["mean_coverage"]
    per_series = {
        name: entry["intervals"]["80"]["coverage"] for name, entry in manifest["real_evaluation"]["series"].items()
    }
    assert min(per_series.values()) >= 0.60, per_series
    assert abs(coverage["95"] - 0.95) <= 0.05 and abs(coverage["80"] - 0.80) <= 0.05, coverage
