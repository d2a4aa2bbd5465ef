"""The API contract: the OpenAPI document must equal the committed snapshot.

A difference means the public API changed. A change that breaks clients of the
snapshot (tests/contract/compatibility.py says which) fails naming what broke:
keep /v1 as it is and serve the change under /v2 beside it. Any other change is
recorded with `make contract-update`: commit tests/contract/openapi.json with it.
"""

import json
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings
from tests.contract.compatibility import breaking_changes

SNAPSHOT = Path(__file__).with_name("openapi.json")


def breaking_message(problems: list[str]) -> str:
    listed = "".join(f"  - {problem}\n" for problem in problems)
    return (
        "the public API changed in a way that breaks the clients of "
        f"tests/contract/openapi.json:\n{listed}"
        "Leave /v1 as it is and serve the new shape under /v2 beside it: a router with\n"
        'prefix "/v2" in app/api/, its own request and response models, then\n'
        '`make contract-update` to record the added paths (README.md, "Add a /v2 beside /v1").\n'
        "Only if no client uses this API yet, record the change as it is with\n"
        "`make contract-update`."
    )


def current_contract(settings: Settings) -> dict[str, object]:
    """The OpenAPI document as served: JSON, so tuples and lists compare alike."""
    document: dict[str, object] = json.loads(json.dumps(create_app(settings).openapi()))
    return document


def test_openapi_matches_the_committed_contract(settings: Settings) -> None:
    if not SNAPSHOT.is_file():
        pytest.fail(f"{SNAPSHOT} is missing: run `make contract-update` and commit it")
    recorded = json.loads(SNAPSHOT.read_text(encoding="utf-8"))

    current = current_contract(settings)

    if problems := breaking_changes(recorded, current):
        pytest.fail(breaking_message(problems), pytrace=False)
    assert current == recorded, (
        "the public API differs from tests/contract/openapi.json in a way its clients "
        "can follow; if the change is intended, run `make contract-update` and commit the file"
    )


def test_routes_that_make_no_model_call_do_not_declare_its_failures(settings: Settings) -> None:
    """A refused answer (500 `prediction_not_finite`, `prediction_out_of_bounds`) and no
    answer in time (504) come from a model call: the reports, feedback and /v1/model
    never make one, and do not promise them. A route of your own that calls the model
    declares them with BODY_ERROR_RESPONSES."""
    paths = create_app(settings).openapi()["paths"]
    for path in ("/v1/predict", "/v1/predict/batch"):
        responses = paths[path]["post"]["responses"]
        assert {"500", "503", "504"} <= set(responses), path
        assert "prediction_not_finite" in responses["500"]["description"], path
    making_none = [
        ("/v1/model", "get"),
        ("/v1/feedback", "post"),
        ("/v1/drift", "get"),
        ("/v1/quality", "get"),
        ("/health", "get"),
        ("/ready", "get"),
    ]
    for path, method in making_none:
        responses = paths[path][method]["responses"]
        assert "504" not in responses, (path, method)
        assert "prediction_" not in responses["500"]["description"], (path, method)
    assert "422" not in paths["/v1/model"]["get"]["responses"]


def test_every_route_declares_what_the_server_answers_before_it(settings: Settings) -> None:
    """Malformed HTTP (400), a head too slow (408) or too large (431), a body too large
    (413) and an unexpected failure (500) can meet any request."""
    for path, operations in create_app(settings).openapi()["paths"].items():
        for method, operation in operations.items():
            assert {"400", "408", "413", "431", "500"} <= set(operation["responses"]), (
                path,
                method,
            )
