"""Reading and atomically writing model versions, laid out as TensorFlow Serving lays out a base path."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"


class StoreError(Exception):
    """Base class of every model store failure."""


class ModelNotFoundError(StoreError):
    """The store, the model name or the version does not exist."""


class IntegrityError(StoreError):
    """The model file is missing or its sha256 differs from the manifest."""


class CorruptModelError(StoreError):
    """The files are present and match, but Keras cannot load them."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_versions(store: Path, name: str) -> list[int]:
    """Published versions of `name`, ascending; only integer folders that hold a manifest count."""
    folder = Path(store) / name
    if not folder.is_dir():
        return []
    return sorted(
        int(entry.name) for entry in folder.iterdir() if entry.name.isdigit() and (entry / MANIFEST_FILE).is_file()
    )


def list_models(store: Path) -> list[str]:
    """Model names in the store that have at least one published version, sorted."""
    store = Path(store)
    if not store.is_dir():
        raise ModelNotFoundError(f"model store {store} does not exist")
    return sorted(entry.name for entry in store.iterdir() if entry.is_dir() and list_versions(store, entry.name))


def resolve_version(store: Path, name: str, version: int | str | None = None) -> int:
    """The requested version, or the latest when `version` is None or "latest"."""
    store = Path(store)
    if not store.is_dir():
        raise ModelNotFoundError(f"model store {store} does not exist")
    versions = list_versions(store, name)
    if not versions:
        raise ModelNotFoundError(f"no published versions of model {name!r} in {store}")
    if version is None or str(version) == "latest":
        return versions[-1]
    if not str(version).isdigit() or int(version) not in versions:
        raise ModelNotFoundError(f"model {name!r} has no version {version!r} in {store} (have {versions})")
    return int(version)


def load_manifest(store: Path, name: str, version: int) -> dict:
    """The manifest of one version."""
    path = Path(store) / name / str(version) / MANIFEST_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ModelNotFoundError(f"no manifest at {path}") from error
    except json.JSONDecodeError as error:
        raise CorruptModelError(f"manifest {path} is not valid JSON: {error}") from error


def verify_version(store: Path, name: str, version: int) -> tuple[Path, dict]:
    """Check the model file against the manifest's sha256; return its path and the manifest."""
    manifest = load_manifest(store, name, version)
    path = Path(store) / name / str(version) / manifest.get("model_file", MODEL_FILE)
    if not path.is_file():
        raise IntegrityError(f"model file {path} is missing")
    expected = manifest.get("sha256")
    actual = sha256_of(path)
    if actual != expected:
        raise IntegrityError(f"checksum mismatch for {path}: manifest says {expected}, file has {actual}")
    return path, manifest


def write_version(store: Path, name: str, model_file: Path, manifest: dict[str, Any]) -> int:
    """Publish `model_file` with `manifest` as the next version; atomic: built aside, then renamed."""
    store = Path(store)
    (store / name).mkdir(parents=True, exist_ok=True)
    staging = store / f".staging-{name}-{secrets.token_hex(8)}"
    staging.mkdir()  # unlike mkdtemp's 0700, the umask decides: a version is readable where the store is shared
    try:
        target = staging / MODEL_FILE
        shutil.copyfile(model_file, target)
        record = {**manifest, "name": name, "model_file": MODEL_FILE, "sha256": sha256_of(target)}
        for attempt in range(100):
            version = (list_versions(store, name) or [0])[-1] + 1 + attempt
            record["version"] = version
            (staging / MANIFEST_FILE).write_text(json.dumps(record, indent=2) + "\n")
            _fsync_folder(staging)
            try:
                os.rename(staging, store / name / str(version))
            except OSError:
                continue  # another writer took this number
            return version
        raise StoreError(f"could not claim a version number for {name!r} in {store}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    """Flush the files of a folder to disk before it is published."""
    for entry in folder.iterdir():
        with entry.open("rb") as handle:
            os.fsync(handle.fileno())
