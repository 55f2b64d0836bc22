import json

import numpy as np
import pytest

from model_store import list_versions
from training.cli import QUICK, main
from training.config import TrainConfig
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
    for key in ("sha256", "data", "seed", "libraries", "evaluation", "created_at"):
        assert key in loaded.manifest
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
