"""Start-up time: XLA's persistent compilation cache (the first start fills it, a restart loads every program
from it), and no optional library imported by Keras on the way."""

import os
import subprocess
import sys

import httpx
import pytest

from app.schemas import example_wave
from tests.conftest import DEFAULT_MODEL
from tests.servers import ROOT, compiled_everything, running_server
from training.xla_flags import (
    CACHE_FLAG,
    MAX_ISA_FLAG,
    cpu_signature,
    max_isa,
    prune_compile_cache,
    tensorflow_version,
    use_compile_cache,
    with_max_isa,
)


def test_cache_folder_is_set_once_replacing_an_earlier_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_XLA_FLAGS", f"--tf_xla_auto_jit=0 {CACHE_FLAG}=/elsewhere")
    folder = use_compile_cache(tmp_path / "xla")
    assert folder == tmp_path / "xla" / f"tf-{tensorflow_version()}-{cpu_signature()}" and folder.is_dir()
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 {CACHE_FLAG}={folder}"
    assert use_compile_cache("") is None
    assert os.environ["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=0"


def test_each_kind_of_cpu_gets_its_own_cache_folder(tmp_path):
    """Programs compiled for one CPU's instruction set must not be loaded on another (a shared cache volume)."""
    avx512 = tmp_path / "a"
    avx512.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx2 avx512f\n")
    avx2 = tmp_path / "b"
    avx2.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx2\n")
    twice = tmp_path / "c"
    twice.write_text(avx2.read_text() + avx2.read_text().replace(": 0", ": 1"))
    assert cpu_signature(avx512) != cpu_signature(avx2) == cpu_signature(twice)
    assert cpu_signature(tmp_path / "missing") == "unknown-cpu"


def test_programs_capped_at_an_instruction_set_get_their_own_cache_folder(tmp_path, monkeypatch):
    """XLA_FLAGS' --xla_cpu_max_isa changes the compiled programs: an AVX2-capped set is never loaded uncapped."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    native = use_compile_cache(tmp_path)
    monkeypatch.setenv("XLA_FLAGS", f"--xla_cpu_experimental_ynn_fusion_type= {MAX_ISA_FLAG}=AVX2")
    capped = use_compile_cache(tmp_path)
    assert native == tmp_path / f"tf-{tensorflow_version()}-{cpu_signature()}"
    assert capped == tmp_path / f"tf-{tensorflow_version()}-{cpu_signature()}-avx2" and capped.is_dir()
    assert os.environ["TF_XLA_FLAGS"].endswith(f"{CACHE_FLAG}={capped}")
    assert with_max_isa("--a=1 --xla_cpu_max_isa=SSE4_2", "avx2") == "--a=1 --xla_cpu_max_isa=AVX2"
    assert with_max_isa("--a=1 --xla_cpu_max_isa=AVX2", "native") == "--a=1"
    assert max_isa("--xla_cpu_max_isa=AVX512 --xla_cpu_max_isa=AVX2") == "avx2" and max_isa("") == ""


def test_the_cache_keeps_the_most_recently_used_programs_within_its_limit(tmp_path, monkeypatch):
    """Every model version and TensorFlow release adds programs; beyond the limit the least recently used go."""
    monkeypatch.setenv("TF_XLA_FLAGS", "")
    old_release = tmp_path / "tf-2.20.0-abc"
    old_release.mkdir()
    files = [old_release / "a", tmp_path / "b", tmp_path / "c", tmp_path / "d"]
    for age, file in enumerate(files):  # a is the oldest, d the newest: read or written 4, 3, 2, 1 hours ago
        file.write_bytes(b"x" * (3 << 18))  # 0.75 MB
        os.utime(file, (1e9 - 3600 * (4 - age), 1e9 - 3600 * (4 - age)))
    assert prune_compile_cache(tmp_path, 4 * (3 << 18)) == 0 and all(file.exists() for file in files)
    assert prune_compile_cache(tmp_path, 2 * (3 << 18) + 1) == 2
    assert [file.exists() for file in files] == [False, False, True, True]
    os.utime(files[2], (2e9, 1e9))  # c read recently: d is now the least recently used
    folder = use_compile_cache(tmp_path, max_mb=1)
    assert [file.exists() for file in files] == [False, False, True, False] and folder.is_dir()
    use_compile_cache(tmp_path, max_mb=0)  # no limit
    assert files[2].exists()


def test_the_cache_limit_is_a_setting(monkeypatch):
    from app.settings import Settings

    monkeypatch.setenv("WAVE_COMPILE_CACHE_MAX_MB", "64")
    assert Settings().compile_cache_max_mb == 64
    monkeypatch.setenv("WAVE_COMPILE_CACHE_MAX_MB", "-1")
    with pytest.raises(ValueError, match="compile_cache_max_mb"):
        Settings()


def test_a_folder_that_cannot_be_made_leaves_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_XLA_FLAGS", "")
    (tmp_path / "file").write_text("not a folder")
    assert use_compile_cache(tmp_path / "file") is None
    assert use_compile_cache(tmp_path / "with space") is None
    assert CACHE_FLAG not in os.environ["TF_XLA_FLAGS"]


def test_a_restart_loads_every_program_from_the_cache_and_answers_the_same(tmp_path):
    env = {"WAVE_COMPILE_CACHE": str(tmp_path), "WAVE_MODELS": DEFAULT_MODEL, "WAVE_MAX_BATCH_SIZE": "2"}
    body = {"wave": example_wave(120, 3), "horizon": 150}
    answers, entries = [], []
    for _ in range(2):
        with running_server(env, timeout=300) as (url, process):
            response = httpx.post(f"{url}/predict", json=body, timeout=60)
            assert response.status_code == 200
            answers.append(response.json()["prediction"])
            assert compiled_everything(process)  # the larger batches, compiled in the background once ready
        entries.append(sorted(path.name for path in tmp_path.rglob("*.pb")))
    assert len(entries[0]) >= 6  # 2 batch sizes (WAVE_MAX_BATCH_SIZE=2) x 3 length buckets were written
    assert entries[1] == entries[0]  # the restart compiled nothing new: every program came from the cache
    assert answers[1] == answers[0]


def test_the_service_imports_keras_without_its_optional_libraries():
    code = (
        "import sys, app.main\n"
        "assert not {'matplotlib', 'sklearn', 'pandas'} & set(sys.modules), sorted(sys.modules)\n"
        "import matplotlib.figure  # still importable later (the plot route)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
