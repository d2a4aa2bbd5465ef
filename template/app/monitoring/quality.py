"""Delayed labels and the quality they reveal.

The truth about a prediction often arrives later: the customer churned or not,
the house sold for a price. ``POST /v1/feedback`` records it against the
prediction's id in the ``feedback`` table of the prediction log; the quality
report joins predictions with their feedback and scores each model version over
a window of prediction times: accuracy, macro F1 and ROC AUC for a classifier,
MAE and RMSE for a regressor, and the label coverage (the share of predictions
whose truth is known). A shadow model's predictions share the primary's ids, so
one piece of feedback scores both. A batch's rows are found through their batch's
row of ``prediction_batches`` (``batch_position``).
"""

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    roc_auc_score,
    root_mean_squared_error,
)
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from app.errors import FeedbackConflict, PredictionNotFound
from app.features import Task
from app.model import ArtifactMetadata
from app.monitoring.prediction_log import (
    batch_of,
    batch_position,
    feedback,
    holds_batches,
    prediction_batches,
    predictions,
)
from app.monitoring.text import table
from app.settings import Settings

FeedbackStatus = Literal["recorded", "already_recorded"]
MAX_LABELLED: Final = 1_000_000
"""Most labelled predictions one report scores."""


class Predicted(BaseModel):
    """A logged answer a piece of feedback applies to."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model_version: str
    role: str
    output: dict[str, Any]


class RecordedFeedback(BaseModel):
    status: FeedbackStatus
    observed: dict[str, Any]
    observed_at: datetime
    received_at: datetime
    answers: list[Predicted] = Field(description="The primary answer first, then any shadow's.")


def _answers(engine: Engine, prediction_id: str) -> list[Predicted]:
    query = select(predictions.c.model_version, predictions.c.role, predictions.c.output).where(
        predictions.c.prediction_id == prediction_id
    )
    position = batch_position(prediction_id)
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(query)]
        if not rows and position is not None and holds_batches(connection):
            batch_id, index = position
            batched = select(
                prediction_batches.c.model_version,
                prediction_batches.c.role,
                prediction_batches.c.outputs,
            ).where(prediction_batches.c.batch_id == batch_id)
            rows = [
                (version, role, outputs[index])
                for version, role, outputs in connection.execute(batched)
                if index < len(outputs)
            ]
    answers = [Predicted(model_version=r[0], role=r[1], output=r[2]) for r in rows]
    return sorted(answers, key=lambda answer: answer.role != "primary")


def _stored(engine: Engine, prediction_id: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            select(feedback).where(feedback.c.prediction_id == prediction_id)
        ).first()


def record_feedback(
    engine: Engine,
    prediction_id: str,
    observed: Mapping[str, Any],
    observed_at: datetime,
    received_at: datetime,
) -> RecordedFeedback:
    """Store the truth about a logged prediction, once.

    The same feedback again is ``already_recorded``; a different truth for the same
    prediction is refused with ``FeedbackConflict``, never silently replaced.
    """
    answers = _answers(engine, prediction_id)
    if not answers:
        raise PredictionNotFound(
            f"no prediction {prediction_id} in the prediction log: it was never made, "
            "or is older than APP_PREDICTION_LOG_RETENTION_DAYS",
            details=[{"field": "prediction_id", "message": "unknown id", "type": "not_found"}],
        )
    status: FeedbackStatus = "recorded"
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(feedback).values(
                    prediction_id=prediction_id,
                    observed=dict(observed),
                    observed_at=observed_at,
                    received_at=received_at,
                )
            )
    except IntegrityError:
        status = "already_recorded"
    stored = _stored(engine, prediction_id)
    if stored.observed != dict(observed):
        field = next(iter(observed))
        raise FeedbackConflict(
            f"prediction {prediction_id} already has feedback {field}={stored.observed[field]!r}; "
            "feedback is recorded once and never replaced",
            details=[
                {"field": field, "message": "differs from the recorded one", "type": "conflict"}
            ],
        )
    return RecordedFeedback(
        status=status,
        observed=stored.observed,
        observed_at=_aware(stored.observed_at),
        received_at=_aware(stored.received_at),
        answers=answers,
    )


def _aware(moment: datetime) -> datetime:
    """SQLite gives back times without their zone; the log writes them all in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class VersionQuality(BaseModel):
    """How one model version did on the predictions whose truth is known."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    role: str = Field(description="`primary`, or `shadow` for a shadow model's answers.")
    predictions: int = Field(description="Predictions made in the window.")
    labelled: int = Field(description="Of those, how many have feedback.")
    label_coverage: float = Field(description="labelled / predictions.")
    status: Literal["ok", "not_enough_labels"] = Field(
        description="`not_enough_labels` below APP_QUALITY_MIN_LABELS: the numbers are noisy."
    )
    accuracy: float | None = Field(default=None, description="Classifiers: share correct.")
    f1_macro: float | None = Field(
        default=None, description="Classifiers: F1 averaged over the labels seen."
    )
    roc_auc: float | None = Field(
        default=None,
        description="Classifiers: area under the ROC curve (one-vs-rest for several "
        "classes); null unless every class occurs in the feedback.",
    )
    mae: float | None = Field(default=None, description="Regressors: mean absolute error.")
    rmse: float | None = Field(default=None, description="Regressors: root mean squared error.")


class QualityReport(BaseModel):
    task: Task
    since: datetime
    until: datetime
    min_labels: int
    evaluation: dict[str, float] = Field(
        description="The served model's metrics at training time, for comparison."
    )
    versions: list[VersionQuality]


def _classification_scores(
    labelled: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], classes: Sequence[str]
) -> dict[str, float | None]:
    truth = [observed["label"] for _, observed in labelled]
    said = [output["label"] for output, _ in labelled]
    seen = sorted(set(truth) | set(said))
    scores: dict[str, float | None] = {
        "accuracy": float(accuracy_score(truth, said)),
        "f1_macro": float(f1_score(truth, said, labels=seen, average="macro", zero_division=0.0)),
        "roc_auc": None,
    }
    if set(truth) == set(classes):
        if len(classes) == 2:
            positive = classes[-1]
            probability = [output["probabilities"][positive] for output, _ in labelled]
            scores["roc_auc"] = float(roc_auc_score([t == positive for t in truth], probability))
        else:
            ordered = sorted(classes)  # the column order roc_auc_score expects
            matrix = np.array([[o["probabilities"][c] for c in ordered] for o, _ in labelled])
            # Guard against rounding: one-vs-rest needs rows that sum to 1.
            matrix = matrix / matrix.sum(axis=1, keepdims=True)
            scores["roc_auc"] = float(
                roc_auc_score(truth, matrix, multi_class="ovr", labels=ordered)
            )
    return scores


def _regression_scores(
    labelled: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
) -> dict[str, float | None]:
    truth = [float(observed["value"]) for _, observed in labelled]
    said = [float(output["value"]) for output, _ in labelled]
    return {
        "mae": float(mean_absolute_error(truth, said)),
        "rmse": float(root_mean_squared_error(truth, said)),
    }


Labelled = dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]]
"""(output, observed) of labelled predictions, by (model version, role)."""


def _add_batches(
    connection: Connection,
    since: datetime,
    until: datetime,
    made: dict[tuple[str, str], int],
    labelled: Labelled,
    room: int,
) -> None:
    """Add the rows of batches made in [since, until) to ``made``, and up to ``room``
    labelled ones to ``labelled``. Each batch's outputs are read once, however many of
    its rows have feedback."""
    if not holds_batches(connection):
        return
    batches = prediction_batches.c
    in_window = (batches.created_at >= since, batches.created_at < until)
    counted = (
        select(batches.model_version, batches.role, func.sum(batches.rows))
        .where(*in_window)
        .group_by(batches.model_version, batches.role)
    )
    for version, role, rows in connection.execute(counted):
        made[(version, role)] = made.get((version, role), 0) + int(rows)
    # Each role's batch row is matched to the feedback on its own, as each role's row of
    # a one-row prediction is: a shadow's batch may be in the window, its primary not.
    truths = (
        select(batches.batch_id, batches.role, feedback.c.prediction_id, feedback.c.observed)
        .join(prediction_batches, batch_of(feedback.c.prediction_id) == batches.batch_id)
        .where(*in_window)
        .limit(max(room, 0))
    )
    observed: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for batch_id, role, prediction_id, truth in connection.execute(truths):
        position = batch_position(prediction_id)
        if position is not None:
            observed.setdefault((batch_id, role), []).append((position[1], truth))
    if not observed:
        return
    answered = select(batches.batch_id, batches.model_version, batches.role, batches.outputs).where(
        *in_window, batches.batch_id.in_(select(batch_of(feedback.c.prediction_id)))
    )
    for batch_id, version, role, outputs in connection.execute(answered):
        truths_of_batch = observed.get((batch_id, role), [])
        if truths_of_batch:
            pairs = labelled.setdefault((version, role), [])
            pairs += [(outputs[index], truth) for index, truth in truths_of_batch]


def quality_report(
    engine: Engine,
    *,
    task: Task,
    classes: Sequence[str],
    since: datetime,
    until: datetime,
    min_labels: int,
    evaluation: Mapping[str, float],
) -> QualityReport:
    """Score every model version that predicted in [since, until) on its labelled predictions."""
    in_window = (predictions.c.created_at >= since, predictions.c.created_at < until)
    counted = (
        select(predictions.c.model_version, predictions.c.role, func.count())
        .where(*in_window)
        .group_by(predictions.c.model_version, predictions.c.role)
    )
    joined = (
        select(
            predictions.c.model_version,
            predictions.c.role,
            predictions.c.output,
            feedback.c.observed,
        )
        .join(feedback, feedback.c.prediction_id == predictions.c.prediction_id)
        .where(*in_window)
        .limit(MAX_LABELLED)
    )
    with engine.connect() as connection:
        made = {(row[0], row[1]): int(row[2]) for row in connection.execute(counted)}
        labelled: Labelled = {}
        for version, role, output, observed in connection.execute(joined):
            labelled.setdefault((version, role), []).append((output, observed))
        room = MAX_LABELLED - sum(len(pairs) for pairs in labelled.values())
        _add_batches(connection, since, until, made, labelled, room)
    versions = []
    for (version, role), count in sorted(made.items(), key=lambda item: (item[0][1], item[0][0])):
        pairs = labelled.get((version, role), [])
        scores: dict[str, float | None] = {}
        if pairs:
            scores = (
                _regression_scores(pairs)
                if task == "regression"
                else _classification_scores(pairs, classes)
            )
        versions.append(
            VersionQuality(
                model_version=version,
                role=role,
                predictions=count,
                labelled=len(pairs),
                label_coverage=round(len(pairs) / count, 6),
                status="ok" if len(pairs) >= min_labels else "not_enough_labels",
                **{
                    name: None if value is None or math.isnan(value) else round(value, 6)
                    for name, value in scores.items()
                },
            )
        )
    return QualityReport(
        task=task,
        since=since,
        until=until,
        min_labels=min_labels,
        evaluation=dict(evaluation),
        versions=versions,
    )


def quality_from_log(
    engine: Engine,
    metadata: ArtifactMetadata,
    settings: Settings,
    since: datetime,
    until: datetime,
) -> QualityReport:
    """The quality report of the prediction log over [since, until), for ``metadata``'s
    task and classes, beside its hold-out metrics."""
    return quality_report(
        engine,
        task=metadata.task,
        classes=metadata.classes,
        since=since,
        until=until,
        min_labels=settings.quality_min_labels,
        evaluation=metadata.metrics,
    )


def format_quality(report: QualityReport) -> str:
    """The report as a table for a terminal."""
    names = ["mae", "rmse"] if report.task == "regression" else ["accuracy", "f1_macro", "roc_auc"]
    header = (
        f"Quality from feedback, predictions made {report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC (scores need {report.min_labels} labels)"
    )
    rows = [["model version", "role", "predictions", "labelled", "coverage", *names, "status"]]
    for version in report.versions:
        values = [getattr(version, name) for name in names]
        rows.append(
            [
                version.model_version,
                version.role,
                str(version.predictions),
                str(version.labelled),
                f"{version.label_coverage:.1%}",
                *("-" if value is None else f"{value:.4f}" for value in values),
                version.status,
            ]
        )
    evaluation = ", ".join(
        f"{name} {report.evaluation[name]:.4f}" for name in names if name in report.evaluation
    )
    lines = [header, "", *table(rows), ""]
    if not report.versions:
        lines.append("No predictions in the window.")
    if evaluation:
        lines.append(f"At training time (hold-out): {evaluation}.")
    return "\n".join(lines) + "\n"
