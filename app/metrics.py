"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from app.schemas import ModelRef

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests by route and status, latency; per model: batch sizes, model call time, queue depth, version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "wave_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "wave_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "wave_inference_batch_size",
            "waves per model call, by model",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "wave_inference_seconds",
            "duration of one model call, by model",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("wave_queue_depth", "waves waiting, by model", ["model"], registry=self.registry)
        self.model_info = Gauge(
            "wave_model_info",
            "the served models: 1 for each model and its version",
            ["model", "version"],
            registry=self.registry,
        )

    def batch_observer(self, model: str) -> Callable[[int, float], None]:
        """The callback a model's batcher calls after each model call: how many waves, how long it took."""
        sizes, seconds = self.batch_size.labels(model=model), self.inference_seconds.labels(model=model)

        def observe(size: int, took: float) -> None:
            sizes.observe(size)
            seconds.observe(took)

        return observe

    def serving(self, ref: ModelRef, previous: ModelRef | None = None) -> None:
        """Record that `ref` is served (in place of `previous`, when a version replaces another)."""
        if previous is not None and previous != ref:
            self.model_info.remove(previous.name, previous.version)
        self.model_info.labels(model=ref.name, version=ref.version).set(1)
