"""The service on a real local Ray cluster (a head and two worker nodes, one logical CPU each), through Serve's HTTP
proxy: the same answers as the single process, errors, metrics per replica, a killed replica, a removed node,
autoscaling. The cluster starts once for the module and is always shut down."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
serve = pytest.importorskip("ray.serve")

from ray.cluster_utils import Cluster  # noqa: E402

from app.settings import Settings  # noqa: E402
from tests.conftest import DEFAULT_MODEL, started_app  # noqa: E402
from tests.servers import free_port  # noqa: E402

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "ray" / "serve.yaml"
APP, DEPLOYMENT = "wave", "WaveService"
REPLICA_PREFIX = f"SERVE_REPLICA::{APP}#{DEPLOYMENT}#"
DEADLINE = Settings.model_fields["request_timeout_s"].default  # every request is answered within it
SETTINGS = {"models": DEFAULT_MODEL}  # the committed default model, as shipped


def wave(steps: int = 80, features: int = 5, shift: float = 0.0) -> list[list[float]]:
    return [[math.sin((t + shift) / 12 + f) for f in range(features)] for t in range(steps)]


def config_deployment() -> dict:
    """The deployment options of deploy/ray/serve.yaml (the tests deploy what the config file deploys)."""
    (application,) = yaml.safe_load(CONFIG.read_text())["applications"]
    (options,) = application["deployments"]
    return {key: value for key, value in options.items() if key != "name"}


def deploy(metrics_port: int, **options) -> None:
    """(Re)deploy the app from the config file's options, changed by `options`; returns once it runs."""
    from app.ray_serve import ServeArgs, build

    application = build(ServeArgs(settings=SETTINGS, metrics_port=metrics_port))
    merged = {**config_deployment(), **options}
    if "num_replicas" in options:
        merged.pop("autoscaling_config", None)
    application = application._bound_deployment.options(**merged).bind(SETTINGS, metrics_port)
    serve.run(application, name=APP, route_prefix="/")


def replica_states() -> dict[str, int]:
    return dict(serve.status().applications[APP].deployments[DEPLOYMENT].replica_states)


def replicas() -> dict[str, str]:
    """{replica id: node id} of the live replicas of the app."""
    from ray._private.state import actors

    return {
        info["Name"].removeprefix(REPLICA_PREFIX): info["Address"]["NodeID"]
        for info in actors(actor_state_name="ALIVE").values()
        if info["Name"].startswith(REPLICA_PREFIX)
    }


def wait_for(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"not within {timeout:g} s: {what}")


@pytest.fixture(scope="module")
def cluster():
    """A head (Serve's controller and proxy, no CPU for replicas) and two worker nodes of one logical CPU each, two
    replicas of the app, one on each worker; always torn down, and no process of the cluster is left."""
    os.environ["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = "app.ray_serve:proxy_middlewares"
    memory = {"object_store_memory": 100 * 1024**2}
    ray_cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **memory})
    try:
        workers = [ray_cluster.add_node(num_cpus=1, **memory) for _ in range(2)]
        ray.init(address=ray_cluster.address, log_to_driver=False)
        port, metrics_port = free_port(), free_port()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        deploy(metrics_port, num_replicas=2)
        yield {"url": f"http://127.0.0.1:{port}", "cluster": ray_cluster, "workers": workers, "metrics": metrics_port}
    finally:
        processes = [
            info.process
            for node in ray_cluster.list_all_nodes()
            for infos in node.all_processes.values()
            for info in infos
        ]
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        ray_cluster.shutdown()
        os.environ.pop("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", None)
        wait_for(lambda: all(process.poll() is not None for process in processes), 30, "the cluster's processes end")


@pytest.fixture(scope="module")
async def reference():
    """The single-process service with the same settings, in process over ASGI."""
    async with started_app(**SETTINGS) as (_, http):
        yield http


@pytest.fixture
async def proxy(cluster):
    async with httpx.AsyncClient(base_url=cluster["url"], timeout=DEADLINE + 10) as http:
        yield http


