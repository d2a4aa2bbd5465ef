"""The prediction log: every successful prediction is written, none is lost, and a
database that is down never fails a prediction.

Each store runs: a SQLite file and a real PostgreSQL database (tests/databases.py).
"""

import os
import signal
import sqlite3
import stat
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Table, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from app.errors import PredictionNotFound
from app.main import create_app
from app.model import Predictor
from app.monitoring import quality
from app.monitoring.drift_report import read_window
from app.monitoring.prediction_log import (
    SQLITE_PAGE_SIZE,
    PredictionLog,
    batch_features,
    batch_row_id,
    batch_row_ids,
    batch_rows,
    create_log_engine,
    feedback,
    metadata,
    prediction_batches,
    predictions,
    prune,
    sqlite_datetime,
)
from app.monitoring.quality import quality_report, record_feedback
from app.schemas import CLASS_LABELS, FEATURE_EXAMPLE, FEATURES, TASK, Features
from app.settings import Settings
from tests.clients import app_client, http_client
from tests.faults import CuttableProxy
from tests.server import serving_env, start_server, stop, wait_until_ready
from training.data import load_dataset


def rows_in(url: str, table: Table = predictions) -> list[dict[str, Any]]:
    engine = create_log_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(table))]
    finally:
        engine.dispose()


def model_output(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as the model gave it: the response adds its id, version and unit."""
    return {
        key: value
        for key, value in answer.items()
        if key not in ("prediction_id", "model_version", "unit")
    }


def test_every_prediction_is_recorded_with_its_context(
    settings: Settings, database: str, predictor: Predictor
) -> None:
    rows = load_dataset().rows[:3]
    with app_client(create_app(settings.model_copy(update={"database_url": database}))) as client:
        one = client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Request-ID": "req-1"})
        batch = client.post(
            "/v1/predict/batch", json={"rows": rows}, headers={"X-Request-ID": "req-2"}
        )
    # Leaving the client stops the application, which writes what is buffered.

    [first] = rows_in(database)
    assert first["prediction_id"] == one.json()["prediction_id"]
    assert first["request_id"] == "req-1"
    assert first["model_version"] == predictor.version
    assert first["role"] == "primary"
    assert first["features"] == FEATURE_EXAMPLE
    assert first["output"] == model_output(one.json())
    assert first["latency_ms"] > 0
    assert first["created_at"] <= datetime.now(UTC).replace(tzinfo=first["created_at"].tzinfo)
    # A batch is one row: its rows' features and answers in order, each answer's id
    # the batch's id and the row's position.
    [logged] = rows_in(database, prediction_batches)
    answers = batch.json()["predictions"]
    assert [answer["prediction_id"] for answer in answers] == [
        batch_row_id(logged["batch_id"], position) for position in range(len(rows))
    ]
    assert logged["rows"] == len(rows)
    assert logged["request_id"] == "req-2"
    assert logged["model_version"] == predictor.version
    assert logged["role"] == "primary"
    # A list per feature, in the schema's order, each the rows' values in order.
    validated = [Features.model_validate(row).model_dump() for row in rows]
    assert logged["features"] == {f.name: [row[f.name] for row in validated] for f in FEATURES}
    assert logged["outputs"] == [model_output(answer) for answer in answers]
    assert logged["latency_ms"] > 0
    assert first["created_at"] <= logged["created_at"]


def test_a_batchs_row_ids_are_its_id_and_each_position_whatever_came_before() -> None:
    batch_id = "0" * 26 + "f"
    # Longer, shorter and longer again than any batch before: the positions' digits are
    # made for the longest batch so far and shared.
    for rows in (3, 70_000, 2, 100_000, 1):
        ids = batch_row_ids(batch_id, rows)
        assert ids == [batch_row_id(batch_id, position) for position in range(rows)]
    assert batch_row_ids(batch_id, 2) == [batch_id + "00000", batch_id + "00001"]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 6, 1, 12, 0, 0, 5),
    ],
)
def test_sqlite_gets_each_time_as_sqlalchemy_would_store_it(
    moment: datetime, sqlite_url: str
) -> None:
    """Rows go to SQLite through the driver; SQLAlchemy reads their times back."""
    dialect = create_log_engine(sqlite_url).dialect
    store = predictions.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)

    assert store is not None
    assert sqlite_datetime(moment) == store(moment)


def test_redacted_fields_stay_out_of_the_log(settings: Settings, sqlite_url: str) -> None:
    secret = FEATURES[0].name
    redacting = settings.model_copy(
        update={"database_url": sqlite_url, "log_redact": frozenset({secret})}
    )
    with app_client(create_app(redacting)) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE)
        client.post("/v1/predict/batch", json={"rows": [FEATURE_EXAMPLE] * 2})

    [row] = rows_in(sqlite_url)
    [batch] = rows_in(sqlite_url, prediction_batches)

    for features in [row["features"], batch["features"]]:
        assert set(features) == set(FEATURE_EXAMPLE) - {secret}
    assert (
        batch_rows(batch["features"], batch["rows"])
        == [{k: v for k, v in FEATURE_EXAMPLE.items() if k != secret}] * 2
    )


def test_a_new_sqlite_log_is_readable_by_its_owner_only(settings: Settings, tmp_path: Path) -> None:
    """It holds every prediction's features, as `.env` holds the keys (0600)."""
    path = tmp_path / "data" / "predictions.db"
    with app_client(
        create_app(settings.model_copy(update={"database_url": f"sqlite:///{path}"}))
    ) as client:
        client.post("/v1/predict", json=FEATURE_EXAMPLE)
        wait_for(client, lambda log: log["written"] == 1)
        files = [path, *path.parent.glob("predictions.db-*")]
        modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in files}

    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert set(modes) >= {"predictions.db", "predictions.db-wal"}
    assert set(modes.values()) == {0o600}, modes


