"""gunicorn's uvicorn worker, accepting one connection at a time so that connections
opened together spread over the workers.

gunicorn's workers share one listening socket. uvloop (libuv) accepts every waiting
connection each time the socket is readable, so a client that opens its pool at once
(a load balancer, a `requests.Session` pool, wrk) can land all of it on the worker
that woke first while the others idle. Measured with 2 workers and 32 connections
opened at once from Python, 20 rounds on an idle machine: with uvicorn's own worker the
least loaded worker held 23% of the connections, and none at all in 4 rounds; with
this one it held 40 to 43%, and at least 7 of 32 in every round. With wrk's 32
connections on `/v1/predict`, requests/s rose 15 and 18% (means of 10 runs).

The price is per connection, not per request: the accept runs in Python. A client
that opens a new connection for every request (no keep-alive) got about 14% fewer
requests/s (modelship's README, "Performance"). gunicorn's TLS (its certfile and
keyfile settings, unused here: TLS ends at the proxy or ingress) keeps uvicorn's
own accept.
"""

import asyncio
import errno
import os
import socket
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar, Final

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from app.api.errors import error_response
from app.api.guards import BODY_STALLED, SECURITY_HEADERS
from app.observability.context import UNMATCHED_ROUTE, request_id_var
from app.randomness import random_bytes

if TYPE_CHECKING:
    from app.observability.observer import Observer

logger = structlog.stdlib.get_logger("app.worker")

# Too many open files and the like: the listening socket stays readable, so accepting
# again at once would spin. Wait this long, then try again.
ACCEPT_RETRY_SECONDS = 0.1
# A connection that failed before it was accepted, or one a firewall rule refused:
# take the next one. Linux reports a new connection's network errors from accept(),
# and accept(2) asks to retry on them.
_TRANSIENT = {
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPERM",
        "ENETDOWN",
        "EPROTO",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
    )
    if hasattr(errno, name)
}


class OneByOneServer:
    """Serves ``sock`` as ``loop.create_server`` would, with what uvicorn's shutdown
    uses of the result (``close``, ``wait_closed``), accepting one connection each
    time the loop finds the socket readable."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
    ) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._serving = False
        self._starved = False  # out of file descriptors or memory at the last accept
        # The loop keeps only weak references to tasks: kept here until done.
        self._connecting: set[asyncio.Task[None]] = set()
        sock.setblocking(False)
        self._listen()

    def _listen(self) -> None:
        self._serving = True
        self._loop.add_reader(self._sock.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            connection, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:
            if exc.errno in _TRANSIENT:
                return  # that connection is gone; the next, if any, makes it readable
            # The connections stay queued in the listening socket meanwhile.
            if not self._starved:
                logger.warning(
                    "connections not accepted",
                    error=str(exc),
                    retry_seconds=ACCEPT_RETRY_SECONDS,
                )
                self._starved = True
            self._loop.remove_reader(self._sock.fileno())
            self._loop.call_later(ACCEPT_RETRY_SECONDS, self._resume)
            return
        if self._starved:
            logger.info("connections accepted again")
            self._starved = False
        connection.setblocking(False)
        task = self._loop.create_task(self._set_up(connection))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        # Let a worker that woke with this one take the next connection.
        os.sched_yield()

    async def _set_up(self, connection: socket.socket) -> None:
        try:
            _, protocol = await self._loop.connect_accepted_socket(
                self._protocol_factory, connection
            )
        except Exception as exc:  # the client's problem (a reset, ...): say so, go on
            connection.close()
            logger.warning("connection not set up", error=repr(exc))
            return
        if not self._serving:
            # Accepted just before shutdown began, after uvicorn told its connections
            # to finish: tell this one too, or it would hold the worker up to KEEP_ALIVE.
            shutdown = getattr(protocol, "shutdown", None)
            if shutdown is not None:
                shutdown()

    def _resume(self) -> None:
        if self._serving:
            self._listen()

    def close(self) -> None:
        """Stop accepting; the connections already open are uvicorn's to close."""
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())

    async def wait_closed(self) -> None:
        """uvicorn has waited for its connections by the time it calls this."""


# A request's line and headers: what a proxy accepts (nginx: 4 buffers of 8 KiB) and
# room for large cookies or tokens, with a margin.
MAX_HEAD_BYTES: Final = 64 * 1024


