"""Turning a published version into a Keras model: the store checks files and checksums, this loads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

import training.layers  # noqa: F401  registers the custom layers
from model_store import CALIBRATION_FILE, CorruptModelError, load_calibration, resolve_version, verify_version
from training.calibration import Calibration, CalibrationError


@dataclass(frozen=True)
class LoadedModel:
    """A verified model with the manifest it was published with and its calibration record (None: uncalibrated)."""

    name: str
    version: int
    model: keras.Model
    manifest: dict
    path: Path
    calibration: dict | None = None


def load_model(store: Path, name: str, version: int | str | None = None) -> LoadedModel:
    """Resolve and verify a version (every file against its sha256), and load it with Keras in safe mode."""
    number = resolve_version(store, name, version)
    path, manifest = verify_version(store, name, number)
    calibration = load_calibration(store, name, number, manifest)
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise CorruptModelError(f"cannot load {path}: {error}") from error
    return LoadedModel(name=name, version=number, model=model, manifest=manifest, path=path, calibration=calibration)


def calibration_of(loaded: LoadedModel) -> Calibration | None:
    """The version's decoded calibration record (its checksum verified on loading), None without one; a damaged
    one makes the version unusable."""
    try:
        return None if loaded.calibration is None else Calibration.from_record(loaded.calibration)
    except CalibrationError as error:
        raise CorruptModelError(f"{loaded.path.parent / CALIBRATION_FILE}: {error}") from error
