"""Versioned model store: `<store>/<name>/<version>/` holding `model.keras`, `calibration.json` (calibrated versions)
and `manifest.json` (with every other file's sha256)."""

from model_store.store import (
    CALIBRATION_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    CorruptModelError,
    IntegrityError,
    ModelNotFoundError,
    StoreError,
    list_models,
    list_versions,
    load_calibration,
    load_manifest,
    resolve_version,
    sha256_of,
    verify_version,
    write_version,
)

__all__ = [
    "CALIBRATION_FILE",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "CorruptModelError",
    "IntegrityError",
    "ModelNotFoundError",
    "StoreError",
    "list_models",
    "list_versions",
    "load_calibration",
    "load_manifest",
    "resolve_version",
    "sha256_of",
    "verify_version",
    "write_version",
]