def test_the_log_can_be_turned_off(settings: Settings, sqlite_url: str) -> None:
    off = settings.model_copy(update={"database_url": sqlite_url, "prediction_log_enabled": False})
    with app_client(create_app(off)) as client:
        assert client.post("/v1/predict", json=FEATURE_EXAMPLE).status_code == 200
        assert client.get("/ready").json()["prediction_log"] is None

    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_a_database_that_is_down_fails_no_prediction_and_loses_no_row(
    settings: Settings, tmp_path: Path
) -> None:
    # The log's folder is a file: no database can be opened until it is a folder.
    blocker = tmp_path / "logs"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker / 'predictions.db'}"
    with app_client(create_app(settings.model_copy(update={"database_url": url}))) as client:
        statuses = [client.post("/v1/predict", json=FEATURE_EXAMPLE).status_code for _ in range(5)]
        batch = client.post("/v1/predict/batch", json={"rows": [FEATURE_EXAMPLE] * 3})
        failing = wait_for(client, lambda log: log["state"] == "failing")
        blocker.unlink()
        blocker.mkdir()
        recovered = wait_for(client, lambda log: log["state"] == "ok" and log["pending"] == 0)

    assert [*statuses, batch.status_code] == [200] * 6
    # Pending and written count predictions, a batch's rows each.
    assert failing["pending"] == 8
    assert failing["last_error"]
    assert recovered["written"] == 8
    assert len(rows_in(url)) == 5
    assert [row["rows"] for row in rows_in(url, prediction_batches)] == [3]


def test_a_batch_that_does_not_fit_in_the_buffer_is_dropped_whole(sqlite_url: str) -> None:
    log = PredictionLog(create_log_engine(sqlite_url), max_pending=5)  # not started
    row = {"prediction_id": "p", "features": {}}
    log.record([row, row])
    log.record_batch({"batch_id": "b1", "rows": 4, "features": [{}] * 4})  # 6 > 5: dropped
    log.record_batch({"batch_id": "b2", "rows": 3, "features": [{}] * 3})  # fits exactly
    log.record([row])  # no room left

    status = log.status()
    log.engine.dispose()
    assert (status.pending, status.dropped) == (5, 4 + 1)


