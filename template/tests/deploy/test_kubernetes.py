"""The Kubernetes base in deploy/k8s: valid resources that keep the service's promises.

Each check reads the resources as kustomize builds them (see manifests.py) and holds
them against what the image, the server and the service actually do.
"""

import os
from typing import Any

import kubernetes_validate
import pytest
from fastapi.routing import APIRoute

from app.api.health import router as health_router
from app.settings import ServerSettings, load_server_settings, load_settings
from tests.deploy.image import read_image
from tests.deploy.manifests import Resource, container, environment, one

KUBERNETES_VERSION = "1.31"


def is_built_in(resource: Resource) -> bool:
    """Kubernetes' own API groups have no dot or end in .k8s.io; a CRD's group has a dot."""
    group = resource["apiVersion"].rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def pod_spec(resources: list[Resource]) -> dict[str, Any]:
    spec: dict[str, Any] = one(resources, "Deployment")["spec"]["template"]["spec"]
    return spec


def pod_labels(resources: list[Resource]) -> dict[str, str]:
    template = one(resources, "Deployment")["spec"]["template"]
    labels: dict[str, str] = template["metadata"]["labels"]
    return labels


def container_port(resources: list[Resource], port: int | str) -> int:
    """The number of the container port a probe or a Service names, by number or by name."""
    ports = {entry.get("name"): entry["containerPort"] for entry in container(resources)["ports"]}
    assert port in ports or port in ports.values(), f"{port} is not a port of the container"
    return ports[port] if isinstance(port, str) else port


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


@pytest.fixture
def pod_environment(resources: list[Resource], monkeypatch: pytest.MonkeyPatch) -> None:
    """This process' settings variables replaced by the pod's, for the settings to read."""
    server_variables = {name.upper() for name in ServerSettings.model_fields}
    for variable in list(os.environ):
        if variable.startswith("APP_") or variable in server_variables:
            monkeypatch.delenv(variable)
    for variable, value in environment(resources).items():
        monkeypatch.setenv(variable, value)


def test_every_resource_is_valid_for_kubernetes(resources: list[Resource]) -> None:
    built_in = [resource for resource in resources if is_built_in(resource)]
    problems = {}
    for resource in built_in:
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{resource['kind']}/{resource['metadata']['name']}"
            problems[name] = f"{'.'.join(map(str, error.path))}: {error.message}"

    assert {resource["kind"] for resource in built_in} >= {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    }
    assert problems == {}


def test_the_container_listens_on_the_port_the_image_exposes(resources: list[Resource]) -> None:
    assert container_port(resources, "http") in read_image().exposed


def test_probes_ask_the_container_port_for_health_and_readiness(resources: list[Resource]) -> None:
    service = container(resources)
    served = {route.path for route in health_router.routes if isinstance(route, APIRoute)}
    probes = {
        name: service[name]["httpGet"]
        for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }

    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startupProbe": "/health",
        "livenessProbe": "/health",
        "readinessProbe": "/ready",
    }
    assert {"/health", "/ready"} <= served
    assert all(
        container_port(resources, probe["port"]) == container_port(resources, "http")
        for probe in probes.values()
    )


@pytest.mark.usefixtures("pod_environment")
def test_pods_stop_after_requests_in_flight_finish(resources: list[Resource]) -> None:
    # SIGTERM comes after the preStop command; the grace period counts from before it.
    pause = container(resources)["lifecycle"]["preStop"]["exec"]["command"]
    grace = pod_spec(resources)["terminationGracePeriodSeconds"]

    assert pause[0] == "sleep"
    assert grace > int(pause[1]) + load_server_settings().graceful_timeout


@pytest.mark.usefixtures("pod_environment")
def test_the_pod_environment_is_a_valid_configuration() -> None:
    settings = load_settings()
    load_server_settings()

    assert settings.log_format == "json"


def test_pods_read_the_config_map_of_the_base(resources: list[Resource]) -> None:
    config_maps = {r["metadata"]["name"] for r in resources if r["kind"] == "ConfigMap"}
    sources = [source["configMapRef"]["name"] for source in container(resources)["envFrom"]]

    assert sources
    assert set(sources) <= config_maps


def test_pods_run_as_the_image_user_without_privileges(resources: list[Resource]) -> None:
    user, group = read_image().user.split(":")
    pod = pod_spec(resources)["securityContext"]
    own = container(resources)["securityContext"]

    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(user), int(group))
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"] == {"drop": ["ALL"]}


def test_the_root_filesystem_is_read_only_but_tmp_is_writable(resources: list[Resource]) -> None:
    mounts = {mount["mountPath"]: mount for mount in container(resources)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(resources)["volumes"]}

    assert container(resources)["securityContext"]["readOnlyRootFilesystem"] is True
    assert environment(resources)["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "/tmp" in mounts
    assert not mounts["/tmp"].get("readOnly", False)
    tmp = volumes[mounts["/tmp"]["name"]]
    assert tmp["emptyDir"]["medium"] == "Memory"
    assert tmp["emptyDir"]["sizeLimit"]


def test_the_database_url_comes_from_a_secret_that_is_not_in_the_repository(
    resources: list[Resource],
) -> None:
    variables = {variable["name"]: variable for variable in container(resources)["env"]}
    config_values = [r.get("data", {}) for r in resources if r["kind"] == "ConfigMap"]
    secrets_with_data = [
        r["metadata"]["name"]
        for r in resources
        if r["kind"] == "Secret" and (r.get("data") or r.get("stringData"))
    ]

    reference = variables["APP_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference["name"]
    assert reference["key"]
    assert not reference.get("optional", False)
    assert not any("APP_DATABASE_URL" in data for data in config_values)
    assert secrets_with_data == []


def test_service_disruption_budget_and_spread_select_the_deployment_pods(
    resources: list[Resource],
) -> None:
    labels = pod_labels(resources)
    service = one(resources, "Service")["spec"]

    assert selects(one(resources, "Deployment")["spec"]["selector"]["matchLabels"], labels)
    assert selects(service["selector"], labels)
    assert selects(one(resources, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    for constraint in pod_spec(resources)["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"]["matchLabels"], labels)
    assert {port["name"] for port in service["ports"]} >= {"http"}
    assert all(
        container_port(resources, port["targetPort"]) == container_port(resources, "http")
        for port in service["ports"]
    )


def test_the_autoscaler_scales_the_deployment_on_requested_cpu(
    resources: list[Resource],
) -> None:
    deployment = one(resources, "Deployment")
    autoscaler = one(resources, "HorizontalPodAutoscaler")["spec"]
    resources_of_the_pod = container(resources)["resources"]

    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert autoscaler["minReplicas"] >= 2
    # A replica count in the Deployment would undo the autoscaler's at every apply.
    assert "replicas" not in deployment["spec"]
    assert [metric["resource"]["name"] for metric in autoscaler["metrics"]] == ["cpu"]
    # Utilisation is a share of the request: without one the autoscaler does nothing.
    assert "cpu" in resources_of_the_pod["requests"]
    assert "memory" in resources_of_the_pod["limits"]
