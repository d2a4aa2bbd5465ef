"""HEAD over HTTP to the production server, as uptime monitors probe: wherever GET
is answered, HEAD gets the same status and headers, and not one byte of body."""

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.clients import CALLER_HEADERS, http_client
from tests.server import serving


@pytest.fixture(scope="module")
def server(model_dir: Path, model_version: str) -> Iterator[str]:
    with serving(model_dir, model_version) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def get_paths(server: str) -> list[str]:
    """The paths the OpenAPI document describes a GET of: probes, model, reports, ..."""
    with http_client(server) as client:
        paths = client.get("/openapi.json").json()["paths"]
    return [path for path, operations in paths.items() if "get" in operations]


def test_head_gets_the_status_and_headers_of_get_and_no_body(
    server: str, get_paths: list[str]
) -> None:
    assert {"/health", "/ready", "/v1/model"} <= set(get_paths)
    for path in get_paths:
        # On one connection: were any byte of body sent after the HEAD's headers, the
        # GET's answer would not start right after them.
        head, get = exchange(server, f"HEAD {path}", f"GET {path}")
        head_status, head_headers, head_body = head
        get_status, get_headers, get_body = get
        get_headers.pop("connection")  # "close": the GET came last on the connection

        assert head_status == get_status, path
        assert head_body == b"", path
        assert head_headers.keys() == get_headers.keys(), path
        for name in head_headers.keys() - {"date", "x-request-id", "content-length"}:
            assert head_headers[name] == get_headers[name], (path, name)
        # JSON answers stay the same between the two; counters in plain text move.
        if get_headers["content-type"].startswith("application/json"):
            assert head_headers["content-length"] == str(len(get_body)), path


def test_head_on_a_route_without_get_is_refused_with_the_allowed_method(server: str) -> None:
    (status, headers, body), (ready, _, _) = exchange(server, "HEAD /v1/predict", "GET /ready")

    assert status == 405
    assert headers["allow"] == "POST"
    assert body == b""
    assert ready == 200


Answer = tuple[int, dict[str, str], bytes]


def exchange(server: str, first: str, second: str) -> tuple[Answer, Answer]:
    """Two requests (``"METHOD /path"``) on one connection, and their answers, read
    from the bytes the server sent: each answer's body is what comes before the next."""
    address = urlsplit(server)
    extra = "".join(f"{name}: {value}\r\n" for name, value in CALLER_HEADERS.items())
    requests = (
        f"{first} HTTP/1.1\r\nHost: test\r\n{extra}\r\n"
        f"{second} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(requests.encode("ascii"))
        received = b""
        while data := connection.recv(65536):
            received += data
    head_one, rest = received.split(b"\r\n\r\n", 1)
    body_one, separator, rest = rest.partition(b"HTTP/1.1 ")
    head_two, body_two = (separator + rest).split(b"\r\n\r\n", 1)
    return parse(head_one, body_one), parse(head_two, body_two)


def parse(head: bytes, body: bytes) -> Answer:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return int(status_line.split(" ")[1]), headers, body
