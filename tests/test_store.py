import json
import multiprocessing
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
    load_calibration,
    resolve_version,
    verify_version,
    write_version,
)
from model_store import store as store_module
from tests.store_writers import publish_many
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
    assert manifest["files"] == {"model.keras": model_store.sha256_of(tmp_path / "m" / "2" / "model.keras")}
    assert sorted(p.name for p in (tmp_path / "m" / "2").iterdir()) == ["manifest.json", "model.keras"]


CALIBRATION = {"source": "a test", "levels": [80, 95], "quantiles": ["0.5 0.25", "1 0.5"]}


def test_a_calibration_is_its_own_file_with_its_checksum_in_the_manifest(tmp_path, model_file):
    version = write_version(tmp_path, "m", model_file, {"note": "a"}, CALIBRATION)
    folder = tmp_path / "m" / str(version)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == {
        name: model_store.sha256_of(folder / name) for name in ("calibration.json", "model.keras")
    }
    assert "calibration" not in manifest
    assert load_calibration(tmp_path, "m", version, manifest) == CALIBRATION
    assert load_model(tmp_path, "m").calibration == CALIBRATION
    assert (
        load_calibration(tmp_path, "m", write_version(tmp_path, "m", model_file, {}), manifest | {"files": {}}) is None
    )


@pytest.mark.parametrize("damage", ["edit", "delete", "unlist"])
def test_a_changed_calibration_is_refused_like_a_changed_model_file(tmp_path, model_file, damage):
    write_version(tmp_path, "m", model_file, {}, CALIBRATION)
    folder = tmp_path / "m" / "1"
    if damage == "edit":  # a band narrowed by hand
        (folder / "calibration.json").write_text(json.dumps({**CALIBRATION, "quantiles": ["0.1 0.05", "1 0.5"]}))
        words = "checksum mismatch for .*calibration.json"
    elif damage == "delete":
        (folder / "calibration.json").unlink()
        words = "calibration.json is missing"
    else:  # the manifest may not point outside the version
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["files"]["../other.json"] = manifest["files"].pop("calibration.json")
        (folder / "manifest.json").write_text(json.dumps(manifest))
        words = "not a file of the version"
    with pytest.raises(IntegrityError, match=words):
        verify_version(tmp_path, "m", 1)
    with pytest.raises(IntegrityError, match=words):
        load_model(tmp_path, "m")


def test_concurrent_publishers_get_distinct_whole_versions(tmp_path, model_file):
    """Two processes publishing into one name at once: every version is published once, under its own number,
    with its own files and manifest, and verifies."""
    store, count = tmp_path / "store", 15
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        jobs = [pool.apply_async(publish_many, (str(store), str(model_file), w, count, barrier)) for w in "ab"]
        published = {writer: job.get(timeout=300) for writer, job in zip("ab", jobs, strict=True)}
    numbers = published["a"] + published["b"]
    assert sorted(numbers) == list(range(1, 2 * count + 1)) == list_versions(store, "m")
    for writer, versions in published.items():
        assert versions == sorted(versions)
        for i, version in enumerate(versions):
            path, manifest = verify_version(store, "m", version)
            assert (manifest["writer"], manifest["index"], manifest["version"]) == (writer, i, version)
            assert path.read_bytes().endswith(f"{writer}-{i}".encode())
            assert load_calibration(store, "m", version, manifest) == {"by": writer, "i": i}
    assert not [p for p in store.iterdir() if p.name.startswith(".staging")]


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
        manifest["files"]["model.keras"] = model_store.sha256_of(model_path)
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
