"""The shadow runner on its own: what agrees, and failures that stay in its thread."""

from pathlib import Path

import joblib

from app.model import MODEL_FILE, ClassPrediction, Predictor, ValuePrediction
from app.monitoring.shadow import Shadow, agrees
from app.schemas import FEATURE_EXAMPLE
from tests.user_models import failing


def test_a_classifier_agrees_on_the_same_label_whatever_its_probability() -> None:
    primary = ClassPrediction(label="a", probability=0.9, probabilities={"a": 0.9, "b": 0.1})
    close = ClassPrediction(label="a", probability=0.6, probabilities={"a": 0.6, "b": 0.4})
    other = ClassPrediction(label="b", probability=0.6, probabilities={"a": 0.4, "b": 0.6})

    assert agrees(primary, close, tolerance=0.0)
    assert not agrees(primary, other, tolerance=0.5)


def test_a_regressor_agrees_within_the_relative_tolerance() -> None:
    primary = ValuePrediction(value=100.0)

    assert agrees(primary, ValuePrediction(value=104.0), tolerance=0.05)
    assert not agrees(primary, ValuePrediction(value=94.0), tolerance=0.05)
    assert not agrees(primary, ValuePrediction(value=100.5), tolerance=0.0)
    assert agrees(ValuePrediction(value=0.0), ValuePrediction(value=0.0), tolerance=0.0)


def test_a_failing_shadow_counts_its_rows_and_raises_nothing(
    predictor: Predictor, model_dir: Path, model_version: str
) -> None:
    estimator = joblib.load(model_dir / model_version / MODEL_FILE)
    shadow = Shadow(Predictor(failing(estimator), predictor.metadata))
    shadow.start()
    answers = predictor.predict([FEATURE_EXAMPLE] * 3)

    shadow.submit([FEATURE_EXAMPLE] * 3, answers)
    shadow.close()

    status = shadow.status()
    assert (status.failed, status.compared, status.pending) == (3, 0, 0)


def test_rows_submitted_after_close_are_skipped(predictor: Predictor) -> None:
    shadow = Shadow(predictor)
    shadow.start()
    shadow.close()
    [answer] = predictor.predict([FEATURE_EXAMPLE])

    shadow.submit([FEATURE_EXAMPLE], [answer])

    assert (shadow.status().skipped, shadow.status().pending) == (1, 0)
