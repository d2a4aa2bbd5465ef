"""Request context as pure ASGI middleware: a request id, one log line per request,
the monitoring observer's request hooks, and the 500 envelope for an exception
nothing else handled.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which costs throughput
and breaks context variables:
https://www.starlette.io/middleware/#limitations
"""

import re
import time
from typing import Final

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response
from app.observability.context import UNMATCHED_ROUTE, request_id_var
from app.observability.logging import RequestLines, request_level
from app.observability.observer import Observer
from app.randomness import random_bytes

REQUEST_ID_HEADER: Final = b"x-request-id"
TRACEPARENT_HEADER: Final = b"traceparent"
MAX_REQUEST_ID: Final = 128
# Accept a caller's id only if it is short and safe to log and echo back; one with
# other characters is replaced, a longer one refused.
_VALID_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_REQUEST_ID)
# https://www.w3.org/TR/trace-context/#traceparent-header-field-values
_VALID_TRACEPARENT: Final = re.compile(rb"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
# Error envelopes are a few KB at most (50 details); a longer answer is not read.
MAX_ERROR_BODY: Final = 64 * 1024
# Probes would drown the request log; whoever calls them sees the outcome anyway.
PROBES: Final = frozenset({"/health", "/ready"})

logger = structlog.stdlib.get_logger("app.request")


def _header(scope: Scope, wanted: bytes, valid: re.Pattern[bytes]) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value.decode("ascii") if valid.fullmatch(value) else None
    return None


def _request_id_too_long(length: int) -> ASGIApp:
    return error_response(
        431,
        "request_header_too_large",
        f"the X-Request-ID header is {length} characters long; send at most "
        f"{MAX_REQUEST_ID} letters, digits and ._:- or leave it out to get one",
        [{"field": "X-Request-ID", "message": "too long", "type": "header_too_large"}],
    )


class RequestContextMiddleware:
    """Binds a request id, echoes it as ``X-Request-ID`` and logs the request once.

    It is the outermost middleware the application adds, so an unexpected exception
    still gets the error envelope, with the request id, and its traceback goes to
    the log only. Requests to ``quiet_paths`` are neither logged nor observed.
    """

    def __init__(self, app: ASGIApp, quiet_paths: frozenset[str] = PROBES) -> None:
        self.app = app
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        caller_id = next(
            (value for name, value in scope["headers"] if name == REQUEST_ID_HEADER), b""
        )
        request_id = (
            caller_id.decode("ascii")
            if _VALID_REQUEST_ID.fullmatch(caller_id)
            else random_bytes(16).hex()
        )
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        traffic = scope["path"] not in self.quiet_paths
        # The application's observer, if any, is read per request: it may start with
        # the application's lifespan, after this middleware is built.
        observer: Observer | None = scope["app"].state.observer if traffic else None
        status: int | None = None
        started = time.perf_counter()
        # Routes read it to record how long the request took up to its prediction.
        scope.setdefault("state", {})["started"] = started
        if observer is not None:
            observer.request_started()
        # Every line logged while answering names the request and the model answering it.
        predictor = scope["app"].state.predictor
        model_version: str | None = predictor.version if predictor is not None else None
        context: dict[str, object] = {"request_id": request_id}
        if model_version is not None:
            context["model_version"] = model_version

        error_body = b""  # an error answer's envelope, for the code its line gives

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, error_body
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            elif status is not None and status >= 400 and len(error_body) < MAX_ERROR_BODY:
                error_body += message.get("body", b"")
            await send(message)

        token = request_id_var.set(request_id)
        try:
            with structlog.contextvars.bound_contextvars(**context):
                try:
                    if len(caller_id) > MAX_REQUEST_ID:
                        await _request_id_too_long(len(caller_id))(
                            scope, receive, send_with_request_id
                        )
                    else:
                        await self.app(scope, receive, send_with_request_id)
                except Exception:
                    logger.exception("unhandled error")
                    if status is not None:
                        raise
                    response = error_response(
                        500,
                        "internal_error",
                        "the server failed to handle this request; "
                        "quote the request id to report it",
                    )
                    await response(scope, receive, send_with_request_id)
                finally:
                    seconds = time.perf_counter() - started
                    route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
                    if observer is not None:
                        observer.request_finished(scope["method"], route, status or 500, seconds)
                    if traffic:
                        self._log(scope, context, route, status or 500, seconds, error_body)
        finally:
            request_id_var.reset(token)

    @staticmethod
    def _log(
        scope: Scope,
        context: dict[str, object],
        route: str,
        status: int,
        seconds: float,
        error_body: bytes,
    ) -> None:
        """The request's one canonical line: its ``context`` (request id, model version)
        first, then what the routes left in its state, and an error answer's code."""
        request_lines: RequestLines = scope["app"].state.request_lines
        level = request_level(status)
        if not request_lines.enabled(level):
            return
        state = scope.get("state", {})
        fields: dict[str, object] = {
            **context,
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        for key in (
            "prediction_id",
            "predictions",
            "invalid_fields",
            "invalid_field_count",
            "payload",
        ):
            if key in state:
                fields[key] = state[key]
        code = _error_code(error_body) if error_body else None
        if code is not None:
            fields["code"] = code
        traceparent = _header(scope, TRACEPARENT_HEADER, _VALID_TRACEPARENT)
        if traceparent is not None:
            fields["traceparent"] = traceparent
        request_lines.write(fields, level)


def _error_code(body: bytes) -> str | None:
    """The ``code`` of an error envelope, if ``body`` is one."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = envelope.get("error") if isinstance(envelope, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None
