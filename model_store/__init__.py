"""Versioned model store: `<store>/<name>/<version>/` holding `model.keras` and `manifest.json`."""

from model_store.store import (
    MANIFEST_FILE,
    MODEL_FILE,
    CorruptModelError,
    IntegrityError,
    ModelNotFoundError,
    StoreError,
    list_models,
    list_versions,
    load_manifest,
    resolve_version,
    sha256_of,
    verify_version,
    write_version,
)

__all__ = [
    "MANIFEST_FILE",
    "MODEL_FILE",
    "CorruptModelError",
    "IntegrityError",
    "ModelNotFoundError",
    "StoreError",
    "list_models",
    "list_versions",
    "load_manifest",
    "resolve_version",
    "sha256_of",
    "verify_version",
    "write_version",
]
