"""Property-based fuzzing of the production server against its own OpenAPI document.

Schemathesis turns each operation of the document into requests, valid and invalid,
and sends them over HTTP to the server `deploy/entrypoint.sh` starts: no answer may
be a server error, or have a status, content type or body the document does not
declare for it. Routes the document leaves out, such as /docs and /redoc, have
nothing to generate requests from, and are not fuzzed.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pytest
import schemathesis
from hypothesis import settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.arrow import ARROW_STREAM
from app.main import create_app
from app.schemas import CLASS_LABELS, FEATURE_EXAMPLE
from app.settings import Settings
from tests.clients import CALLER_HEADERS, arrow_stream, http_client
from tests.server import serving

CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
OUTCOME = {"label": CLASS_LABELS[0]} if CLASS_LABELS else {"value": 1.0}
PREDICTION_ID: Final = re.compile(r"[0-9a-f]{32}")


def _flipped(stream: bytes, position: int, mask: int) -> bytes:
    return stream[:position] + bytes([stream[position] ^ mask]) + stream[position + 1 :]


def _arrow_bodies() -> st.SearchStrategy[bytes]:
    """Bodies for the batch route's Arrow stream: a valid one, random bytes, and the
    valid one cut short or with a byte changed."""
    valid = arrow_stream(pa.Table.from_pylist([FEATURE_EXAMPLE] * 3))
    return st.one_of(
        st.just(valid),
        st.binary(max_size=256),
        st.integers(0, len(valid) - 1).map(lambda cut: valid[:cut]),
        st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
            lambda change: _flipped(valid, *change)
        ),
    )


# Schemathesis generates no body for a media type it does not know.
schemathesis.openapi.media_type(ARROW_STREAM, _arrow_bodies())

# The document the server serves, from the application without starting it: pytest
# makes one test per operation while it collects, before any fixture runs.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@pytest.fixture(scope="module")
def server(model_dir: Path, model_version: str) -> Iterator[str]:
    with serving(model_dir, model_version) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def logged_prediction(server: str) -> str:
    """The id of a prediction the server has logged, with feedback on it: the reports
    read a log that holds something, and feedback can name a prediction that exists."""
    with http_client(server, timeout=30) as client:
        prediction = client.post("/v1/predict", json=FEATURE_EXAMPLE)
        prediction_id: str = prediction.json()["prediction_id"]
        feedback = client.post("/v1/feedback", json={"prediction_id": prediction_id, **OUTCOME})
    assert feedback.status_code == 201, feedback.text
    return prediction_id


@schema.parametrize()
# 200 generated cases per operation that has as many to draw, the same ones on every
# run; no deadline, as the time a request takes over HTTP is not what is tested.
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
def test_generated_requests_get_only_documented_answers(
    case: Case[Any], server: str, logged_prediction: str
) -> None:
    body = case.body
    if isinstance(body, dict) and PREDICTION_ID.fullmatch(str(body.get("prediction_id"))):
        # The server answers an id it has not logged only after waiting a second for a
        # write still in flight (WRITE_WAIT in app/api/feedback.py); the logged one is
        # answered at once, and reaches the 200 and 409 answers as well.
        body["prediction_id"] = logged_prediction
    case.call_and_validate(base_url=server, headers=CALLER_HEADERS, checks=CHECKS)
