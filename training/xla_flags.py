"""XLA settings for serving, kept free of TensorFlow imports so they can be applied before TensorFlow starts."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def available_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (container CPU limits)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


# XLA:CPU hands matrix products to YNNPACK, which splits them over every core: for this model's small products a
# call then keeps ~1.7 cores busy for the speed of one (measured), and two calls side by side go no faster.
# Without it a call stays on one core, and one call per core runs in parallel.
ONE_CORE_PER_CALL = "--xla_cpu_experimental_ynn_fusion_type="


def keep_calls_on_one_core() -> None:
    """Add ONE_CORE_PER_CALL to XLA_FLAGS (effective only before the process compiles anything with XLA)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {ONE_CORE_PER_CALL}".strip()


# TensorFlow's XLA compilation cache keeps each compiled program in this folder and loads it in later processes
# instead of compiling again (tf.function(jit_compile=True) on CPU too): a restart skips most of its warm-up.
CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def default_compile_cache() -> Path:
    """The user's cache folder for compiled programs: $XDG_CACHE_HOME or ~/.cache, then wave-completion/xla."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wave-completion" / "xla"


def tensorflow_version() -> str:
    """The installed TensorFlow's version, read without importing it."""
    for distribution in ("tensorflow-cpu", "tensorflow"):
        with contextlib.suppress(PackageNotFoundError):
            return version(distribution)
    return "unknown"


def cpu_signature(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """A short hash of the CPU's model and instruction-set flags: programs compiled for one CPU may not run on
    another (XLA warns of SIGILL when it loads a cached program built for other features), so a cache folder
    shared by different hosts (a mounted volume) keeps one subfolder per kind of CPU."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return "unknown-cpu"
    keys = ("model name", "flags", "Features", "CPU part")  # x86 and ARM spellings
    described = sorted({line for line in lines if line.split(":")[0].strip() in keys})
    return hashlib.sha256("\n".join(described).encode()).hexdigest()[:12]


MAX_ISA_FLAG = "--xla_cpu_max_isa"  # caps the instructions compiled programs use, e.g. =AVX2


def max_isa(flags: str | None = None) -> str:
    """The instruction set XLA_FLAGS (or `flags`) caps compiled programs at, lower case ("avx2"); "" for none."""
    found = ""
    for flag in (os.environ.get("XLA_FLAGS", "") if flags is None else flags).split():
        if flag.startswith(f"{MAX_ISA_FLAG}="):
            found = flag.partition("=")[2].lower()  # the last one counts, as in XLA
    return found


def with_max_isa(flags: str, isa: str) -> str:
    """`flags` (an XLA_FLAGS value) capped at `isa` ("" or "native": no cap), other flags kept."""
    kept = [flag for flag in flags.split() if not flag.startswith(f"{MAX_ISA_FLAG}=")]
    return " ".join(kept + ([f"{MAX_ISA_FLAG}={isa.upper()}"] if isa and isa != "native" else []))


DEFAULT_CACHE_MAX_MB = 1024  # every new model version and TensorFlow release adds its own programs


def prune_compile_cache(folder: Path, max_bytes: int) -> int:
    """Delete the least recently used files under `folder` (last read or written first) until the rest hold at
    most `max_bytes`; a file another process removes first is skipped. Returns the number of files deleted."""
    files = []
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            status = path.stat()
            if path.is_file():
                files.append((max(status.st_atime, status.st_mtime), status.st_size, path))
    total = sum(size for _, size, _ in files)
    deleted = 0
    for _, size, path in sorted(files, key=lambda file: file[0]):
        if total <= max_bytes:
            break
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            deleted += 1
        total -= size
    return deleted


def use_compile_cache(folder: str | Path, max_mb: int = DEFAULT_CACHE_MAX_MB) -> Path | None:
    """Keep XLA's compiled programs in `folder`/tf-<TensorFlow version>-<cpu signature>[-<max isa>] (created); ""
    turns the cache off. Programs capped at an instruction set (XLA_FLAGS' --xla_cpu_max_isa) are not those of
    the CPU's own, so each cap has its own folder. Files beyond `max_mb` (0: no limit) in all of `folder` are
    deleted first, least recently used first (programs of older model versions and TensorFlow releases).

    Sets TF_XLA_FLAGS, replacing any cache folder already there, so it takes effect if the process has not
    compiled anything with XLA yet. Returns the folder used, or None (off, or the folder cannot be created).
    """
    flags = [flag for flag in os.environ.get("TF_XLA_FLAGS", "").split() if not flag.startswith(CACHE_FLAG)]
    kind = f"tf-{tensorflow_version()}-{cpu_signature()}" + (f"-{max_isa()}" if max_isa() else "")
    cache = Path(folder).expanduser() / kind if str(folder) else None
    if cache is not None:
        try:
            if any(character.isspace() for character in str(cache)):
                raise OSError("TF_XLA_FLAGS cannot hold a path with spaces")
            cache.mkdir(parents=True, exist_ok=True)
            if max_mb:
                deleted = prune_compile_cache(Path(folder).expanduser(), max_mb << 20)
                if deleted:
                    logging.getLogger(__name__).info("deleted %d old programs from %s", deleted, folder)
            flags.append(f"{CACHE_FLAG}={cache}")
        except OSError as error:
            logging.getLogger(__name__).warning("no compilation cache in %s: %s", cache, error)
            cache = None
    os.environ["TF_XLA_FLAGS"] = " ".join(flags)
    return cache
