"""The prediction log: every successful prediction, kept for drift reports and quality.

A one-row prediction is a row of ``predictions``; a batch is one row of
``prediction_batches``, its rows' features and answers in order, as request loggers
keep a request's payload: writing a row each cost a batch of 1,000 rows half of
the CPU time of answering it (modelship's README, "Performance"). Every prediction
id still leads to its answer: a batch row's id is its batch's id and its position
(``batch_position``).

A SQLite file by default (``APP_PREDICTION_LOG_PATH``, in WAL mode so several
workers write side by side); PostgreSQL, or any database SQLAlchemy speaks to,
when ``APP_DATABASE_URL`` is set. Requests never wait for the database: a route
hands its records to ``PredictionLog.record``, which only appends them to a
buffer, and one thread per worker writes the buffer in batches. When the
database is down the thread keeps the rows, retries with a growing pause, and
reports the failure to the observer, the log and ``/ready``; predictions go on.
At shutdown the thread writes what is left before the worker exits.
"""

import functools
import itertools
import operator
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TypeVar

import orjson
import structlog
from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError

from app.errors import ConfigError, ServiceError
from app.model import ArtifactMetadata
from app.settings import Settings

logger = structlog.stdlib.get_logger("app.prediction_log")

metadata = MetaData()
_JSON = JSON().with_variant(JSONB(), "postgresql")

predictions = Table(
    "predictions",
    metadata,
    Column("prediction_id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_version", String(64), nullable=False, index=True),
    Column("role", String(8), primary_key=True, default="primary"),
    Column("request_id", String(128)),
    Column("features", _JSON, nullable=False),
    Column("output", _JSON, nullable=False),
    Column("latency_ms", Float, nullable=False),
)
"""One row per answered row; ``role`` is ``shadow`` for a shadow model's answer.

A shadow's row carries the prediction id of the primary row it shadows, so feedback
on that id scores both versions: the key is (prediction_id, role)."""

