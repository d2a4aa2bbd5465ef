"""The production server's bounds on a request's line and headers, and on the pauses
of its body, over raw sockets: past any the request gets the error envelope and its
connection is closed, and the worker goes on serving. The server gets them only after the API key's check
would, so without them one request with an endless header could hold a worker."""

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.schemas import FEATURE_EXAMPLE
from app.worker import MAX_HEAD_BYTES
from tests.clients import CALLER_HEADERS, http_client
from tests.server import serving

HEADER_TIMEOUT = 2
# uvloop's timers run on libuv's clock, read once a loop iteration in whole
# milliseconds: one may fire up to a millisecond before its time by a finer clock.
TIMER_GRAIN = 0.002
PIECE = 4096


@pytest.fixture(scope="module")
def server(model_dir: Path, model_version: str) -> Iterator[str]:
    overrides = {"HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    with serving(model_dir, model_version, env_overrides=overrides) as base_url:
        yield base_url


def connect(server: str) -> socket.socket:
    address = urlsplit(server)
    assert address.hostname is not None
    assert address.port is not None
    return socket.create_connection((address.hostname, address.port), timeout=HEADER_TIMEOUT + 10)


def send_in_pieces(connection: socket.socket, data: bytes) -> None:
    """Send ``data`` a piece at a time, so the server reads it in many pieces."""
    for start in range(0, len(data), PIECE):
        connection.sendall(data[start : start + PIECE])
        time.sleep(0.002)


def read_until_closed(connection: socket.socket) -> bytes:
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


def read_answer(connection: socket.socket) -> bytes:
    """One answer on a connection kept open: its head, then its Content-Length of body."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":", 1)[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def error_of(answer: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The status, headers and error envelope of one raw answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)["error"]


def head_of(size: int) -> bytes:
    """A GET of /health whose line and headers take ``size`` bytes."""
    start = b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Pad: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def assert_still_ready(server: str) -> None:
    with http_client(server) as client:
        assert client.get("/ready").status_code == 200


def test_headers_within_the_bound_are_answered_whether_sent_whole_or_in_pieces(
    server: str,
) -> None:
    request = head_of(MAX_HEAD_BYTES)
    with connect(server) as whole:
        whole.sendall(request)
        whole_answer = read_until_closed(whole)
    with connect(server) as in_pieces:
        send_in_pieces(in_pieces, request)
        pieces_answer = read_until_closed(in_pieces)

    assert whole_answer.startswith(b"HTTP/1.1 200 "), whole_answer[:200]
    assert pieces_answer.startswith(b"HTTP/1.1 200 "), pieces_answer[:200]


def test_headers_past_the_bound_get_431_and_the_connection_is_closed(server: str) -> None:
    with connect(server) as connection:
        send_in_pieces(connection, head_of(MAX_HEAD_BYTES + 2 * PIECE)[: MAX_HEAD_BYTES + PIECE])
        answer = read_until_closed(connection)
    status, headers, error = error_of(answer)

    assert status == 431
    assert error["code"] == "request_header_too_large"
    assert str(MAX_HEAD_BYTES) in error["message"]
    assert error["request_id"] == headers["x-request-id"]
    assert headers["connection"] == "close"
    assert_still_ready(server)


@pytest.mark.parametrize(
    "request_head",
    [
        b"FOO /health HTTP/1.1\r\nHost: test\r\n\r\n",
        b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: test\r\nNo colon here\r\n\r\n",
    ],
    ids=["unknown-method", "content-length-not-a-number", "header-without-colon"],
)
def test_a_request_that_is_not_valid_http_gets_400_in_the_envelope(
    server: str, request_head: bytes
) -> None:
    with connect(server) as connection:
        connection.sendall(request_head)
        answer = read_until_closed(connection)
    status, headers, error = error_of(answer)

    assert status == 400
    assert headers["content-type"] == "application/json"
    assert error["code"] == "invalid_http"
    assert "not valid HTTP/1.1" in error["message"]
    assert error["request_id"] == headers["x-request-id"]
    assert headers["connection"] == "close"
    assert_still_ready(server)


def test_headers_trickling_in_get_408_once_header_timeout_has_passed(server: str) -> None:
    """A byte at a time, well within KEEP_ALIVE each: the bound is on the whole head."""
    started = time.monotonic()
    with connect(server) as connection:
        for byte in b"POST /v1/predict HTTP/1.1\r\nHost: test\r\n":
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                break  # closed by the server: its answer waits to be read
            time.sleep(0.25)
        answer = read_until_closed(connection)
    waited = time.monotonic() - started
    status, _, error = error_of(answer)

    assert status == 408
    assert error["code"] == "request_timeout"
    assert "HEADER_TIMEOUT" in error["message"]
    assert HEADER_TIMEOUT - TIMER_GRAIN <= waited < HEADER_TIMEOUT + 3
    assert_still_ready(server)


def prediction_head(body_length: int) -> bytes:
    """The line and headers of a prediction whose body is ``body_length`` bytes."""
    headers = "".join(f"{name}: {value}\r\n" for name, value in CALLER_HEADERS.items())
    return (
        f"POST /v1/predict HTTP/1.1\r\nHost: test\r\n{headers}"
        f"Content-Type: application/json\r\nContent-Length: {body_length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("sent", [0, 10], ids=["no-body", "part-of-the-body"])
def test_a_body_that_stops_arriving_gets_408_once_header_timeout_has_passed(
    server: str, sent: int
) -> None:
    body = json.dumps(FEATURE_EXAMPLE).encode()
    started = time.monotonic()
    with connect(server) as connection:
        connection.sendall(prediction_head(len(body)) + body[:sent])
        answer = read_until_closed(connection)
    waited = time.monotonic() - started
    status, headers, error = error_of(answer)

    assert status == 408
    assert error["code"] == "request_timeout"
    assert "request body stopped arriving" in error["message"]
    assert "HEADER_TIMEOUT" in error["message"]
    assert error["request_id"] == headers["x-request-id"]
    assert headers["connection"] == "close"
    assert HEADER_TIMEOUT - TIMER_GRAIN <= waited < HEADER_TIMEOUT + 3
    assert_still_ready(server)


def test_a_body_left_unsent_after_its_answer_has_its_connection_closed(server: str) -> None:
    """Answered without its body (no route at that path): the client sends a little more
    of it and stops, and the connection is closed once HEADER_TIMEOUT has passed."""
    started = time.monotonic()
    with connect(server) as connection:
        connection.sendall(
            b"POST /no-such-route HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        answer = read_answer(connection)
        connection.sendall(b'"more')
        rest = read_until_closed(connection)
    waited = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 404 "), answer[:300]
    assert rest == b""
    assert waited < HEADER_TIMEOUT + 3
    assert_still_ready(server)


def test_a_body_whose_every_pause_is_within_header_timeout_is_answered(server: str) -> None:
    """Three pauses of 0.6 HEADER_TIMEOUT each: the bound is on a pause, not the whole."""
    body = json.dumps(FEATURE_EXAMPLE).encode()
    third = len(body) // 3 + 1
    with connect(server) as connection:
        connection.sendall(prediction_head(len(body)))
        for start in range(0, len(body), third):
            time.sleep(HEADER_TIMEOUT * 0.6)
            connection.sendall(body[start : start + third])
        answer = read_answer(connection)

    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["prediction_id"]


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(server: str) -> None:
    started = time.monotonic()
    with connect(server) as connection:
        answer = read_until_closed(connection)

    assert answer == b""
    assert HEADER_TIMEOUT - TIMER_GRAIN <= time.monotonic() - started < HEADER_TIMEOUT + 3


def test_each_request_on_a_kept_alive_connection_gets_header_timeout_afresh(
    server: str,
) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    with connect(server) as connection:
        answers = []
        for _ in range(3):
            connection.sendall(request)
            answers.append(read_answer(connection))
            time.sleep(HEADER_TIMEOUT * 0.6)

    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers), answers
