"""A publisher for the store's concurrency test, in a module of its own: spawned processes import only the store."""

from __future__ import annotations

from pathlib import Path

from model_store import write_version


def publish_many(store: str, model_file: str, writer: str, count: int, barrier) -> list[int]:
    """Publish `count` versions of `m`, each with its own model file and calibration, once every writer is ready."""
    barrier.wait()
    versions = []
    for i in range(count):
        own = Path(store).parent / f"{writer}-{i}.keras"
        own.write_bytes(Path(model_file).read_bytes() + f"{writer}-{i}".encode())  # distinct bytes per version
        versions.append(write_version(Path(store), "m", own, {"writer": writer, "index": i}, {"by": writer, "i": i}))
    return versions
