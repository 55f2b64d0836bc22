"""The micro-batcher on its own: parallel workers, grouping, errors; plus the serving process settings."""

import asyncio
import gc
import os
import threading

import numpy as np
import pytest

from app.batching import MicroBatcher
from app.settings import Settings
from training.predict import batch_buckets
from training.xla_flags import ONE_CORE_PER_CALL, available_cpus, keep_calls_on_one_core

pytestmark = pytest.mark.anyio


class EchoModel:
    """Completes each wave with its last row repeated; `hold` makes every call wait for a barrier first; `started`
    is set once the first call runs."""

    def __init__(self, hold: threading.Barrier | None = None, patience: float = 10.0, gate=None):
        self.hold = hold
        self.patience = patience
        self.gate = gate  # a threading.Event the first call waits for
        self.calls: list[int] = []
        self.started = threading.Event()

    def __call__(self, waves):
        self.calls.append(len(waves))
        self.started.set()
        if self.gate is not None and len(self.calls) == 1:
            self.gate.wait(timeout=10)
        if self.hold is not None:
            self.hold.wait(timeout=self.patience)  # raises BrokenBarrierError unless enough calls run at once
        return [np.repeat(w[-1:], 3, axis=0) for w in waves]  # waves may differ in width


def waves(count: int) -> list[np.ndarray]:
    return [np.full((4, 2), i, np.float32) for i in range(count)]


async def first_call_running(model: EchoModel) -> None:
    """Wait (off the event loop) until the model's first call has begun."""
    assert await asyncio.to_thread(model.started.wait, 10), "the first call never started"


async def queued(batcher: MicroBatcher, count: int) -> None:
    """Let the calls just submitted run up to their wait: `complete` queues its waves before it first awaits, so
    one turn of the event loop (no clock involved) is enough; checked, not assumed."""
    await asyncio.sleep(0)
    assert batcher.queue_depth == count


async def test_two_workers_run_two_batches_at_the_same_time():
    model = EchoModel(hold=threading.Barrier(2))
    batcher = MicroBatcher(model, max_batch=1, max_wait=0, workers=2)
    batcher.start()
    try:
        first, second = await asyncio.gather(batcher.complete(waves(1)), batcher.complete(waves(2)[1:]))
    finally:
        await batcher.stop()
    assert first[0][0, 0] == 0 and second[0][0, 0] == 1
    assert model.calls == [1, 1]


async def test_one_worker_runs_one_batch_at_a_time():
    model = EchoModel(hold=threading.Barrier(2), patience=0.5)
    batcher = MicroBatcher(model, max_batch=1, max_wait=0, workers=1)
    batcher.start()
    try:
        results = await asyncio.gather(*(batcher.complete([w]) for w in waves(2)), return_exceptions=True)
    finally:
        await batcher.stop()
    assert all(isinstance(r, threading.BrokenBarrierError) for r in results)  # the calls never overlapped


async def test_queued_waves_share_calls_and_come_back_in_order():
    model = EchoModel()
    batcher = MicroBatcher(model, max_batch=8, max_wait=0.05, workers=2)
    batcher.start()
    try:
        results = await asyncio.gather(*(batcher.complete([w]) for w in waves(20)))
    finally:
        await batcher.stop()
    assert [int(r[0][0, 0]) for r in results] == list(range(20))
    assert sum(model.calls) == 20 and max(model.calls) <= 8 and len(model.calls) < 20


async def test_a_batch_takes_the_largest_size_the_waiting_waves_fill():
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = MicroBatcher(model, max_batch=8, max_wait=0, workers=1, sizes=(1, 2, 4, 8))
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.complete(waves(1)))
        await first_call_running(model)  # and held by the gate
        rest = asyncio.ensure_future(batcher.complete(waves(7)))
        await queued(batcher, 7)
        gate.set()
        await first
        assert [int(r[0, 0]) for r in await rest] == list(range(7))
    finally:
        await batcher.stop()
    assert model.calls == [1, 4, 2, 1]  # 7 waiting: 4, then 2, then 1; no call is padded


async def test_a_batch_counts_rows_when_waves_take_one_row_per_feature():
    gate = threading.Event()
    model = EchoModel(gate=gate)
    batcher = MicroBatcher(
        model, max_batch=20, max_wait=0, workers=1, sizes=(5, 10, 20), rows=lambda wave: wave.shape[1]
    )
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.complete([np.zeros((4, 5), np.float32)]))
        await first_call_running(model)  # and held by the gate
        five = [np.full((4, 5), i, np.float32) for i in range(5)]  # 25 rows
        ones = [np.full((4, 1), i, np.float32) for i in range(20)]  # 20 rows
        rest = asyncio.gather(batcher.complete(five), batcher.complete(ones))
        await queued(batcher, 25)
        gate.set()
        await first
        five_out, ones_out = await rest
        assert [int(r[0, 0]) for r in five_out] == list(range(5)) and [int(r[0, 0]) for r in ones_out] == list(
            range(20)
        )
    finally:
        await batcher.stop()
    # 45 rows waiting: 4 five-feature waves fill 20; then 1 of 5 and 15 of 1 fill 20; the last 5 ones fill 5
    assert model.calls == [1, 4, 16, 5]


def test_compiled_batch_sizes_are_powers_of_two_up_to_the_largest():
    assert batch_buckets(32) == (1, 2, 4, 8, 16, 32)
    assert batch_buckets(10) == (1, 2, 4, 8, 10)
    assert batch_buckets(1) == (1,)


async def test_drain_waits_for_running_batches():
    model = EchoModel()
    batcher = MicroBatcher(model, max_batch=4, max_wait=0, workers=2)
    batcher.start()
    pending = asyncio.ensure_future(batcher.complete(waves(10)))
    await asyncio.sleep(0)  # `complete` queues its waves (see `queued`); the workers may have taken some already
    await batcher.drain_and_stop()
    assert len(await pending) == 10


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", 4), ("150000 100000\n", 2), ("50000 100000", 1), ("800000 100000", 4), (None, 4)],
)
def test_usable_cpus_are_the_affinity_capped_by_a_container_quota(tmp_path, monkeypatch, cpu_max, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max)
    assert available_cpus(tmp_path / "cpu.max") == expected


def test_inference_workers_default_to_the_usable_cpus(monkeypatch):
    monkeypatch.delenv("WAVE_INFERENCE_WORKERS", raising=False)
    assert Settings().inference_workers == available_cpus()
    monkeypatch.setenv("WAVE_INFERENCE_WORKERS", "3")
    assert Settings().inference_workers == 3


def test_xla_flag_is_added_once_and_keeps_the_callers_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    keep_calls_on_one_core()
    keep_calls_on_one_core()
    assert os.environ["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {ONE_CORE_PER_CALL}"


async def test_the_started_service_has_frozen_its_heap(client):
    assert (await client.get("/health/ready")).status_code == 200
    assert gc.get_freeze_count() > 100_000  # TensorFlow's objects are out of the collector's way
