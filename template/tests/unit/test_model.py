import math
from typing import Any

import numpy as np
import pytest

from app.errors import PredictionNotFinite
from app.model import Predictor
from app.schemas import CLASS_LABELS, FEATURE_EXAMPLE, FEATURES, TASK
from tests.checks import assert_same, assert_sound_prediction


def test_encoding_follows_training_order_whatever_the_key_order(predictor: Predictor) -> None:
    reversed_keys = dict(reversed(list(FEATURE_EXAMPLE.items())))

    assert np.array_equal(predictor.encode([reversed_keys]), predictor.encode([FEATURE_EXAMPLE]))
    assert predictor.predict([reversed_keys]) == predictor.predict([FEATURE_EXAMPLE])


def test_predict_scores_many_rows_in_one_call(predictor: Predictor) -> None:
    results = predictor.predict([FEATURE_EXAMPLE] * 5)

    assert_same(results, [results[0]] * 5)
    assert_sound_prediction(results[0])


def test_every_optional_feature_may_be_missing(predictor: Predictor) -> None:
    row: dict[str, Any] = {
        feature.name: None if feature.optional else FEATURE_EXAMPLE[feature.name]
        for feature in FEATURES
    }

    [prediction] = predictor.predict([row])

    assert_sound_prediction(prediction)


def test_non_finite_model_output_is_refused(predictor: Predictor) -> None:
    postprocess = (
        predictor.postprocess if TASK == "classification" else predictor.postprocess_values
    )
    output = np.full((1, max(1, len(CLASS_LABELS))), math.nan)

    with pytest.raises(PredictionNotFinite, match="not a finite number"):
        postprocess(output)
