"""`python -m training export`: a SavedModel in TensorFlow Serving's layout that completes waves like Keras."""

import contextlib
import io
import json

import numpy as np
import pytest

from training.cli import main
from training.data import unit_waves
from training.loading import load_model


def export(*args: str) -> tuple[int, str, str]:
    """Run the export subcommand in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["export", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def exported(tiny_store, tmp_path_factory):
    """`tiny` version 1 exported to a fresh base path; yields (base, the printed summary)."""
    base = tmp_path_factory.mktemp("serving")
    code, out, err = export("--store", str(tiny_store), "--name", "tiny", "--out", str(base))
    assert code == 0, err
    return base, json.loads(out)


def test_export_writes_tensorflow_serving_layout(exported, tiny_store):
    base, summary = exported
    assert (base / "tiny" / "1" / "saved_model.pb").is_file()
    assert (base / "tiny" / "1" / "variables").is_dir()
    assert json.loads((base / "tiny" / "1" / "assets.extra" / "manifest.json").read_text())["name"] == "tiny"
    record = (base / "tiny" / "1" / "assets.extra" / "calibration.json").read_bytes()  # the bands' record too
    assert record == (tiny_store / "tiny" / "1" / "calibration.json").read_bytes()
    assert [p.name for p in (base / "tiny").iterdir()] == ["1"]  # no staging folder left behind
    assert summary["name"] == "tiny" and summary["version"] == 1 and summary["path"] == str(base / "tiny" / "1")
    assert summary["inputs"] == {"wave": {"dtype": "float32", "shape": [None, None, 5]}}
    assert summary["outputs"] == {"prediction": {"dtype": "float32", "shape": [None, 150, 5]}}
    assert summary["max_abs_difference"] <= 1e-4


def test_serving_signature_has_dynamic_batch_and_time(exported):
    import tensorflow as tf

    base, _ = exported
    signature = tf.saved_model.load(str(base / "tiny" / "1")).signatures["serving_default"]
    args, inputs = signature.structured_input_signature
    assert args == () and list(inputs) == ["wave"]
    assert inputs["wave"].dtype == tf.float32 and inputs["wave"].shape.as_list() == [None, None, 5]
    assert signature.structured_outputs["prediction"].shape.as_list() == [None, 150, 5]


@pytest.mark.parametrize(("batch", "steps"), [(1, 60), (3, 97), (8, 350)])
def test_serving_signature_completes_waves_like_the_keras_model(exported, tiny_store, batch, steps):
    import tensorflow as tf

    base, _ = exported
    signature = tf.saved_model.load(str(base / "tiny" / "1")).signatures["serving_default"]
    rng = np.random.default_rng(steps)
    scale = rng.uniform(0.5, 20.0, (batch, 1, 5)).astype(np.float32)
    waves = scale * unit_waves(rng, batch, steps, split="test") + rng.uniform(-50, 50, (batch, 1, 5)).astype(np.float32)
    served = signature(wave=tf.constant(waves))["prediction"].numpy()
    expected = np.asarray(load_model(tiny_store, "tiny", 1).model(waves, training=False))
    assert served.shape == (batch, 150, 5)
    np.testing.assert_allclose(served, expected, atol=1e-4)


def test_export_refuses_to_overwrite_a_version(exported, tiny_store):
    base, _ = exported
    before = (base / "tiny" / "1" / "saved_model.pb").stat().st_mtime_ns
    code, out, err = export("--store", str(tiny_store), "--name", "tiny", "--version", "1", "--out", str(base))
    assert code == 1 and out == ""
    assert "already exists" in err and str(base / "tiny" / "1") in err
    assert (base / "tiny" / "1" / "saved_model.pb").stat().st_mtime_ns == before


def test_export_of_a_missing_version_fails_clearly(tiny_store, tmp_path):
    code, _, err = export("--store", str(tiny_store), "--name", "tiny", "--version", "7", "--out", str(tmp_path))
    assert code == 1 and "no version '7'" in err
    assert not (tmp_path / "tiny").exists()
