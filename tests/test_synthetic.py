import json

import numpy as np
import pytest

from training.config import TrainConfig
from training.synthetic import (
    FAMILIES,
    FAMILY_WEIGHTS,
    SyntheticSource,
    cycle_positions,
    kernel_component,
    moving_average,
    parse_family_weights,
    periodic_shapes,
    season_periods,
    synthetic_series,
    synthetic_source_of,
    time_axis,
    turning_trends,
)


def lag_autocorrelation(series: np.ndarray, lag: int = 1) -> np.ndarray:
    centered = series - series.mean(axis=1, keepdims=True)
    return (centered[:, lag:] * centered[:, :-lag]).sum(axis=1) / (centered**2).sum(axis=1)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_is_finite_shaped_and_seeded(name):
    first = FAMILIES[name](np.random.default_rng(3), 40, 450)
    again = FAMILIES[name](np.random.default_rng(3), 40, 450)
    other = FAMILIES[name](np.random.default_rng(4), 40, 450)
    assert first.shape == (40, 450)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert (first.std(axis=1) > 0).all()  # no family draws a flat line


def test_reference_sines_are_unit_sines_with_reference_periods():
    series = FAMILIES["reference_sines"](np.random.default_rng(0), 50, 2000)
    assert np.abs(series).max() <= 1.0 + 1e-6
    spectrum = np.abs(np.fft.rfft(series, axis=1))
    period = 2000 / (spectrum[:, 1:].argmax(axis=1) + 1)
    assert period.min() >= 2 * np.pi * 11 * 0.95 and period.max() <= 2 * np.pi * 31 * 1.05


def test_sines_are_at_most_three_tones_no_faster_than_four_steps():
    series = FAMILIES["sines"](np.random.default_rng(1), 200, 4096) * np.hanning(4096)
    power = np.abs(np.fft.rfft(series, axis=1)) ** 2
    frequency = np.fft.rfftfreq(4096)
    assert (power[:, frequency > 0.26].sum(axis=1) / power.sum(axis=1)).max() < 1e-3
    # three peaks (each with its window leakage, +-6 bins) hold nearly all the energy
    remaining = power.copy()
    for _ in range(3):
        peak = remaining.argmax(axis=1)
        for offset in range(-6, 7):
            remaining[np.arange(200), np.clip(peak + offset, 0, power.shape[1] - 1)] = 0
    assert (remaining.sum(axis=1) / power.sum(axis=1)).max() < 0.02


def test_periodic_shapes_repeat_with_their_period():
    rng = np.random.default_rng(2)
    t = np.broadcast_to(np.arange(600.0), (30, 600))
    shapes = periodic_shapes(rng, 30, t, np.full((30, 1), 25.0))
    np.testing.assert_allclose(shapes[:, 25:], shapes[:, :-25], atol=1e-9)
    assert len({tuple(np.round(row[:25], 6)) for row in shapes}) > 20  # many different shapes and phases


def test_moving_average_keeps_window_one_and_smooths_longer_windows():
    series = np.random.default_rng(0).standard_normal((2, 100))
    smoothed = moving_average(series, np.array([1, 5]))
    np.testing.assert_allclose(smoothed[0], series[0])
    np.testing.assert_allclose(smoothed[1, 10], series[1, 6:11].mean())
    assert smoothed[1, 20:].std() < series[1, 20:].std()


def test_modulated_waves_stay_within_their_modulation_depth():
    series = FAMILIES["modulated"](np.random.default_rng(5), 300, 1000)
    assert np.abs(series).max() <= 1.9 + 1e-9
    envelope = np.array([np.abs(row.reshape(10, 100)).max(axis=1) for row in series])
    assert (envelope.max(axis=1) - envelope.min(axis=1) > 0.3).mean() > 0.2  # amplitude modulation changes it


def test_trend_season_mostly_trends():
    series = FAMILIES["trend_season"](np.random.default_rng(6), 400, 450)
    drift = series[:, -100:].mean(axis=1) - series[:, :100].mean(axis=1)
    assert (np.abs(drift) > 0.5).mean() > 0.5
    assert (drift > 0.5).mean() > 0.2 and (drift < -0.5).mean() > 0.2  # both signs


