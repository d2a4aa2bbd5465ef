import numpy as np
import pytest

from app.model import Predictor
from app.schemas import CLASS_LABELS, FEATURE_EXAMPLE, FEATURE_TYPES


def test_to_matrix_orders_columns_as_trained_whatever_the_key_order(predictor: Predictor) -> None:
    reversed_keys = dict(reversed(list(FEATURE_EXAMPLE.items())))

    matrix = predictor.to_matrix([reversed_keys])

    assert list(reversed_keys) != list(FEATURE_TYPES)
    assert matrix.tolist() == [[FEATURE_EXAMPLE[name] for name in FEATURE_TYPES]]


def test_predict_gives_same_answer_whatever_the_key_order(predictor: Predictor) -> None:
    reversed_keys = dict(reversed(list(FEATURE_EXAMPLE.items())))

    assert predictor.predict([reversed_keys]) == predictor.predict([FEATURE_EXAMPLE])


def test_postprocess_labels_each_row_with_its_most_probable_class(predictor: Predictor) -> None:
    classes = sorted(CLASS_LABELS)  # predict_proba's column order
    probabilities = np.eye(len(classes))[::-1] * 0.8 + 0.2 / len(classes)

    results = predictor.postprocess(probabilities)

    assert [result.label for result in results] == classes[::-1]
    for result, row in zip(results, probabilities, strict=True):
        assert result.probability == pytest.approx(row.max())
        assert result.probabilities == dict(zip(classes, row.tolist(), strict=True))


def test_predict_returns_probabilities_of_every_class_summing_to_one(
    predictor: Predictor,
) -> None:
    [result] = predictor.predict([FEATURE_EXAMPLE])

    assert set(result.probabilities) == set(CLASS_LABELS)
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    assert result.probability == max(result.probabilities.values())
    assert result.probabilities[result.label] == result.probability


def test_predict_scores_many_rows_in_one_call(predictor: Predictor) -> None:
    results = predictor.predict([FEATURE_EXAMPLE] * 5)

    assert len(results) == 5
    assert len({result.label for result in results}) == 1
