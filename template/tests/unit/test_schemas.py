import types
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import ValidationError

from app.schemas import FEATURE_EXAMPLE, FEATURES, Features

PYTHON_TYPES = {"float": float, "integer": int, "boolean": bool}


def test_features_list_every_request_field_in_order() -> None:
    assert [feature.name for feature in FEATURES] == list(Features.model_fields)


@pytest.mark.parametrize("feature", FEATURES, ids=[f.name for f in FEATURES])
def test_each_request_field_has_the_type_of_its_feature(feature: Any) -> None:
    annotation = Features.model_fields[feature.name].annotation
    kind = annotation
    # `float | None` is a types.UnionType; `Literal[...] | None` a typing.Union.
    if get_origin(annotation) in (types.UnionType, Union):
        [kind] = [part for part in get_args(annotation) if part is not type(None)]
    field = Features.model_fields[feature.name]
    if feature.type == "categorical":
        assert get_args(kind) == feature.values
    else:
        assert kind is PYTHON_TYPES[feature.type]
    assert field.is_required() != feature.optional


def test_example_row_is_a_valid_request() -> None:
    assert Features.model_validate(FEATURE_EXAMPLE).model_dump() == FEATURE_EXAMPLE


def test_every_field_documents_itself_with_an_example() -> None:
    properties = Features.model_json_schema()["properties"]

    for name, schema in properties.items():
        assert schema["description"], name
        assert schema["examples"] == [FEATURE_EXAMPLE[name]]


def wrong_values(feature: Any) -> list[object]:
    if feature.type == "categorical":
        return ["not-a-value", 1, True]
    if feature.type == "boolean":
        return ["true", 1, 0.0]
    return ["5", True, float("nan"), float("inf")]


@pytest.mark.parametrize(
    ("name", "value"),
    [(f.name, value) for f in FEATURES for value in wrong_values(f)],
)
def test_a_feature_accepts_only_values_of_its_type(name: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Features.model_validate({**FEATURE_EXAMPLE, name: value})


def test_only_optional_features_may_be_left_out() -> None:
    for feature in FEATURES:
        row = {name: value for name, value in FEATURE_EXAMPLE.items() if name != feature.name}
        if feature.optional:
            assert getattr(Features.model_validate(row), feature.name) is None
        else:
            with pytest.raises(ValidationError):
                Features.model_validate(row)
