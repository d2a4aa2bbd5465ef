"""The image's exact command, run outside a container with the image's environment.

The environment is the Dockerfile's final stage, with its paths mapped onto this
folder: WORKDIR is the project root (so /srv/.venv/bin is this project's .venv/bin
and /srv/artifacts its trained artifacts) and the VOLUME a temporary folder. Only
PORT changes, to a free one, so a server already running here cannot interfere.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.model import METADATA_FILE
from app.schemas import FEATURE_EXAMPLE, FEATURES
from app.settings import ServerSettings
from tests.clients import http_client
from tests.deploy.image import Image, image_environment, read_image
from tests.server import (
    START_TIMEOUT,
    Server,
    json_lines,
    launch,
    run_module,
    stop,
    wait_for,
    wait_until_ready,
    worker_pids,
)
from tests.user_models import IN_FLIGHT_DIR_VARIABLE


def start_image_command(image: Image, env: dict[str, str]) -> Server:
    return launch(image.command, env, Path(env["TMPDIR"]) / "server.log")


def slow_model_environment(
    image: Image, shadow_model_dir: Path, tmp_path: Path, **settings: str
) -> tuple[dict[str, str], Path]:
    """The image's environment serving the model that takes half a second a call, and
    the folder where each call leaves a mark."""
    in_flight = tmp_path / "in-flight"
    in_flight.mkdir()
    env = image_environment(image, tmp_path) | {
        "APP_MODEL_DIR": str(shadow_model_dir),
        "APP_MODEL_VERSION": "slow",
        IN_FLIGHT_DIR_VARIABLE: str(in_flight),
        **settings,
    }
    return env, in_flight


def start_warmed_up(image: Image, env: dict[str, str], in_flight: Path) -> tuple[Server, str]:
    """The image's command, once every worker has warmed its model up, and its base URL.
    The warm-up's marks are gone: from now on only requests reach the model."""
    server = start_image_command(image, env)
    base_url = f"http://127.0.0.1:{env['PORT']}"
    workers = int(env["WEB_CONCURRENCY"])
    try:
        wait_until_ready(server, base_url)
        wait_for(lambda: server.output().count("Application startup complete") == workers)
    except BaseException:
        stop(server)
        raise
    for marker in in_flight.iterdir():
        marker.unlink()
    return server, base_url


@pytest.fixture(scope="module")
def image() -> Image:
    return read_image()


