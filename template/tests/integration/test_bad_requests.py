"""Bad requests sent over HTTP to the production server: each is refused with a 4xx
error envelope naming the problem, and the server stays ready afterwards."""

import gzip
import json
import socket
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pytest

from app.api.arrow import ARROW_STREAM
from app.api.errors import MAX_ERROR_DETAILS
from app.main import create_app
from app.schemas import CLASS_LABELS, FEATURE_EXAMPLE, FEATURES
from app.settings import Settings
from tests.clients import ARROW_HEADERS, CALLER_HEADERS, app_client, arrow_stream, http_client
from tests.server import serving

JSON = {"content-type": "application/json"}
MAX_BODY_BYTES = Settings.model_fields["max_body_bytes"].default
MAX_BATCH_SIZE = Settings.model_fields["max_batch_size"].default
FIRST = FEATURES[0]
REQUIRED = next((feature for feature in FEATURES if not feature.optional), FIRST)
NUMBER = next((feature for feature in FEATURES if feature.type in ("float", "integer")), None)
OUTCOME = {"label": CLASS_LABELS[0]} if CLASS_LABELS else {"value": 1.0}
UNKNOWN_ID = "0" * 32
# No feature is named like these.
UNKNOWN_FIELDS = {f"unknown_{i}": 1 for i in range(20_000)}
ROW_UNKNOWN_FIELDS = dict(list(UNKNOWN_FIELDS.items())[:20])
# The caller's headers, for requests written on a raw socket.
CALLER_LINES = "".join(f"{name}: {value}\r\n" for name, value in CALLER_HEADERS.items()).encode()


@dataclass(frozen=True)
class BadRequest:
    """A request, the status and error code it must get, and what its message must say."""

    name: str
    path: str
    body: bytes
    status: int
    code: str
    says: str
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    field: str | None = None


def bad_requests() -> list[BadRequest]:
    example = json.dumps(FEATURE_EXAMPLE)
    nested = "[" * 100_000 + "]" * 100_000
    cases = [
        BadRequest(
            "invalid JSON", "/v1/predict", b'{"a": 1', 400, "invalid_json", "not valid JSON"
        ),
        BadRequest(
            "wrong content type",
            "/v1/predict",
            example.encode(),
            415,
            "unsupported_media_type",
            "Content-Type: application/json",
            headers={"content-type": "text/plain"},
        ),
        BadRequest(
            "compressed body",
            "/v1/predict",
            gzip.compress(example.encode()),
            415,
            "unsupported_media_type",
            "Content-Encoding: gzip",
            headers={**JSON, "content-encoding": "gzip"},
        ),
        BadRequest("empty body", "/v1/predict", b"", 422, "validation_failed", "body is required"),
        BadRequest(
            "no body and no content type",
            "/v1/predict",
            b"",
            415,
            "unsupported_media_type",
            "Content-Type: application/json",
            headers={},
        ),
        BadRequest(
            "body that is not UTF-8",
            "/v1/predict",
            b'{"a": "\xff\xfe"}',
            400,
            "invalid_json",
            "not UTF-8 text",
        ),
        BadRequest(
            "deeply nested JSON",
            "/v1/predict/batch",
            ('{"rows": ' + nested + "}").encode(),
            400,
            "invalid_json",
            "nests arrays or objects too deeply",
        ),
        BadRequest(
            "NaN literal",
            "/v1/predict",
            json.dumps({**FEATURE_EXAMPLE, FIRST.name: "NaN"}).replace('"NaN"', "NaN").encode(),
            422,
            "validation_failed",
            FIRST.name,
            field=FIRST.name,
        ),
        BadRequest(
            "Infinity literal",
            "/v1/predict",
            json.dumps({**FEATURE_EXAMPLE, FIRST.name: "Inf"})
            .replace('"Inf"', "Infinity")
            .encode(),
            422,
            "validation_failed",
            FIRST.name,
            field=FIRST.name,
        ),
        BadRequest(
            "unknown field",
            "/v1/predict",
            json.dumps({**FEATURE_EXAMPLE, "unknown_feature": 1}).encode(),
            422,
            "validation_failed",
            "unknown_feature",
            field="unknown_feature",
        ),
        BadRequest(
            "missing required field",
            "/v1/predict",
            json.dumps({k: v for k, v in FEATURE_EXAMPLE.items() if k != REQUIRED.name}).encode(),
            422,
            "validation_failed",
            REQUIRED.name,
            field=REQUIRED.name,
        ),
        BadRequest(
            "batch over the maximum",
            "/v1/predict/batch",
            json.dumps({"rows": [FEATURE_EXAMPLE] * (MAX_BATCH_SIZE + 1)}).encode(),
            413,
            "batch_too_large",
            str(MAX_BATCH_SIZE),
        ),
        BadRequest(
            "body over the size limit",
            "/v1/predict/batch",
            b'{"rows": [' + b" " * MAX_BODY_BYTES + b"]}",
            413,
            "content_too_large",
            "APP_MAX_BODY_BYTES",
        ),
        BadRequest(
            "huge X-Request-ID",
            "/v1/predict",
            example.encode(),
            431,
            "request_header_too_large",
            "X-Request-ID",
            headers={**JSON, "x-request-id": "x" * 8000},
            field="X-Request-ID",
        ),
        BadRequest(
            "Arrow body that is not a stream",
            "/v1/predict/batch",
            example.encode(),
            400,
            "invalid_arrow",
            "not an Arrow IPC stream",
            headers=dict(ARROW_HEADERS),
        ),
        BadRequest(
            "compressed Arrow stream",
            "/v1/predict/batch",
            arrow_stream(pa.Table.from_pylist([FEATURE_EXAMPLE]), compression="zstd"),
            400,
            "invalid_arrow",
            "compressed",
            headers=dict(ARROW_HEADERS),
        ),
        BadRequest(
            "Arrow batch over the maximum",
            "/v1/predict/batch",
            arrow_stream(pa.Table.from_pylist([FEATURE_EXAMPLE] * (MAX_BATCH_SIZE + 1))),
            413,
            "batch_too_large",
            str(MAX_BATCH_SIZE),
            headers=dict(ARROW_HEADERS),
        ),
        BadRequest(
            "Arrow batch with an unknown column",
            "/v1/predict/batch",
            arrow_stream(pa.Table.from_pylist([{**FEATURE_EXAMPLE, "unknown_feature": 1}])),
            422,
            "validation_failed",
            "unknown_feature",
            headers=dict(ARROW_HEADERS),
            field="rows.unknown_feature",
        ),
        BadRequest(
            "batch in neither JSON nor Arrow",
            "/v1/predict/batch",
            b"a,b\n1,2\n",
            415,
            "unsupported_media_type",
            ARROW_STREAM,
            headers={"content-type": "text/csv"},
        ),
        BadRequest(
            "feedback on a prediction that does not exist",
            "/v1/feedback",
            json.dumps({"prediction_id": UNKNOWN_ID, **OUTCOME}).encode(),
            404,
            "prediction_not_found",
            UNKNOWN_ID,
            field="prediction_id",
        ),
    ]
    if NUMBER is not None:
        cases.append(
            BadRequest(
                "number too large for any measurement",
                "/v1/predict",
                json.dumps({**FEATURE_EXAMPLE, NUMBER.name: 1.5e308}).encode(),
                422,
                "validation_failed",
                NUMBER.name,
                field=NUMBER.name,
            )
        )
        cases.append(
            BadRequest(
                "number as a string",
                "/v1/predict",
                json.dumps(
                    {**FEATURE_EXAMPLE, NUMBER.name: str(FEATURE_EXAMPLE[NUMBER.name])}
                ).encode(),
                422,
                "validation_failed",
                NUMBER.name,
                field=NUMBER.name,
            )
        )
    return cases


