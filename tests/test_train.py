import json
from pathlib import Path

import numpy as np
import pytest

from model_store import list_versions
from training.cli import main
from training.config import QUICK, TrainConfig
from training.loading import load_model
from training.train import curriculum_horizon, learning_rate


def test_quick_training_lowers_validation_loss_and_publishes_a_version(tiny_store):
    loaded = load_model(tiny_store, "tiny")
    history = loaded.manifest["training"]["history"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert loaded.manifest["training"]["best_validation_loss"] <= min(
        h["val_loss"] for h in history if h["horizon"] == 150
    )
    assert loaded.manifest["architecture"]["units"] == QUICK.model.units
    for key in ("files", "data", "seed", "libraries", "evaluation", "created_at"):
        assert key in loaded.manifest
    assert set(loaded.manifest["files"]) == {"model.keras", "calibration.json"}
    command = loaded.manifest["training"]["command"]  # the store by its name: nothing about this machine
    assert command.startswith(f"python -m training train --store {tiny_store.name} --name tiny")
    assert str(tiny_store.parent) not in command
    assert loaded.manifest["training"]["steps"] > 0 and loaded.manifest["training"]["wall_seconds"] > 0


def test_quick_model_beats_persistence_on_held_out_waves(tiny_store):
    evaluation = load_model(tiny_store, "tiny").manifest["evaluation"]
    unit = evaluation["variants"]["unit"]
    assert unit["model"]["mae"] < unit["baselines"]["persistence"]


def test_evaluate_command_prints_json_for_a_version(tiny_store, capsys):
    assert main(["evaluate", "--store", str(tiny_store), "--name", "tiny", "--version", "1", "--waves", "20"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == 1
    assert set(report["variants"]) == {"unit", "scaled", "noisy", "short", "shifted"}
    for variant in report["variants"].values():
        assert set(variant["baselines"]) == {"window_mean", "persistence", "sine_fit"}
        assert len(variant["model"]["per_feature"]) == 5
        assert set(variant["model"]["per_horizon"]) == {"1-10", "11-50", "51-100", "101-150"}


def test_training_is_reproducible_from_the_seed(tmp_path):
    args = ["train", "--store", str(tmp_path), "--name", "r", "--quick", "--max-steps", "20", "--eval-waves", "10"]
    assert main([*args, "--seed", "3"]) == 0
    assert main([*args, "--seed", "3"]) == 0
    first, second = (load_model(tmp_path, "r", v).manifest["training"]["history"] for v in (1, 2))
    assert [h["loss"] for h in first] == pytest.approx([h["loss"] for h in second], rel=1e-4)
    assert list_versions(tmp_path, "r") == [1, 2]


def test_curriculum_grows_to_full_horizon_and_learning_rate_decays():
    config = TrainConfig(curriculum_start=10, curriculum_steps=100, max_steps=1000)
    horizons = [curriculum_horizon(s, config) for s in range(0, 200, 10)]
    assert horizons[0] == 10 and horizons == sorted(horizons) and horizons[-1] == 150
    rates = [learning_rate(s, config) for s in range(0, 1001, 100)]
    assert rates == sorted(rates, reverse=True) and np.isclose(rates[-1], config.final_learning_rate)


def test_fine_tuning_starts_from_a_published_version(tiny_store, tmp_path):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    parent = load_model(store, "tiny", 1)
    args = ["train", "--store", str(store), "--name", "tiny", "--quick", "--init-from", "1"]
    assert main([*args, "--max-steps", "1", "--curriculum-steps", "0", "--eval-waves", "10"]) == 0
    child = load_model(store, "tiny", 2)
    assert child.manifest["training"]["initialized_from"]["version"] == 1
    assert child.manifest["architecture"]["units"] == parent.manifest["architecture"]["units"]
    # one Adam step (learning rate 5e-3) away from the parent, not a fresh initialization
    steps = [np.abs(a - b).max() for a, b in zip(parent.model.get_weights(), child.model.get_weights(), strict=True)]
    assert max(steps) < 0.02


def test_evaluate_prints_a_markdown_table(tiny_store, capsys):
    assert main(["evaluate", "--store", str(tiny_store), "--name", "tiny", "--waves", "10", "--markdown"]) == 0
    accuracy, intervals = (part.splitlines() for part in capsys.readouterr().out.strip().split("\n\n"))
    assert accuracy[0].startswith("| test waves | model | target |") and len(accuracy) == 2 + 5
    assert all(line.count("|") == 8 for line in accuracy)
    # the tiny model is calibrated when published: coverage per variant and level (80 and 95)
    assert intervals[0].startswith("| test waves | level | coverage |") and len(intervals) == 2 + 5 * 2
    assert all(line.count("|") == 7 for line in intervals)


def test_weight_average_is_updated_in_the_traced_step_and_swapped_in_for_validation():
    from dataclasses import replace

    import keras

    from training.model import build_core
    from training.train import WeightAverage, make_step_functions

    keras.utils.set_random_seed(0)
    core = build_core(replace(QUICK.model, units=4))
    optimizer = keras.optimizers.Adam(learning_rate=0.05)
    average = WeightAverage(core, optimizer, decay=0.5)
    train_step, validation_step = make_step_functions(core, optimizer, True, average)
    expected = [v.numpy() for v in core.trainable_variables]
    rng = np.random.default_rng(0)
    traces = []
    for observed, horizon in [(60, 10), (80, 20), (70, 5)]:  # shapes vary: no retracing after the first call
        train_step(
            rng.normal(size=(3, observed, 5)).astype("float32"), rng.normal(size=(3, horizon, 5)).astype("float32")
        )
        n = optimizer.iterations.numpy()  # the update runs after apply_gradients has counted the step
        decay = min(0.5, (1 + n) / (10 + n))
        expected = [
            decay * e + (1 - decay) * v.numpy() for e, v in zip(expected, core.trainable_variables, strict=True)
        ]
        traces.append(train_step.experimental_get_tracing_count())
    assert traces == [traces[0]] * 3
    live = [v.numpy() for v in core.trainable_variables]
    assert not np.allclose(live[0], expected[0])  # the average differs from the live weights
    pair = (rng.normal(size=(2, 90, 5)).astype("float32"), rng.normal(size=(2, 150, 5)).astype("float32"))
    live_loss = float(validation_step(*pair))
    with average.swapped():
        for v, e in zip(core.trainable_variables, expected, strict=True):
            np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-6)
        assert float(validation_step(*pair)) != live_loss
    for v, w in zip(core.trainable_variables, live, strict=True):  # the live weights are back
        np.testing.assert_array_equal(v.numpy(), w)


def test_the_loss_is_the_squared_or_absolute_error_of_the_normalized_completion():
    from dataclasses import replace

    import keras

    from training.layers import FoldFeatures, WaveNormalizer
    from training.model import build_core
    from training.train import make_step_functions

    keras.utils.set_random_seed(1)
    core = build_core(replace(QUICK.model, units=4))
    rng = np.random.default_rng(1)
    observed = (rng.normal(size=(2, 70, 5)) * 30 + 7).astype("float32")
    target = (rng.normal(size=(2, 150, 5)) * 30 + 7).astype("float32")
    normalized, mean, scale = WaveNormalizer()(observed)
    fold = FoldFeatures()
    truth = np.asarray(fold((target - mean) / scale))
    clock = np.zeros_like(truth[:, :, :1])
    error = np.asarray(core([np.asarray(fold(normalized)), clock])) - truth
    optimizer = keras.optimizers.Adam()
    for loss, expected in (("mse", np.mean(error**2)), ("mae", np.mean(np.abs(error)))):
        _, validation_step = make_step_functions(core, optimizer, True, loss=loss)
        assert float(validation_step(observed, target)) == pytest.approx(expected, rel=1e-4)


def test_residual_head_with_a_zero_head_repeats_the_last_point_and_loads_in_safe_mode(tmp_path):
    from dataclasses import replace

    import keras

    from training.layers import FeedbackDecoderCell
    from training.model import build_model

    model = build_model(replace(QUICK.model, units=4, residual_head=True))
    cell = model.get_layer("seq2seq").get_layer("decoder").cell
    assert cell.get_config()["residual"] is True
    cell.head.set_weights([np.zeros_like(w) for w in cell.head.get_weights()])
    wave = np.random.default_rng(0).normal(size=(2, 70, 5)).astype("float32")
    completion = np.asarray(model(wave))
    np.testing.assert_allclose(completion, np.repeat(wave[:, -1:], 150, axis=1), rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "r.keras")
    loaded = keras.saving.load_model(tmp_path / "r.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(wave)), completion, rtol=1e-5, atol=1e-6)
    # a cell saved before the option existed has no "residual" in its config and stays a plain head
    old = {k: v for k, v in cell.get_config().items() if k != "residual"}
    assert FeedbackDecoderCell.from_config(old).residual is False


def test_ema_residual_head_and_final_learning_rate_are_recorded_in_the_manifest(tmp_path):
    args = ["train", "--store", str(tmp_path), "--name", "e", "--quick", "--max-steps", "20", "--eval-waves", "10"]
    assert main([*args, "--ema", "0.9", "--residual-head", "--final-learning-rate", "1e-4", "--loss", "mae"]) == 0
    manifest = load_model(tmp_path, "e").manifest
    config = manifest["training"]["config"]
    assert config["ema"] == 0.9 and config["final_learning_rate"] == 1e-4 and config["loss"] == "mae"
    assert manifest["architecture"]["residual_head"] is True
    assert "residual" in manifest["architecture"]["description"]
    assert manifest["training"]["history"][-1]["lr"] == pytest.approx(1e-4)


def test_a_failure_after_training_keeps_the_trained_model_unpublished(tmp_path, monkeypatch, capsys):
    """An hour of training must survive a crash in calibration, evaluation or publishing."""
    import keras

    import training.publish

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(training.publish, "evaluate", broken)
    args = ["train", "--store", str(tmp_path), "--name", "k", "--quick", "--max-steps", "4", "--curriculum-steps", "0"]
    with pytest.raises(RuntimeError, match="evaluation broke"):
        main(args)
    [kept] = tmp_path.glob(".unpublished-k-*/best.keras")
    assert f"the trained model is kept at {kept}" in capsys.readouterr().err
    assert list_versions(tmp_path, "k") == [] and not list(tmp_path.glob(".training-*"))
    assert keras.saving.load_model(kept, safe_mode=True).count_params() > 0


def test_every_command_defaults_to_the_committed_store_and_the_service_default_model(capsys):
    """One default from one place (model_store.defaults): the store `wave-serve` serves and its default model;
    `train` publishes, so it names its model."""
    from app.settings import DEFAULT_STORE, Settings
    from training.cli import parse_args

    for argv in (["evaluate"], ["calibrate"], ["export", "--out", "serving"]):
        args = parse_args(argv)
        assert args.store == DEFAULT_STORE and (DEFAULT_STORE / "general").is_dir()
        assert args.name == Settings.model_fields["model_name"].default == "general"
    assert parse_args(["train", "--name", "x"]).store == DEFAULT_STORE
    with pytest.raises(SystemExit):
        parse_args(["train", "--quick"])
    assert "the following arguments are required: --name" in capsys.readouterr().err


def test_recorded_commands_hold_paths_relative_to_the_folder_holding_the_store(tmp_path, monkeypatch):
    from training.command import recorded_command

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "runs" / "store"
    argv = ["train", "--store", str(store), "--name", "n", "--data", "data/my file.csv", f"--data={tmp_path}/b.csv"]
    assert recorded_command(argv, store) == (
        "python -m training train --store store --name n --data '../data/my file.csv' --data=../b.csv"
    )
    assert recorded_command(["evaluate", "--store", "runs/store"], Path("runs/store")) == (
        "python -m training evaluate --store store"
    )
    assert recorded_command(["evaluate"], Path("runs/store")) == "python -m training evaluate"  # the default store
