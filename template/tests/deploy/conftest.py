"""The resources of deploy/k8s, from kustomize when it is installed and from the files always."""

import pytest

from tests.deploy.manifests import Resource, build, kustomize_command, read_files

KUSTOMIZE = kustomize_command()


@pytest.fixture(scope="session", params=["kustomize", "files"] if KUSTOMIZE else ["files"])
def resources(request: pytest.FixtureRequest) -> list[Resource]:
    return build(KUSTOMIZE) if KUSTOMIZE and request.param == "kustomize" else read_files()
