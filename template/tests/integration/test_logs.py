"""The one log line per request: what it holds, and what it never holds."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.deps import get_predictor
from app.main import create_app
from app.model import Predictor
from app.schemas import FEATURE_EXAMPLE, FEATURES
from app.settings import Settings
from tests.clients import app_client

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The canonical request lines logged so far, as the structured events they are."""
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == "request"
    ]


@pytest.fixture
def logged(settings: Settings) -> Iterator[TestClient]:
    with app_client(create_app(settings)) as client:
        yield client


def test_a_prediction_is_one_line_with_its_ids_route_status_and_version(
    logged: TestClient, caplog: pytest.LogCaptureFixture, model_version: str
) -> None:
    response = logged.post(
        "/v1/predict",
        json=FEATURE_EXAMPLE,
        headers={"X-Request-ID": "client-42", "traceparent": TRACEPARENT},
    )

    [line] = request_lines(caplog)
    assert line["request_id"] == "client-42" == response.headers["x-request-id"]
    assert line["method"] == "POST"
    assert line["route"] == "/v1/predict"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["model_version"] == model_version
    assert line["prediction_id"] == response.json()["prediction_id"]
    assert line["traceparent"] == TRACEPARENT
    assert "payload" not in line


def test_every_line_logged_while_answering_names_the_request_and_the_model(
    settings: Settings, caplog: pytest.LogCaptureFixture, model_version: str
) -> None:
    def broken_predictor() -> Predictor:
        raise RuntimeError("broken")

    app = create_app(settings)
    app.dependency_overrides[get_predictor] = broken_predictor
    with app_client(app, raise_server_exceptions=False) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Request-ID": "client-7"})

    lines = [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("request_id") == "client-7"
    ]
    assert [line["event"] for line in lines] == ["unhandled error", "request"]
    assert [line["model_version"] for line in lines] == [model_version] * 2


def test_an_unhandled_error_is_logged_without_the_values_of_its_frames(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A traceback's local variables hold the request's headers and body, and with
    them credentials and personal data: the log keeps the frames, never the values."""

    def broken_predictor() -> Predictor:
        raise RuntimeError("broken")

    app = create_app(settings)
    app.dependency_overrides[get_predictor] = broken_predictor
    with app_client(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Secret-Header": "never-log-this"}
        )

    output = capsys.readouterr().out
    assert response.status_code == 500
    assert "RuntimeError" in output
    assert "broken_predictor" in output
    assert "never-log-this" not in output
    assert '"locals"' not in output


def test_a_batch_line_counts_its_predictions(
    logged: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    logged.post("/v1/predict/batch", json={"rows": [FEATURE_EXAMPLE] * 3})

    [line] = request_lines(caplog)
    assert line["predictions"] == 3


def test_a_malformed_traceparent_is_left_out(
    logged: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    logged.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"traceparent": "not-a-trace"})

    [line] = request_lines(caplog)
    assert "traceparent" not in line


def test_a_refused_request_logs_field_paths_never_values(
    logged: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    first = FEATURES[0].name
    secret = "4111-1111-1111-1111"

    logged.post("/v1/predict", json={**FEATURE_EXAMPLE, first: secret})

    [line] = request_lines(caplog)
    assert line["status"] == 422
    assert line["invalid_fields"] == [first]
    assert secret not in caplog.text


def test_probes_are_not_logged(logged: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    logged.get("/health")
    logged.get("/ready")

    assert request_lines(caplog) == []


def test_payloads_are_logged_only_when_asked_with_redacted_fields_masked(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    hidden = FEATURES[0].name
    verbose = settings.model_copy(update={"log_payloads": True, "log_redact": frozenset({hidden})})
    with app_client(create_app(verbose)) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE)

    [line] = request_lines(caplog)
    assert line["payload"][hidden] == "[redacted]"
    shown = [feature.name for feature in FEATURES if feature.name != hidden]
    assert all(line["payload"][name] == FEATURE_EXAMPLE[name] for name in shown)


def test_redacted_fields_are_read_from_a_comma_separated_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_LOG_REDACT", " email, phone ,")

    assert Settings().log_redact == frozenset({"email", "phone"})
