"""Pure ASGI guards every request passes before a route sees it: a bound on the
size of the body, HEAD answered wherever GET is, browsers' cross-origin checks, and
the security headers of every response."""

from typing import Final

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

SECURITY_HEADERS: Final = (
    # Browsers must not guess a content type other than the one sent.
    (b"x-content-type-options", b"nosniff"),
    # No page of this API is meant to be framed.
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # Predictions are about one caller's data: no shared cache keeps them.
    (b"cache-control", b"no-store"),
)
DOCS_PATHS: Final = frozenset({"/docs", "/redoc"})
BODY_STALLED: Final = "body_stalled"
"""Set in a request's state by the server's protocol (``app.worker``) when its body has
sent nothing for ``HEADER_TIMEOUT`` seconds: the seconds, for the 408 answer."""
# The API answers JSON only; the documentation pages load their scripts and styles
# from a CDN (pinned, with Subresource Integrity: app.api.docs) and run one inline
# script, so they keep the browser's defaults.
CONTENT_SECURITY_POLICY: Final = (
    b"content-security-policy",
    b"default-src 'none'; frame-ancestors 'none'",
)


def _too_large(limit: int) -> str:
    return (
        f"the request body is larger than {limit} bytes; send fewer rows per request "
        "or raise APP_MAX_BODY_BYTES"
    )


class BodyLimitMiddleware:
    """Refuses a request body over ``limit`` bytes with 413, before it is read whole.

    A declared ``Content-Length`` over the limit is refused before one byte of the
    body is read; a body sent in chunks is counted as it arrives and refused at the
    chunk that crosses the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next(
            (value for name, value in scope["headers"] if name == b"content-length"), None
        )
        # The server has already refused a Content-Length that is not a number.
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = error_response(413, "content_too_large", _too_large(self.limit))
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI passes an HTTPException raised while it reads the body on
                    # to the error handlers: the caller gets the 413 envelope.
                    raise HTTPException(413, _too_large(self.limit))
                # Looked up only while more of the body is due: a body that came whole
                # with its headers costs nothing here.
                stalled = message.get("more_body") and scope.get("state", {}).get(BODY_STALLED)
                if stalled:
                    raise HTTPException(
                        408,
                        f"the request body stopped arriving: nothing came for {stalled:g} s "
                        "(HEADER_TIMEOUT)",
                        # What is left of the body may still come: it must not be read
                        # as the next request.
                        headers={"Connection": "close"},
                    )
            return message

        await self.app(scope, counted_receive, send)


class HeadAsGetMiddleware:
    """Answers HEAD on every GET route as the route answers GET, without the body.

    HTTP expects HEAD wherever GET works (RFC 9110, 9.3.2), and uptime monitors probe
    with it, but a FastAPI route answers only the methods it declares: HEAD got 405.
    Declaring HEAD on each route would add a ``head`` operation of each to the
    OpenAPI document. Here a HEAD request to a path with a GET route is handed to the
    routes as a GET, in a copy of its scope; the server, which still sees HEAD, sends
    the status and headers of the answer and leaves out its body, as it does for
    Starlette's own routes (``/docs``). A HEAD to a path with no GET route goes on as
    HEAD, and gets the 405 or 404 any other method would.

    The innermost middleware: the others see HEAD, and the route that answered, so
    the request's log line and metrics have method HEAD and the GET route.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}
        routes = scope["app"].router.routes
        if not any(route.matches(as_get)[0] is Match.FULL for route in routes):
            await self.app(scope, receive, send)
            return
        try:
            await self.app(as_get, receive, send)
        finally:
            if "route" in as_get:
                scope["route"] = as_get["route"]


class EnvelopedCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, a refused preflight answered in the error envelope.

    Starlette refuses a browser's preflight from an origin, or for a method or header,
    that the settings do not allow with a 400 in plain text ("Disallowed CORS
    origin"); every other refusal of this service is JSON with a request id.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        reason = bytes(response.body).decode()
        kept = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        return error_response(
            400,
            "bad_request",
            f"{reason}: APP_CORS_ORIGINS lists the origins that may call from a browser",
            headers=kept,
        )


class SecurityHeadersMiddleware:
    """Adds ``SECURITY_HEADERS`` to every response, and a content security policy
    that allows nothing to every response but the documentation pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(SECURITY_HEADERS)
        if scope["path"] not in DOCS_PATHS:
            extra.append(CONTENT_SECURITY_POLICY)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *(header for header in extra if header[0] not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
