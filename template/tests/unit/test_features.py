import math
from typing import Any

import numpy as np

from app.features import FeatureSpec, encode_rows, rows_to_frame

NUMBERS = (FeatureSpec(name="a", type="float"), FeatureSpec(name="b", type="integer"))
MIXED = (
    FeatureSpec(name="size", type="float", optional=True),
    FeatureSpec(name="colour", type="categorical", values=("red", "blue"), optional=True),
    FeatureSpec(name="fresh", type="boolean"),
    FeatureSpec(name="count", type="integer", column="Item Count"),
)


def test_numbers_encode_as_floats_in_feature_order() -> None:
    matrix = encode_rows([{"b": 2, "a": 1.5}, {"a": -1.0, "b": 0}], NUMBERS)

    assert matrix.dtype == np.float64
    assert matrix.tolist() == [[1.5, 2.0], [-1.0, 0.0]]


def test_categories_keep_their_text_and_booleans_become_numbers() -> None:
    matrix = encode_rows([{"size": 2.0, "colour": "red", "fresh": True, "count": 3}], MIXED)

    assert matrix.dtype == object
    assert matrix.tolist() == [[2.0, "red", 1.0, 3.0]]


def test_missing_values_stay_missing_for_the_pipeline_to_impute() -> None:
    [row] = encode_rows([{"size": None, "fresh": False, "count": 0}], MIXED).tolist()

    assert math.isnan(row[0])
    assert math.isnan(row[1])
    assert row[2:] == [0.0, 0.0]


def test_numbers_left_out_or_null_encode_as_missing() -> None:
    optional = (FeatureSpec(name="a", type="float", optional=True), *NUMBERS[1:])

    matrix = encode_rows([{"b": 1, "a": None}, {"b": 2}, {"a": 0.5, "b": True}], optional)

    assert np.isnan(matrix[:2, 0]).all()
    assert matrix[:, 1].tolist() == [1.0, 2.0, 1.0]
    assert matrix[2, 0] == 0.5


def test_a_single_number_feature_gives_a_one_column_matrix() -> None:
    assert encode_rows([{"a": 1}, {"a": 2.5}], NUMBERS[:1]).tolist() == [[1.0], [2.5]]


def test_no_rows_give_an_empty_matrix_of_the_right_width() -> None:
    assert encode_rows([], NUMBERS).shape == (0, 2)


def test_frame_uses_data_column_names_and_read_csv_types() -> None:
    rows: list[dict[str, Any]] = [
        {"size": None, "colour": "red", "fresh": True, "count": 3},
        {"size": 1.5, "colour": None, "fresh": False, "count": 4},
    ]

    frame = rows_to_frame(rows, MIXED)

    assert list(frame.columns) == ["size", "colour", "fresh", "Item Count"]
    assert [str(dtype) for dtype in frame.dtypes] == ["float64", "object", "bool", "int64"]
    assert frame["colour"].isna().tolist() == [False, True]
