"""The shadow model: it answers the same rows off the response path, its answers are
logged beside the primary's, its agreement is counted, and it never delays a response."""

import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.model import (
    ClassPrediction,
    Prediction,
    ValuePrediction,
    load_service_model,
    load_shadow_model,
)
from app.monitoring.prediction_log import batch_row_id, prediction_batches
from app.schemas import FEATURE_EXAMPLE
from app.settings import Settings
from tests.clients import app_client, http_client
from tests.commands import run_app
from tests.integration.test_prediction_log import load, rows_in
from tests.server import (
    json_lines,
    one_line_failure,
    serving_env,
    start_server,
    stop,
    wait_until_ready,
)
from tests.user_models import SLOW_SECONDS
from training.data import load_dataset

ROWS = 40


def shadow_settings(model_dir: Path, model_version: str, shadow: str, url: str) -> Settings:
    return Settings(
        model_dir=model_dir,
        model_version=model_version,
        shadow_model_version=shadow,
        database_url=url,
        log_format="json",
    )


def same_answer(primary: Prediction, shadow: Prediction, tolerance: float) -> bool:
    if isinstance(primary, ClassPrediction) and isinstance(shadow, ClassPrediction):
        return primary.label == shadow.label
    assert isinstance(primary, ValuePrediction)
    assert isinstance(shadow, ValuePrediction)
    return abs(primary.value - shadow.value) <= tolerance * max(
        abs(primary.value), abs(shadow.value)
    )


def shadow_details(client: TestClient, condition: Any, seconds: float = 30) -> dict[str, Any]:
    """The shadow's /ready details once ``condition`` holds for them."""
    deadline = time.monotonic() + seconds
    while True:
        details: dict[str, Any] = client.get("/ready").json()["shadow"]
        if condition(details):
            return details
        assert time.monotonic() < deadline, f"the shadow never got there: {details}"
        time.sleep(0.05)


