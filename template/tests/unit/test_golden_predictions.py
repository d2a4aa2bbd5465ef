"""Fixed inputs must keep their labels: a changed answer here is a changed model.

The rows are flowers from the Iris data, one typical of each species, written in
the schema's feature order; the labels are the schema's class labels in the
data set's order (setosa, versicolor, virginica).
"""

import pytest

from app.model import Predictor
from app.schemas import CLASS_LABELS, FEATURE_TYPES

GOLDEN_ROWS = [
    ([5.1, 3.5, 1.4, 0.2], 0),
    ([4.9, 3.0, 1.4, 0.2], 0),
    ([6.4, 3.2, 4.5, 1.5], 1),
    ([5.7, 2.8, 4.1, 1.3], 1),
    ([6.3, 3.3, 6.0, 2.5], 2),
    ([7.7, 3.0, 6.1, 2.3], 2),
]


@pytest.mark.parametrize(("values", "label_index"), GOLDEN_ROWS)
def test_golden_row_keeps_its_label(
    predictor: Predictor, values: list[float], label_index: int
) -> None:
    row = dict(zip(FEATURE_TYPES, values, strict=True))

    [prediction] = predictor.predict([row])

    assert prediction.label == CLASS_LABELS[label_index]
    assert prediction.probability > 0.5