prediction_batches = Table(
    "prediction_batches",
    metadata,
    Column("batch_id", String(27), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_version", String(64), nullable=False, index=True),
    Column("role", String(8), primary_key=True, default="primary"),
    Column("request_id", String(128)),
    Column("rows", Integer, nullable=False),
    Column("features", _JSON, nullable=False),
    Column("outputs", _JSON, nullable=False),
    Column("latency_ms", Float, nullable=False),
)
"""One row per batch answered through /v1/predict/batch. ``features`` holds a list per
feature, its rows' values in order (``batch_features``), where a list per row would
repeat every name in every row: half the size, and a batch sent as Arrow is stored
as it came, without a dict per row. ``outputs`` lists the rows' answers in order. A
shadow's batch row has the primary's ``batch_id``."""

BATCH_ID_DIGITS: Final = 27
"""A batch's id: the first 27 hex digits of a UUIDv7. Each of its rows' prediction id
is the batch's id followed by the row's position in 5 hex digits, up to the 100,000
rows APP_MAX_BATCH_SIZE allows: 32 hex digits, as every other prediction id."""


def batch_features(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """The features of a batch's ``rows`` as ``prediction_batches`` keeps them: a list per
    feature of ``names``, in row order."""
    if not names:
        return {}
    values = map(operator.itemgetter(*names), rows)
    if len(names) == 1:
        return {names[0]: list(values)}
    return {
        name: list(column) for name, column in zip(names, zip(*values, strict=True), strict=True)
    }


def batch_rows(features: Any, rows: int) -> list[dict[str, Any]]:
    """A batch row's features, a dict per row; ``rows`` counts them when every feature
    was redacted. A batch logged as a list of rows, before ``batch_features``, is read
    as it is."""
    if not isinstance(features, Mapping):
        return list(features)
    if not features:
        return [{} for _ in range(rows)]
    names = list(features)
    return [dict(zip(names, row, strict=True)) for row in zip(*features.values(), strict=True)]


def batch_row_id(batch_id: str, position: int) -> str:
    return f"{batch_id}{position:05x}"


_positions: list[str] = []
"""The 5 hex digits of each position, from 0, as many as the longest batch so far."""


def batch_row_ids(batch_id: str, rows: int) -> list[str]:
    """``batch_row_id`` of each of a batch's ``rows``, in order. The positions' digits are
    made once per worker: 0.05 ms for 1,000 rows, where formatting each id took 0.36."""
    global _positions
    if len(_positions) < rows:
        # Replaced whole, never extended in place: a thread reading the old list
        # still reads a complete one.
        _positions = [batch_row_id("", position) for position in range(rows)]
    return [batch_id + digits for digits in _positions[:rows]]


def batch_position(prediction_id: str) -> tuple[str, int] | None:
    """(batch id, position) a prediction id would have as a batch's row; None when it
    cannot be one."""
    if len(prediction_id) != BATCH_ID_DIGITS + 5:
        return None
    try:
        position = int(prediction_id[BATCH_ID_DIGITS:], 16)
    except ValueError:
        return None
    return prediction_id[:BATCH_ID_DIGITS], position


def holds_batches(connection: Connection) -> bool:
    """Whether the log has its table of batches: a log that only services of earlier
    versions wrote to does not, until a service of this one writes to it."""
    return inspect(connection).has_table(prediction_batches.name)


def batch_of(prediction_id: Any) -> Any:
    """The SQL expression of the batch id a stored prediction id would belong to."""
    return func.substr(prediction_id, 1, BATCH_ID_DIGITS)


feedback = Table(
    "feedback",
    metadata,
    Column("prediction_id", String(32), primary_key=True),
    Column("observed", _JSON, nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
"""The true label or value of a prediction, reported later through /v1/feedback."""

ReportT = TypeVar("ReportT")
LogReader = Callable[[Engine, ArtifactMetadata, Settings, datetime, datetime], ReportT]
"""A report read from the log: drift or quality, for one model over [since, until)."""


class WindowError(ServiceError):
    """A report window that cannot be read; ``bound`` names the one at fault."""

    def __init__(self, bound: str, message: str) -> None:
        super().__init__(message)
        self.bound = bound


def report_window(
    hours: float,
    since: datetime | None,
    until: datetime | None,
    names: tuple[str, str, str] = ("since", "until", "hours"),
) -> tuple[datetime, datetime]:
    """The [since, until) a report reads, in UTC: ``until`` or now, and ``since`` or
    ``hours`` before it. The API and the commands share it; ``names`` are what each
    calls the two bounds and the hours, in its errors."""
    since_name, until_name, hours_name = names
    try:
        end = (until or datetime.now(UTC)).astimezone(UTC)
        start = since.astimezone(UTC) if since else end - timedelta(hours=hours)
    except OverflowError:  # e.g. until=0001-01-01T00:00Z and 24 hours
        blamed = until_name if until else since_name if since else hours_name
        raise WindowError(blamed, "the window reaches outside the years 1 to 9999") from None
    if start >= end and since is None:
        # Hours so few that they round to no time at all.
        raise WindowError(
            hours_name, f"{hours:g} hours is shorter than a microsecond: give a longer window"
        )
    if start >= end:
        raise WindowError(
            since_name,
            f"the window starts at {start.isoformat()}, not before its end "
            f"({end.isoformat()}): give a {since_name} before {until_name}",
        )
    return start, end


MAX_RETRY_PAUSE: Final = 10.0
SQLITE_PAGE_SIZE: Final = 16_384
PRUNE_EVERY: Final = timedelta(hours=1)


def first_line(exc: SQLAlchemyError) -> str:
    """The first line of the driver's own error, or of SQLAlchemy's when there is none."""
    cause = getattr(exc, "orig", None)
    return (str(cause) if cause is not None else str(exc)).splitlines()[0]


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the prediction log the settings point at."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{settings.prediction_log_path}"


def _json_text(value: object) -> str:
    # orjson: about five times as fast as the json module on these small records. A
    # batch sent as Arrow keeps its float columns as NumPy arrays, which orjson writes
    # as lists of numbers without a Python float each.
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def make_log_file(path: Path) -> None:
    """Make the SQLite log's folder and file where they are missing, and open the file
    for writing once; raises OSError when it cannot. The log holds every prediction's
    features: a new folder and file are for their owner only, and SQLite gives its
    -wal and -shm files the file's permissions."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def check_log_file(settings: Settings) -> None:
    """Raise ``ConfigError`` naming APP_PREDICTION_LOG_PATH when the log is a SQLite file
    that cannot be made or written: a setting to fix before start-up, where a database
    that is down is waited out (``PredictionLog``)."""
    if not settings.prediction_log_enabled or settings.database_url:
        return
    path = settings.prediction_log_path
    try:
        make_log_file(path)
    except OSError as exc:
        raise ConfigError(
            f"APP_PREDICTION_LOG_PATH={path} cannot be made or written: {exc.strerror or exc}; "
            "point it at a file in a folder this user can write to"
        ) from None


def create_log_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file is opened in WAL mode, its folder created."""
    if not url.startswith("sqlite"):
        return create_engine(
            url, pool_pre_ping=True, pool_size=2, max_overflow=2, json_serializer=_json_text
        )
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        # If this fails, so will each write, which is reported and retried.
        with suppress(OSError):
            make_log_file(Path(path))
    engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=_json_text)

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: object) -> None:
        cursor = connection.cursor()
        # Only a new file takes it: 16 KiB pages rather than 4, fewer writes for the
        # same rows; writing a row cost 9.4 µs rather than 11 (modelship's README,
        # "Performance").
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        # WAL: readers never block the writers of other workers; NORMAL: a commit
        # survives a crash of the process (not of the machine), at a fraction of the cost.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class LogListener(Protocol):
    """What the prediction log reports as it works; the observers implement it."""

    def log_written(self, rows: int, pending: int) -> None:
        """``rows`` were written; ``pending`` wait."""

    def log_failed(self, pending: int) -> None:
        """A write failed and will be retried; ``pending`` rows wait."""

    def log_dropped(self, rows: int) -> None:
        """The buffer was full: ``rows`` were refused and will never be written."""


class PredictionLogStatus(BaseModel):
    """How the prediction log is doing; /ready shows it. A failing log never fails
    predictions: it keeps their rows and retries."""

    state: Literal["ok", "failing"]
    pending: int = Field(description="Rows waiting to be written, in this worker.")
    written: int = Field(description="Rows this worker wrote since it started.")
    dropped: int = Field(description="Rows lost because the buffer was full.")
    last_error: str | None


class PredictionLog:
    """Buffers prediction records and writes them from a thread of its own.

    ``listener`` (the observer, when there is one) hears of every batch written
    and every failed attempt, from the writer thread.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_pending: int = 100_000,
        retention: timedelta | None = None,
        listener: LogListener | None = None,
    ) -> None:
        self.engine = engine
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._retention = retention
        self._listener = listener
        # Rows of ``predictions``, and batches, each one row of ``prediction_batches``.
        self._pending: deque[dict[str, Any]] = deque()
        self._pending_rows = 0  # the predictions they hold
        self._wake = threading.Condition()
        self._stopping = False
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None
        self._written = 0
        self._dropped = 0
        self._failing = False
        self._last_error: str | None = None
        self._ready = False
        self._pruned_at = datetime.min.replace(tzinfo=UTC)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, rows: Iterable[dict[str, Any]]) -> None:
        """Queue rows of ``predictions`` for writing; never blocks on the database."""
        rows = list(rows)
        with self._wake:
            # Memory is bounded: past the limit new rows are refused, and counted.
            room = max(self._max_pending - self._pending_rows, 0)
            self._pending.extend(rows[:room])
            self._pending_rows += min(len(rows), room)
            overflow = len(rows) - room if len(rows) > room else 0
            self._queued(overflow)
        self._report_dropped(overflow)

    def record_batch(self, batch: dict[str, Any]) -> None:
        """Queue a row of ``prediction_batches``, a whole batch; never blocks on the
        database. A batch that does not fit in the buffer is dropped whole."""
        rows: int = batch["rows"]
        with self._wake:
            fits = self._pending_rows + rows <= self._max_pending
            if fits:
                self._pending.append(batch)
                self._pending_rows += rows
            self._queued(0 if fits else rows)
        self._report_dropped(0 if fits else rows)

    def _queued(self, dropped: int) -> None:
        """Count ``dropped`` rows, and wake the writer if a batch's worth waits; with the lock."""
        self._dropped += dropped
        # The writer wakes for a full batch, or on its own every flush interval: waking
        # it for every request would write batches of one row, and the handover alone
        # costs more than the request's own logging.
        if self._pending_rows >= self._batch_size:
            self._wake.notify()

    def _report_dropped(self, rows: int) -> None:
        if rows > 0:
            logger.error("prediction log full: rows dropped", dropped=rows)
            if self._listener is not None:
                self._listener.log_dropped(rows)

    def status(self) -> PredictionLogStatus:
        return PredictionLogStatus(
            state="failing" if self._failing else "ok",
            pending=self._pending_rows,
            written=self._written,
            dropped=self._dropped,
            last_error=self._last_error,
        )

    def close(self, timeout: float = 15.0) -> None:
        """Write what is buffered, retrying for up to ``timeout`` seconds, then stop."""
        with self._wake:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout + 5)
        if self._pending:
            logger.error(
                "prediction log closed with rows unwritten",
                rows=self._pending_rows,
                error=self._last_error,
            )
        self.engine.dispose()

    def _take(self) -> list[dict[str, Any]]:
        """The oldest waiting entries, up to batch_size rows (at least one entry), once a
        batch's worth waits or the flush interval has passed."""
        deadline = time.monotonic() + self._flush_interval
        with self._wake:
            while self._pending_rows < self._batch_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            taken: list[dict[str, Any]] = []
            rows = 0
            for entry in self._pending:
                if taken and rows + _rows_of(entry) > self._batch_size:
                    break
                taken.append(entry)
                rows += _rows_of(entry)
            return taken

    def _run(self) -> None:
        pause = 0.5
        while True:
            batch = self._take()
            if not batch:
                if self._stopping:
                    return
                self._prune_now_and_then()
                continue
            try:
                self._write(batch)
            except SQLAlchemyError as exc:
                self._failed(exc)
                if time.monotonic() > self._deadline:
                    return
                with self._wake:
                    self._wake.wait(min(pause, max(self._deadline - time.monotonic(), 0.0)))
                pause = min(pause * 2, MAX_RETRY_PAUSE)
                continue
            pause = 0.5
            written = sum(_rows_of(entry) for entry in batch)
            with self._wake:
                for _ in batch:
                    self._pending.popleft()
                self._pending_rows -= written
                pending = self._pending_rows
            self._written += written
            if self._failing:
                logger.info("prediction log writing again", pending=pending)
            self._failing = False
            if self._listener is not None:
                self._listener.log_written(written, pending)

    def ensure_tables(self) -> None:
        """Create the log's tables where they do not exist yet; once per process.

        Workers starting together race to create them, table by table: a worker whose
        CREATE fails because another made the table between its check and its CREATE
        goes on. Any other failure, such as a database that is down, is raised, and the
        caller retries later.
        """
        if self._ready:
            return
        for table in metadata.sorted_tables:
            try:
                table.create(self.engine, checkfirst=True)
            except SQLAlchemyError:
                if not inspect(self.engine).has_table(table.name):
                    raise
        self._ready = True

    def _write(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self.ensure_tables()
        with self.engine.begin() as connection:
            write_entries(connection, entries)

    def _failed(self, exc: SQLAlchemyError) -> None:
        message = first_line(exc)
        if not self._failing or message != self._last_error:
            logger.error(
                "prediction log cannot write; retrying",
                error=message,
                database=self.engine.url.render_as_string(hide_password=True),
                pending=self._pending_rows,
            )
        self._failing = True
        self._last_error = message
        if self._listener is not None:
            self._listener.log_failed(self._pending_rows)

    def _prune_now_and_then(self) -> None:
        now = datetime.now(UTC)
        if self._retention is None or now - self._pruned_at < PRUNE_EVERY or not self._ready:
            return
        self._pruned_at = now
        try:
            removed = prune(self.engine, now - self._retention)
        except SQLAlchemyError as exc:
            logger.warning("prediction log pruning failed", error=str(exc).splitlines()[0])
            return
        if removed:
            logger.info("prediction log pruned", rows=removed, retention=str(self._retention))


def _rows_of(entry: Mapping[str, Any]) -> int:
    """How many predictions a waiting entry holds: a batch's rows, or one."""
    rows: int = entry.get("rows", 1)
    return rows


_COLUMNS: Final = tuple(column.name for column in predictions.columns)
# 800 parameters a statement: under the 999 of SQLite builds older than 3.32.
_SQLITE_ROWS_PER_INSERT: Final = 100


@functools.cache
def _sqlite_insert(rows: int) -> str:
    row = f"({', '.join('?' * len(_COLUMNS))})"
    # Only the table's own column names and placeholders: every value is a parameter.
    columns = ", ".join(_COLUMNS)
    return f"INSERT INTO predictions ({columns}) VALUES {', '.join([row] * rows)}"  # nosec B608


def sqlite_datetime(value: datetime) -> str:
    """``value`` as SQLAlchemy's SQLite ``DateTime`` stores it: its wall-clock fields."""
    # The offset, if any, ends the text: cutting it off is faster than replacing the
    # time zone before formatting.
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_converter(column: Column[Any]) -> Callable[[Any], object] | None:
    """What turns a row's value for ``column`` into what SQLAlchemy binds in SQLite;
    None where the driver takes the value as it is."""
    if isinstance(column.type, DateTime):
        return sqlite_datetime
    if isinstance(column.type, JSON):
        return _json_text
    return None


_ROW_VALUES: Final = operator.itemgetter(*_COLUMNS)
_SQLITE_CONVERTERS: Final = tuple(
    (index, convert)
    for index, column in enumerate(predictions.columns)
    if (convert := _sqlite_converter(column)) is not None
)


def insert_into_sqlite(connection: Connection, batch: Sequence[Mapping[str, Any]]) -> None:
    """Insert prediction rows through the driver, many rows a statement.

    The values are the ones SQLAlchemy would bind: the same text for the times, JSON
    text for the features and the output. Its own insert processes every parameter of
    every row in Python: 15 µs a row of the breast-cancer example, half of what
    writing the row cost (modelship's README, "Performance"). Many rows a
    statement, not one: sqlite3 releases the GIL around each statement, and the
    request thread and this writer handing it to each other cost several times the
    write.
    """
    values = []
    # Taken at once and converted in place: 4.1 µs a row of the breast-cancer example,
    # against 5.1 with a generator of each row's values.
    for row in batch:
        row_values = list(_ROW_VALUES(row))
        for index, convert in _SQLITE_CONVERTERS:
            row_values[index] = convert(row_values[index])
        values.append(row_values)
    for start in range(0, len(values), _SQLITE_ROWS_PER_INSERT):
        chunk = values[start : start + _SQLITE_ROWS_PER_INSERT]
        parameters = tuple(itertools.chain.from_iterable(chunk))
        connection.exec_driver_sql(_sqlite_insert(len(chunk)), parameters)


def write_entries(connection: Connection, entries: Sequence[Mapping[str, Any]]) -> None:
    """Insert what the log buffered: rows of ``predictions``, and batches, each a row of
    ``prediction_batches``."""
    rows = [entry for entry in entries if "batch_id" not in entry]
    batches = [entry for entry in entries if "batch_id" in entry]
    if rows and connection.dialect.name == "sqlite":
        insert_into_sqlite(connection, rows)
    elif rows:
        connection.execute(insert(predictions), rows)
    if batches:
        connection.execute(insert(prediction_batches), batches)


def prune(engine: Engine, before: datetime) -> int:
    """Delete predictions made before ``before``, and their feedback; how many went."""
    old = select(predictions.c.prediction_id).where(predictions.c.created_at < before)
    old_batches = prediction_batches.c.created_at < before
    with engine.begin() as connection:
        connection.execute(delete(feedback).where(feedback.c.prediction_id.in_(old)))
        connection.execute(
            delete(feedback).where(
                batch_of(feedback.c.prediction_id).in_(
                    select(prediction_batches.c.batch_id).where(old_batches)
                )
            )
        )
        rows = connection.execute(delete(predictions).where(predictions.c.created_at < before))
        batched = connection.execute(
            select(func.coalesce(func.sum(prediction_batches.c.rows), 0)).where(old_batches)
        ).scalar_one()
        connection.execute(delete(prediction_batches).where(old_batches))
    return rows.rowcount + int(batched)


def open_log(settings: Settings, listener: LogListener | None = None) -> PredictionLog:
    """The prediction log the settings describe, started."""
    log = PredictionLog(
        create_log_engine(database_url(settings)),
        batch_size=settings.prediction_log_batch_size,
        retention=timedelta(days=settings.prediction_log_retention_days),
        listener=listener,
    )
    log.start()
    return log


def reading_engine(settings: Settings) -> Engine:
    """An engine to read the prediction log with, for reports; never creates a SQLite file."""
    if not settings.database_url and not settings.prediction_log_path.is_file():
        raise ServiceError(
            f"no prediction log at {settings.prediction_log_path}: serve predictions first, "
            "or point APP_PREDICTION_LOG_PATH (or APP_DATABASE_URL) at the service's log"
        )
    return create_log_engine(database_url(settings))


def describe_log_error(exc: SQLAlchemyError) -> str:
    """One line on why the prediction log could not be read."""
    message = first_line(exc)
    if "no such table" in message or "does not exist" in message:
        return "the prediction log holds no predictions yet: serve some first"
    return f"the prediction log cannot be read: {message}"