def test_the_config_file_is_what_serve_deploys():
    """deploy/ray/serve.yaml passes Serve's own schema, builds the app, and drains longer than a request may take."""
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.schema import ServeDeploySchema

    from app.ray_serve import ServeArgs, build

    config = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    (application,) = config.applications
    assert application.import_path == "app.ray_serve:build"
    built = call_user_app_builder_with_args_if_necessary(build, application.args)
    assert [options.name for options in application.deployments] == [built._bound_deployment.name] == [DEPLOYMENT]
    assert "graceful_shutdown_timeout_s" not in application.deployments[0].model_fields_set  # build sets it:
    assert built._bound_deployment._deployment_config.graceful_shutdown_timeout_s > DEADLINE  # the deadline + 5 s
    longer = build(ServeArgs(settings={"request_timeout_s": 90}))
    assert longer._bound_deployment._deployment_config.graceful_shutdown_timeout_s > 90
    autoscaling = application.deployments[0].autoscaling_config
    assert 1 <= autoscaling["min_replicas"] < autoscaling["max_replicas"]


async def test_a_request_whose_replica_died_gets_503_with_retry_after():
    """The proxy middleware: no answer from the replica becomes 503 + Retry-After; an answer passes unchanged."""
    from starlette.responses import JSONResponse

    from app.ray_serve import ReplicaLost

    async def dies(scope, receive, send):
        return None  # what Serve's proxy does when the replica's actor died under the request

    for inner, status in ((dies, 503), (JSONResponse({"ok": 1}, status_code=422), 422)):
        transport = httpx.ASGITransport(app=ReplicaLost(inner))
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
            answer = await http.post("/predict", json={})
        assert answer.status_code == status
        assert ("retry-after" in answer.headers) == (status == 503)
    assert int(answer.headers.get("retry-after", 1)) >= 1


def test_tensorflow_threads_follow_the_replicas_cpus():
    """Sized before TensorFlow runs (as a replica does): both pools hold the reserved CPUs, not the node's cores."""
    import subprocess
    import sys

    code = (
        "import app.main; from app.ray_serve import size_tensorflow_threads; size_tensorflow_threads(1);"
        "import tensorflow as tf; tf.constant(1.0) + 1.0;"
        "print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "1"]


def test_two_replicas_run_on_different_worker_nodes(cluster):
    assert replica_states() == {"RUNNING": 2}
    placed = replicas()
    workers = {node.node_id for node in cluster["workers"]}
    assert len(placed) == 2 and set(placed.values()) == workers


async def test_routes_answer_as_the_single_process(proxy, reference):
    requests = [
        ("POST", "/predict", {"json": {"wave": wave(), "horizon": 30}}),
        ("POST", "/predict", {"json": {"wave": wave(120, 3, shift=7.0), "level": [80, 95]}}),
        ("POST", "/predict/batch", {"json": {"waves": [wave(60), wave(200, shift=3.0)], "horizon": 12}}),
        ("GET", "/models", {}),
        ("GET", "/v2/models/general", {}),
        (
            "POST",
            "/v2/models/general/infer",
            {
                "json": {
                    "inputs": [
                        {
                            "name": "wave",
                            "datatype": "FP32",
                            "shape": [1, 80, 5],
                            "data": [v for row in wave() for v in row],
                        }
                    ],
                    "parameters": {"horizon": 7},
                }
            },
        ),
    ]
    for method, path, body in requests:
        expected = await reference.request(method, path, **body)
        assert expected.status_code == 200
        for _ in range(4):  # several times: most likely both replicas answer
            answer = await proxy.request(method, path, **body)
            assert answer.status_code == 200, (path, answer.text)
            assert_same_json(answer.json(), expected.json())


async def test_csv_answers_as_the_single_process(proxy, reference):
    rows = "\n".join(",".join(f"{value:.6f}" for value in row) for row in wave(90))
    body = {
        "content": f"a,b,c,d,e\n{rows}\n",
        "headers": {"content-type": "text/csv", "accept": "text/csv"},
        "params": {"horizon": 20},
    }
    expected = await reference.post("/predict", **body)
    for _ in range(4):
        answer = await proxy.post("/predict", **body)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        assert answer.text.splitlines()[0] == expected.text.splitlines()[0]
        np.testing.assert_allclose(csv_values(answer.text), csv_values(expected.text), rtol=1e-5, atol=1e-5)


async def test_errors_keep_their_status_and_json_body(proxy, reference):
    bad_rows = wave(80)
    bad_rows[17] = bad_rows[17][:4]
    requests = [
        ({"json": {"wave": bad_rows}}, 422),
        ({"json": {"wave": wave(), "horizon": 151}}, 422),
        ({"json": {"wave": wave(), "model": "nope"}}, 404),
        ({"content": b"[" + b" " * (16 * 1024 * 1024) + b"]", "headers": {"content-type": "application/json"}}, 413),
    ]
    for body, status in requests:
        expected = await reference.post("/predict", **body)
        answer = await proxy.post("/predict", **body)
        assert (answer.status_code, expected.status_code) == (status, status)
        assert answer.json() == expected.json()
    unknown = await proxy.post("/v2/models/nope/infer", json={"inputs": []})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]


