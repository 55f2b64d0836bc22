"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests by route and status, latency, batch sizes, model call time, queue depth and the served model."""

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
            "wave_inference_batch_size", "waves per model call", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.inference_seconds = Histogram(
            "wave_inference_seconds", "duration of one model call", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge("wave_queue_depth", "waves waiting for the model", registry=self.registry)
        self.model = Info("wave_model", "the served model", registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        """Record one model call: how many waves it completed and how long it took."""
        self.batch_size.observe(size)
        self.inference_seconds.observe(seconds)
