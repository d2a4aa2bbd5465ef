"""Which changes of the OpenAPI document break clients, fed as edited copies of it.

The checks name what each change breaks and leave room for the paths and fields
this service gains later.
"""

import copy
from typing import Any

import pytest

from app.schemas import FEATURES
from app.settings import Settings
from tests.contract.compatibility import breaking_changes
from tests.contract.test_openapi import breaking_message, current_contract

FIRST = FEATURES[0].name


@pytest.fixture
def recorded(settings: Settings) -> dict[str, Any]:
    return current_contract(settings)


@pytest.fixture
def current(recorded: dict[str, Any]) -> dict[str, Any]:
    """A copy of the recorded document, for a test to change."""
    return copy.deepcopy(recorded)


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_an_unchanged_document_breaks_nothing(
    recorded: dict[str, Any], current: dict[str, Any]
) -> None:
    assert breaking_changes(recorded, current) == []


def test_new_wording_a_new_path_and_new_optional_fields_break_nothing(
    recorded: dict[str, Any], current: dict[str, Any]
) -> None:
    current["info"]["description"] = "Reworded."
    schema(current, "PredictionResponse")["properties"]["model_version"]["description"] = "New."
    current["paths"]["/v1/predict/explained"] = copy.deepcopy(current["paths"]["/v1/predict"])
    schema(current, "PredictionResponse")["properties"]["explanation"] = {"type": "string"}
    schema(current, "Features")["properties"]["extra_input"] = {"type": "number"}

    assert breaking_changes(recorded, current) == []


def test_a_removed_operation_breaks_its_clients(
    recorded: dict[str, Any], current: dict[str, Any]
) -> None:
    del current["paths"]["/v1/predict"]["post"]
    del current["paths"]["/v1/model"]

    assert sorted(breaking_changes(recorded, current)) == [
        "GET /v1/model was removed",
        "POST /v1/predict was removed",
    ]


def test_a_removed_response_field_breaks_its_readers(
    recorded: dict[str, Any], current: dict[str, Any]
) -> None:
    response = schema(current, "PredictionResponse")
    del response["properties"]["model_version"]
    response["required"].remove("model_version")

    assert (
        "POST /v1/predict: response 200 field `model_version` is no longer always answered "
        "(removed or optional)"
    ) in breaking_changes(recorded, current)


@pytest.mark.parametrize(
    ("retyped", "answered"),
    [({"type": "integer"}, "integer"), ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "null")],
)
def test_a_retyped_response_field_breaks_its_readers(
    recorded: dict[str, Any], current: dict[str, Any], retyped: dict[str, Any], answered: str
) -> None:
    schema(current, "PredictionResponse")["properties"]["model_version"] = retyped

    assert (
        f"POST /v1/predict: response 200 field `model_version` may now answer {answered}"
    ) in breaking_changes(recorded, current)


def test_a_new_required_request_field_breaks_every_request_sending_rows(
    recorded: dict[str, Any], current: dict[str, Any]
) -> None:
    features = schema(current, "Features")
    features["properties"]["extra_input"] = {"type": "number"}
    features["required"] = [*features.get("required", []), "extra_input"]

    assert {
        "POST /v1/predict: request field `extra_input` is now required",
        "POST /v1/predict/batch: request field `rows[].extra_input` is now required",
    } <= set(breaking_changes(recorded, current))


def test_a_removed_request_field_is_refused_as_unknown(
    recorded: dict[str, Any], current: dict[str, Any]
) -> None:
    features = schema(current, "Features")
    del features["properties"][FIRST]
    features["required"] = [name for name in features.get("required", []) if name != FIRST]

    assert f"POST /v1/predict: request field `{FIRST}` is no longer accepted" in (
        breaking_changes(recorded, current)
    )


def test_a_narrowed_request_enum_or_range_breaks_requests(
    recorded: dict[str, Any], current: dict[str, Any]
) -> None:
    schema(recorded, "Features")["properties"][FIRST] = {"enum": ["a", "b"], "maxLength": 8}
    schema(current, "Features")["properties"][FIRST] = {"enum": ["a"], "maxLength": 4}

    assert {
        f"POST /v1/predict: request field `{FIRST}` no longer accepts 'b', outside the enum ['a']",
        f"POST /v1/predict: request field `{FIRST}` maxLength changed from 8 to 4",
    } <= set(breaking_changes(recorded, current))


def test_a_response_value_outside_the_recorded_enum_breaks_its_readers(
    recorded: dict[str, Any], current: dict[str, Any]
) -> None:
    schema(recorded, "PredictionResponse")["properties"]["model_version"] = {"enum": ["1"]}
    schema(current, "PredictionResponse")["properties"]["model_version"] = {"enum": ["1", "2"]}

    assert (
        "POST /v1/predict: response 200 field `model_version` may now answer '2', "
        "outside the enum ['1']"
    ) in breaking_changes(recorded, current)


def test_the_failure_says_what_broke_and_how_to_add_v2_instead() -> None:
    message = breaking_message(["POST /v1/predict was removed"])

    assert "  - POST /v1/predict was removed\n" in message
    assert 'prefix "/v2"' in message
    assert "README.md" in message
