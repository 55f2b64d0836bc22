"""The committed default model: small, verified, and as accurate as its manifest says."""

import math

import numpy as np
import pytest

from model_store import load_manifest, resolve_version, verify_version
from tests.conftest import DEFAULT_MODEL
from training.evaluate import TARGETS
from training.real_series import SERIES

NAME = DEFAULT_MODEL


@pytest.fixture(scope="module")
def published(default_store):
    version = resolve_version(default_store, NAME)
    return verify_version(default_store, NAME, version)


def test_default_model_is_small_and_verified(published):
    path, manifest = published
    assert path.stat().st_size < 5 * 1024 * 1024
    assert manifest["training"]["command"].startswith("python -m training train")
    assert manifest["training"]["wall_seconds"] > 0 and manifest["training"]["steps"] > 0


def test_default_model_meets_every_target_on_the_test_split(published):
    _, manifest = published
    evaluation = manifest["evaluation"]
    assert evaluation["waves"] >= 470 and evaluation["meets_all_targets"]
    for name, target in TARGETS.items():
        variant = evaluation["variants"][name]
        assert variant["model"]["mae"] <= target
        assert variant["model"]["mae"] < variant["baselines"]["window_mean"] / 5


def test_evaluate_command_reproduces_the_manifest(published, default_store, capsys):
    import json

    from training.cli import main

    _, manifest = published
    assert main(["evaluate", "--store", str(default_store), "--name", NAME]) == 0
    fresh = json.loads(capsys.readouterr().out)
    for name, variant in manifest["evaluation"]["variants"].items():
        assert fresh["variants"][name]["model"]["mae"] == pytest.approx(variant["model"]["mae"], rel=2e-3, abs=2e-4)
        assert fresh["variants"][name]["baselines"] == pytest.approx(variant["baselines"], rel=1e-6)


def test_the_general_model_says_what_it_was_trained_on_and_which_series_chose_it(default_store):
    """Zero-shot as published: every run in its history trained on synthetic series only, and its `selection`
    names the real series that chose it and those that checked it, with scores its own evaluation reproduces."""
    version = resolve_version(default_store, "general")
    manifest = load_manifest(default_store, "general", version)
    assert manifest["data"]["source"] == "synthetic"
    run, commands = manifest["training"], []
    while run:
        commands.append(run["command"])
        run = run.get("initialized_from")
    assert len(commands) >= 2 and all("--data" not in command for command in commands), commands
    selection = manifest["selection"]
    held_aside = {series.name for series in SERIES if series.held_aside}
    assert set(selection["checked_on"]) == held_aside
    assert set(selection["chosen_on"]) == {series.name for series in SERIES} - held_aside
    scored = manifest["real_evaluation"]["series"]
    for group in ("chosen_on", "checked_on"):
        mean = math.exp(np.mean([math.log(scored[name]["relative_mae"]["model"]) for name in selection[group]]))
        assert selection["scores"][group][f"general/{version}"] == pytest.approx(mean, abs=6e-4), group
