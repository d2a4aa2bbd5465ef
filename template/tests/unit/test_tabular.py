"""Training data that does not fit the schema is refused, naming the column and the problem."""

from pathlib import Path

import pandas as pd
import pytest

from app.features import FeatureSpec
from training.tabular import DataError, Dataset, read_csv

FEATURES = (
    FeatureSpec(name="size", type="float"),
    FeatureSpec(name="count", type="integer", column="Item Count"),
    FeatureSpec(name="fresh", type="boolean"),
    FeatureSpec(name="colour", type="categorical", values=("red", "blue"), optional=True),
)
GOOD = {
    "size": [1.5, 2.0],
    "Item Count": [3, 4],
    "fresh": ["yes", "False"],
    "colour": ["red", None],
    "kind": ["a", "b"],
}


def read(tmp_path: Path, **changes: list[object]) -> Dataset:
    path = tmp_path / "data.csv"
    pd.DataFrame({**GOOD, **changes}).to_csv(path, index=False)
    return read_csv(path, FEATURES, target="kind", task="classification", class_labels=("a", "b"))


def test_good_data_is_read_with_schema_types(tmp_path: Path) -> None:
    dataset = read(tmp_path)

    assert dataset.rows == [
        {"size": 1.5, "count": 3, "fresh": True, "colour": "red"},
        {"size": 2.0, "count": 4, "fresh": False, "colour": None},
    ]
    assert dataset.target == ["a", "b"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": ["big", 1.0]}, "column 'size' should hold numbers but has 'big'"),
        ({"Item Count": [1.5, 2]}, "column 'Item Count' should hold whole numbers but has 1.5"),
        ({"fresh": ["maybe", "yes"]}, "column 'fresh' should hold true/false but has 'maybe'"),
        ({"colour": ["green", "red"]}, "column 'colour' has values ['green'] that feature colour"),
        (
            {"size": [None, 1.0]},
            "column 'size' has 1 missing values but feature size is not optional",
        ),
        ({"kind": ["a", "c"]}, "target column 'kind' has labels ['c'] that are not class labels"),
        ({"kind": ["a", None]}, "target column 'kind' has 1 missing values"),
    ],
)
def test_data_that_breaks_the_schema_is_refused(
    tmp_path: Path, changes: dict[str, list[object]], message: str
) -> None:
    with pytest.raises(DataError) as refusal:
        read(tmp_path, **changes)

    assert message in str(refusal.value)


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    pd.DataFrame({key: value for key, value in GOOD.items() if key != "Item Count"}).to_csv(path)

    with pytest.raises(DataError, match=r"lacks column\(s\) \['Item Count'\]"):
        read_csv(path, FEATURES, target="kind", task="classification", class_labels=("a", "b"))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.csv does not exist"):
        read_csv(
            tmp_path / "nowhere.csv", FEATURES, target="kind", task="regression", class_labels=()
        )