def test_turning_trends_flatten_or_reverse_on_average():
    trends = turning_trends(np.random.default_rng(12), 2000, 450)
    u = np.arange(150) - 74.5
    first, last = (trends[:, :150] @ u) / (u @ u), (trends[:, -150:] @ u) / (u @ u)
    ratio = np.abs(last) / np.maximum(np.abs(first), 1e-9)
    assert np.median(ratio) < 0.6  # slopes shrink: a damped trend is the better forecast
    assert 0.1 < (np.sign(first) != np.sign(last)).mean() < 0.5  # some reverse, most do not
    assert (ratio > 0.9).mean() > 0.1  # and some run on


def test_stochastic_series_are_persistent():
    series = FAMILIES["stochastic"](np.random.default_rng(7), 300, 450)
    assert np.median(lag_autocorrelation(series)) > 0.7


def test_cycle_positions_without_jitter_are_a_plain_period():
    period = np.array([[10.0], [7.5]])
    index, x = cycle_positions(np.random.default_rng(9), 2, 300, period, np.zeros((2, 1)))
    progress = index + x  # cycles elapsed, growing by exactly 1 / period per step
    np.testing.assert_allclose(np.diff(progress, axis=1), np.broadcast_to(1 / period, (2, 299)), atol=1e-9)
    assert (x >= 0).all() and (x < 1).all()


def test_cycle_lengths_vary_within_their_jitter():
    period = np.full((50, 1), 20.0)
    index, _ = cycle_positions(np.random.default_rng(10), 50, 600, period, np.full((50, 1), 0.15))
    lengths = np.concatenate([np.bincount(row)[1:-1] for row in index])  # whole cycles inside the series
    assert lengths.min() >= 20 * 0.7 - 1 and lengths.max() <= 20 * 1.3 + 1
    assert lengths.std() > 1.5  # they do vary


def test_cycles_are_quasi_periodic_with_varying_heights():
    series = FAMILIES["cycles"](np.random.default_rng(11), 300, 450)
    peaks = [row[1:-1][(row[1:-1] > row[:-2]) & (row[1:-1] >= row[2:])] for row in series]
    spread = np.array([p.std() / np.abs(p).mean() for p in peaks if len(p) >= 3])
    assert (spread > 0.2).mean() > 0.3 and (spread < 0.05).mean() > 0.05  # heights vary on some, not on others


def test_multi_season_cycles_repeat_only_after_the_whole_pattern():
    series = FAMILIES["multi_season"](np.random.default_rng(12), 1, 4000, 1.0)
    rng = np.random.default_rng(12)  # the same draws: the day's period and the pattern's length
    time_axis(rng, 1, 4000)
    period = int(season_periods(rng, 4.0, 60.0, (1, 1), 1.0)[0, 0])
    days = int(np.where(rng.random((1, 1)) < 0.6, 7, rng.integers(4, 13, (1, 1)))[0, 0])
    step = np.diff(series[0])  # a linear trend, if drawn, is a constant here
    whole = period * days
    assert np.abs(step[whole:] - step[:-whole]).max() < 1e-6  # the whole pattern repeats
    assert np.abs(step[period:] - step[:-period]).max() > 1e-3  # one day later it does not


def test_kernel_components_have_their_kernel_property():
    rng = np.random.default_rng(8)
    linear = kernel_component(rng, "linear", 20, 300)
    np.testing.assert_allclose(np.diff(linear, n=2, axis=1), 0, atol=1e-12)
    rbf = kernel_component(rng, "rbf", 200, 300)
    assert np.median(lag_autocorrelation(rbf)) > 0.5  # length scales of 3 steps or more: smooth
    white = kernel_component(rng, "white", 200, 300)
    assert np.abs(lag_autocorrelation(white)).max() < 0.3
    periodic = kernel_component(rng, "periodic", 200, 2000)
    assert np.isfinite(periodic).all() and np.median(lag_autocorrelation(periodic)) > 0.3


