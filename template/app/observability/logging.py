"""Structured logs: JSON lines on stdout, readable lines on a terminal.

Records from the service, uvicorn and gunicorn's workers go through one handler,
and each carries the request id bound by ``RequestContextMiddleware``, so one
search finds everything a request did. Setup follows structlog's guide to
working with the standard library:
https://www.structlog.org/en/stable/standard-library.html

The one line per request is the exception: ``RequestLines`` writes it, with the
same fields and format, straight to the same stream. It is the only line every
request writes, and in JSON it is built as a dict and serialized by orjson
directly: 7 µs, against 26 µs through a structlog logger with the processors
above and 3.5 times that through the standard library's records and handlers
(modelship's README, "Performance"). In JSON, request lines are also written
together, up to ``APP_LOG_FLUSH_MS`` after they are made, rather than one write
to the stream each: a write per request cost more than making the line.
"""

import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import FilteringBoundLogger

_HANDLER_NAME = "app"
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "gunicorn.error")


REQUEST_LOGGER: Final = "app.request"
# The timestamp as structlog's TimeStamper(fmt="iso", utc=True) writes it.
_LINE_OPTIONS: Final = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def _json(event: dict[str, Any], default: Callable[[Any], Any]) -> str:
    # orjson: several times as fast as the json module, and never fails a line on a
    # key that is not a string.
    return orjson.dumps(event, default=default, option=orjson.OPT_NON_STR_KEYS).decode()


def request_level(status: int) -> str:
    """The level of a request's line: ``error`` for a 5xx answer, ``warning`` for a
    4xx, ``info`` otherwise; so a service logging at WARNING still says which
    requests it refused or failed."""
    return "error" if status >= 500 else "warning" if status >= 400 else "info"


class RequestLines:
    """Writes the one line per request to ``stream``, if ``level`` lets its level
    (``request_level``) through.

    In JSON the line is a dict written by orjson, with the keys every other line has;
    on a console it goes through ``console``, structlog's readable renderer, at once.

    In JSON, with ``flush_seconds`` above 0, a line waits in memory for up to that
    long, or until ``MAX_PENDING_LINES`` wait, and the lines that wait are written to
    the stream at once, as access logs are written by nginx (``access_log ...
    buffer= flush=``) or ASP.NET Core (``W3CLoggerOptions.FlushInterval``, 1 s by
    default). Under load, a write to the stream for each line cost 6 to 8 µs more CPU
    a request than writing them together in a served worker, and 17 to 23 µs more
    in-process with sixteen requests in flight; making a line costs 2 (modelship's
    README, "Performance"). Lines are made and written on the event
    loop's thread. The application calls ``flush`` when it stops; a worker killed
    outright loses at most ``flush_seconds`` of lines.
    """

    def __init__(
        self,
        stream: TextIO,
        level: str,
        console: FilteringBoundLogger | None = None,
        flush_seconds: float = 0.0,
    ) -> None:
        self._threshold: int = logging.getLevelName(level)
        self._stream = stream
        self._console = console
        self._flush_seconds = flush_seconds
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def enabled(self, level: str) -> bool:
        """Whether a line at ``level`` is written; callers check it before gathering
        the line's fields."""
        return bool(_LEVELS[level] >= self._threshold)

    def write(self, fields: dict[str, object], level: str = "info") -> None:
        """Write the line at ``level``, or queue it, if ``enabled(level)``, which callers
        check first. A stream that cannot take it is reported, never raised."""
        if self._console is not None:
            try:
                getattr(self._console, level)("request", **fields)
            except (OSError, ValueError) as exc:  # a closed or broken stream
                _not_written(1, exc)
            return
        line = {
            "timestamp": datetime.now(UTC),
            "level": level,
            "logger": REQUEST_LOGGER,
            "event": "request",
            **fields,
        }
        self._pending.append(orjson.dumps(line, default=str, option=_LINE_OPTIONS).decode())
        if self._flush_seconds <= 0 or len(self._pending) >= MAX_PENDING_LINES:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to wait on: written now
            self.flush()
            return
        # A timer of a loop that has stopped never fires: the lines wait on this one.
        if self._timer is None or self._timer_loop is not loop:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_later(self._flush_seconds, self.flush)
            self._timer_loop = loop

    def flush(self) -> None:
        """Write the lines that wait; from the event loop's thread, or after it stopped."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except (OSError, ValueError) as exc:  # a closed or broken stream
            # As with the standard library's handlers, a line that cannot be written is
            # reported, never turned into a failed request.
            _not_written(len(lines), exc)


_LEVELS: Final = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
MAX_PENDING_LINES: Final = 256
"""Request lines that may wait to be written; one more and they are written at once."""


def _not_written(lines: int, exc: Exception) -> None:
    structlog.stdlib.get_logger(REQUEST_LOGGER).error(
        "request lines not written", lines=lines, error=str(exc)
    )


def configure_logging(
    level: str = "INFO",
    log_format: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
    flush_seconds: float = 0.0,
) -> RequestLines:
    """Route every log record to ``stream`` (stdout by default) in one format; safe to
    call more than once. Commands whose stdout is their result log to stderr.

    Returns the writer of the one line per request, which writes to ``stream`` too,
    in JSON up to ``flush_seconds`` after each line is made.
    """
    stream = stream or sys.stdout
    console = log_format == "console" or (log_format == "auto" and stream.isatty())
    timestamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamp,
    ]
    renderer: structlog.types.Processor
    # Tracebacks without their frames' local variables: those hold request bodies,
    # headers and settings, with whatever secrets and personal data they carry.
    if console:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    else:
        shared.append(
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        )
        renderer = structlog.processors.JSONRenderer(serializer=_json)
    structlog.configure(
        # Dropped lines stop at the first processor, before any of the others run.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    # No line shows the caller's source line, thread or process: not collecting them
    # saves a third of a request line's cost.
    # https://docs.python.org/3/howto/logging.html#optimization
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    # RequestContextMiddleware writes one richer line per request instead.
    logging.getLogger("uvicorn.access").disabled = True
    if not console:
        return RequestLines(stream, level, flush_seconds=flush_seconds)
    readable: FilteringBoundLogger = structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[structlog.processors.add_log_level, timestamp, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
    )
    return RequestLines(stream, level, console=readable.bind(logger=REQUEST_LOGGER))
