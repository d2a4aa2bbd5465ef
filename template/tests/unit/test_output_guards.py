"""The model's answers are checked before they are returned: a number that is not
finite or outside the declared bounds is refused, with its own error."""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.errors import PredictionNotFinite, PredictionOutOfBounds
from app.model import (
    MODEL_FILE,
    ClassPrediction,
    Predictor,
    TargetRange,
    ValuePrediction,
    load_joblib,
)
from app.schemas import FEATURE_EXAMPLE, TARGET_MAX, TARGET_MIN, TASK
from tests.user_models import Answers, SpoiledModel

ROWS = [FEATURE_EXAMPLE] * 3

classifiers_only = pytest.mark.skipif(
    TASK != "classification", reason="probabilities are a classifier's answer"
)
regressors_only = pytest.mark.skipif(TASK != "regression", reason="a value is a regressor's answer")


@pytest.fixture(scope="module")
def fitted(model_dir: Path, model_version: str) -> Any:
    """The session's trained model, as it was saved."""
    model, _ = load_joblib(model_dir / model_version / MODEL_FILE)
    return model


def spoiled(
    predictor: Predictor,
    fitted: Any,
    spoil: Callable[[Answers], Answers],
    target_range: TargetRange | None = None,
) -> Predictor:
    """The session's predictor, over the same model with spoiled answers."""
    return Predictor(
        SpoiledModel(fitted, spoil),
        predictor.metadata,
        threshold=predictor.threshold,
        target_range=predictor.target_range if target_range is None else target_range,
    )


def replace_first(row: int, answer: float) -> Callable[[Answers], Answers]:
    """Replace the answer for ``row``: its value, or its first probability."""

    def spoil(answers: Answers) -> Answers:
        changed = answers.copy()
        if changed.ndim == 1:
            changed[row] = answer
        else:
            changed[row, 0] = answer
        return changed

    return spoil


@pytest.mark.parametrize("answer", [math.nan, math.inf, -math.inf])
def test_answer_that_is_not_a_finite_number_is_refused_naming_the_row(
    predictor: Predictor, fitted: Any, answer: float
) -> None:
    broken = spoiled(predictor, fitted, replace_first(1, answer))

    with pytest.raises(PredictionNotFinite, match=r"not a finite number \(row 1\)") as refusal:
        broken.predict(ROWS)

    assert refusal.value.code == "prediction_not_finite"
    assert refusal.value.reason == "not_finite"


def test_many_refused_rows_are_named_up_to_five(predictor: Predictor, fitted: Any) -> None:
    broken = spoiled(predictor, fitted, lambda answers: np.full_like(answers, math.nan))

    with pytest.raises(PredictionNotFinite, match=r"\(rows 0, 1, 2, 3, 4 and 3 more\)"):
        broken.predict([FEATURE_EXAMPLE] * 8)


@classifiers_only
@pytest.mark.parametrize("probability", [1.5, -0.2])
def test_probability_outside_zero_and_one_is_refused(
    predictor: Predictor, fitted: Any, probability: float
) -> None:
    broken = spoiled(predictor, fitted, replace_first(0, probability))

    with pytest.raises(PredictionOutOfBounds, match=r"outside \[0, 1\] \(row 0\)") as refusal:
        broken.predict(ROWS)

    assert refusal.value.code == "prediction_out_of_bounds"
    assert refusal.value.reason == "out_of_bounds"


@classifiers_only
def test_probabilities_that_do_not_sum_to_one_are_refused(
    predictor: Predictor, fitted: Any
) -> None:
    broken = spoiled(predictor, fitted, lambda answers: answers * 0.5)

    with pytest.raises(PredictionOutOfBounds, match=r"sum to 0\.5, not 1 \(rows 0, 1, 2\)"):
        broken.predict(ROWS)


@classifiers_only
def test_rounding_in_the_probabilities_is_tolerated(predictor: Predictor, fitted: Any) -> None:
    rounded = spoiled(predictor, fitted, lambda answers: answers * (1 + 1e-9))

    answers = rounded.predict(ROWS)

    labels = [answer.label for answer in answers if isinstance(answer, ClassPrediction)]
    assert labels == [a.label for a in predictor.predict(ROWS) if isinstance(a, ClassPrediction)]
    assert len(labels) == len(ROWS)


@regressors_only
def test_value_below_the_lowest_declared_is_refused(predictor: Predictor, fitted: Any) -> None:
    [answer] = predictor.predict([FEATURE_EXAMPLE])
    assert isinstance(answer, ValuePrediction)
    bounded = spoiled(predictor, fitted, lambda answers: answers, (answer.value + 1, None))

    with pytest.raises(PredictionOutOfBounds, match=r"below the lowest value") as refusal:
        bounded.predict([FEATURE_EXAMPLE])

    assert refusal.value.code == "prediction_out_of_bounds"


@regressors_only
def test_value_above_the_highest_declared_is_refused(predictor: Predictor, fitted: Any) -> None:
    [answer] = predictor.predict([FEATURE_EXAMPLE])
    assert isinstance(answer, ValuePrediction)
    bounded = spoiled(predictor, fitted, lambda answers: answers, (None, answer.value - 1))

    with pytest.raises(PredictionOutOfBounds, match=r"above the highest value"):
        bounded.predict([FEATURE_EXAMPLE])


@regressors_only
def test_value_on_a_declared_bound_is_returned(predictor: Predictor, fitted: Any) -> None:
    [answer] = predictor.predict([FEATURE_EXAMPLE])
    assert isinstance(answer, ValuePrediction)
    bounded = spoiled(predictor, fitted, lambda answers: answers, (answer.value, answer.value))

    assert bounded.predict([FEATURE_EXAMPLE]) == [answer]


@regressors_only
def test_the_service_serves_with_the_bounds_of_its_schema(predictor: Predictor) -> None:
    assert predictor.target_range == (TARGET_MIN, TARGET_MAX)
