"""A season look back over more steps than the encoder reads (`--history`): a season longer than half the context
is found and repeated, the answers do not depend on the length bucket, a model starts from a shorter one's
weights, training records it, the real-series evaluation gives it the steps before each window."""

import shutil
from dataclasses import replace

import keras
import numpy as np
import pytest

from training.baselines import seasonal_naive
from training.cli import main
from training.config import QUICK
from training.loading import load_model
from training.model import build_core, build_model, copy_core_weights
from training.predict import Predictor
from training.real_series import histories, windows

SHORT = replace(QUICK.model, units=4, seasonal_lag=True)
LONG = replace(SHORT, history=1200)


def head_repeats_the_lag(model: keras.Model) -> keras.Model:
    """The decoder's head set to pass the value one season back, and nothing else."""
    cell = model.get_layer("seq2seq").get_layer("decoder").cell
    kernel, bias = cell.head.get_weights()
    kernel[:] = 0.0
    kernel[-1] = 1.0
    cell.head.set_weights([kernel, np.zeros_like(bias)])
    return model


def weekly_wave(steps: int, period: int = 336) -> np.ndarray:
    """A season of `period` steps with no shorter one inside it (a random walk's shape, closed into a loop,
    repeated), five features."""
    walk = np.cumsum(np.random.default_rng(7).normal(size=period))
    shape = walk - np.linspace(0, walk[-1], period, endpoint=False)  # ends where it starts
    season = 3.0 * np.tile(shape, steps // period + 1)[:steps]
    return np.stack([40 + season, -season, 1e3 + season / 10, season, 5 * season], axis=1)[None].astype("float32")


def test_the_model_reads_more_steps_for_the_season_than_for_its_encoder():
    assert LONG.reads == 1200 and SHORT.reads == SHORT.max_context == 300
    assert replace(LONG, seasonal_lag=False).reads == 300  # no look back: nothing more to read
    model = build_model(LONG)
    assert model.get_layer("crop_context").max_steps == 1200 and model.get_layer("crop_encoder").max_steps == 300
    assert len(model.get_layer("seq2seq").inputs) == 3 and len(build_model(SHORT).get_layer("seq2seq").inputs) == 2


def test_a_week_longer_than_half_the_context_is_found_and_repeated():
    """A weekly cycle of 336 steps: 1000 observed steps hold it twice, 300 do not hold it once."""
    wave = weekly_wave(1000)
    expected = seasonal_naive(wave, 150, 336)
    long = head_repeats_the_lag(build_model(LONG))
    np.testing.assert_allclose(np.asarray(long(wave)), expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(Predictor(long)(wave), expected, rtol=1e-4, atol=1e-3)  # the compiled path
    short = head_repeats_the_lag(build_model(SHORT))
    assert np.abs(np.asarray(short(wave)) - expected).max() > 1.0  # one day back at best, not one week


def test_a_long_history_model_answers_the_same_in_every_bucket():
    keras.utils.set_random_seed(5)
    model = build_model(LONG)
    bucketed, whole = Predictor(model, max_batch=4), Predictor(model, max_batch=4, lengths=[1200])
    assert bucketed.lengths == (108, 204, 300, 1200) and whole.lengths == (1200,)
    rng = np.random.default_rng(0)
    for steps in (60, 107, 108, 205, 300, 301, 700, 1199, 1200, 1500):
        t = np.arange(steps)[:, None]
        wave = np.sin(2 * np.pi * t / rng.uniform(4, 400, 3)) + 0.3 * rng.normal(size=(steps, 3)) + 0.01 * t
        wave = wave.astype(np.float32)
        np.testing.assert_allclose(bucketed([wave])[0], whole([wave])[0], rtol=1e-5, atol=1e-5, err_msg=f"{steps}")


def test_a_long_history_model_starts_from_a_shorter_ones_weights_and_answers_alike_on_short_waves():
    keras.utils.set_random_seed(6)
    short = build_model(SHORT)
    core = build_core(LONG)
    copy_core_weights(short.get_layer("seq2seq"), core)  # the look back has no weights: nothing is added
    long = build_model(LONG, core)
    assert long.count_params() == short.count_params()
    waves = np.random.default_rng(2).normal(size=(3, 250, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(long(waves)), np.asarray(short(waves)), rtol=1e-4, atol=1e-4)


def test_a_long_history_model_saves_loads_and_exports(tmp_path):
    from training.export import check_waves, load_signature, max_difference, write_saved_model

    model = build_model(LONG)
    model.save(tmp_path / "long.keras")
    loaded = keras.saving.load_model(tmp_path / "long.keras", safe_mode=True)
    wave = weekly_wave(900)
    np.testing.assert_allclose(np.asarray(loaded(wave)), np.asarray(model(wave)), rtol=1e-5, atol=1e-5)
    write_saved_model(model, tmp_path / "saved")
    signature = load_signature(tmp_path / "saved")
    for steps in (64, 700):
        assert max_difference(model, signature, check_waves(LONG.features, steps=steps)) < 1e-4


@pytest.fixture(scope="module")
def history_store(tiny_store, tmp_path_factory):
    """`tiny` 1 (trained by the CLI); 2: it continued for one step with --history 600; 3: version 2 whose head
    repeats the value one season back (no calibration)."""
    from model_store import write_version

    store = tmp_path_factory.mktemp("history") / "store"
    shutil.copytree(tiny_store, store)
    args = ["train", "--store", str(store), "--name", "tiny", "--quick", "--max-steps", "1", "--eval-waves", "10"]
    assert main([*args, "--init-from", "1", "--history", "600", "--curriculum-steps", "0"]) == 0
    repeater = head_repeats_the_lag(load_model(store, "tiny", 2).model)
    path = tmp_path_factory.mktemp("repeater") / "model.keras"
    repeater.save(path)
    manifest = load_model(store, "tiny", 2).manifest
    assert (
        write_version(store, "tiny", path, {k: v for k, v in manifest.items() if k not in ("name", "version", "files")})
        == 3
    )
    return store


def test_train_history_keeps_the_initial_weights_and_records_it(history_store):
    store = history_store
    parent, child = load_model(store, "tiny", 1), load_model(store, "tiny", 2)
    architecture = child.manifest["architecture"]
    assert architecture["history"] == 600 and architecture["seasonal_lag"] is True
    assert "its look back: the last 600" in architecture["description"]
    assert child.model.get_layer("crop_context").max_steps == 600
    assert child.model.count_params() == parent.model.count_params() + 2 * 4 * QUICK.model.units + 1  # the lag input


def test_the_real_evaluation_gives_a_long_reader_the_steps_before_the_same_windows():
    values = np.arange(2000, dtype=float)
    observed, _ = windows(values, 300, 150, 48)
    longer = histories(values, 300, 150, 48, 1200)
    assert len(longer) == len(observed)
    for row, history in zip(observed, longer, strict=True):
        np.testing.assert_array_equal(history[-300:], row)  # ends where the window's observed part ends
    assert max(map(len, longer)) == 1200 and min(map(len, longer)) == 300  # the first window starts the series


@pytest.mark.parametrize("flag", ["--history"])
def test_history_needs_a_number_of_steps(flag, capsys):
    with pytest.raises(SystemExit):
        main(["train", flag, "many"])
    assert "invalid int value" in capsys.readouterr().err


def test_half_the_training_batches_of_a_long_reader_stay_within_the_encoders_context():
    from training.train import observed_length

    rng = np.random.default_rng(0)
    lengths = np.array([observed_length(rng, 60, 1200, 300) for _ in range(2000)])
    assert lengths.min() >= 60 and lengths.max() <= 1200 and lengths.max() > 1100
    assert 0.45 < np.mean(lengths <= 300) < 0.55
    ours, plain = np.random.default_rng(1), np.random.default_rng(1)  # a model reading its context: as before
    assert [observed_length(ours, 60, 300, 300) for _ in range(50)] == [int(plain.integers(60, 301)) for _ in range(50)]


@pytest.mark.anyio
async def test_the_service_completes_long_waves_with_a_history_model_and_its_bands(history_store):
    """Over HTTP (in process): the model says it reads 600 steps; a 900-step wave is answered as the model
    answers its last 600, with bands, and a short wave too; the repeater (version 3) repeats a 240-step season
    that the 600 steps hold twice and the encoder's 300 not."""
    from tests.conftest import started_app

    model = load_model(history_store, "tiny", 2).model
    wave = weekly_wave(900, period=240)[0]
    async with started_app(store=history_store, model_name="tiny", model_version="2") as (_, http):
        meta = (await http.get("/model/summary")).json()
        assert meta["version"] == "2" and meta["input_length"]["context"] == 600
        for steps in (900, 120):
            body = {"wave": wave[-steps:].tolist(), "horizon": 150, "level": [80]}
            response = await http.post("/predict", json=body)
            assert response.status_code == 200, response.text
            answer = response.json()
            expected = np.asarray(model(wave[None, -min(steps, 600) :]))[0]
            np.testing.assert_allclose(answer["prediction"], expected, rtol=1e-4, atol=1e-3)
            lower, upper = (np.asarray(answer["intervals"]["80"][side]) for side in ("lower", "upper"))
            assert np.all(lower <= np.asarray(answer["prediction"]) + 1e-6) and np.all(lower < upper)
    async with started_app(store=history_store, model_name="tiny", model_version="3") as (_, http):
        response = await http.post("/predict", json={"wave": wave.tolist(), "horizon": 150})
        assert response.status_code == 200, response.text
        expected = seasonal_naive(wave[None], 150, 240)[0]
        np.testing.assert_allclose(response.json()["prediction"], expected, rtol=1e-4, atol=1e-2)


def test_long_synthetic_windows_are_not_flat_where_the_model_normalizes():
    """Windows up to 1200 steps for a model that normalizes by its last 300: a flat stretch there would scale the
    target up a million times (it did, before the check looked at those steps)."""
    from training.synthetic import SyntheticSource

    mix = {"shapes": 0.4, "kernel": 0.2, "multi_season": 0.2, "trend_season": 0.2}
    source = SyntheticSource(5, max_observed=1200, weights=tuple(mix.items()), integer_periods=0.5, context=300)
    rng = np.random.default_rng(1)
    for _ in range(100):
        observed, target = source.batch(rng, 128, int(rng.integers(301, 1201)), 150)
        recent = observed[:, -300:]
        scale = recent.std(axis=1, keepdims=True) + 1e-6 * np.abs(recent.mean(axis=1, keepdims=True)) + 1e-12
        assert np.abs((target - recent.mean(axis=1, keepdims=True)) / scale).max() < 100


def test_the_gap_limit_holds_over_the_encoder_and_over_the_whole_look_back():
    """A model reading 1200 steps, its encoder the last 300: the limit holds over both windows (and the wave)."""
    from training.gaps import GapError, fill_observed
    from training.predict import Predictor

    assert Predictor(build_model(LONG)).windows == (300, 1200)
    wave = np.sin(np.arange(3000) / 9.0)[:, None]
    recent = wave.copy()
    recent[-200:] = np.nan  # 67 % of the encoder's 300 steps, 17 % of the look back's 1200
    with pytest.raises(GapError, match="misses 200 of the last 300 steps"):
        fill_observed(recent, 0.5, windows=(300, 1200))
    earlier = wave.copy()
    earlier[-1100:-400] = np.nan  # none of the encoder's steps, 58 % of the look back's
    with pytest.raises(GapError, match="misses 700 of the last 1200 steps"):
        fill_observed(earlier, 0.5, windows=(300, 1200))
    assert fill_observed(earlier, 0.5, windows=(300,))[1] == 700  # an encoder-only model fills them
