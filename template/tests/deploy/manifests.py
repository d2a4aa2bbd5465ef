"""The Kubernetes resources of deploy/k8s, built by kustomize or read from the files.

``kubectl apply -k deploy/k8s`` applies what kustomize builds, so that is what the
tests check wherever kustomize or kubectl is installed. Elsewhere the files listed in
kustomization.yaml are read and the two parts of kustomize the checks depend on are
applied: the common labels and the generated ConfigMap (without the hash kustomize
appends to its name). A kustomization using anything more is refused, not guessed at.
"""

import shutil
import subprocess
from typing import Any

import yaml

from tests.deploy.image import PROJECT_ROOT

BASE = PROJECT_ROOT / "deploy" / "k8s"
# What read_files() understands; `images` changes only the image reference, which no
# check reads.
READABLE_WITHOUT_KUSTOMIZE = {
    "apiVersion",
    "kind",
    "resources",
    "labels",
    "images",
    "configMapGenerator",
}

Resource = dict[str, Any]


def kustomize_command() -> list[str] | None:
    """The command that builds a kustomization, or None when neither tool is installed."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def build(command: list[str]) -> list[Resource]:
    """The resources ``command`` (kustomize build, kubectl kustomize) makes of the base."""
    result = subprocess.run(
        [*command, str(BASE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def read_files() -> list[Resource]:
    """The resources of the files kustomization.yaml lists, with its labels and ConfigMaps."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    unread = kustomization.keys() - READABLE_WITHOUT_KUSTOMIZE
    assert not unread, f"install kubectl or kustomize to build a base using {sorted(unread)}"
    resources: list[Resource] = [
        document
        for name in kustomization["resources"]
        for document in yaml.safe_load_all((BASE / name).read_text())
        if document
    ]
    for generator in kustomization.get("configMapGenerator", []):
        assert generator.keys() <= {"name", "literals"}, generator
        data = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        metadata = {"name": generator["name"]}
        resources.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        )
    # Selectors name their labels in the files; kustomize adds them to every resource.
    for entry in kustomization.get("labels", []):
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(entry["pairs"])
    return resources


def one(resources: list[Resource], kind: str) -> Resource:
    matches = [resource for resource in resources if resource["kind"] == kind]
    assert len(matches) == 1, f"{len(matches)} resources of kind {kind}"
    return matches[0]


def container(resources: list[Resource]) -> dict[str, Any]:
    """The Deployment's one container: the service."""
    containers: list[dict[str, Any]] = one(resources, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1, [entry["name"] for entry in containers]
    return containers[0]


def environment(resources: list[Resource]) -> dict[str, str]:
    """The variables the pod's environment gets from its ConfigMaps and literal values."""
    config_maps = {
        resource["metadata"]["name"]: resource.get("data", {})
        for resource in resources
        if resource["kind"] == "ConfigMap"
    }
    variables: dict[str, str] = {}
    for source in container(resources).get("envFrom", []):
        variables |= config_maps[source["configMapRef"]["name"]]
    for variable in container(resources).get("env", []):
        if "value" in variable:
            variables[variable["name"]] = variable["value"]
    return variables