async def test_every_replica_serves_its_metrics_labelled_with_its_id(cluster, proxy):
    """Scraping each replica's port and summing over the `replica` label counts every request once."""
    ports = [cluster["metrics"] + rank for rank in range(2)]

    async def predictions_by_replica() -> dict[str, float]:
        return await counts_by_replica(ports, "/predict")

    before = await predictions_by_replica()
    # Serve's health checks (every 5 s) ask each replica's own /health/ready, which counts them
    readiness = await counts_by_replica(ports, "/health/ready")
    await wait_for_async(
        lambda: counts_by_replica(ports, "/health/ready"),
        lambda now: all(now.get(replica, 0) > readiness.get(replica, 0) for replica in replicas()),
        60,
        "a health check on every replica",
    )
    sent = 24
    answers = await asyncio.gather(*(proxy.post("/predict", json={"wave": wave(), "horizon": 5}) for _ in range(sent)))
    assert [answer.status_code for answer in answers] == [200] * sent
    after = await predictions_by_replica()
    assert set(after) == set(replicas())  # one label value per live replica, each its Serve replica id
    assert sum(after.values()) - sum(before.values()) == sent


async def counts_by_replica(ports: list[int], route: str) -> dict[str, float]:
    """{replica label: requests to `route`} scraped from each replica's metrics port."""
    counts: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for port in ports:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            for line in text.splitlines():
                if line.startswith("wave_http_requests_total{") and f'route="{route}"' in line:
                    labels, value = line.rsplit(" ", 1)
                    replica = labels.split('replica="')[1].split('"')[0]
                    counts[replica] = counts.get(replica, 0.0) + float(value)
    return counts


async def wait_for_async(measure, condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition(value := await measure()):
            return value
        await asyncio.sleep(0.5)
    raise TimeoutError(f"not within {timeout:g} s: {what}")


def test_a_replica_whose_model_fails_to_load_never_takes_traffic(cluster, tmp_path):
    """Its lifespan fails (an empty store), so Serve never marks it running, and its route never answers 200."""
    from app.ray_serve import ServeArgs, build

    broken = build(ServeArgs(settings={"store": str(tmp_path / "empty")}, metrics_port=None))
    broken = broken._bound_deployment.options(ray_actor_options={"num_cpus": 0}).bind(  # beside the two replicas
        {"store": str(tmp_path / "empty")}, None
    )
    try:
        with pytest.raises(RuntimeError, match=r"DEPLOY_FAILED|failed"):
            serve.run(broken, name="broken", route_prefix="/broken")
        deployment = serve.status().applications["broken"].deployments[DEPLOYMENT]
        assert deployment.replica_states.get("RUNNING", 0) == 0
        assert httpx.get(f"{cluster['url']}/broken/health/live", timeout=DEADLINE).status_code != 200
    finally:
        serve.delete("broken")
    assert replica_states() == {"RUNNING": 2}  # the service itself was not touched


async def stream(url: str, requests: int, clients: int, fault, after: int) -> list[httpx.Response]:
    """`requests` POST /predict from `clients` clients; `fault()` runs (in a thread) once `after` are answered."""
    answers: list[httpx.Response] = []
    issued = 0
    faulted = asyncio.Event()
    body = {"wave": wave(), "horizon": 10}

    async def client_loop(http: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests:
            issued += 1
            answers.append(await http.post("/predict", json=body))  # a timeout past the deadline fails the test
            if len(answers) == after:
                faulted.set()

    async def inject() -> None:
        await faulted.wait()
        await asyncio.to_thread(fault)

    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE + 5) as http:
        await asyncio.gather(inject(), *(client_loop(http) for _ in range(clients)))
    return answers


def assert_answered(answers: list[httpx.Response], requests: int) -> None:
    """Every request answered: 200 with a prediction, or 503 with Retry-After (its replica died under it)."""
    assert len(answers) == requests
    for answer in answers:
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) >= 1 and "detail" in answer.json()
        else:
            assert len(answer.json()["prediction"]) == 10
    assert [answer.status_code for answer in answers[-10:]] == [200] * 10  # the rest took the traffic on


