import json
import zipfile
from dataclasses import replace

import keras
import numpy as np
import pytest

from training.config import TRAINED_MODEL, ModelConfig
from training.model import build_model
from training.predict import Predictor

SMALL = replace(TRAINED_MODEL, units=8, encoder_depth=2, decoder_depth=2)
LAYOUTS = {
    "trained": SMALL,
    "reference": ModelConfig(units=8, encoder_depth=2, decoder_depth=3),
    "joint-all-layers": replace(SMALL, channel_independent=False),
    "features-first-layer": replace(SMALL, decoder_state="first_layer"),
}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model(SMALL)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(("batch", "steps"), [(1, 60), (2, 150), (7, 299), (3, 1000)])
def test_output_shape_for_layouts_batch_sizes_and_lengths(layout, batch, steps):
    model = build_model(LAYOUTS[layout])
    out = np.asarray(model(np.random.default_rng(0).normal(size=(batch, steps, 5)).astype("float32")))
    assert out.shape == (batch, 150, 5)
    assert np.isfinite(out).all()


def test_reference_architecture_is_the_builder_default():
    config = ModelConfig()
    assert (config.units, config.encoder_depth, config.decoder_depth, config.horizon) == (40, 4, 4, 150)
    assert not config.channel_independent and config.decoder_state == "first_layer"
    reference = build_model(config)
    core = reference.get_layer("seq2seq")
    lstm_layers = [w for w in core.layers if isinstance(w, keras.layers.LSTM)]
    assert len(lstm_layers) == 4 and all(layer.units == 40 for layer in lstm_layers)
    cell = core.get_layer("decoder").cell
    assert len(cell.cells) == 4 and cell.head.units == 5
    assert "zero_states" in [layer.name for layer in core.layers]
    assert reference(np.zeros((2, 100, 5), "float32")).shape == (2, 150, 5)


def test_horizon_is_configurable():
    model = build_model(replace(SMALL, horizon=20))
    assert model(np.zeros((2, 70, 5), "float32")).shape == (2, 20, 5)


def test_save_load_safe_mode_gives_same_predictions(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json").decode()
    assert "Lambda" not in config
    json.loads(config)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).normal(size=(4, 120, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(loaded(x)), rtol=1e-5, atol=1e-5)


def test_normalization_makes_the_model_scale_and_offset_equivariant(model):
    x = np.random.default_rng(2).normal(size=(3, 100, 5)).astype("float32")
    base = np.asarray(model(x))
    scaled = np.asarray(model(x * 250.0 - 40.0))
    np.testing.assert_allclose(scaled, base * 250.0 - 40.0, rtol=1e-3, atol=1e-2)


def test_flat_feature_gives_finite_flat_prediction(model):
    x = np.random.default_rng(3).normal(size=(2, 80, 5)).astype("float32")
    x[:, :, 1] = 7.5
    x[1, :, 3] = 0.0
    out = np.asarray(model(x))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, :, 1], 7.5, atol=1e-4)
    np.testing.assert_allclose(out[1, :, 3], 0.0, atol=1e-6)


def test_huge_values_and_tiny_amplitude_on_large_offset_stay_finite(model):
    t = np.arange(200)[None, :, None]
    x = np.concatenate([1e11 * np.sin(t / 15.0), 1e3 + 0.01 * np.sin(t / 20.0 + np.zeros((1, 1, 4)))], axis=2)
    out = np.asarray(model(x.astype("float32")))
    assert np.isfinite(out).all()
    assert np.abs(out[0, :, 1:] - 1e3).max() < 1.0


def test_long_inputs_read_only_the_context(model):
    x = np.random.default_rng(4).normal(size=(2, 700, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(model(x[:, -300:])), atol=1e-6)


def test_predictor_does_not_retrace_across_shapes(model):
    predict = Predictor(model)
    predict.warm_up()
    assert predict.trace_count() == 1
    rng = np.random.default_rng(5)
    for batch, steps in [(1, 61), (5, 300), (2, 90), (17, 150), (3, 1000), (70, 60)]:
        assert predict(rng.normal(size=(batch, steps, 5))).shape == (batch, 150, 5)
    assert predict.trace_count() == 1


def test_padding_and_batching_do_not_change_the_answer(model):
    """Waves of different lengths batched together equal each wave alone and the plain Keras call."""
    predict = Predictor(model)
    rng = np.random.default_rng(6)
    waves = [(rng.normal(size=(n, 5)) * 4 + 2).astype("float32") for n in (80, 60, 299, 300, 120, 1000)]
    together = predict(waves)
    for wave, result in zip(waves, together, strict=True):
        np.testing.assert_allclose(result, predict([wave])[0], atol=1e-5)
        np.testing.assert_allclose(result, np.asarray(model(wave[None]))[0], rtol=1e-4, atol=1e-4)


def test_channel_independent_predictor_takes_any_number_of_features(model):
    """Each feature is completed on its own: a wave of any width equals the 5-feature model column by column."""
    predict = Predictor(model, max_batch=4)
    assert predict.features is None and predict.buckets == (5, 10, 20)  # 4 waves of 5 features: one call
    rng = np.random.default_rng(7)
    wave = (rng.normal(size=(150, 5)) * 3 - 1).astype("float32")
    expected = np.asarray(model(wave[None]))[0]
    for columns in ([0], [1, 3], [0, 1, 2, 3, 4]):
        alone = predict([wave[:, columns]])
        assert alone.shape == (1, 150, len(columns))
        np.testing.assert_allclose(alone[0], expected[:, columns], rtol=1e-4, atol=1e-4)
    wide = np.concatenate([wave, wave[:, ::-1], wave[:, :2]], axis=1)  # 12 features
    np.testing.assert_allclose(
        predict([wide])[0], np.concatenate([expected, expected[:, ::-1], expected[:, :2]], 1), atol=1e-4
    )


def test_waves_of_different_widths_share_calls_without_changing_answers(model):
    predict = Predictor(model, max_batch=4)
    predict.warm_up()
    rng = np.random.default_rng(8)
    waves = [rng.normal(size=(n, f)).astype("float32") for n, f in [(60, 1), (299, 5), (90, 3), (1000, 1), (70, 30)]]
    assert [predict.rows(w) for w in waves] == [1, 5, 3, 1, 30]
    together = predict(waves)  # 40 rows: two calls of 20
    assert [c.shape for c in together] == [(150, f) for f in (1, 5, 3, 1, 30)]
    for wave, result in zip(waves, together, strict=True):
        np.testing.assert_allclose(result, predict([wave])[0], atol=1e-5)
    assert predict.trace_count() == 1


def test_a_fixed_width_model_keeps_its_width():
    predict = Predictor(build_model(LAYOUTS["joint-all-layers"]), max_batch=4)
    assert predict.features == 5 and predict.buckets == (1, 2, 4)
    assert predict.rows(np.zeros((60, 5), "float32")) == 1
