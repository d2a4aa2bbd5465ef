"""The one log line per request: what it holds, and what it never holds."""

import asyncio
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.deps import get_predictor
from app.api.errors import MAX_ERROR_DETAILS
from app.errors import ConfigError, ModelNotReady
from app.main import create_app
from app.model import Predictor
from app.observability.logging import MAX_PENDING_LINES, RequestLines
from app.schemas import FEATURE_EXAMPLE, FEATURES
from app.settings import Settings, load_settings
from tests.clients import app_client

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def printed_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every line the service printed since the last call, parsed: each is JSON."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def request_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The canonical request lines printed since the last call."""
    return [line for line in printed_lines(capsys) if line["event"] == "request"]


@contextmanager
def logged(
    settings: Settings, capsys: pytest.CaptureFixture[str], flush_ms: float = 0
) -> Iterator[TestClient]:
    """A client of an application created now, in the test: an application writes to
    the stdout of its creation, and capsys's stdout of a fixture is closed by then.
    Its request lines wait up to ``flush_ms``: by default none, so a test reads them
    after each request."""
    with app_client(create_app(settings.model_copy(update={"log_flush_ms": flush_ms}))) as client:
        capsys.readouterr()  # start-up lines
        yield client


def test_a_prediction_is_one_line_with_its_ids_route_status_and_version(
    settings: Settings, capsys: pytest.CaptureFixture[str], model_version: str
) -> None:
    with logged(settings, capsys) as client:
        response = client.post(
            "/v1/predict",
            json=FEATURE_EXAMPLE,
            headers={"X-Request-ID": "client-42", "traceparent": TRACEPARENT},
        )
        [line] = request_lines(capsys)

    assert line["request_id"] == "client-42" == response.headers["x-request-id"]
    assert line["method"] == "POST"
    assert line["route"] == "/v1/predict"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["model_version"] == model_version
    assert line["prediction_id"] == response.json()["prediction_id"]
    assert line["traceparent"] == TRACEPARENT
    assert line["level"] == "info"
    assert line["logger"] == "app.request"
    assert line["timestamp"].endswith("Z")
    assert "payload" not in line


def test_every_line_logged_while_answering_names_the_request_and_the_model(
    settings: Settings, capsys: pytest.CaptureFixture[str], model_version: str
) -> None:
    def broken_predictor() -> Predictor:
        raise RuntimeError("broken")

    app = create_app(settings)
    app.dependency_overrides[get_predictor] = broken_predictor
    with app_client(app, raise_server_exceptions=False) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Request-ID": "client-7"})

    lines = [line for line in printed_lines(capsys) if line.get("request_id") == "client-7"]
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
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with logged(settings, capsys) as client:
        client.post("/v1/predict/batch", json={"rows": [FEATURE_EXAMPLE] * 3})
        [line] = request_lines(capsys)

    assert line["predictions"] == 3


def test_a_malformed_traceparent_is_left_out(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with logged(settings, capsys) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"traceparent": "not-a-trace"})
        [line] = request_lines(capsys)

    assert "traceparent" not in line


