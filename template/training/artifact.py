"""Evaluating a fitted model exactly as it will serve, and saving it as an artifact.

Training and import both come through here: the model is wrapped in the
service's own ``Predictor``, so metrics, the decision threshold and the reference
statistics are computed by the code that will answer requests.
"""

import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from app.features import InputFormat
from app.model import (
    METADATA_FILE,
    MODEL_FILE,
    ArtifactMetadata,
    ClassPrediction,
    ModelSource,
    Prediction,
    Predictor,
    ValuePrediction,
    file_sha256,
)
from app.monitoring.reference import CategoricalReference, Reference, compute_reference
from app.schemas import CLASS_LABELS, DECISION_THRESHOLD, FEATURES, TARGET, TASK
from app.settings import VERSION_PATTERN
from training.tabular import Dataset

RECORDED_LIBRARIES = ("scikit-learn", "numpy", "joblib", "pandas")


class ArtifactExists(Exception):
    """The version already exists and replacing it was not asked for."""


def check_version(out_dir: Path, model_version: str, *, force: bool) -> Path:
    """The folder the version will be written to, once the name and its absence are checked."""
    if not re.fullmatch(VERSION_PATTERN, model_version):
        raise ValueError(
            f"model version {model_version!r} is not usable as a folder name: "
            "use letters, digits, dots, dashes and underscores, starting with a letter or digit"
        )
    target = out_dir / model_version
    if target.exists() and not force:
        raise ArtifactExists(
            f"{target} already exists and a version is never silently replaced: "
            "choose a new MODEL_VERSION, or pass --force (make ... FORCE=1)"
        )
    return target


def predictor_for(
    model: Any, *, model_version: str, input_format: InputFormat, source: ModelSource
) -> Predictor:
    """A Predictor over a model that is not saved yet, to evaluate it as this service
    will serve it: with the schema's task, target, features, labels and threshold."""
    placeholder = ArtifactMetadata(
        model_version=model_version,
        task=TASK,
        target=TARGET,
        features=FEATURES,
        classes=CLASS_LABELS,
        decision_threshold=DECISION_THRESHOLD,
        input_format=input_format,
        metrics={},
        evaluation="",
        library_versions={},
        trained_at=datetime.now(UTC),
        model_sha256="",
        training_data_sha256="",
        training_rows=0,
        evaluation_rows=0,
        source=source,
        reference=Reference(
            rows=0, features={}, predictions=CategoricalReference(fractions={}, missing=0.0)
        ),
    )
    return Predictor(model, placeholder, threshold=DECISION_THRESHOLD)


def evaluate(predictor: Predictor, dataset: Dataset) -> dict[str, float]:
    """Scores of the predictor on ``dataset``: what a reader of /v1/model needs to judge it."""
    predictions = predictor.predict(dataset.rows)
    if predictor.metadata.task == "regression":
        values = [p.value for p in predictions if isinstance(p, ValuePrediction)]
        return {
            "mae": round(float(mean_absolute_error(dataset.target, values)), 6),
            "rmse": round(float(root_mean_squared_error(dataset.target, values)), 6),
            "r2": round(float(r2_score(dataset.target, values)), 6),
        }
    labelled = [p for p in predictions if isinstance(p, ClassPrediction)]
    labels = [p.label for p in labelled]
    classes = list(predictor.metadata.classes)
    ordered = sorted(classes)  # the column order log_loss assumes
    probabilities = [[p.probabilities[label] for label in ordered] for p in labelled]
    metrics = {
        "accuracy": float(accuracy_score(dataset.target, labels)),
        "f1_macro": float(f1_score(dataset.target, labels, average="macro", labels=classes)),
        "log_loss": float(log_loss(dataset.target, probabilities, labels=ordered)),
    }
    if len(classes) == 2:
        positive = classes[1]
        truth = [label == positive for label in dataset.target]
        said = [label == positive for label in labels]
        metrics["precision"] = float(precision_score(truth, said, zero_division=0.0))
        metrics["recall"] = float(recall_score(truth, said, zero_division=0.0))
        if len(set(truth)) == 2:
            scores = [p.probabilities[positive] for p in labelled]
            metrics["roc_auc"] = float(roc_auc_score(truth, scores))
    return {name: round(value, 6) for name, value in metrics.items()}


def reference_for(predictor: Predictor, dataset: Dataset) -> Reference:
    """Reference statistics of the data and of the predictor's answers for it."""
    predictions: list[Prediction] = predictor.predict(dataset.rows)
    classes = predictor.metadata.classes
    if predictor.metadata.task == "regression":
        values = [p.value for p in predictions if isinstance(p, ValuePrediction)]
        return compute_reference(dataset.rows, predictor.features, values)
    labelled = [p for p in predictions if isinstance(p, ClassPrediction)]
    scored_label = classes[-1] if len(classes) == 2 else None
    scores = [
        p.probabilities[scored_label] if scored_label is not None else p.probability
        for p in labelled
    ]
    return compute_reference(
        dataset.rows, predictor.features, [p.label for p in labelled], classes, scores
    )


def save(
    predictor: Predictor,
    model: Any,
    target_dir: Path,
    *,
    data: Dataset,
    metrics: dict[str, float],
    evaluation: str,
    training_rows: int,
    evaluation_rows: int,
) -> Path:
    """Write ``model.joblib`` and ``metadata.json`` to ``target_dir``, all or nothing."""
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    # Written in a hidden folder, then renamed: a crash never leaves half an artifact.
    staging = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}-", dir=target_dir.parent))
    try:
        joblib.dump(model, staging / MODEL_FILE)
        metadata = predictor.metadata.model_copy(
            update={
                "metrics": metrics,
                "evaluation": evaluation,
                "library_versions": {
                    name: importlib_metadata.version(name) for name in RECORDED_LIBRARIES
                },
                "trained_at": datetime.now(UTC),
                "model_sha256": file_sha256(staging / MODEL_FILE),
                "training_data_sha256": data.sha256(),
                "training_rows": training_rows,
                "evaluation_rows": evaluation_rows,
                "reference": reference_for(predictor, data),
            }
        )
        (staging / METADATA_FILE).write_text(
            metadata.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        if target_dir.exists():
            shutil.rmtree(target_dir)
        staging.rename(target_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target_dir


def split(
    dataset: Dataset, task: Literal["classification", "regression"], test_fraction: float, seed: int
) -> tuple[Dataset, Dataset]:
    """A reproducible train/test split, stratified by label when every label has two rows."""
    from sklearn.model_selection import train_test_split

    labels = dataset.target
    stratify = (
        labels
        if task == "classification" and min(labels.count(label) for label in set(labels)) >= 2
        else None
    )
    train_index, test_index = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=stratify
    )

    def subset(indices: Sequence[int]) -> Dataset:
        return Dataset(
            rows=[dataset.rows[i] for i in indices],
            target=[labels[i] for i in indices],
            source=dataset.source,
        )

    return subset(train_index.tolist()), subset(test_index.tolist())