def wait_for(client: TestClient, condition: Any, seconds: float = 30) -> dict[str, Any]:
    """The prediction log's /ready details once ``condition`` holds for them."""
    deadline = time.monotonic() + seconds
    while True:
        details: dict[str, Any] = client.get("/ready").json()["prediction_log"]
        if condition(details):
            return details
        assert time.monotonic() < deadline, f"prediction log never got there: {details}"
        time.sleep(0.1)


def test_the_readiness_policy_decides_whether_a_failing_log_takes_the_worker_out(
    settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("not a folder")
    strict = settings.model_copy(
        update={
            "database_url": f"sqlite:///{blocker / 'predictions.db'}",
            "ready_requires_prediction_log": True,
        }
    )
    with app_client(create_app(strict)) as client:
        answered = client.post("/v1/predict", json=FEATURE_EXAMPLE).status_code
        refused = wait_for_ready_status(client, 503)
        blocker.unlink()
        blocker.mkdir()
        back = wait_for_ready_status(client, 200)

    assert answered == 200
    error = refused.json()["error"]
    assert error["code"] == "prediction_log_unavailable"
    assert "APP_READY_REQUIRES_PREDICTION_LOG" in error["message"]
    assert back.json()["prediction_log"]["state"] == "ok"


def wait_for_ready_status(client: TestClient, status: int, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while (response := client.get("/ready")).status_code != status:
        assert time.monotonic() < deadline, f"/ready never answered {status}: {response.text}"
        time.sleep(0.1)
    return response


def test_postgresql_down_at_start_fails_no_prediction_and_gets_every_row_once_up(
    settings: Settings, postgres_url: str
) -> None:
    with CuttableProxy(*server_of(postgres_url)) as database:
        via_proxy = make_url(postgres_url).set(port=database.port)
        url = via_proxy.render_as_string(hide_password=False)
        with app_client(create_app(settings.model_copy(update={"database_url": url}))) as client:
            statuses = [
                client.post("/v1/predict", json=FEATURE_EXAMPLE).status_code for _ in range(5)
            ]
            failing = wait_for(client, lambda log: log["state"] == "failing")
            database.restore()
            recovered = wait_for(client, lambda log: log["state"] == "ok" and log["pending"] == 0)

    assert statuses == [200] * 5
    assert failing["pending"] == 5
    assert "connect" in failing["last_error"].lower()
    assert recovered["written"] == 5
    assert len(rows_in(postgres_url)) == 5


def test_postgresql_going_away_under_load_and_coming_back_loses_no_row(
    settings: Settings, postgres_url: str
) -> None:
    """Clients keep predicting from four threads while the database's connections are
    cut and, a second later, restored."""
    with CuttableProxy(*server_of(postgres_url)) as database:
        database.restore()
        via_proxy = make_url(postgres_url).set(port=database.port)
        url = via_proxy.render_as_string(hide_password=False)
        with app_client(create_app(settings.model_copy(update={"database_url": url}))) as client:
            statuses: list[int] = []
            stop_sending = threading.Event()

            def send() -> None:
                while not stop_sending.is_set():
                    response = client.post("/v1/predict", json=FEATURE_EXAMPLE)
                    statuses.append(response.status_code)
                    time.sleep(0.01)

            senders = [threading.Thread(target=send) for _ in range(4)]
            for sender in senders:
                sender.start()
            try:
                wait_for(client, lambda log: log["written"] > 0)
                database.cut()
                failing = wait_for(client, lambda log: log["state"] == "failing")
                time.sleep(1)
                database.restore()
                wait_for(client, lambda log: log["state"] == "ok")
                time.sleep(0.5)
            finally:
                stop_sending.set()
                for sender in senders:
                    sender.join()
            recovered = wait_for(client, lambda log: log["pending"] == 0)

    assert set(statuses) == {200}
    assert failing["last_error"]
    assert recovered["dropped"] == 0
    assert recovered["written"] == len(statuses)
    assert len(rows_in(postgres_url)) == len(statuses)


def server_of(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


def test_a_worker_losing_the_race_to_create_the_tables_goes_on(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_log_engine(sqlite_url)
    lost: list[str] = []
    for table in metadata.sorted_tables:

        def lose_the_race(bind: Any, checkfirst: bool = True, table: Table = table) -> None:
            Table.create(table, bind)  # another worker creates it after this one checked...
            lost.append(table.name)
            Table.create(table, bind, checkfirst=False)  # ...so this one's CREATE fails

        monkeypatch.setattr(table, "create", lose_the_race)

    PredictionLog(engine).ensure_tables()

    assert lost == [table.name for table in metadata.sorted_tables]
    with engine.connect() as connection:
        assert connection.execute(select(predictions)).all() == []
    engine.dispose()


def pragma(engine: Engine, name: str) -> object:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_a_new_sqlite_log_takes_large_pages_and_an_existing_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    new = create_log_engine(f"sqlite:///{tmp_path / 'new.db'}")
    metadata.create_all(new)
    with sqlite3.connect(tmp_path / "old.db") as plain:
        plain.execute("CREATE TABLE kept (n INTEGER)")
        plain.execute("INSERT INTO kept VALUES (1)")
    plain.close()
    old = create_log_engine(f"sqlite:///{tmp_path / 'old.db'}")

    assert pragma(new, "page_size") == SQLITE_PAGE_SIZE
    assert pragma(new, "journal_mode") == "wal"
    assert pragma(old, "page_size") == 4096
    assert pragma(old, "journal_mode") == "wal"
    with old.connect() as connection:
        assert connection.exec_driver_sql("SELECT n FROM kept").scalar() == 1
    new.dispose()
    old.dispose()


OUTCOME = {"label": CLASS_LABELS[0]} if CLASS_LABELS else {"value": 1.0}


def logged_batch(batch_id: str, created_at: datetime, rows: int, **row: Any) -> dict[str, Any]:
    """A row of ``prediction_batches``: row i's features and output are {"n": i}."""
    return {
        "batch_id": batch_id,
        "created_at": created_at,
        "model_version": "1",
        "role": "primary",
        "rows": rows,
        "features": {"n": list(range(rows))},
        "outputs": [{"n": n} for n in range(rows)],
        "latency_ms": 1.0,
        **row,
    }


def scored_versions(engine: Engine, since: datetime, until: datetime) -> list[Any]:
    """(model version, role, predictions, labelled) of each version the quality report
    scores in [since, until)."""
    report = quality_report(
        engine,
        task=TASK,
        classes=CLASS_LABELS,
        since=since,
        until=until,
        min_labels=1,
        evaluation={},
    )
    return [(v.model_version, v.role, v.predictions, v.labelled) for v in report.versions]


def test_old_predictions_are_pruned_with_their_feedback(database: str) -> None:
    engine = create_log_engine(database)
    metadata.create_all(engine)
    now = datetime.now(UTC)
    old, new = now - timedelta(days=100), now
    row = {"model_version": "1", "role": "primary", "features": {}, "output": {}, "latency_ms": 1.0}
    old_batch, new_batch = "0" * 26 + "1", "0" * 26 + "2"
    ids = [
        "a" * 32,
        "b" * 32,
        batch_row_id(old_batch, 1),
        batch_row_id(new_batch, 0),
    ]
    with engine.begin() as connection:
        connection.execute(
            predictions.insert(),
            [
                {**row, "prediction_id": ids[0], "created_at": old},
                {**row, "prediction_id": ids[1], "created_at": new},
            ],
        )
        connection.execute(
            prediction_batches.insert(),
            [
                logged_batch(old_batch, old, 2),
                logged_batch(old_batch, old, 2, role="shadow"),
                logged_batch(new_batch, new, 2),
            ],
        )
        connection.execute(
            feedback.insert(),
            [
                {"prediction_id": id_, "observed": {}, "observed_at": now, "received_at": now}
                for id_ in ids
            ],
        )

    removed = prune(engine, now - timedelta(days=90))

    with engine.connect() as connection:
        left = connection.execute(select(predictions.c.prediction_id)).scalars().all()
        batches = connection.execute(select(prediction_batches.c.batch_id)).scalars().all()
        labelled = connection.execute(select(feedback.c.prediction_id)).scalars().all()
    engine.dispose()
    assert removed == 1 + 2 * 2  # a row, and a batch of two rows answered twice
    assert left == [ids[1]]
    assert batches == [new_batch]
    assert sorted(labelled) == sorted([ids[1], ids[3]])


def test_a_log_written_before_batches_had_a_table_is_read_as_before(database: str) -> None:
    """Services of earlier versions kept batches as rows of ``predictions``: their log
    has no ``prediction_batches`` until a service of this version writes to it."""
    engine = create_log_engine(database)
    metadata.create_all(engine, tables=[predictions, feedback])
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=1), now + timedelta(seconds=1)
    output = {"label": CLASS_LABELS[0]} if CLASS_LABELS else {"value": 1.0}
    with engine.begin() as connection:
        connection.execute(
            predictions.insert(),
            [
                {
                    "prediction_id": "a" * 32,
                    "created_at": now,
                    "model_version": "1",
                    "role": "primary",
                    "features": FEATURE_EXAMPLE,
                    "output": output,
                    "latency_ms": 1.0,
                }
            ],
        )
    try:
        window = read_window(engine, "1", since, until)
        versions = scored_versions(engine, since, until)
        with pytest.raises(PredictionNotFound):
            record_feedback(engine, "b" * 32, {"observed": 1}, now, now)
    finally:
        engine.dispose()
    assert window == [(FEATURE_EXAMPLE, output)]
    assert versions == [("1", "primary", 1, 0)]


def test_the_drift_window_reads_the_latest_one_row_predictions_and_batch_rows(
    database: str,
) -> None:
    engine = create_log_engine(database)
    metadata.create_all(engine)
    now = datetime.now(UTC)
    moments = [now - timedelta(seconds=4 - n) for n in range(4)]
    one_row = {"model_version": "1", "role": "primary", "output": {}, "latency_ms": 1.0}
    with engine.begin() as connection:
        connection.execute(
            predictions.insert(),
            [
                {**one_row, "prediction_id": name, "created_at": moment, "features": {"n": name}}
                for name, moment in [("first", moments[0]), ("last", moments[3])]
            ],
        )
        # The older batch as the log kept batches before a list per feature: a dict a row.
        as_rows = logged_batch("older", moments[1], 2, features=[{"n": 0}, {"n": 1}])
        connection.execute(
            prediction_batches.insert(), [as_rows, logged_batch("newer", moments[2], 2)]
        )
    since, until = now - timedelta(hours=1), now + timedelta(seconds=1)
    try:
        windows = {limit: read_window(engine, "1", since, until, limit) for limit in (3, 10)}
    finally:
        engine.dispose()
    latest = [{"n": "last"}, {"n": 0}, {"n": 1}, {"n": 0}, {"n": 1}, {"n": "first"}]
    assert [features for features, _ in windows[10]] == latest
    assert [features for features, _ in windows[3]] == latest[:3]


def test_each_roles_batch_row_is_scored_on_the_feedback_for_its_rows(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for one-row predictions: a shadow's batch answered after the window began is
    scored, though the primary's, answered just before, is not in the window."""
    engine = create_log_engine(database)
    metadata.create_all(engine)
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=1), now + timedelta(seconds=1)
    batch_id = "c" * 27
    outputs = [OUTCOME] * 3
    with engine.begin() as connection:
        connection.execute(
            prediction_batches.insert(),
            [
                logged_batch(batch_id, since - timedelta(seconds=1), 3, outputs=outputs),
                logged_batch(
                    batch_id,
                    since + timedelta(seconds=1),
                    3,
                    outputs=outputs,
                    role="shadow",
                    model_version="2",
                ),
            ],
        )
        connection.execute(
            feedback.insert(),
            [
                {
                    "prediction_id": batch_row_id(batch_id, position),
                    "observed": OUTCOME,
                    "observed_at": now,
                    "received_at": now,
                }
                for position in (0, 2)
            ],
        )

    try:
        in_full = scored_versions(engine, since, until)
        monkeypatch.setattr(quality, "MAX_LABELLED", 1)
        capped = scored_versions(engine, since, until)
    finally:
        engine.dispose()
    assert in_full == [("2", "shadow", 3, 2)]
    assert capped == [("2", "shadow", 3, 1)]


def test_a_batchs_features_are_kept_a_list_per_feature_and_read_back_a_dict_per_row() -> None:
    rows: list[dict[str, Any]] = [{"a": 1, "b": "x"}, {"a": 2, "b": None}, {"a": 3, "b": "z"}]

    columns = batch_features(rows, ["a", "b"])

    assert columns == {"a": [1, 2, 3], "b": ["x", None, "z"]}
    assert batch_rows(columns, 3) == rows
    assert batch_features(rows, ["a"]) == {"a": [1, 2, 3]}
    # Every feature redacted: the count of rows still says how many there were.
    assert batch_rows({}, 3) == [{}, {}, {}]
    assert batch_rows(rows, 3) == rows  # a batch logged before, a dict per row


def test_a_prediction_id_holds_one_row_per_role(sqlite_url: str) -> None:
    engine = create_log_engine(sqlite_url)
    metadata.create_all(engine)
    row = {
        "prediction_id": "p1",
        "created_at": datetime.now(UTC),
        "model_version": "1",
        "features": {},
        "output": {},
        "latency_ms": 1.0,
    }
    with engine.begin() as connection:
        connection.execute(
            predictions.insert(),
            [{**row, "role": "primary"}, {**row, "model_version": "2", "role": "shadow"}],
        )
    try:
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(predictions.insert(), [{**row, "role": "primary"}])
        with engine.connect() as connection:
            stored = connection.execute(select(predictions.c.model_version, predictions.c.role))
            assert sorted(stored) == [("1", "primary"), ("2", "shadow")]
    finally:
        engine.dispose()


def load(base_url: str, stop_after: int, signal_server: Any) -> list[int]:
    """One-row predictions from 8 clients until the server goes; after ``stop_after``
    answers, ``signal_server`` is called once. Returns every status received."""
    statuses: list[int] = []
    lock = threading.Lock()
    signalled = threading.Event()

    def client() -> None:
        with http_client(base_url, timeout=10) as session:
            for _ in range(400):
                try:
                    status = session.post("/v1/predict", json=FEATURE_EXAMPLE).status_code
                except httpx2.TransportError:
                    return  # the server is gone: this client stops
                with lock:
                    statuses.append(status)
                    if len(statuses) >= stop_after and not signalled.is_set():
                        signalled.set()
                        signal_server()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses


def test_sigterm_during_load_loses_no_prediction(
    model_dir: Path, model_version: str, database: str
) -> None:
    env = serving_env(model_dir, model_version, workers=3)
    env["APP_DATABASE_URL"] = database
    base_url = f"http://127.0.0.1:{env['PORT']}"
    server = start_server(env)
    try:
        wait_until_ready(server, base_url)
        statuses = load(base_url, 300, lambda: os.kill(server.pid, signal.SIGTERM))
        server.process.wait(timeout=60)
    finally:
        output = stop(server)

    answered = statuses.count(200)
    assert answered >= 300, output
    assert set(statuses) <= {200, 503}, output
    assert len(rows_in(database)) == answered, output
