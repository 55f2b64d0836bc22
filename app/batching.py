"""Dynamic micro-batching: waves from concurrent requests run through the model together."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from training.predict import Predictor


class Overloaded(Exception):
    """The queue is full: the caller should retry later."""


class DeadlineExceeded(Exception):
    """The waves were not completed within the request's deadline."""


@dataclass
class _Job:
    wave: np.ndarray
    rows: int  # rows of a model call it takes
    bucket: int  # waves of one bucket share model calls
    arrived: int  # order of arrival
    future: asyncio.Future


class MicroBatcher:
    """Queues waves and runs them in batches of up to `max_batch` rows, waiting at most `max_wait` seconds.

    A wave takes `rows(wave)` rows of a model call (default 1; a channel-independent model computes one row per
    feature: Predictor.rows) and belongs to the bucket `bucket(wave)` (default: one for all; the service's is the
    length bucket, Predictor.length_bucket, so a call pays only for the steps its waves have). A batch holds waves
    of one bucket: the bucket of the wave that has waited longest, so no bucket starves. Waves of any lengths
    could share a model call (the predictor pads and masks them, so a wave's answer does not depend on its
    company). Inference runs on `workers` threads off the event loop, each taking the next batch when it is free
    (one compiled call keeps one core busy, so one worker per core). A batch takes waves until they fill the
    largest of `sizes` (the row counts the model runs without padding) that the bucket's waiting rows fill; the
    rest wait for the next free worker. At most `max_queue` waves wait; beyond that `complete` raises Overloaded
    at once.
    """

    def __init__(
        self,
        predict: Predictor,
        max_batch: int,
        max_wait: float,
        max_queue: int = 4096,
        workers: int = 1,
        sizes: Sequence[int] = (),
        observe_batch: Callable[[int, float], None] | None = None,
        rows: Callable[[np.ndarray], int] | None = None,
        bucket: Callable[[np.ndarray], int] | None = None,
    ):
        self._predict = predict
        self._rows = rows or (lambda wave: 1)
        self._bucket = bucket or (lambda wave: 0)
        self._waiting: dict[int, deque[_Job]] = {}  # by bucket, oldest first
        self._waiting_rows: dict[int, int] = {}
        self._depth = 0
        self._arrivals = itertools.count()
        self._arrived = asyncio.Event()
        self._observe_batch = observe_batch or (lambda size, seconds: None)
        self._max_batch = max_batch
        self._sizes = sorted({*sizes, max_batch})
        self._max_wait = max_wait
        self._max_queue = max_queue
        self._running = 0
        self._free_workers = asyncio.Semaphore(workers)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")
        self._task: asyncio.Task | None = None

    @property
    def queue_depth(self) -> int:
        return self._depth

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def drain_and_stop(self, poll: float = 0.01) -> None:
        """Finish every queued and running wave, then stop (used when another model takes over)."""
        while self._depth or self._running:
            await asyncio.sleep(poll)
        await self.stop()

    async def complete(self, waves: list[np.ndarray], timeout: float | None = None) -> list[np.ndarray]:
        """The model's full-horizon completion of each wave, in order, within `timeout` seconds."""
        if self._depth + len(waves) > self._max_queue:
            raise Overloaded(f"{self._depth} waves are queued, the limit is {self._max_queue}")
        loop = asyncio.get_running_loop()
        jobs = [
            _Job(wave, self._rows(wave), self._bucket(wave), next(self._arrivals), loop.create_future())
            for wave in waves
        ]
        for job in jobs:
            self._waiting.setdefault(job.bucket, deque()).append(job)
            self._waiting_rows[job.bucket] = self._waiting_rows.get(job.bucket, 0) + job.rows
        self._depth += len(jobs)
        self._arrived.set()
        try:
            return list(await asyncio.wait_for(asyncio.gather(*(job.future for job in jobs)), timeout))
        except TimeoutError:
            raise DeadlineExceeded(f"not completed within {timeout:g} s") from None

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._free_workers.acquire()
            while not self._depth:
                self._arrived.clear()
                await self._arrived.wait()
            if self._max_wait > 0 and self._waiting_rows[self._oldest_bucket()] < self._max_batch:
                await asyncio.sleep(self._max_wait)
            jobs = self._take(self._oldest_bucket())
            jobs = [job for job in jobs if not job.future.done()]  # callers that gave up
            if not jobs:
                self._free_workers.release()
                continue
            self._running += 1
            loop.run_in_executor(self._executor, self._run, jobs).add_done_callback(partial(self._finish, jobs))

    def _oldest_bucket(self) -> int:
        """The bucket of the wave that has waited longest (waves arrive in order, so the oldest are the heads)."""
        return min(self._waiting, key=lambda bucket: self._waiting[bucket][0].arrived)

    def _take(self, bucket: int) -> list[_Job]:
        """Waves of `bucket` for one batch: at least one, then up to the batch size its waiting rows fill."""
        waiting = self._waiting[bucket]
        target, jobs = self._batch_size(self._waiting_rows[bucket]), [waiting.popleft()]
        taken = jobs[0].rows
        while taken < target and waiting:
            jobs.append(waiting.popleft())
            taken += jobs[-1].rows
        self._waiting_rows[bucket] -= taken
        self._depth -= len(jobs)
        if not waiting:
            del self._waiting[bucket], self._waiting_rows[bucket]
        return jobs

    def _batch_size(self, waiting: int) -> int:
        """How many of the waiting rows to take: the largest preferred size they fill (the rest wait their turn)."""
        waiting = min(waiting, self._max_batch)
        return max((size for size in self._sizes if size <= waiting), default=waiting)

    def _finish(self, jobs: list[_Job], done: asyncio.Future) -> None:
        """On the event loop, once a batch is computed: free its worker and answer its callers."""
        self._running -= 1
        self._free_workers.release()
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        results = [error] * len(jobs) if error is not None else done.result()
        for job, result in zip(jobs, results, strict=True):
            if job.future.done():  # the caller gave up
                continue
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

    def _run(self, jobs: list[_Job]) -> np.ndarray:
        """In a worker thread: complete the batch's waves."""
        started = time.perf_counter()
        predictions = self._predict([job.wave for job in jobs])
        self._observe_batch(len(jobs), time.perf_counter() - started)
        return predictions