def test_shadow_answers_are_logged_under_the_primary_ids_and_compared(
    shadow_model_dir: Path, model_version: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    settings = shadow_settings(shadow_model_dir, model_version, "stump", url)
    every = load_dataset().rows
    rows = every[:: len(every) // ROWS][:ROWS]  # spread over the data, which may be sorted
    with app_client(create_app(settings)) as client:
        batch = client.post("/v1/predict/batch", json={"rows": rows}, headers={"X-Request-ID": "b"})
        one = client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Request-ID": "o"})
        details = shadow_details(client, lambda shadow: shadow["compared"] == ROWS + 1)

    # The one-row prediction is a row for each role; the batch, a batch row for each.
    single = {row["role"]: row for row in rows_in(url)}
    batches = {row["role"]: row for row in rows_in(url, prediction_batches)}
    answered = [*batch.json()["predictions"], one.json()]
    ids = [answer["prediction_id"] for answer in answered]
    assert set(single) == set(batches) == {"primary", "shadow"}
    assert single["primary"]["prediction_id"] == single["shadow"]["prediction_id"] == ids[-1]
    assert batches["primary"]["batch_id"] == batches["shadow"]["batch_id"]
    assert ids[:-1] == [batch_row_id(batches["shadow"]["batch_id"], i) for i in range(ROWS)]
    pairs = [(single["shadow"], single["primary"]), (batches["shadow"], batches["primary"])]
    for shadowed, twin in pairs:
        assert shadowed["model_version"] == "stump"
        assert shadowed["request_id"] == twin["request_id"]
        assert shadowed["features"] == twin["features"]
        assert shadowed["latency_ms"] > 0
    # The shadow's answers are the stump's own, row by row.
    primary, _ = load_service_model(settings)
    shadow, _ = load_shadow_model(settings)
    assert shadow is not None
    requested = [*rows, FEATURE_EXAMPLE]
    expected = shadow.predict(requested)
    logged = [*batches["shadow"]["outputs"], single["shadow"]["output"]]
    for answer, output in zip(expected, logged, strict=True):
        if isinstance(answer, ClassPrediction):
            assert output["label"] == answer.label
        else:
            assert isinstance(answer, ValuePrediction)
            assert math.isclose(output["value"], answer.value)
    agreeing = sum(
        same_answer(first, second, settings.shadow_tolerance)
        for first, second in zip(primary.predict(requested), expected, strict=True)
    )
    assert details == {
        "model_version": "stump",
        "pending": 0,
        "compared": ROWS + 1,
        "agreeing": agreeing,
        "skipped": 0,
        "failed": 0,
    }
    # A one-split tree cannot give the trained model's answer on every row.
    assert agreeing < ROWS + 1


def test_ready_names_no_shadow_when_none_is_set(client: TestClient) -> None:
    assert client.get("/ready").json()["shadow"] is None


@pytest.fixture
def slow_shadow_server(shadow_model_dir: Path, model_version: str, tmp_path: Path) -> Any:
    env = serving_env(shadow_model_dir, model_version, workers=1)
    env["APP_SHADOW_MODEL_VERSION"] = "slow"
    env["APP_DATABASE_URL"] = f"sqlite:///{tmp_path / 'predictions.db'}"
    base_url = f"http://127.0.0.1:{env['PORT']}"
    server = start_server(env)
    try:
        wait_until_ready(server, base_url)
        yield base_url, env["APP_DATABASE_URL"]
    finally:
        stop(server)


def test_primary_answers_without_waiting_for_a_slow_shadow(
    slow_shadow_server: tuple[str, str],
) -> None:
    base_url, _ = slow_shadow_server
    seconds = []
    with http_client(base_url, timeout=10) as client:
        for _ in range(10):
            started = time.perf_counter()
            response = client.post("/v1/predict", json=FEATURE_EXAMPLE)
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 200
        shadow = client.get("/ready").json()["shadow"]

    # Ten answers in less time than the shadow takes for one call.
    assert sum(seconds) < SLOW_SECONDS, seconds
    assert shadow["model_version"] == "slow"
    assert shadow["compared"] + shadow["pending"] == 10


def test_sigterm_during_load_logs_a_shadow_row_for_every_answer(
    shadow_model_dir: Path, model_version: str, tmp_path: Path
) -> None:
    env = serving_env(shadow_model_dir, model_version, workers=3)
    env["APP_SHADOW_MODEL_VERSION"] = "stump"
    env["APP_DATABASE_URL"] = url = f"sqlite:///{tmp_path / 'predictions.db'}"
    base_url = f"http://127.0.0.1:{env['PORT']}"
    server = start_server(env)
    try:
        wait_until_ready(server, base_url)
        statuses = load(base_url, 300, lambda: os.kill(server.pid, signal.SIGTERM))
        server.process.wait(timeout=60)
    finally:
        output = stop(server)

    answered = statuses.count(200)
    stored = rows_in(url)
    primary = {row["prediction_id"] for row in stored if row["role"] == "primary"}
    shadow = {row["prediction_id"] for row in stored if row["role"] == "shadow"}
    assert answered >= 300, output
    assert len(primary) == answered, output
    assert shadow == primary, output
    assert len(stored) == 2 * answered, output


def check_failure(capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> str:
    """Run `python -m app check`, the preflight the server's master runs before any
    worker starts, expect it to fail, and return its single error line."""
    result = run_app(capsys, "check", env=env)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    errors = [record for record in json_lines(result.stdout) if record["level"] == "error"]
    assert len(errors) == 1, result.stdout
    [record] = errors
    assert record["event"] == "cannot start"
    error: str = record["error"]
    return error


def test_a_shadow_version_that_does_not_exist_stops_start_up_with_one_line(
    model_dir: Path, model_version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    error = check_failure(
        capsys,
        {
            "APP_MODEL_DIR": str(model_dir),
            "APP_MODEL_VERSION": model_version,
            "APP_SHADOW_MODEL_VERSION": "9.9.9",
        },
    )

    assert error.startswith("shadow model (APP_SHADOW_MODEL_VERSION=9.9.9): ")
    assert "fix APP_SHADOW_MODEL_VERSION" in error


def test_the_primary_version_as_shadow_stops_start_up_with_one_line(
    model_dir: Path, model_version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    error = check_failure(
        capsys,
        {
            "APP_MODEL_DIR": str(model_dir),
            "APP_MODEL_VERSION": model_version,
            "APP_SHADOW_MODEL_VERSION": model_version,
        },
    )

    assert "APP_SHADOW_MODEL_VERSION" in error
    assert "a shadow must be another version" in error


def test_the_only_version_as_shadow_stops_start_up_when_no_version_is_chosen(
    model_dir: Path, model_version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # APP_MODEL_VERSION unset: the only version in the folder is the one served.
    error = check_failure(
        capsys,
        {"APP_MODEL_DIR": str(model_dir), "APP_SHADOW_MODEL_VERSION": model_version},
    )

    assert error.startswith(f"shadow model (APP_SHADOW_MODEL_VERSION={model_version}): ")
    assert f"{model_version} is the version served" in error
    assert "a shadow must be another version" in error


def test_a_tampered_shadow_stops_start_up_with_one_line(
    shadow_model_dir: Path, model_version: str, tmp_path: Path
) -> None:
    shutil.copytree(shadow_model_dir / model_version, tmp_path / model_version)
    shutil.copytree(shadow_model_dir / "stump", tmp_path / "stump")
    with (tmp_path / "stump" / "model.joblib").open("ab") as model_file:
        model_file.write(b"tampered")

    error = one_line_failure(
        {
            "APP_MODEL_DIR": str(tmp_path),
            "APP_MODEL_VERSION": model_version,
            "APP_SHADOW_MODEL_VERSION": "stump",
        }
    )

    assert error.startswith("shadow model (APP_SHADOW_MODEL_VERSION=stump): ")
    assert "the file changed after training" in error


def test_an_invalid_shadow_version_is_refused_naming_the_variable(
    model_dir: Path, model_version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    error = check_failure(
        capsys,
        {
            "APP_MODEL_DIR": str(model_dir),
            "APP_MODEL_VERSION": model_version,
            "APP_SHADOW_MODEL_VERSION": "../elsewhere",
        },
    )

    assert error.startswith("invalid setting APP_SHADOW_MODEL_VERSION: ")
