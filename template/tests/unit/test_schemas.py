import pytest
from pydantic import ValidationError

from app.schemas import CLASS_LABELS, FEATURE_EXAMPLE, FEATURE_TYPES, Features

PYTHON_TYPES = {"float": float, "integer": int}


def test_feature_types_list_every_request_field_in_order() -> None:
    assert list(FEATURE_TYPES) == list(Features.model_fields)
    for name, field in Features.model_fields.items():
        assert field.annotation is PYTHON_TYPES[FEATURE_TYPES[name]]


def test_example_row_is_a_valid_request() -> None:
    assert Features.model_validate(FEATURE_EXAMPLE).model_dump() == FEATURE_EXAMPLE


def test_every_field_documents_itself_with_an_example() -> None:
    properties = Features.model_json_schema()["properties"]

    for name, schema in properties.items():
        assert schema["description"], name
        assert schema["examples"] == [FEATURE_EXAMPLE[name]]


def test_class_labels_are_distinct() -> None:
    assert len(set(CLASS_LABELS)) == len(CLASS_LABELS) >= 2


@pytest.mark.parametrize("value", ["5", True, None, float("nan"), float("inf")])
@pytest.mark.parametrize("name", list(FEATURE_TYPES))
def test_a_feature_accepts_only_a_finite_number(name: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Features.model_validate({**FEATURE_EXAMPLE, name: value})
