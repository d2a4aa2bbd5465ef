"""Request context as pure ASGI middleware: a request id, one log line per request,
and the 500 envelope for an exception nothing else handled.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which costs throughput
and breaks context variables:
https://www.starlette.io/middleware/#limitations
"""

import re
import time
from typing import Final
from uuid import uuid4

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response
from app.observability.context import request_id_var

REQUEST_ID_HEADER: Final = b"x-request-id"
# Accept a caller's id only if it is short and safe to log and echo back.
_VALID_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Probes would drown the request log; their status is already visible to the prober.
_UNLOGGED_PATHS: Final = frozenset({"/health", "/ready"})

logger = structlog.stdlib.get_logger("app.request")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if _VALID_REQUEST_ID.fullmatch(value) else None
    return None


class RequestContextMiddleware:
    """Binds a request id, echoes it as ``X-Request-ID`` and logs the request once.

    It is the outermost middleware the application adds, so an unexpected exception
    still gets the error envelope, with the request id, and its traceback goes to
    the log only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid4().hex
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status: int | None = None
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                try:
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
                    if scope["path"] not in _UNLOGGED_PATHS:
                        route = scope.get("route")
                        logger.info(
                            "request",
                            method=scope["method"],
                            route=getattr(route, "path", "unmatched"),
                            status=status or 500,
                            duration_ms=round((time.perf_counter() - started) * 1000, 3),
                        )
        finally:
            request_id_var.reset(token)