def test_a_refused_request_logs_field_paths_never_values(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    first = FEATURES[0].name
    secret = "4111-1111-1111-1111"

    with logged(settings, capsys) as client:
        client.post("/v1/predict", json={**FEATURE_EXAMPLE, first: secret})
        lines = printed_lines(capsys)

    [line] = [line for line in lines if line["event"] == "request"]
    assert line["status"] == 422
    assert line["invalid_fields"] == [first]
    assert line["invalid_field_count"] == 1
    assert secret not in json.dumps(lines)


def test_a_request_refused_for_many_fields_logs_the_first_and_counts_them_all(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The line stays short whatever the body holds: listed whole, 200,000 unknown
    fields made a line of 1.9 MB, and Docker splits a line at 16 KiB."""
    unknown = [f"unknown_{i}" for i in range(20_000)]

    with logged(settings, capsys) as client:
        client.post("/v1/predict", json={**FEATURE_EXAMPLE, **dict.fromkeys(unknown, 1)})
        [line] = request_lines(capsys)

    assert line["status"] == 422
    assert line["invalid_fields"] == unknown[:MAX_ERROR_DETAILS]
    assert line["invalid_field_count"] == len(unknown)
    assert len(json.dumps(line)) < 16 * 1024


def test_a_head_request_is_logged_as_head_with_the_route_of_get(
    settings: Settings, capsys: pytest.CaptureFixture[str], model_version: str
) -> None:
    with logged(settings, capsys) as client:
        response = client.head("/v1/model", headers={"X-Request-ID": "monitor-7"})
        [line] = request_lines(capsys)

    assert response.status_code == 200
    assert line["request_id"] == "monitor-7" == response.headers["x-request-id"]
    assert line["method"] == "HEAD"
    assert line["route"] == "/v1/model"
    assert line["status"] == 200
    assert line["model_version"] == model_version


def test_probes_are_not_logged(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with logged(settings, capsys) as client:
        client.get("/health")
        client.get("/ready")
        assert request_lines(capsys) == []


def test_a_refused_or_failed_request_is_logged_at_warning_or_error_with_its_code(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """So a service logging at WARNING still has the lines its runbooks look for."""

    def broken_predictor() -> Predictor:
        raise ModelNotReady("the model is not loaded yet")

    app = create_app(settings.model_copy(update={"log_flush_ms": 0}))
    with app_client(app) as client:
        capsys.readouterr()  # start-up lines
        client.post("/v1/predict", json=FEATURE_EXAMPLE)
        client.post("/v1/predict", json={})
        app.dependency_overrides[get_predictor] = broken_predictor
        client.post("/v1/predict", json=FEATURE_EXAMPLE)
        answered, refused, failed = request_lines(capsys)

    assert (answered["status"], answered["level"]) == (200, "info")
    assert "code" not in answered
    assert (refused["status"], refused["level"], refused["code"]) == (
        422,
        "warning",
        "validation_failed",
    )
    assert (failed["status"], failed["level"], failed["code"]) == (503, "error", "model_not_ready")


@pytest.mark.parametrize(
    ("log_level", "statuses"), [("WARNING", [422]), ("ERROR", []), ("INFO", [200, 422])]
)
def test_request_lines_follow_the_log_level(
    settings: Settings, capsys: pytest.CaptureFixture[str], log_level: str, statuses: list[int]
) -> None:
    quiet = settings.model_copy(update={"log_level": log_level})
    with logged(quiet, capsys) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE)
        client.post("/v1/predict", json={})
        assert [line["status"] for line in request_lines(capsys)] == statuses


def test_a_request_line_that_cannot_be_written_fails_no_request(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings)
    closed = io.StringIO()
    closed.close()
    app.state.request_lines = RequestLines(closed, "INFO")
    with app_client(app) as client:
        capsys.readouterr()
        response = client.post("/v1/predict", json=FEATURE_EXAMPLE)
        lines = printed_lines(capsys)

    assert response.status_code == 200
    [error] = [line for line in lines if line["level"] == "error"]
    assert error["event"] == "request lines not written"
    assert error["lines"] == 1


def test_request_lines_wait_to_be_written_together_and_are_all_written_at_shutdown(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with logged(settings, capsys, flush_ms=10_000) as client:
        ids = [f"client-{n}" for n in range(3)]
        for request_id in ids:
            client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Request-ID": request_id})
        waiting = request_lines(capsys)

    assert waiting == []
    assert [line["request_id"] for line in request_lines(capsys)] == ids


def test_request_lines_are_written_within_the_flush_interval(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with logged(settings, capsys, flush_ms=20) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Request-ID": "client-5"})
        written: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while not written and time.monotonic() < deadline:
            time.sleep(0.01)
            written = request_lines(capsys)

        assert [line["request_id"] for line in written] == ["client-5"]


def test_request_lines_are_written_once_enough_of_them_wait() -> None:
    stream = io.StringIO()
    lines = RequestLines(stream, "INFO", flush_seconds=60)

    async def write() -> tuple[str, str]:
        for number in range(MAX_PENDING_LINES):
            lines.write({"request_id": f"r{number}"})
            if number == MAX_PENDING_LINES - 2:
                before = stream.getvalue()
        return before, stream.getvalue()

    before, after = asyncio.run(write())

    assert before == ""
    written = [json.loads(line) for line in after.splitlines()]
    assert [line["request_id"] for line in written] == [f"r{n}" for n in range(MAX_PENDING_LINES)]


def test_lines_left_waiting_by_a_stopped_event_loop_go_out_with_the_next_one() -> None:
    stream = io.StringIO()
    lines = RequestLines(stream, "INFO", flush_seconds=0.3)

    async def write(request_id: str, wait: float) -> None:
        lines.write({"request_id": request_id})
        await asyncio.sleep(wait)

    asyncio.run(write("first", 0))
    left = stream.getvalue()
    asyncio.run(write("second", 0.6))

    assert left == ""
    written = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
    assert written == ["first", "second"]


def test_request_lines_read_as_text_on_a_console(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    console = settings.model_copy(update={"log_format": "console"})
    with logged(console, capsys) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Request-ID": "client-9"})
        output = capsys.readouterr().out.splitlines()

    [line] = [line for line in output if "app.request" in line]
    assert not line.startswith("{")
    assert "client-9" in line
    assert "/v1/predict" in line


def test_payloads_are_logged_only_when_asked_with_redacted_fields_masked(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    hidden = FEATURES[0].name
    verbose = settings.model_copy(update={"log_payloads": True, "log_redact": frozenset({hidden})})
    with logged(verbose, capsys) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE)
        [line] = request_lines(capsys)

    assert line["payload"][hidden] == "[redacted]"
    shown = [feature.name for feature in FEATURES if feature.name != hidden]
    assert all(line["payload"][name] == FEATURE_EXAMPLE[name] for name in shown)


def test_redacted_fields_are_read_from_a_comma_separated_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, last = FEATURES[0].name, FEATURES[-1].name
    monkeypatch.setenv("APP_LOG_REDACT", f" {first}, {last} ,")

    assert Settings().log_redact == frozenset({first, last})


def test_a_redacted_field_that_is_not_a_feature_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A typo would hide nothing: the field meant to be hidden would be logged.
    monkeypatch.setenv("APP_LOG_REDACT", f"{FEATURES[0].name},emial")

    with pytest.raises(ConfigError, match=r"APP_LOG_REDACT: .*emial: not a feature"):
        load_settings()


def test_a_prediction_log_that_cannot_write_says_which_database(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The log's folder is a file: SQLite cannot open the log.
    blocker = tmp_path / "logs"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker / 'predictions.db'}"
    failures: list[dict[str, Any]] = []
    with logged(settings.model_copy(update={"database_url": url}), capsys) as client:
        assert client.post("/v1/predict", json=FEATURE_EXAMPLE).status_code == 200
        deadline = time.monotonic() + 30
        while not failures:
            assert time.monotonic() < deadline, "the log never reported its failure"
            time.sleep(0.1)
            failures = [
                line
                for line in printed_lines(capsys)
                if line["event"] == "prediction log cannot write; retrying"
            ]
        # A folder at last: the log writes its row and stops without waiting.
        blocker.unlink()
        blocker.mkdir()

    assert failures[0]["database"] == url
    assert failures[0]["error"]
