"""Assertions every variant's predictions must pass, whatever the task."""

import math
from collections.abc import Sequence
from typing import Any

import pytest

from app.model import ClassPrediction, Prediction, ValuePrediction
from app.schemas import CLASS_LABELS, DECISION_THRESHOLD, TASK


def assert_sound_prediction(prediction: Prediction) -> None:
    if TASK == "regression":
        assert isinstance(prediction, ValuePrediction)
        assert math.isfinite(prediction.value)
        return
    assert isinstance(prediction, ClassPrediction)
    assert prediction.label in CLASS_LABELS
    assert list(prediction.probabilities) == list(CLASS_LABELS)  # in the schema's order
    assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-9)
    assert prediction.probabilities[prediction.label] == prediction.probability
    assert prediction.threshold == DECISION_THRESHOLD


def assert_sound_response(body: dict[str, Any]) -> None:
    """A /v1/predict body, or one item of a batch, holds a sound prediction."""
    if TASK == "regression":
        assert math.isfinite(body["value"])
        return
    assert body["label"] in CLASS_LABELS
    assert list(body["probabilities"]) == list(CLASS_LABELS)  # in the schema's order
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-9)
    assert body["probability"] == body["probabilities"][body["label"]]
    assert body.get("threshold") == DECISION_THRESHOLD


def assert_same(shared: Sequence[Prediction], own: Sequence[Prediction]) -> None:
    """The same answers, up to the last bits floating-point rounding changes when the
    model's matrix products run over more rows."""
    assert len(shared) == len(own)
    for one, other in zip(shared, own, strict=True):
        if isinstance(one, ClassPrediction):
            assert isinstance(other, ClassPrediction)
            assert (one.label, one.threshold) == (other.label, other.threshold)
            assert one.probabilities == pytest.approx(other.probabilities, rel=1e-9, abs=1e-12)
        else:
            assert isinstance(other, ValuePrediction)
            assert one.value == pytest.approx(other.value, rel=1e-9, abs=1e-12)
