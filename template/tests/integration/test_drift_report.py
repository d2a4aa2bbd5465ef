"""The drift report of live traffic, from the endpoint and from the command line."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.schemas import FEATURE_EXAMPLE, FEATURES
from app.settings import Settings
from tests.clients import app_client
from tests.commands import Outcome, run_app
from training.data import load_dataset

MOVED = next(feature.name for feature in FEATURES if feature.type in ("float", "integer"))
ROWS = 600


def serve(client: TestClient, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 500):
        response = client.post("/v1/predict/batch", json={"rows": rows[start : start + 500]})
        assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    while client.get("/ready").json()["prediction_log"]["written"] < len(rows):
        assert time.monotonic() < deadline, "the prediction log never wrote the predictions"
        time.sleep(0.05)


def training_rows(count: int) -> list[dict[str, Any]]:
    rows = load_dataset().rows
    return [rows[index % len(rows)] for index in range(count)]


def moved(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    highest = max(row[MOVED] for row in load_dataset().rows if row[MOVED] is not None)
    return [{**row, MOVED: highest} for row in rows]


def report_command(
    capsys: pytest.CaptureFixture[str], settings: Settings, *arguments: str
) -> Outcome:
    """`python -m app drift-report` on the log and the model of ``settings``."""
    env = {
        "APP_PREDICTION_LOG_PATH": str(settings.prediction_log_path),
        "APP_MODEL_DIR": str(settings.model_dir),
        "APP_MODEL_VERSION": str(settings.model_version),
        "APP_LOG_FORMAT": "json",
    }
    return run_app(capsys, "drift-report", *arguments, env=env)


def test_live_drift_is_reported_for_exactly_the_moved_feature(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logged = settings.model_copy(update={"prediction_log_path": tmp_path / "predictions.db"})
    with app_client(create_app(logged)) as client:
        serve(client, moved(training_rows(ROWS)))
        report = client.get("/v1/drift", params={"hours": 1}).json()

    as_json = report_command(capsys, logged, "--format", "json", "--hours", "1")
    table = report_command(
        capsys, logged, "--plot-dir", str(tmp_path / "plots"), "--fail-on", "page"
    )

    assert report["rows"] == ROWS
    assert report["drifted"] == [MOVED]
    assert report["status"] == "page"
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["drifted"] == [MOVED]
    assert table.returncode == 3, table.stderr  # --fail-on page
    assert f"Drifted features: {MOVED}." in table.stdout
    assert (tmp_path / "plots" / f"drift-{MOVED}.png").read_bytes()[:4] == b"\x89PNG"
    assert "plot written" in table.stderr


def test_traffic_like_training_is_stable(settings: Settings, tmp_path: Path) -> None:
    logged = settings.model_copy(update={"prediction_log_path": tmp_path / "predictions.db"})
    with app_client(create_app(logged)) as client:
        serve(client, training_rows(ROWS))
        report = client.get("/v1/drift").json()

    assert report["drifted"] == []
    assert report["status"] == "stable", report


def test_a_window_below_the_minimum_says_so(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logged = settings.model_copy(update={"prediction_log_path": tmp_path / "predictions.db"})
    with app_client(create_app(logged)) as client:
        serve(client, [FEATURE_EXAMPLE] * 10)

    result = report_command(capsys, logged, "--format", "json", "--fail-on", "warning")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "not_enough_data"
    assert report["rows"] == 10


def test_a_missing_log_is_one_clear_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = settings.model_copy(update={"prediction_log_path": tmp_path / "none.db"})

    result = report_command(capsys, absent)

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"no prediction log at {tmp_path / 'none.db'}" in json.loads(line)["error"]
    assert result.stdout == ""


def test_a_window_outside_the_calendar_is_one_clear_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logged = settings.model_copy(update={"prediction_log_path": tmp_path / "predictions.db"})

    result = report_command(capsys, logged, "--until", "0001-01-01")

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert json.loads(line)["error"] == "--until: the window reaches outside the years 1 to 9999"


def test_a_window_that_ends_before_it_starts_is_one_clear_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logged = settings.model_copy(update={"prediction_log_path": tmp_path / "predictions.db"})

    result = report_command(capsys, logged, "--since", "2026-01-08", "--until", "2026-01-01")

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "give a --since before --until" in json.loads(line)["error"]


@pytest.mark.parametrize("hours", ["0", "-3", "nan", "inf", "a day"])
def test_a_window_length_that_is_not_above_zero_is_refused(
    settings: Settings, capsys: pytest.CaptureFixture[str], hours: str
) -> None:
    result = report_command(capsys, settings, "--hours", hours)

    assert result.returncode == 2
    assert "argument --hours:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("bound", ["--since", "--until"])
def test_a_window_bound_that_is_no_date_is_refused_saying_so(
    settings: Settings, capsys: pytest.CaptureFixture[str], bound: str
) -> None:
    result = report_command(capsys, settings, bound, "last tuesday")

    assert result.returncode == 2
    # argparse named the parsing function: "invalid _moment value".
    assert f"argument {bound}: 'last tuesday' is not an ISO 8601 date or time" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("report", ["/v1/drift", "/v1/quality"])
@pytest.mark.parametrize("hours", ["nan", "inf"])
def test_a_window_of_no_finite_length_is_refused_as_such(
    settings: Settings, report: str, hours: str
) -> None:
    # NaN compares false with any bound: it was refused as "less than or equal to 8784".
    with app_client(create_app(settings)) as client:
        response = client.get(report, params={"hours": hours})

    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "query.hours"
    assert "finite number" in detail["message"]