KNOWN_METHODS: Final = frozenset(
    {b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT"}
)
"""The methods a refused request's metrics may name; any other counts as ``-``."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the bounds on a request's head it lacks.

    httptools sets no limit on the size of a request's headers, and gathers a long
    header by copying it again for every piece that arrives: one request with a
    200 MB header, sent before any key is checked, kept its worker busy until
    gunicorn killed it (80 MB took 9 s). Nor does uvicorn bound how long a request's
    headers may take, so connections that never finish one stay open and hold a file
    descriptor each. Here the line and headers of a request are refused with 431 once
    they pass ``MAX_HEAD_BYTES``, and with 408 when they are not complete
    ``header_timeout`` seconds after the connection opened or its last answer was
    sent (``HEADER_TIMEOUT``, which ``deploy/gunicorn_conf.py`` sets here); a
    connection that sent nothing by then is closed without an answer, as an idle one
    is after ``KEEP_ALIVE``. A body that sends nothing for as long gets 408 too, from
    the application (``_body_paused``): nothing else bounds how long it may stall. A
    request refused here is logged, and counted by ``observer`` as the application
    counts its own, under the route of unknown paths.

    Bytes are counted as they arrive, before httptools gathers them: the pieces of a
    head up to the blank line that ends it. The bytes of a pipelined request that
    arrive with the end of the one before it are not counted, so such a request may
    pass the bound by at most that one piece.
    """

    header_timeout: ClassVar[float] = 10.0
    observer: ClassVar["Observer | None"] = None
    """The application's observer; its lifespan sets it in each worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""  # the last bytes of the head so far: its end may span two pieces
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_began = 0.0  # when the head's first bytes arrived, on the loop's clock
        self._request_line = b""  # the head's first bytes, for the method of a refusal
        self._in_body = False  # the head is in, and the rest of the body is due
        self._body_bytes_at = 0.0  # when the body's last bytes arrived
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            if self._head_bytes == 0:
                self._head_began = self.loop.time()
                self._request_line = data[:16]
            end = (self._tail + data[:3]).find(b"\r\n\r\n")
            if end < 0:
                end = data.find(b"\r\n\r\n")
                end = len(data) if end < 0 else end + 4
            else:
                end = end + 4 - len(self._tail)
            self._head_bytes += end
            self._tail = data[-3:]
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(
                    431,
                    "request_header_too_large",
                    f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes",
                )
                return
        super().data_received(data)
        if self._in_body:
            # A body that came whole with its head never gets here: no timer to arm.
            self._body_bytes_at = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.header_timeout, self._body_paused)
            # Bytes came after all, before the request read that they had stopped.
            self.scope.get("state", {}).pop(BODY_STALLED, None)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        self._in_body = True

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()
        # What arrives next is the next request's head.
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn armed its keep-alive timer: no request is waiting or in flight.
        if self.timeout_keep_alive_task is not None:
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()
            return
        self._refuse(
            408,
            "request_timeout",
            f"the request line and headers did not arrive within {self.header_timeout:g} s "
            "(HEADER_TIMEOUT)",
        )

    def _body_paused(self) -> None:
        """The body's pause has lasted ``header_timeout`` since its last bytes: tell the
        request, whose body reader answers 408 (``BodyLimitMiddleware``), and wake it.
        The application answers, so the request is logged and counted once, as any
        other; the answer closes the connection."""
        self._body_timer = None
        if not self._in_body or self.transport.is_closing() or self.cycle is None:
            return
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            # uvicorn stopped reading until the application takes what it holds, or the
            # client waits for the application to ask for the body: the pause is the
            # server's, not the client's.
            self._body_bytes_at = self.loop.time()
        paused = self.loop.time() - self._body_bytes_at
        if paused < self.header_timeout:
            self._body_timer = self.loop.call_later(self.header_timeout - paused, self._body_paused)
            return
        if self.cycle.response_complete:
            # Answered without its body (a 404, a 413 from its Content-Length): no
            # request is left to answer 408, and nothing else would close it.
            self.transport.close()
            return
        self.scope.setdefault("state", {})[BODY_STALLED] = self.header_timeout
        self.cycle.message_event.set()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers a request httptools cannot parse (a malformed line, header or
        # body framing) in plain text; it gets the envelope here, as every other error.
        self._refuse(
            400,
            "invalid_http",
            "the request is not valid HTTP/1.1: its request line, a header or the "
            "framing of its body (Content-Length, Transfer-Encoding) is malformed",
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` in the error envelope, log and count it, and close the
        connection."""
        request_id = random_bytes(16).hex()
        token = request_id_var.set(request_id)
        try:
            response = error_response(status, code, message)
        finally:
            request_id_var.reset(token)
        headers = [
            *response.raw_headers,
            *SECURITY_HEADERS,
            (b"x-request-id", request_id.encode("ascii")),
            (b"connection", b"close"),
        ]
        head = b"".join(b"%s: %s\r\n" % header for header in headers)
        status_line = b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())
        self.transport.write(status_line + head + b"\r\n" + bytes(response.body))
        self.transport.close()
        # Read from the head's first bytes: httptools has not parsed the piece that
        # crossed the bound. Only known methods, so a label takes a bounded set of values.
        word = self._request_line.split(b" ", 1)[0]
        method = word.decode("ascii") if word in KNOWN_METHODS else "-"
        if self.observer is not None:
            self.observer.request_started()
            seconds = self.loop.time() - self._head_began
            self.observer.request_finished(method, UNMATCHED_ROUTE, status, seconds)
        logger.warning(
            "request refused",
            request_id=request_id,
            method=method,
            route=UNMATCHED_ROUTE,
            status=status,
            code=code,
            error=message,
        )


class BalancedUvicornWorker(UvicornWorker):  # type: ignore[misc]  # gunicorn ships no types
    """uvicorn's worker, serving its plain TCP sockets with ``OneByOneServer``, each
    connection with ``BoundedHttpToolsProtocol``."""

    CONFIG_KWARGS: Final = {**UvicornWorker.CONFIG_KWARGS, "http": BoundedHttpToolsProtocol}

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        create_server = loop.create_server

        async def one_by_one(
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            *args: Any,
            sock: socket.socket | None = None,
            ssl: Any = None,
            **kwargs: Any,
        ) -> Any:
            # Only gunicorn's listening sockets, without TLS (the service's TLS ends
            # at the proxy or ingress); anything else is the loop's own.
            if sock is None or ssl is not None or all(sock is not s for s in self.sockets):
                return await create_server(protocol_factory, *args, sock=sock, ssl=ssl, **kwargs)
            return OneByOneServer(loop, protocol_factory, sock)

        # uvicorn's Server.startup calls loop.create_server(factory, sock=..., ...)
        # for each socket gunicorn hands over (the same objects, but on Windows).
        loop.create_server = one_by_one  # type: ignore[method-assign]
        await super()._serve()
