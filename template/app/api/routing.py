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
from typing import Any, ClassVar, Final, Literal

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Scope

from app.api.errors import MAX_ERROR_DETAILS, UnknownFields

RowsAt = Literal["body", "rows"]
"""Where a body's fields are: the body holds them, or its ``rows`` lists objects that
each do (and the body holds ``rows`` alone)."""


def refuse_unknown_fields(body: Any, rows_at: RowsAt, fields: frozenset[str]) -> None:
    """Raise ``UnknownFields`` when ``body``, or the rows it lists, hold more than
    MAX_ERROR_DETAILS keys that are not ``fields`` (or ``rows``), before validation.

    pydantic makes an error of each unknown key, with its value, and FastAPI a dict of
    each error: a 4 MB body of 420,000 keys took a worker 480 MB and 1.3 s to refuse.
    Only objects with more keys than they may have are looked into, rows from the
    longest row's length, found in C: the others hold at most as many unknown keys
    as a row of missing fields gives errors.
    """
    if not isinstance(body, dict):
        return
    objects: list[tuple[tuple[str | int, ...], Any, frozenset[str]]] = []
    if rows_at == "body":
        objects.append((("body",), body, fields))
    else:
        objects.append((("body",), body, _ROWS))
        rows = body.get("rows")
        if isinstance(rows, list):
            try:
                longest = max(map(len, rows), default=0)
            except TypeError:  # a row without a length: validation names it
                longest = len(fields) + 1
            if longest > len(fields):
                objects += [
                    (("body", "rows", index), row, fields) for index, row in enumerate(rows)
                ]
    errors: list[dict[str, Any]] = []
    count = 0
    for at, holder, known in objects:
        if not isinstance(holder, dict) or len(holder) <= len(known):
            continue
        for key in holder:
            if key in known:
                continue
            count += 1
            if len(errors) < MAX_ERROR_DETAILS:
                errors.append(
                    {
                        "type": "extra_forbidden",
                        "loc": (*at, key),
                        "msg": "Extra inputs are not permitted",
                    }
                )
    if count > MAX_ERROR_DETAILS:
        raise UnknownFields(errors, count)


_ROWS: Final = frozenset({"rows"})


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

    rows_at: RowsAt | None = None
    fields: frozenset[str] = frozenset()
    """Set by the route whose body is rows of features: ``refuse_unknown_fields``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            refuse_content_coding(self.scope)
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
            if self.rows_at is not None:
                refuse_unknown_fields(self._json, self.rows_at, self.fields)
        return self._json

    @property
    def json_read(self) -> Any:
        """The body as ``json()`` read it; None when nothing has read it, as FastAPI
        does not for an empty body or one that is not sent as JSON."""
        return getattr(self, "_json", None)


class OrjsonRoute(APIRoute):
    """A route that hands its endpoint an ``OrjsonRequest``; one whose body is rows of
    features says where they are (``rows_at``) and what fields they may have."""

    rows_at: ClassVar[RowsAt | None] = None
    fields: ClassVar[frozenset[str]] = frozenset()

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        route_rows_at, route_fields = self.rows_at, self.fields

        # Made once for the route: its requests know where their rows are without
        # being told one by one.
        class RouteRequest(OrjsonRequest):
            rows_at = route_rows_at
            fields = route_fields

        async def handle(request: Request) -> Response:
            return await handler(RouteRequest(request.scope, request.receive))

        return handle
