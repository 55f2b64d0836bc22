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
CALIBRATION_FILE = "calibration.json"  # the prediction-interval calibration record, in calibrated versions
MANIFEST_FILE = "manifest.json"  # lists every other file of the version with its sha256 under "files"


class StoreError(Exception):
    """Base class of every model store failure."""


class ModelNotFoundError(StoreError):
    """The store, the model name or the version does not exist."""


class IntegrityError(StoreError):
    """A file of the version is missing, or its sha256 differs from the manifest's."""


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
    """Check every file the manifest lists against its sha256; return the model file's path and the manifest."""
    manifest = load_manifest(store, name, version)
    folder = Path(store) / name / str(version)
    files = manifest.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise IntegrityError(f"manifest {folder / MANIFEST_FILE} lists no checksum of {MODEL_FILE} under 'files'")
    for file, expected in files.items():
        path = folder / file
        if Path(file).name != file or file == MANIFEST_FILE:
            raise IntegrityError(f"manifest {folder / MANIFEST_FILE} lists {file!r}, not a file of the version")
        if not path.is_file():
            raise IntegrityError(f"file {path} is missing")
        actual = sha256_of(path)
        if actual != expected:
            raise IntegrityError(f"checksum mismatch for {path}: manifest says {expected}, file has {actual}")
    return folder / MODEL_FILE, manifest


def load_calibration(store: Path, name: str, version: int, manifest: dict) -> dict | None:
    """The calibration record of a verified version (`verify_version`), None when it has none."""
    if CALIBRATION_FILE not in manifest["files"]:
        return None
    path = Path(store) / name / str(version) / CALIBRATION_FILE
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CorruptModelError(f"calibration {path} is not valid JSON: {error}") from error


def write_version(
    store: Path, name: str, model_file: Path, manifest: dict[str, Any], calibration: dict[str, Any] | None = None
) -> int:
    """Publish `model_file`, its `calibration` record (if any) and `manifest` as the next version; the manifest
    records each file's sha256. Atomic: built aside, then renamed; concurrent writers get distinct versions."""
    store = Path(store)
    (store / name).mkdir(parents=True, exist_ok=True)
    staging = store / f".staging-{name}-{secrets.token_hex(8)}"
    staging.mkdir()  # unlike mkdtemp's 0700, the umask decides: a version is readable where the store is shared
    try:
        shutil.copyfile(model_file, staging / MODEL_FILE)
        if calibration is not None:
            (staging / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=1) + "\n")
        files = {entry.name: sha256_of(entry) for entry in sorted(staging.iterdir())}
        record = {**manifest, "name": name, "files": files}
        version = 0
        for _ in range(100):  # the next number after the latest, and after any number this writer failed to claim
            version = max(version, (list_versions(store, name) or [0])[-1]) + 1
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