def test_a_killed_replica_is_replaced_and_every_request_is_answered(cluster):
    before = replicas()
    victim = sorted(before)[0]

    def kill() -> None:
        ray.kill(ray.get_actor(REPLICA_PREFIX + victim, namespace="serve"), no_restart=True)

    answers = asyncio.run(stream(cluster["url"], requests=120, clients=8, fault=kill, after=20))
    assert_answered(answers, 120)
    after = wait_for(
        lambda: (
            (placed := replicas())
            and len(placed) == 2
            and victim not in placed
            and replica_states() == {"RUNNING": 2}
            and placed
        ),
        180,
        "Serve brings a second replica back",
    )
    assert victim not in after


def test_traffic_continues_when_a_worker_node_is_removed(cluster):
    placed = replicas()
    node = next(worker for worker in cluster["workers"] if worker.node_id in placed.values())

    def remove() -> None:
        cluster["cluster"].remove_node(node)
        cluster["workers"].remove(node)

    answers = asyncio.run(stream(cluster["url"], requests=120, clients=8, fault=remove, after=20))
    assert_answered(answers, 120)
    assert node.node_id not in replicas().values()
    cluster["workers"].append(cluster["cluster"].add_node(num_cpus=1, object_store_memory=100 * 1024**2))


def test_autoscaling_adds_a_replica_under_a_burst_and_removes_it_after(cluster):
    """1 -> 2 replicas while 16 clients send requests (bounded in count and time), back to 1 after."""
    autoscaling = {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 2,
        "upscale_delay_s": 1,
        "downscale_delay_s": 5,
        "look_back_period_s": 11,  # > the replicas' metrics push interval (10 s)
    }
    deploy(cluster["metrics"], autoscaling_config=autoscaling)
    wait_for(lambda: replica_states() == {"RUNNING": 1}, 120, "one replica before the burst")
    seen: list[int] = []

    async def burst() -> None:
        body = {"wave": wave(300), "horizon": 150}
        stop_at = time.monotonic() + 240
        async with httpx.AsyncClient(base_url=cluster["url"], timeout=DEADLINE + 5) as http:

            async def client_loop() -> None:
                sent = 0
                while sent < 2000 and time.monotonic() < stop_at and 2 not in seen:
                    sent += 1
                    assert (await http.post("/predict", json=body)).status_code == 200

            async def watch() -> None:
                while time.monotonic() < stop_at and 2 not in seen:
                    seen.append((await asyncio.to_thread(replica_states)).get("RUNNING", 0))
                    await asyncio.sleep(0.5)

            await asyncio.gather(watch(), *(client_loop() for _ in range(16)))

    asyncio.run(burst())
    assert seen[0] == 1 and 2 in seen
    wait_for(lambda: replica_states() == {"RUNNING": 1}, 120, "back to one replica after the burst")


def assert_same_json(answer, expected, path: str = "") -> None:
    """Equal JSON, numbers to 1e-5."""
    if isinstance(expected, dict):
        assert isinstance(answer, dict) and set(answer) == set(expected), path
        for key in expected:
            assert_same_json(answer[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list) and expected and all(isinstance(v, int | float) for v in np.ravel(expected)):
        np.testing.assert_allclose(np.asarray(answer, float), np.asarray(expected, float), rtol=1e-5, atol=1e-5)
    elif isinstance(expected, list):
        assert isinstance(answer, list) and len(answer) == len(expected), path
        for index, (a, e) in enumerate(zip(answer, expected, strict=True)):
            assert_same_json(a, e, f"{path}[{index}]")
    elif isinstance(expected, float):
        assert answer == pytest.approx(expected, rel=1e-5, abs=1e-5), path
    else:
        assert answer == expected, path


def csv_values(text: str) -> np.ndarray:
    return np.array([[float(value) for value in line.split(",")] for line in text.splitlines()[1:]])