BAD_REQUESTS = bad_requests()


@pytest.fixture(scope="module")
def server(model_dir: Path, model_version: str) -> Iterator[str]:
    with serving(model_dir, model_version) as base_url:
        yield base_url


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[bad.name for bad in BAD_REQUESTS])
def test_bad_request_gets_a_4xx_envelope_naming_the_problem(server: str, bad: BadRequest) -> None:
    with http_client(server, timeout=30) as client:
        response = client.post(bad.path, content=bad.body, headers=bad.headers)
        ready = client.get("/ready")

    assert response.status_code == bad.status, response.text
    error = response.json()["error"]
    assert error["code"] == bad.code
    assert bad.says in error["message"] + json.dumps(error["details"])
    assert error["request_id"] == response.headers["x-request-id"]
    if bad.field is not None:
        assert bad.field in [detail["field"] for detail in error["details"]]
    assert ready.status_code == 200


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[bad.name for bad in BAD_REQUESTS])
def test_bad_request_status_is_documented_on_its_operation(
    settings: Settings, bad: BadRequest
) -> None:
    """Clients generated from the OpenAPI document know every refusal: the guards'
    413 and 431 and the body's 400 and 415 as much as the routes' own."""
    operation = create_app(settings).openapi()["paths"][bad.path]["post"]

    assert str(bad.status) in operation["responses"]


@pytest.mark.parametrize("report", ["/v1/drift", "/v1/quality"])
def test_a_report_window_outside_the_calendar_is_refused_naming_the_field(
    server: str, report: str
) -> None:
    with http_client(server) as client:
        response = client.get(report, params={"until": "0001-01-01T05:00:00Z", "hours": 24})
        ready = client.get("/ready")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["field"] == "query.until"
    assert "years 1 to 9999" in error["message"]
    assert ready.status_code == 200


