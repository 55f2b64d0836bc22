"""The committed default model: small, verified, and as accurate as its manifest says."""

import pytest

from model_store import resolve_version, verify_version
from tests.conftest import DEFAULT_MODEL
from training.evaluate import TARGETS

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
