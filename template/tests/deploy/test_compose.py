"""compose.yaml, checked statically: the Compose Specification's schema and the stack's promises."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import ServerSettings
from tests.deploy.image import PROJECT_ROOT, read_image

COMPOSE_FILE = PROJECT_ROOT / "compose.yaml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def always_started(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services `docker compose up` starts: those outside any profile."""
    return {name: s for name, s in compose["services"].items() if not s.get("profiles")}


def test_compose_file_follows_the_compose_specification() -> None:
    # The schema ships with check-jsonschema: no download.
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_api_is_built_from_the_dockerfile_and_reads_env_file(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]

    assert api["build"]["dockerfile"] == "deploy/Dockerfile"
    assert api["env_file"] == [{"path": ".env", "required": False}]
    port = read_image().env["PORT"]
    assert api["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_every_service_started_has_a_health_check(compose: dict[str, Any]) -> None:
    unchecked = {name for name, s in always_started(compose).items() if "healthcheck" not in s}

    # The Collector's image has no shell or HTTP client to run a check with.
    assert unchecked <= {"otel-collector"}
    assert "healthcheck" in compose["services"]["api"]


def test_no_bind_mounts_outside_the_dev_profile(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes", {}))
    for name, service in always_started(compose).items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            assert source in named, f"{name} mounts {source} from the host"


def test_dev_profile_mounts_the_code_read_only(compose: dict[str, Any]) -> None:
    dev = compose["services"]["api-dev"]
    binds = [v for v in dev["volumes"] if isinstance(v, dict) and v["type"] == "bind"]

    assert dev["profiles"] == ["dev"]
    assert {bind["source"] for bind in binds} == {"./app", "./artifacts"}
    assert all(bind["read_only"] for bind in binds)


def test_configuration_files_exist(compose: dict[str, Any]) -> None:
    files = [PROJECT_ROOT / config["file"] for config in compose.get("configs", {}).values()]

    assert [path for path in files if not path.is_file()] == []


def test_published_ports_are_documented(compose: dict[str, Any]) -> None:
    header = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    documented = {int(port) for port in re.findall(r"^#\s+(\d+)\s", header, re.MULTILINE)}
    published = [
        port.split(":")
        for service in compose["services"].values()
        for port in service.get("ports", [])
    ]

    assert {int(host_port) for _, host_port, _ in published} == documented


def test_ports_are_published_on_the_loopback_address_only(compose: dict[str, Any]) -> None:
    """Docker publishes a port without an address on every interface of the machine,
    and the stack's consoles ask no login."""
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_api_gets_longer_to_stop_than_requests_get_to_finish(compose: dict[str, Any]) -> None:
    grace = compose["services"]["api"]["stop_grace_period"]
    graceful_timeout = ServerSettings.model_fields["graceful_timeout"].default

    assert int(grace.removesuffix("s")) > graceful_timeout
