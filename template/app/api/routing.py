"""Routes whose JSON bodies are parsed by orjson.

FastAPI parses a JSON body with the standard library's ``json`` module, which
reads a 1,000-row batch about six times slower than orjson: it was the largest
single cost of ``/v1/predict/batch`` (modelship's README, "Performance").
Custom request and route classes are FastAPI's documented way to change how a
body is read:
https://fastapi.tiangolo.com/how-to/custom-request-and-route/
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Scope


def refuse_content_coding(scope: Scope) -> None:
    """Refuse a compressed body with 415, as RFC 9110 (15.5.16) asks of a server that
    does not decode its content coding; unread, it was a 400 "not valid JSON"."""
    coding = next((value for name, value in scope["headers"] if name == b"content-encoding"), None)
    if coding is None or coding.strip().lower() == b"identity":
        return
    shown = coding.decode("latin-1")[:40]
    raise HTTPException(
        415,
        f"the request body is sent with Content-Encoding: {shown}; this service reads "
        "bodies uncompressed only: send it without Content-Encoding",
        headers={"Accept-Encoding": "identity"},
    )


class OrjsonRequest(Request):
    """A request whose ``json()`` tries orjson first, then the ``json`` module.

    orjson refuses a few bodies that ``json`` reads: ``NaN`` and ``Infinity``
    literals, integers wider than 64 bits, nesting deeper than 1,024 levels.
    Those go to ``json``, so they get the answers they always had: a number that
    is not finite is refused by its field's validation, which names the field, and
    what neither parser reads is the same 400 as before.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            refuse_content_coding(self.scope)
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
        return self._json

    @property
    def json_read(self) -> Any:
        """The body as ``json()`` read it; None when nothing has read it, as FastAPI
        does not for an empty body or one that is not sent as JSON."""
        return getattr(self, "_json", None)


class OrjsonRoute(APIRoute):
    """A route that hands its endpoint an ``OrjsonRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return handle
