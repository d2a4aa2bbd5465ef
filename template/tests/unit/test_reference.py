import math

import pytest

from app.features import FeatureSpec
from app.model import Predictor
from app.monitoring.reference import (
    CategoricalReference,
    NumericReference,
    categorical_reference,
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
