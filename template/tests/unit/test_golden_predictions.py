"""Training must keep giving the recorded answers for the golden rows.

tests/contract/golden_predictions.json is recorded by `make setup` (when absent) and by
`make golden-update`; a difference here means the model changed. If that is
intended, record the new answers on purpose and commit them with the change.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from app.model import ClassPrediction, Predictor, ValuePrediction

GOLDEN_FILE = Path(__file__).resolve().parents[1] / "contract" / "golden_predictions.json"


def golden() -> dict[str, Any]:
    if not GOLDEN_FILE.is_file():
        pytest.fail(f"{GOLDEN_FILE} is missing: run `make golden-update` and commit it")
    document: dict[str, Any] = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    return document


def test_golden_rows_keep_their_predictions(predictor: Predictor) -> None:
    document = golden()

    predictions = predictor.predict(document["rows"])

    assert len(predictions) == len(document["predictions"]) > 0
    changed = "the model changed; if that is intended, run `make golden-update`"
    for got, expected in zip(predictions, document["predictions"], strict=True):
        if isinstance(got, ValuePrediction):
            assert got.value == pytest.approx(expected["value"], rel=1e-6), changed
        else:
            assert isinstance(got, ClassPrediction)
            assert got.label == expected["label"], changed
            assert got.probabilities == pytest.approx(expected["probabilities"], abs=1e-6), changed
