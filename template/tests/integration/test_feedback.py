"""Delayed labels: feedback on logged predictions, and the quality it measures.

Each test runs on a SQLite file and on a real PostgreSQL database where it takes
a ``database`` (tests/databases.py).
"""

import json
import math
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score

from app.api import feedback
from app.api.feedback import WRITE_WAIT
from app.main import create_app
from app.monitoring.prediction_log import BATCH_ID_DIGITS, batch_row_id
from app.schemas import CLASS_LABELS, FEATURE_EXAMPLE
from app.settings import Settings
from tests.clients import app_client
from tests.commands import run_app
from training.data import load_dataset

FIELD = "label" if CLASS_LABELS else "value"
ANY_OUTCOME = CLASS_LABELS[0] if CLASS_LABELS else 1.0
PREDICTED = 40
LABELLED = 20


def wait_until_written(client: TestClient, rows: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/ready").json()["prediction_log"]["written"] < rows:
        assert time.monotonic() < deadline, "the prediction log never wrote the predictions"
        time.sleep(0.05)


def predict(client: TestClient, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post("/v1/predict/batch", json={"rows": rows})
    assert response.status_code == 200, response.text
    answers: list[dict[str, Any]] = response.json()["predictions"]
    wait_until_written(client, len(rows))
    return answers


def truth(index: int, answer: dict[str, Any]) -> object:
    """The observed outcome: right for even indices, wrong by a known amount for odd ones.

    Classifiers: accuracy 0.5. Regressors: errors alternate 2 and -4, so the MAE is
    3 and the RMSE is sqrt((4 + 16) / 2) = sqrt(10).
    """
    if CLASS_LABELS:
        said = answer["label"]
        return said if index % 2 == 0 else next(c for c in CLASS_LABELS if c != said)
    value: float = answer["value"]
    return value - 2.0 if index % 2 == 0 else value + 4.0


def send_feedback(client: TestClient, prediction_id: str, observed: object) -> Any:
    return client.post("/v1/feedback", json={"prediction_id": prediction_id, FIELD: observed})


def expected_scores(answers: list[dict[str, Any]], observed: list[Any]) -> dict[str, float]:
    if not CLASS_LABELS:
        return {"mae": 3.0, "rmse": math.sqrt(10)}
    said = [answer["label"] for answer in answers]
    f1 = []
    for label in sorted(set(said) | set(observed)):
        hits = sum(1 for s, o in zip(said, observed, strict=True) if s == o == label)
        f1.append(2 * hits / (said.count(label) + observed.count(label)))
    scores = {"accuracy": 0.5, "f1_macro": sum(f1) / len(f1)}
    if len(CLASS_LABELS) == 2 and len(set(observed)) == 2:
        positive = CLASS_LABELS[-1]
        scores["roc_auc"] = roc_auc_score(
            [o == positive for o in observed], [a["probabilities"][positive] for a in answers]
        )
    return scores


def check_scores(version: dict[str, Any], expected: dict[str, float]) -> None:
    assert version["predictions"] == PREDICTED
    assert version["labelled"] == LABELLED
    assert version["label_coverage"] == LABELLED / PREDICTED
    for name, value in expected.items():
        assert version[name] == pytest.approx(value, abs=1e-6), name


@pytest.fixture
def log_settings(settings: Settings, database: str) -> Settings:
    return settings.model_copy(update={"database_url": database, "quality_min_labels": LABELLED})


def test_feedback_round_trip_gives_the_expected_quality(
    log_settings: Settings,
    database: str,
    model_dir: Path,
    model_version: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with app_client(create_app(log_settings)) as client:
        answers = predict(client, load_dataset().rows[:PREDICTED])
        observed = [truth(index, answer) for index, answer in enumerate(answers[:LABELLED])]
        statuses = [
            send_feedback(client, answer["prediction_id"], outcome).status_code
            for answer, outcome in zip(answers[:LABELLED], observed, strict=True)
        ]
        report = client.get("/v1/quality").json()

    assert statuses == [201] * LABELLED
    [version] = report["versions"]
    assert version["model_version"] == model_version
    assert version["role"] == "primary"
    assert version["status"] == "ok"
    expected = expected_scores(answers[:LABELLED], observed)
    check_scores(version, expected)
    # The command line reads the same log and says the same.
    env = {
        "APP_DATABASE_URL": database,
        "APP_MODEL_DIR": str(model_dir),
        "APP_MODEL_VERSION": model_version,
        "APP_QUALITY_MIN_LABELS": str(LABELLED),
    }
    as_json = run_app(capsys, "quality", "--format", "json", env=env)
    table = run_app(capsys, "quality", env=env)
    assert as_json.returncode == 0, as_json.stderr
    check_scores(json.loads(as_json.stdout)["versions"][0], expected)
    assert table.returncode == 0, table.stderr
    [line] = [line for line in table.stdout.splitlines() if line.startswith(model_version)]
    assert line.split()[1:5] == ["primary", str(PREDICTED), str(LABELLED), "50.0%"]


def test_feedback_is_recorded_once_and_never_replaced(log_settings: Settings) -> None:
    with app_client(create_app(log_settings)) as client:
        [answer] = predict(client, [FEATURE_EXAMPLE])
        outcome = truth(0, answer)
        first = send_feedback(client, answer["prediction_id"], outcome)
        again = send_feedback(client, answer["prediction_id"], outcome)
        other = truth(1, answer)
        changed = send_feedback(client, answer["prediction_id"], other)
        [version] = client.get("/v1/quality").json()["versions"]

    assert first.status_code == 201
    assert first.json()["status"] == "recorded"
    assert first.json()[FIELD] == outcome
    assert again.status_code == 200
    assert again.json() == {**first.json(), "status": "already_recorded"}
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "feedback_conflict"
    assert changed.json()["error"]["details"][0]["field"] == FIELD
    assert version["labelled"] == 1


def test_an_observed_time_with_an_offset_is_kept_as_the_same_moment_in_utc(
    log_settings: Settings,
) -> None:
    with app_client(create_app(log_settings)) as client:
        answers = predict(client, [FEATURE_EXAMPLE] * 2)
        sent = [
            client.post(
                "/v1/feedback",
                json={
                    "prediction_id": answer["prediction_id"],
                    FIELD: truth(0, answer),
                    "observed_at": observed_at,
                },
            )
            for answer, observed_at in zip(
                answers, ["2026-06-01T12:00:00+02:00", "2026-06-01T12:00:00"], strict=True
            )
        ]
        # Sent again: the stored time must equal the one just answered.
        again = client.post(
            "/v1/feedback",
            json={
                "prediction_id": answers[0]["prediction_id"],
                FIELD: truth(0, answers[0]),
                "observed_at": "2026-06-01T10:00:00Z",
            },
        )

    assert [response.status_code for response in sent] == [201, 201]
    assert sent[0].json()["observed_at"] == "2026-06-01T10:00:00Z"
    assert sent[1].json()["observed_at"] == "2026-06-01T12:00:00Z"  # no offset: UTC
    assert again.status_code == 200
    assert again.json()["observed_at"] == "2026-06-01T10:00:00Z"


@pytest.mark.parametrize(
    ("observed_at", "message"),
    [
        # Year 1 with an offset is year 0 in UTC, which no datetime holds: it was a 500.
        ("0001-01-01T00:00:00+14:00", "outside the years 1 to 9999"),
        ("9999-12-31T23:59:59-14:00", "outside the years 1 to 9999"),
        ("2999-01-01T00:00:00Z", "in the future"),
    ],
)
def test_an_observed_time_outside_the_calendar_or_in_the_future_is_422(
    settings: Settings, observed_at: str, message: str
) -> None:
    with app_client(create_app(settings)) as client:
        response = client.post(
            "/v1/feedback",
            json={"prediction_id": uuid4().hex, FIELD: ANY_OUTCOME, "observed_at": observed_at},
        )

    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "observed_at"
    assert message in detail["message"]


def test_feedback_on_an_unknown_prediction_is_404(log_settings: Settings) -> None:
    with app_client(create_app(log_settings)) as client:
        predict(client, [FEATURE_EXAMPLE])
        response = send_feedback(client, uuid4().hex, ANY_OUTCOME)

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "prediction_not_found"
    assert error["details"][0]["field"] == "prediction_id"


def test_feedback_sent_as_soon_as_its_prediction_is_answered_is_recorded(
    log_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log writes its rows every half second: the feedback overtakes its row, and
    waits for it; long enough here that a busy machine's writer is not a failure."""
    monkeypatch.setattr(feedback, "WRITE_WAIT", 10.0)
    with app_client(create_app(log_settings)) as client:
        answered = client.post("/v1/predict", json=FEATURE_EXAMPLE)
        response = send_feedback(client, answered.json()["prediction_id"], ANY_OUTCOME)

    assert response.status_code == 201, response.text


def test_feedback_on_an_id_made_an_hour_ago_is_404_without_waiting(
    log_settings: Settings,
) -> None:
    an_hour_ago = f"{int((time.time() - 3600) * 1000):012x}" + uuid4().hex[:20]
    with app_client(create_app(log_settings)) as client:
        predict(client, [FEATURE_EXAMPLE])
        started = time.monotonic()
        response = send_feedback(client, an_hour_ago, ANY_OUTCOME)
        took = time.monotonic() - started

    assert response.status_code == 404
    assert took < WRITE_WAIT, "it waited for a row that would have been written long ago"


def test_feedback_on_a_position_past_a_batchs_rows_is_404(log_settings: Settings) -> None:
    with app_client(create_app(log_settings)) as client:
        answers = predict(client, [FEATURE_EXAMPLE] * 2)
        past = batch_row_id(answers[0]["prediction_id"][:BATCH_ID_DIGITS], 2)
        response = send_feedback(client, past, ANY_OUTCOME)
        last = send_feedback(client, answers[1]["prediction_id"], ANY_OUTCOME)

    assert (response.status_code, last.status_code) == (404, 201)
    assert response.json()["error"]["code"] == "prediction_not_found"


def test_one_row_predictions_and_batches_are_scored_together(log_settings: Settings) -> None:
    with app_client(create_app(log_settings)) as client:
        one = client.post("/v1/predict", json=FEATURE_EXAMPLE).json()
        answers = [one, *predict(client, load_dataset().rows[:3])]
        wait_until_written(client, len(answers))
        observed = [truth(index, answer) for index, answer in enumerate(answers)]
        statuses = [
            send_feedback(client, answer["prediction_id"], outcome).status_code
            for answer, outcome in zip(answers, observed, strict=True)
        ]
        [version] = client.get("/v1/quality").json()["versions"]

    assert statuses == [201] * len(answers)
    assert (version["predictions"], version["labelled"]) == (len(answers), len(answers))
    if CLASS_LABELS:
        assert version["accuracy"] == pytest.approx(0.5)
    else:
        assert version["mae"] == pytest.approx(3.0)


WRONG = (
    [("label", 1), ("label", "no such class"), ("label", None)]
    if CLASS_LABELS
    else [("value", "3.5"), ("value", "high"), ("value", None), ("value", True)]
)


@pytest.mark.parametrize(("field", "observed"), WRONG)
def test_an_outcome_of_the_wrong_type_or_class_is_422(
    settings: Settings, field: str, observed: object
) -> None:
    with app_client(create_app(settings)) as client:
        [answer] = predict(client, [FEATURE_EXAMPLE])
        response = client.post(
            "/v1/feedback", json={"prediction_id": answer["prediction_id"], field: observed}
        )

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


def test_feedback_needs_the_prediction_log(settings: Settings) -> None:
    off = settings.model_copy(update={"prediction_log_enabled": False})
    with app_client(create_app(off)) as client:
        response = send_feedback(client, uuid4().hex, ANY_OUTCOME)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "prediction_log_unavailable"