def test_family_weights_choose_the_families():
    series, family = synthetic_series(np.random.default_rng(9), 50, 200, {"sines": 1.0, "kernel": 0.0})
    assert (family == 0).all()
    np.testing.assert_allclose(series.mean(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(series.std(axis=1), 1, atol=1e-6)
    _, family = synthetic_series(np.random.default_rng(9), 4000, 50)
    shares = np.bincount(family, minlength=len(FAMILY_WEIGHTS)) / 4000
    np.testing.assert_allclose(shares, list(FAMILY_WEIGHTS.values()), atol=0.03)


def test_family_mix_from_the_command_line():
    assert parse_family_weights("sines=0.3, kernel=0.1") == {"sines": 0.3, "kernel": 0.1}
    for bad, named in [
        ("sine=1", "unknown family 'sine'"),
        ("sines=-1", "weight >= 0"),
        ("sines", "weight >= 0"),
        ("sines=0", "positive weight"),
    ]:
        with pytest.raises(ValueError, match=named):
            parse_family_weights(bad)


def test_train_takes_a_family_mix_only_with_synthetic(capsys):
    from training.cli import parse_args, training_source

    args = parse_args(["train", "--store", "s", "--name", "m", "--synthetic", "--families", "sines=3,shapes=1"])
    source = training_source(args, TrainConfig())
    assert dict(source.weights) == {"sines": 3.0, "shapes": 1.0}
    assert source.describe()["families"] == {"sines": 3.0, "shapes": 1.0}
    assert dict(
        training_source(parse_args(["train", "--store", "s", "--name", "m", "--synthetic"]), TrainConfig()).weights
    ) == (FAMILY_WEIGHTS)
    for argv, named in [
        (["--families", "sines=1"], "--families needs --synthetic"),
        (["--synthetic", "--families", "waves=1"], "unknown family 'waves'"),
        (["--integer-periods", "0.5"], "--integer-periods needs --synthetic"),
        (["--synthetic", "--integer-periods", "2"], "not a fraction"),
        (["--synthetic", "--integer-periods", "half"], "not a fraction"),
    ]:
        with pytest.raises(SystemExit):
            parse_args(["train", "--store", "s", "--name", "m", *argv])
        assert named in capsys.readouterr().err


def test_source_batches_are_seeded_and_shaped():
    source = SyntheticSource(features=5, max_observed=512)
    observed, target = source.batch(np.random.default_rng(10), 16, 200, 150)
    again, _ = source.batch(np.random.default_rng(10), 16, 200, 150)
    assert observed.shape == (16, 200, 5) and target.shape == (16, 150, 5)
    assert observed.dtype == target.dtype == np.float32
    assert np.isfinite(observed).all() and np.isfinite(target).all()
    np.testing.assert_array_equal(observed, again)
    assert source.observed_range() == (60, 512)


def test_source_validation_sets_and_description():
    config = TrainConfig(validation_waves=8)
    source = SyntheticSource(features=5)
    sets = source.validation_sets(config)
    assert [pair[0].shape for pair in sets] == [(8, 225, 5), (8, 100, 5), (8, 180, 5), (8, 300, 5)]
    assert all(pair[1].shape == (8, 150, 5) for pair in sets)
    for first, second in zip(sets, source.validation_sets(config), strict=True):
        np.testing.assert_array_equal(first[0], second[0])
    description = json.loads(json.dumps(source.describe()))
    assert description["source"] == "synthetic"
    assert description["families"] == FAMILY_WEIGHTS


def test_calibration_sets_span_the_observed_lengths():
    config = TrainConfig(validation_waves=40)
    sets = SyntheticSource(2, min_observed=60, max_observed=300).calibration_sets(config)
    assert [seen.shape[1] for seen, _ in sets] == [60, 80, 110, 150, 210, 300]
    assert all(target.shape == (40, 150, 2) for _, target in sets)
    again = SyntheticSource(2, min_observed=60, max_observed=300).calibration_sets(config)
    np.testing.assert_array_equal(sets[0][0], again[0][0])  # seeded
    assert not np.allclose(sets[0][0], SyntheticSource(2).validation_sets(config)[1][0][:, :60])  # not validation
    narrow = SyntheticSource(2, min_observed=100, max_observed=200).calibration_sets(config)
    assert [seen.shape[1] for seen, _ in narrow] == [100, 110, 150, 200]


def test_integer_periods_round_that_share_of_seasons_and_leave_the_stream_alone_at_zero():
    plain = np.random.default_rng(3).uniform(np.log(4), np.log(400), 1000)
    np.testing.assert_array_equal(season_periods(np.random.default_rng(3), 4, 400, 1000, 0.0), np.exp(plain))
    whole = season_periods(np.random.default_rng(3), 4, 400, 1000, 1.0)
    assert (whole == np.round(whole)).all() and whole.min() >= 4 and whole.max() <= 400
    half = season_periods(np.random.default_rng(3), 4, 400, 4000, 0.5)
    assert 0.45 < np.mean(half == np.round(half)) < 0.55
    # the seeded families draw exactly as before when no period is rounded (below)


# Each family's first three values from default_rng(4) (3 series of 450 steps) and the generator's next draw after
# it, with integer_periods=0. For the families older than the option, these are the values the code before it drew
# (commit bbc8641^); turning_trend and cycles came later. A seeded run, and the synthetic validation windows that
# `calibrate` regenerates from a manifest's seed, stay as they were.
STREAM_BEFORE_INTEGER_PERIODS = {
    "reference_sines": ([0.920426428318, 0.937886595726, 0.953247308731], 0.430496277729),
    "sines": ([-1.23975227791, -1.48817520876, -0.699791493279], 0.939107053424),
    "shapes": ([0.267519822424, 0.148830617922, 0.0301414134208], 0.807047936135),
    "modulated": ([0.747660087431, 0.947148920321, 0.186721420689], 0.497867598785),
    "trend_season": ([-0.21002759942, -0.211597565415, -0.21316753141], 0.481008493776),
    "turning_trend": ([-0.0597836898827, -0.0539929740722, -0.0482154367124], 0.415318043026),
    "stochastic": ([-0.618774606956, -0.666300747629, -0.531965715134], 0.015918955502),
    "kernel": ([0.513638900654, 0.399712960172, 0.454478174263], 0.604532112123),
    "cycles": ([0.0518300910622, 0.0272001815867, 0.00253843313694], 0.63391472796),
    "multi_season": ([-1.45322825179789, -0.823758148939965, -0.825199429154307], 0.885394871111),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_no_integer_periods_leave_the_seeded_stream_as_it_was(name):
    first, following = STREAM_BEFORE_INTEGER_PERIODS[name]
    rng = np.random.default_rng(4)
    series = FAMILIES[name](rng, 3, 450, 0.0)
    np.testing.assert_allclose(series[0, :3], first, rtol=1e-9, atol=1e-12)
    assert rng.random() == pytest.approx(following, rel=1e-9)  # no extra draw either
    if name != "reference_sines":  # the only family without seasons to round: the others draw which to round
        rounding = np.random.default_rng(4)
        FAMILIES[name](rounding, 3, 450, 1.0)
        assert rounding.random() != pytest.approx(following, rel=1e-9)


def repeats_after_whole_steps(row: np.ndarray) -> bool:
    """Whether the row (past its first 400 steps, where smoothing windows are still short) repeats itself after
    some whole number of steps in 6..400."""
    tail = row[400:]
    return any(np.abs(tail[p:] - tail[:-p]).max() < 1e-6 for p in range(6, 401))


def test_shapes_with_integer_periods_repeat_after_a_whole_number_of_steps():
    assert all(repeats_after_whole_steps(row) for row in FAMILIES["shapes"](np.random.default_rng(5), 50, 1400, 1.0))
    real = FAMILIES["shapes"](np.random.default_rng(5), 50, 1400, 0.0)
    assert sum(repeats_after_whole_steps(row) for row in real) <= 5  # periods drawn as real numbers rarely are whole


def test_integer_periods_reach_the_source_its_manifest_and_back():
    from training.cli import parse_args, training_source

    args = parse_args(["train", "--store", "s", "--name", "m", "--synthetic", "--integer-periods", "0.5"])
    source = training_source(args, TrainConfig())
    assert source.integer_periods == 0.5 and source.describe()["integer_periods"] == 0.5
    assert synthetic_source_of(source.describe(), 5) == source
    older = {k: v for k, v in source.describe().items() if k != "integer_periods"}  # written before the option
    assert synthetic_source_of(older, 5).integer_periods == 0.0
