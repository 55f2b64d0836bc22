"""Export a store version as a TensorFlow SavedModel laid out for TensorFlow Serving: <base>/<name>/<version>/."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SIGNATURE = "serving_default"
INPUT_NAME = "wave"
OUTPUT_NAME = "prediction"
TOLERANCE = 1e-4  # largest difference between the SavedModel and the Keras model before an export is refused


class ExportError(Exception):
    """The export would overwrite a version, or the written SavedModel does not match the Keras model."""


def check_waves(features: int, steps: int = 64, batch: int = 3) -> np.ndarray:
    """Deterministic raw waves (sines on offsets) used to check an export against the Keras model."""
    time_axis = np.arange(steps, dtype=np.float64)[None, :, None]
    period = 12.0 + 5.0 * np.arange(batch)[:, None, None] + 3.0 * np.arange(features)[None, None, :]
    offset = 10.0 * np.arange(1, batch + 1)[:, None, None]
    return (offset + 2.0 * np.sin(2 * np.pi * time_axis / period)).astype(np.float32)


def write_saved_model(model: Any, path: Path) -> None:
    """Write `model` as a SavedModel whose `serving_default` maps `wave` [None, None, F] to `prediction`."""
    import keras
    import tensorflow as tf

    features = model.input_shape[-1]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE,
        lambda wave: {OUTPUT_NAME: model(wave, training=False)},
        input_signature=[tf.TensorSpec([None, None, features], tf.float32, name=INPUT_NAME)],
    )
    archive.write_out(str(path), verbose=False)


def load_signature(path: Path) -> Any:
    """The serving signature of the SavedModel at `path`, as TensorFlow Serving would call it."""
    import tensorflow as tf

    return tf.saved_model.load(str(path)).signatures[SIGNATURE]


def signature_spec(signature: Any) -> dict[str, dict]:
    """Inputs and outputs of a serving signature, as JSON-ready dtypes and shapes (None: any size)."""
    _, inputs = signature.structured_input_signature
    describe = lambda spec: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}  # noqa: E731
    return {
        "inputs": {key: describe(spec) for key, spec in inputs.items()},
        "outputs": {key: describe(spec) for key, spec in signature.structured_outputs.items()},
    }


def max_difference(model: Any, signature: Any, waves: np.ndarray) -> float:
    """Largest absolute difference between the serving signature and the Keras model on `waves`."""
    import tensorflow as tf

    served = signature(**{INPUT_NAME: tf.constant(waves)})[OUTPUT_NAME].numpy()
    expected = np.asarray(model(waves, training=False))
    return float(np.max(np.abs(served - expected)))


def export_version(store: Path, name: str, version: int | str | None, base: Path) -> dict[str, Any]:
    """Export one store version to `base/<name>/<version>/`: built and checked aside, then renamed into place."""
    from model_store import MANIFEST_FILE, MODEL_FILE, resolve_version
    from training.loading import load_model

    started = time.monotonic()
    number = resolve_version(store, name, version)
    target = Path(base) / name / str(number)
    if target.exists():
        raise ExportError(f"{target} already exists: remove it first or export another version")
    loaded = load_model(store, name, number)
    target.parent.mkdir(parents=True, exist_ok=True)
    # not a number, so TensorFlow Serving watching base/<name>/ never loads a half-written version
    staging = Path(tempfile.mkdtemp(prefix=f".export-{name}-{number}-", dir=target.parent))
    try:
        write_saved_model(loaded.model, staging)
        extra = staging / "assets.extra"  # TensorFlow Serving's place for files beside the model
        extra.mkdir(exist_ok=True)
        for file in [MANIFEST_FILE, *(f for f in loaded.manifest["files"] if f != MODEL_FILE)]:  # e.g. calibration
            shutil.copyfile(loaded.path.with_name(file), extra / file)
        signature = load_signature(staging)
        difference = max_difference(loaded.model, signature, check_waves(loaded.model.input_shape[-1]))
        if not difference <= TOLERANCE:
            raise ExportError(f"SavedModel differs from the Keras model by {difference:.3g} (> {TOLERANCE})")
        spec = signature_spec(signature)
        staging.chmod(0o755)  # mkdtemp makes it private; a serving container may run as another user
        try:
            os.rename(staging, target)
        except OSError as error:
            raise ExportError(f"{target} appeared while exporting: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "name": name,
        "version": number,
        "source": str(loaded.path),
        "path": str(target),
        "signature": SIGNATURE,
        **spec,
        "max_abs_difference": difference,
        "seconds": round(time.monotonic() - started, 1),
    }
