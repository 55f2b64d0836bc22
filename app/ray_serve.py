"""The service on a Ray cluster: every Serve replica runs the FastAPI app of `app.main.create_app` unchanged.

`serve run deploy/ray/serve.yaml` (or `serve deploy`) imports `app.ray_serve:build`. Each replica builds the app
from the service's own Settings (WAVE_* variables, plus the overrides in the config's `args.settings`), runs its
lifespan (load, verify, warm up every model) before it takes traffic, and answers every route exactly as the
single process does, with the service's own micro-batcher. Serve's options (replicas or autoscaling, CPUs per
replica, health checks, graceful shutdown) are the deployment options in the config file.

Only this module imports Ray; the plain service never imports it (`pip install -e '.[ray]'` brings Ray).
"""

import logging
import math
import os
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import Settings

logger = logging.getLogger("app")

# scale-down and redeploys wait this long beyond the longest request's deadline before a replica is stopped
DRAIN_MARGIN_S = 5.0
# a replica that died under a request: the client is told to retry after this many seconds (another replica)
REPLICA_LOST_RETRY_AFTER_S = 1


def replica_cpus() -> int:
    """Whole CPUs Ray reserved for this replica (`ray_actor_options.num_cpus`, at least 1)."""
    import ray

    return max(1, math.ceil(ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)))


def size_tensorflow_threads(cpus: int) -> None:
    """TensorFlow's intra- and inter-op thread pools sized to the replica's CPUs (Ray sets OMP_NUM_THREADS, which
    TensorFlow ignores: it would size both pools to every core of the node). Must run before TensorFlow runs an op.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cpus)
    tf.config.threading.set_inter_op_parallelism_threads(cpus)


class ReplicaLabelled(Collector):
    """Every sample of `registry` with a `replica` label added, so sums over replicas are right."""

    def __init__(self, registry: CollectorRegistry, replica: str):
        self.registry = registry
        self.replica = replica

    def collect(self):
        for family in self.registry.collect():
            samples = [sample._replace(labels={**sample.labels, "replica": self.replica}) for sample in family.samples]
            family.samples = samples
            yield family


@serve.deployment(
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=64,  # let concurrent requests reach the replica's micro-batcher (Serve's default: 5)
    health_check_period_s=5,
    health_check_timeout_s=10,
    graceful_shutdown_timeout_s=Settings.model_fields["request_timeout_s"].default + DRAIN_MARGIN_S,
)
@serve.ingress()
class WaveService:
    """One replica: the service's FastAPI app, built in the replica after TensorFlow's threads are sized."""

    def __init__(self, overrides: dict[str, Any], metrics_port: int | None = None):
        import app.main  # noqa: F401  sets TensorFlow's and XLA's environment before TensorFlow starts

        cpus = replica_cpus()
        size_tensorflow_threads(cpus)
        if "inference_workers" not in overrides and "WAVE_INFERENCE_WORKERS" not in os.environ:
            overrides = {**overrides, "inference_workers": cpus}  # one worker per reserved CPU, not per node core
        self.settings = Settings(**overrides)
        self.metrics_port = metrics_port
        self.metrics_server = None

    def __serve_build_asgi_app__(self) -> ASGIApp:
        """The app, as `wave-serve` builds it; Serve runs its lifespan before the replica takes traffic."""
        from app.main import create_app

        application = create_app(self.settings)
        if self.metrics_port is not None:
            context = serve.get_replica_context()
            registry = CollectorRegistry(auto_describe=False)
            registry.register(ReplicaLabelled(application.state.metrics.registry, context.replica_tag))
            port = self.metrics_port + context.rank.rank  # ranks are unique within the deployment
            try:
                self.metrics_server, _ = start_http_server(port, addr="0.0.0.0", registry=registry)
                logger.info("replica %s: metrics on port %d", context.replica_tag, port)
            except OSError as error:  # the port is held (e.g. by a replica of the same rank still draining)
                logger.warning("replica %s: no metrics port %d: %s", context.replica_tag, port, error)
        return application

    async def check_health(self) -> None:
        """Serve's health check asks the service's own readiness route; anything but 200 marks the replica down."""
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            response = await client.get("/health/ready")
        if response.status_code != 200:
            raise RuntimeError(f"/health/ready answered {response.status_code}: {response.text}")

    def __del__(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()


class ServeArgs(BaseModel):
    """The `args:` of the Serve config's application (deploy/ray/serve.yaml)."""

    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings fields for every replica (e.g. store, models); unset ones come from WAVE_* variables",
    )
    metrics_port: int | None = Field(
        9400, ge=1, le=65535, description="each replica serves its labelled metrics on this port plus its rank"
    )


def build(args: ServeArgs) -> Application:
    """The Serve application (`import_path: app.ray_serve:build`); the settings are checked here, in the driver."""
    settings = Settings(**args.settings)
    deployment = WaveService.options(graceful_shutdown_timeout_s=settings.request_timeout_s + DRAIN_MARGIN_S)
    return deployment.bind(args.settings, args.metrics_port)


class ReplicaLost:
    """Proxy middleware: a request whose replica died before answering gets 503 + Retry-After, like an overload.

    Serve's proxy ends such a request without a response (the client would see a bare 500); the request was not
    answered, so it is safe to send again, and another replica takes it. Installed in Serve's HTTP proxy by
    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=app.ray_serve:proxy_middlewares.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, receive, tracking_send)
        if not started:
            body = b'{"detail": "the replica serving this request stopped; send it again"}'
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(REPLICA_LOST_RETRY_AFTER_S).encode()),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def proxy_middlewares() -> list:
    """The HTTP proxy callback: Starlette middlewares for Serve's proxy."""
    from starlette.middleware import Middleware

    return [Middleware(ReplicaLost)]