@pytest.fixture(scope="module")
def env(image: Image, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return image_environment(image, tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def running(image: Image, env: dict[str, str]) -> Iterator[tuple[Server, str]]:
    """The image's command, serving the project's own artifacts as the image would."""
    server = start_image_command(image, env)
    base_url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_until_ready(server, base_url)
        yield server, base_url
    finally:
        stop(server)


def test_image_command_becomes_ready_with_the_configured_workers(
    running: tuple[Server, str], env: dict[str, str]
) -> None:
    server, base_url = running
    expected = int(env["WEB_CONCURRENCY"])
    wait_for(lambda: server.output().count("Application startup complete") >= expected)

    assert len(worker_pids(server.pid)) == expected
    assert server.output().count("Application startup complete") == expected
    with http_client(base_url) as client:
        assert client.get("/ready").status_code == 200
        assert client.post("/v1/predict", json=FEATURE_EXAMPLE).status_code == 200


def test_image_health_check_passes_against_the_running_service(
    running: tuple[Server, str], image: Image, env: dict[str, str]
) -> None:
    command = [part.replace(":8000/", f":{env['PORT']}/") for part in image.healthcheck]

    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr


def test_image_command_refuses_a_damaged_reference_before_any_worker_boots(
    image: Image, model_dir: Path, model_version: str, tmp_path: Path
) -> None:
    """Each worker builds its drift bins from the reference statistics: the master's
    check refuses a feature without them, in one line, instead of every worker
    crashing on it."""
    artifacts = tmp_path / "artifacts"
    shutil.copytree(model_dir / model_version, artifacts / model_version)
    metadata = artifacts / model_version / METADATA_FILE
    document = json.loads(metadata.read_text())
    del document["reference"]["features"][FEATURES[0].name]
    metadata.write_text(json.dumps(document))
    env = image_environment(image, tmp_path / "volume") | {
        "APP_MODEL_DIR": str(artifacts),
        "APP_MODEL_VERSION": model_version,
    }

    server = start_image_command(image, env)
    try:
        server.process.wait(timeout=START_TIMEOUT)
    finally:
        output = stop(server)

    assert server.process.returncode != 0, output
    assert "Traceback" not in output, output
    assert "Booting worker" not in output, output
    [error] = [record for record in json_lines(output) if record["level"] == "error"]
    assert error["event"] == "cannot start", output
    assert "is not valid artifact metadata (reference.features: " in error["error"], output


def test_start_to_ready_runs_as_the_readme_gives_it() -> None:
    """`python -m tests.deploy.start_to_ready`, run by hand: none of the tests' APP_
    settings in its environment, one worker, once."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("APP_")}
    result = run_module(
        "tests.deploy.start_to_ready", "--workers", "1", "--repeat", "1", env=env, timeout=120
    )

    assert result.returncode == 0, result.stderr
    header, empty_app, service = result.stdout.splitlines()
    assert header.split()[:3] == ["workers", "server", "first"]
    assert empty_app.split()[:3] == ["1", "empty", "app"]
    assert service.split()[:2] == ["1", "service"]
    first_ready, all_ready = (float(cell.rstrip("s")) for cell in service.split()[2:4])
    assert 0 < first_ready <= all_ready


def test_sigterm_lets_requests_in_flight_finish(
    image: Image, shadow_model_dir: Path, tmp_path: Path
) -> None:
    # A worker predicts one request at a time, each taking half a second with this
    # model. SIGTERM comes once every request has reached the model: the last one is
    # then inside it, and the log shows it answered after the signal. Requests do not
    # share model calls here, so each one leaves its own mark as it reaches the model.
    env, in_flight = slow_model_environment(
        image, shadow_model_dir, tmp_path, APP_COALESCE_MAX_ROWS="1"
    )
    workers = int(env["WEB_CONCURRENCY"])
    requests = 2 * workers
    server, base_url = start_warmed_up(image, env, in_flight)
    try:
        with ThreadPoolExecutor(requests) as pool, http_client(base_url, timeout=30) as client:
            answers = [
                pool.submit(client.post, "/v1/predict", json=FEATURE_EXAMPLE)
                for _ in range(requests)
            ]
            wait_for(lambda: len(list(in_flight.iterdir())) == requests)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            statuses = [answer.result().status_code for answer in answers]
        server.process.wait(timeout=60)
        stopped_after = time.monotonic() - signalled
    finally:
        output = stop(server)

    assert statuses == [200] * requests, output
    assert server.process.returncode == 0, output
    assert stopped_after < ServerSettings.model_fields["graceful_timeout"].default, output
    # Every line, gunicorn's own included, is JSON: a log shipper or `jq` reads them all.
    events = [json.loads(line) for line in output.splitlines()]
    signal_at = next(n for n, e in enumerate(events) if e["event"] == "Handling signal: term")
    assert [e for e in events[signal_at:] if e.get("status") == 200], output
    assert [e for e in events if e["level"] in ("error", "critical")] == [], output


def test_requests_waiting_together_share_one_model_call(
    image: Image, shadow_model_dir: Path, tmp_path: Path
) -> None:
    # One worker, a model taking half a second a call: requests sent while it answers
    # the first one wait together, and the next call answers all of them.
    env, in_flight = slow_model_environment(image, shadow_model_dir, tmp_path, WEB_CONCURRENCY="1")
    requests = 6
    server, base_url = start_warmed_up(image, env, in_flight)
    try:
        # Each request on a connection of its own, opened beforehand as a busy client's
        # would be: one client sends its requests one by one, and a new connection is
        # accepted only when the event loop is free, after the call in progress.
        clients = [http_client(base_url, timeout=30) for _ in range(requests)]
        for client in clients:
            client.get("/health")
        with ThreadPoolExecutor(requests) as pool:
            answers = list(
                pool.map(lambda client: client.post("/v1/predict", json=FEATURE_EXAMPLE), clients)
            )
        for client in clients:
            client.close()
    finally:
        output = stop(server)

    assert [answer.status_code for answer in answers] == [200] * requests, output
    assert len({answer.json()["prediction_id"] for answer in answers}) == requests
    calls = len(list(in_flight.iterdir()))
    assert 1 <= calls < requests, f"{calls} model calls for {requests} requests\n{output}"
