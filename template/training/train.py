"""Train the model and write a versioned artifact folder.

    python -m training.train --model-version 1.0.0               # writes artifacts/1.0.0/
    python -m training.train --model-version 1.1.0 --data my.csv # trains on a CSV instead
    python -m training.train --model-version 1.0.0 --force       # replaces that version

This is the file to edit to train your own model: `build_pipeline` returns the
whole model, preprocessing included, and is saved as one file, so the service
never re-implements a training transform. The artifact folder also holds
metadata.json: the features, the classes, hold-out metrics, library versions,
reference statistics for drift monitoring, and sha256 hashes of the model file
and of the training data. Training is deterministic: the same data and library
versions give the same model file.
"""

import argparse
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import structlog
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.features import FeatureSpec, Task, encode_rows
from app.model import ModelSource
from app.observability.logging import configure_logging
from app.schemas import CLASS_LABELS, FEATURES, TARGET, TARGET_MAX, TARGET_MIN, TASK
from training.artifact import ArtifactExists, check_version, evaluate, predictor_for, save, split
from training.data import load_dataset
from training.tabular import DataError, Dataset, read_csv

RANDOM_STATE = 42
TEST_FRACTION = 0.25
MISSING = "(missing)"
"""The category a missing value of an optional categorical feature becomes."""

logger = structlog.stdlib.get_logger("training")


class TrainingError(Exception):
    """Training cannot produce the requested artifact."""


def build_pipeline(features: Sequence[FeatureSpec], task: Task) -> Pipeline:
    """Preprocessing and estimator, in one Pipeline over ``encode_rows`` matrices.

    Missing values (optional features only): a number or boolean gets the training
    median plus a column flagging that it was missing; a category becomes the
    category "(missing)". Numbers are standardised; categories one-hot encoded,
    and a value unseen in training encodes as all zeros.
    """
    numbers = [i for i, feature in enumerate(features) if feature.type != "categorical"]
    categories = [i for i, feature in enumerate(features) if feature.type == "categorical"]
    number_steps: list[tuple[str, object]] = []
    if any(features[i].optional for i in numbers):
        number_steps.append(("impute", SimpleImputer(strategy="median", add_indicator=True)))
    number_steps.append(("scale", StandardScaler()))
    preprocess: Pipeline | ColumnTransformer = Pipeline(number_steps)
    if categories:
        category_steps: list[tuple[str, object]] = []
        if any(features[i].optional for i in categories):
            category_steps.append(
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING))
            )
        encoder = OneHotEncoder(
            categories=[[*features[i].values, MISSING] for i in categories],
            handle_unknown="ignore",
        )
        category_steps.append(("encode", encoder))
        parts = [("categories", Pipeline(category_steps), categories)]
        if numbers:
            parts.insert(0, ("numbers", preprocess, numbers))
        preprocess = ColumnTransformer(parts)
    estimator = (
        LogisticRegression(max_iter=1000, random_state=RANDOM_STATE)
        if task == "classification"
        else _regressor()
    )
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def _regressor() -> Ridge | TransformedTargetRegressor:
    """Ridge, its answers held to the target's declared range when there is one.

    A linear model extrapolates: rows inside every feature's range, but unlike the
    training rows, can get a value outside ``TARGET_MIN``/``TARGET_MAX``, which the
    service refuses with 500 ``prediction_out_of_bounds``. The nearest bound is the
    answer instead. A model imported with ``make import-model`` is not changed.
    """
    ridge = Ridge(alpha=1.0)
    if TARGET_MIN is None and TARGET_MAX is None:
        return ridge
    # Both functions are numpy's, so the artifact unpickles where training/ is not
    # (the image): np.positive is the identity (+y), and on the training targets,
    # which are within the bounds, the clip undoes it, as sklearn checks.
    within_bounds = partial(np.clip, a_min=TARGET_MIN, a_max=TARGET_MAX)
    return TransformedTargetRegressor(regressor=ridge, func=np.positive, inverse_func=within_bounds)


def load(data: Path | None) -> Dataset:
    if data is None:
        return load_dataset()
    return read_csv(data, FEATURES, target=TARGET, task=TASK, class_labels=CLASS_LABELS)


def train(
    out_dir: Path, model_version: str, *, data: Path | None = None, force: bool = False
) -> Path:
    """Train on ``data`` (default: the project's data set), evaluate on a held-out
    split, and write ``out_dir/model_version``."""
    try:
        target_dir = check_version(out_dir, model_version, force=force)
        dataset = load(data)
    except (ValueError, ArtifactExists, DataError) as exc:
        raise TrainingError(str(exc)) from None
    training, test = split(dataset, TASK, TEST_FRACTION, RANDOM_STATE)
    model = build_pipeline(FEATURES, TASK).fit(
        encode_rows(training.rows, FEATURES), training.target
    )
    predictor = predictor_for(
        model,
        model_version=model_version,
        input_format="array",
        source=ModelSource(kind="trained", data=dataset.source, estimator=describe(model)),
    )
    metrics = evaluate(predictor, test)
    save(
        predictor,
        model,
        target_dir,
        data=dataset,
        metrics=metrics,
        evaluation=f"held-out {TEST_FRACTION:.0%} of the data, never trained on",
        training_rows=len(training.rows),
        evaluation_rows=len(test.rows),
    )
    logger.info(
        "model trained",
        model_version=model_version,
        path=str(target_dir),
        data=dataset.source,
        **metrics,
    )
    if dataset.source.startswith("synthetic"):
        logger.warning(
            "trained on synthetic rows: the service runs, but its predictions mean nothing; "
            "put your data in data/train.csv (or pass DATA=path) and train again"
        )
    return target_dir


def describe(model: Pipeline) -> str:
    return " -> ".join(type(step).__name__ for _, step in model.steps)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-version", required=True, help="folder name of the artifact")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="artifact root")
    parser.add_argument("--data", type=Path, help="CSV to train on instead of the project's data")
    parser.add_argument("--force", action="store_true", help="replace an existing version")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        train(args.out, args.model_version, data=args.data, force=args.force)
    except TrainingError as exc:
        logger.error("training failed", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
