"""Per-request context shared by the middleware, the error envelope and the logs."""

from contextvars import ContextVar
from typing import Final

UNMATCHED_ROUTE: Final = "unmatched"
"""The route label of a request no route matched: an unknown path, or one the server
refused before routing (its line and headers too large or too slow)."""

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    return request_id_var.get()
