import math
from typing import Any

import pytest

from app.features import FeatureSpec
from app.model import Predictor
from app.monitoring.reference import (
    CategoricalReference,
    InvalidReference,
    NumericReference,
    Reference,
    categorical_reference,
    check_reference,
    compute_reference,
    numeric_reference,
)
from app.schemas import FEATURES


def test_numeric_bins_split_the_data_into_tenths() -> None:
    reference = numeric_reference([float(v) for v in range(100)] + [math.nan] * 25)

    assert len(reference.edges) == 9
    assert len(reference.fractions) == 10
    assert reference.fractions == pytest.approx([0.1] * 10)
    assert reference.missing == pytest.approx(0.2)


def test_repeated_values_merge_their_bins() -> None:
    reference = numeric_reference([1.0] * 50 + [2.0] * 50)

    assert reference.edges == (1.0, 2.0)
    assert reference.fractions == (0.5, 0.5, 0.0)


def test_categories_keep_a_fraction_each_and_count_the_unseen() -> None:
    reference = categorical_reference(["a", "a", "b", None, "z"], ["a", "b", "c"])

    assert reference.fractions == {"a": 0.5, "b": 0.25, "c": 0.0}
    assert reference.unseen == 0.25
    assert reference.missing == 0.2


def test_booleans_are_counted_as_two_categories() -> None:
    feature = FeatureSpec(name="flag", type="boolean", optional=True)

    reference = compute_reference(
        [{"flag": True}, {"flag": False}, {"flag": True}, {"flag": None}], [feature], [1.0] * 4
    )

    flag = reference.features["flag"]
    assert isinstance(flag, CategoricalReference)
    assert flag.fractions == pytest.approx({"false": 1 / 3, "true": 2 / 3})
    assert flag.missing == 0.25


def test_trained_artifact_carries_a_reference_for_every_feature(predictor: Predictor) -> None:
    reference = predictor.metadata.reference

    assert reference.rows > 0
    assert set(reference.features) == {feature.name for feature in FEATURES}
    for feature in FEATURES:
        kind = (
            CategoricalReference if feature.type in ("boolean", "categorical") else NumericReference
        )
        assert isinstance(reference.features[feature.name], kind)
    assert reference.predictions is not None


SIGNALS = (
    FeatureSpec(name="size", type="float"),
    FeatureSpec(name="colour", type="categorical", values=("red", "blue")),
    FeatureSpec(name="flag", type="boolean", optional=True),
)
CLASSES = ("no", "yes")


def signals_reference() -> dict[str, Any]:
    """Reference statistics of a few rows of ``SIGNALS``, as metadata.json holds them."""
    rows = [
        {"size": float(size), "colour": "red" if size % 3 else "blue", "flag": size % 2 == 0}
        for size in range(30)
    ]
    labels = ["yes" if row["flag"] else "no" for row in rows]
    reference = compute_reference(rows, SIGNALS, labels, CLASSES, [0.5] * len(rows))
    document: dict[str, Any] = reference.model_dump(mode="json")
    return document


def test_computed_reference_passes_its_own_check() -> None:
    check_reference(Reference.model_validate(signals_reference()), SIGNALS, CLASSES)


REMOVED = object()
NUMERIC = numeric_reference([1.0, 2.0, 3.0]).model_dump(mode="json")
CATEGORICAL = categorical_reference(["no"], CLASSES).model_dump(mode="json")


def damaged(path: tuple[str | int, ...], value: object) -> Reference:
    """``signals_reference`` with ``value`` at ``path``, or nothing there if REMOVED."""
    document = signals_reference()
    container: Any = document
    *parents, last = path
    for key in parents:
        container = container[key]
    if value is REMOVED:
        del container[last]
    else:
        container[last] = value
    return Reference.model_validate(document)


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("features", "size"), REMOVED, "features"),
        (("features", "extra"), NUMERIC, "features"),
        (("features", "size"), CATEGORICAL, "features.size"),
        (("features", "colour"), NUMERIC, "features.colour"),
        (("features", "size", "fractions"), [1.0], "features.size.fractions"),
        (("features", "size", "fractions", 0), -0.1, "features.size.fractions.0"),
        (("features", "size", "fractions", 1), math.nan, "features.size.fractions.1"),
        (("features", "size", "edges", 1), -1.0, "features.size.edges"),
        (("features", "size", "edges", 0), math.inf, "features.size.edges"),
        (("features", "size", "missing"), 1.5, "features.size.missing"),
        (("features", "size", "sample", 0), math.nan, "features.size.sample"),
        (("features", "colour", "fractions", "red"), REMOVED, "features.colour.fractions"),
        (("features", "flag", "fractions", "maybe"), 0.0, "features.flag.fractions"),
        (("features", "flag", "unseen"), -1.0, "features.flag.unseen"),
        (("predictions", "fractions", "yes"), REMOVED, "predictions.fractions"),
        (("predictions",), NUMERIC, "predictions"),
        (("scores", "fractions"), [], "scores.fractions"),
        (("rows",), -1, "rows"),
    ],
)
def test_reference_the_drift_code_cannot_use_is_refused_naming_the_field(
    path: tuple[str | int, ...], value: object, where: str
) -> None:
    with pytest.raises(InvalidReference) as refused:
        check_reference(damaged(path, value), SIGNALS, CLASSES)

    assert refused.value.where == where


def test_a_regressor_needs_numeric_statistics_of_its_values() -> None:
    reference = Reference.model_validate(signals_reference())

    with pytest.raises(InvalidReference, match="categorical statistics for a regressor"):
        check_reference(reference, SIGNALS, ())
