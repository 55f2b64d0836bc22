import json
import os
import stat

import numpy as np
import pytest

import model_store
from model_store import (
    CorruptModelError,
    IntegrityError,
    ModelNotFoundError,
    list_versions,
    resolve_version,
    write_version,
)
from model_store import store as store_module
from training.loading import load_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from training.config import ModelConfig
    from training.model import build_model

    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_model(ModelConfig(units=4, encoder_depth=1, decoder_depth=1)).save(path)
    return path


def test_versions_are_numbered_and_latest_resolves(tmp_path, model_file):
    assert write_version(tmp_path, "m", model_file, {"note": "a"}) == 1
    assert write_version(tmp_path, "m", model_file, {"note": "b"}) == 2
    assert list_versions(tmp_path, "m") == [1, 2]
    assert resolve_version(tmp_path, "m") == 2
    assert resolve_version(tmp_path, "m", "1") == 1
    manifest = json.loads((tmp_path / "m" / "2" / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["note"] == "b"
    assert manifest["sha256"] == model_store.sha256_of(tmp_path / "m" / "2" / "model.keras")


def test_load_verifies_and_returns_a_working_model(tmp_path, model_file):
    write_version(tmp_path, "m", model_file, {})
    loaded = load_model(tmp_path, "m")
    assert loaded.version == 1
    assert np.asarray(loaded.model(np.zeros((1, 60, 5), "float32"))).shape == (1, 150, 5)


def test_crash_while_writing_leaves_no_loadable_version(tmp_path, model_file, monkeypatch):
    def killed(folder):
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(store_module, "_fsync_folder", killed)
    with pytest.raises(KeyboardInterrupt):
        write_version(tmp_path, "m", model_file, {})
    assert list_versions(tmp_path, "m") == []
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path, "m")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


def test_leftover_staging_and_incomplete_folders_are_ignored(tmp_path, model_file):
    (tmp_path / ".staging-m-abc").mkdir()
    (tmp_path / "m" / "3").mkdir(parents=True)  # a folder without a manifest, as a SIGKILL could leave
    (tmp_path / "m" / "3" / "model.keras").write_bytes(model_file.read_bytes())
    assert list_versions(tmp_path, "m") == []
    assert write_version(tmp_path, "m", model_file, {}) == 1


@pytest.mark.parametrize(
    ("damage", "error", "words"),
    [
        ("flip", IntegrityError, "checksum mismatch"),
        ("delete", IntegrityError, "missing"),
        ("garbage", CorruptModelError, "cannot load"),
        ("manifest", CorruptModelError, "not valid JSON"),
    ],
)
def test_damaged_versions_fail_with_a_clear_error(tmp_path, model_file, damage, error, words):
    write_version(tmp_path, "m", model_file, {})
    folder = tmp_path / "m" / "1"
    model_path = folder / "model.keras"
    if damage == "flip":
        data = bytearray(model_path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model_path.write_bytes(bytes(data))
    elif damage == "delete":
        model_path.unlink()
    elif damage == "garbage":  # consistent checksum, unreadable archive
        model_path.write_bytes(b"not a keras archive")
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["sha256"] = model_store.sha256_of(model_path)
        (folder / "manifest.json").write_text(json.dumps(manifest))
    else:
        (folder / "manifest.json").write_text("{broken")
    with pytest.raises(error, match=words):
        load_model(tmp_path, "m")


def test_missing_store_name_and_version(tmp_path, model_file):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_version(tmp_path / "nowhere", "m")
    with pytest.raises(ModelNotFoundError, match="no published versions"):
        resolve_version(tmp_path, "m")
    write_version(tmp_path, "m", model_file, {})
    with pytest.raises(ModelNotFoundError, match="no version '7'"):
        resolve_version(tmp_path, "m", "7")


@pytest.mark.parametrize(("umask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_published_versions_follow_the_umask(tmp_path, model_file, umask, folder_mode, file_mode):
    """A version trained on the host must be readable by the container's user (not 0700 from mkdtemp)."""
    previous = os.umask(umask)
    try:
        version = write_version(tmp_path / "store", "m", model_file, {})
    finally:
        os.umask(previous)
    folder = tmp_path / "store" / "m" / str(version)
    assert stat.S_IMODE(folder.stat().st_mode) == folder_mode
    assert stat.S_IMODE(folder.parent.stat().st_mode) == folder_mode
    for name in ("model.keras", "manifest.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == file_mode
    assert not [p for p in (tmp_path / "store").iterdir() if p.name.startswith(".staging")]