@pytest.mark.parametrize("report", ["/v1/drift", "/v1/quality"])
def test_a_report_window_that_ends_before_it_starts_is_refused_naming_the_field(
    server: str, report: str
) -> None:
    window = {"since": "2026-01-08T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    with http_client(server) as client:
        response = client.get(report, params=window)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["field"] == "query.since"
    assert "give a since before until" in error["message"]


@pytest.mark.parametrize("report", ["/v1/drift", "/v1/quality"])
def test_hours_too_few_to_make_a_window_are_refused_naming_hours(server: str, report: str) -> None:
    with http_client(server) as client:
        response = client.get(report, params={"hours": "1e-300"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["field"] == "query.hours"
    assert "shorter than a microsecond" in error["message"]


@pytest.mark.parametrize(
    ("path", "body", "invalid"),
    [
        ("/v1/predict", {**FEATURE_EXAMPLE, **UNKNOWN_FIELDS}, len(UNKNOWN_FIELDS)),
        (
            "/v1/predict/batch",
            {"rows": [{**FEATURE_EXAMPLE, **ROW_UNKNOWN_FIELDS}] * MAX_BATCH_SIZE},
            len(ROW_UNKNOWN_FIELDS) * MAX_BATCH_SIZE,
        ),
    ],
    ids=["row with 20,000 unknown fields", "full batch with 20 in each row"],
)
def test_many_invalid_fields_get_a_short_answer_listing_the_first_and_counting_all(
    server: str, path: str, body: dict[str, object], invalid: int
) -> None:
    """An answer of the same size whatever the number of errors: listed whole, the
    errors of a body under the size limit made an answer of megabytes."""
    with http_client(server, timeout=30) as client:
        response = client.post(path, json=body)
        ready = client.get("/ready")

    assert response.status_code == 422, response.text[:1000]
    assert len(response.content) < 16 * 1024
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert len(error["details"]) == MAX_ERROR_DETAILS
    assert error["message"].startswith(f"{invalid} fields are unknown, first ")
    assert error["message"].endswith(f"details lists the first {MAX_ERROR_DETAILS}")
    assert ready.status_code == 200


UNKNOWN_KEYS = {f"u{i:x}": 0 for i in range(200_000)}
FEEDBACK_BODY = {"prediction_id": "0" * 32, **OUTCOME}


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v1/predict", {**FEATURE_EXAMPLE, **UNKNOWN_KEYS}),
        ("/v1/predict/batch", {"rows": [{**FEATURE_EXAMPLE, **UNKNOWN_KEYS}]}),
        ("/v1/predict/batch", {"rows": [FEATURE_EXAMPLE], **UNKNOWN_KEYS}),
        ("/v1/feedback", {**FEEDBACK_BODY, **UNKNOWN_KEYS}),
    ],
    ids=["a row", "a batch's row", "beside a batch's rows", "feedback"],
)
def test_many_unknown_fields_are_refused_without_an_error_object_each(
    settings: Settings, path: str, payload: dict[str, object]
) -> None:
    """200,000 unknown keys, a 2.6 MB body, within the body limit: pydantic made an error
    of each, with its value, and FastAPI a dict of each (420,000 took 480 MB)."""
    body = json.dumps(payload).encode()
    with app_client(create_app(settings)) as client:
        tracemalloc.start()
        try:
            response = client.post(path, content=body, headers={"content-type": "application/json"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert response.status_code == 422, response.text[:1000]
    error = response.json()["error"]
    assert error["message"].startswith("200000 fields are unknown, first ")
    assert len(error["details"]) == MAX_ERROR_DETAILS
    # About 56 MiB: the body and its parsed dict; 194 when every key was validated.
    assert peak < 96 * 2**20, f"{peak / 2**20:.0f} MiB to refuse it"


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server: str) -> None:
    """The server answers 413 after the headers alone: it never waits for the 1 GB
    the request announces."""
    address = urlsplit(server)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(
            b"POST /v1/predict/batch HTTP/1.1\r\nHost: test\r\n"
            + CALLER_LINES
            + b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
        )
        head = read_response_head(connection)

    assert head.startswith(b"HTTP/1.1 413 "), head


def test_a_streamed_body_is_refused_once_it_crosses_the_limit(server: str) -> None:
    """A chunked body has no length to check: it is counted as it arrives, and the
    server answers 413 while the client is still sending."""
    address = urlsplit(server)
    chunk = b" " * (256 * 1024)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(
            b"POST /v1/predict/batch HTTP/1.1\r\nHost: test\r\n"
            + CALLER_LINES
            + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        # One chunk more than the limit, and never the last, empty chunk.
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        head = read_response_head(connection)

    assert head.startswith(b"HTTP/1.1 413 "), head


def read_response_head(connection: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        data = connection.recv(65536)
        if not data:
            break
        received += data
    return received


def test_a_compressed_body_is_refused_naming_the_coding_read_and_identity_is_accepted(
    server: str,
) -> None:
    body = json.dumps(FEATURE_EXAMPLE).encode()
    with http_client(server, timeout=30) as client:
        compressed = client.post(
            "/v1/predict",
            content=gzip.compress(body),
            headers={**JSON, "content-encoding": "gzip"},
        )
        plain = client.post(
            "/v1/predict", content=body, headers={**JSON, "content-encoding": "identity"}
        )

    assert compressed.status_code == 415, compressed.text
    assert compressed.headers["accept-encoding"] == "identity"
    assert plain.status_code == 200, plain.text
