"""Import a model trained elsewhere as a new artifact version of this service.

    make import-model MODEL=path/to/model.joblib DATA=path/to/train.csv MODEL_VERSION=2.0.0
    python -m training.import_model --model model.joblib --data train.csv --model-version 2.0.0

MODEL is a fitted scikit-learn estimator or Pipeline saved with joblib, taking
the schema's features: either a DataFrame with the features' columns (it then
knows their names, `feature_names_in_`, and they must match the schema's names
and order) or a matrix in the schema's order as `app.features.encode_rows`
makes it. DATA is a CSV of the data it learned from (or data like it), with
those columns and the target. The model is checked against the schema, run on
every row of DATA, scored on them, and saved with reference statistics for
monitoring. Each mismatch is refused with a message saying what differs.

scikit-learn version policy: a model is only imported, and only served, under
the scikit-learn major.minor version that saved it (e.g. 1.6.x for a model saved
by 1.6.1); a different patch release is accepted and noted.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import InconsistentVersionWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted

from app.errors import ArtifactError
from app.features import InputFormat
from app.model import COMPATIBLE_VERSION_PARTS, ModelSource, load_joblib, release_parts
from app.observability.logging import configure_logging
from app.schemas import CLASS_LABELS, FEATURES, TARGET, TASK
from training.artifact import ArtifactExists, check_version, evaluate, predictor_for, save
from training.tabular import DataError, read_csv
from training.train import describe

logger = structlog.stdlib.get_logger("training.import")


class ImportRefused(Exception):
    """The model or its data do not fit this service; the message says how."""


def load_model(path: Path) -> tuple[Any, list[str]]:
    """Unpickle ``path``, applying the scikit-learn version policy; return notes to log."""
    if not path.is_file():
        raise ImportRefused(f"{path} does not exist")
    try:
        model, raised = load_joblib(path)
    except Exception as exc:
        raise ImportRefused(
            f"{path} cannot be loaded with joblib ({type(exc).__name__}: {exc})"
        ) from None
    notes = []
    for message in raised:
        if isinstance(message, InconsistentVersionWarning):
            saved = message.original_sklearn_version
            running = message.current_sklearn_version
            parts = COMPATIBLE_VERSION_PARTS["scikit-learn"]
            if release_parts(saved)[:parts] != release_parts(running)[:parts]:
                raise ImportRefused(
                    f"{path} was saved with scikit-learn {saved} but this service runs {running}; "
                    f"a model is only served under the scikit-learn version that saved it, up to "
                    f"the patch release: re-fit it with scikit-learn {running}, or pin "
                    f"scikit-learn=={saved} in pyproject.toml"
                )
            notes.append(f"model saved with scikit-learn {saved}, running {running}")
        else:
            notes.append(str(message))
    return model, notes


def check_model(model: Any) -> InputFormat:
    """Check the model's interface against the schema; return how it takes its input."""
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ImportRefused("the model is not fitted: call fit() before saving it") from None
    except TypeError:
        raise ImportRefused(
            f"a {type(model).__name__} is not a scikit-learn estimator or Pipeline"
        ) from None
    kind, fits = (
        ("classifier", is_classifier) if TASK == "classification" else ("regressor", is_regressor)
    )
    if not fits(model):
        raise ImportRefused(f"a {TASK} service needs a {kind}; {describe_model(model)} is not one")
    method = "predict_proba" if TASK == "classification" else "predict"
    if not callable(getattr(model, method, None)):
        raise ImportRefused(f"a {TASK} service needs a model with {method}(); this one has none")
    expected = [feature.source_column for feature in FEATURES]
    if hasattr(model, "feature_names_in_"):
        names = [str(name) for name in model.feature_names_in_]
        if names != expected:
            missing = [name for name in expected if name not in names]
            extra = [name for name in names if name not in expected]
            difference = (
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
                if missing or extra
                else "the same columns in another order: reorder the schema's features to match"
            )
            raise ImportRefused(
                f"the model was fitted on columns {names} but the schema's features are "
                f"{expected} ({difference})"
            )
        input_format: InputFormat = "frame"
    else:
        count = getattr(model, "n_features_in_", None)
        if count is not None and count != len(expected):
            raise ImportRefused(
                f"the model was fitted on {count} columns but the schema has {len(expected)} "
                f"features ({expected})"
            )
        input_format = "array"
    if TASK == "classification":
        classes = [str(label) for label in getattr(model, "classes_", [])]
        if sorted(classes) != sorted(CLASS_LABELS):
            raise ImportRefused(
                f"the model predicts classes {classes} but the schema declares {list(CLASS_LABELS)}"
            )
    return input_format


def import_model(
    model_path: Path, data: Path, out_dir: Path, model_version: str, *, force: bool = False
) -> Path:
    try:
        target_dir = check_version(out_dir, model_version, force=force)
        dataset = read_csv(data, FEATURES, target=TARGET, task=TASK, class_labels=CLASS_LABELS)
    except (ValueError, ArtifactExists, DataError) as exc:
        raise ImportRefused(str(exc)) from None
    model, notes = load_model(model_path)
    input_format = check_model(model)
    predictor = predictor_for(
        model,
        model_version=model_version,
        input_format=input_format,
        source=ModelSource(kind="imported", data=str(data), estimator=describe_model(model)),
    )
    try:
        metrics = evaluate(predictor, dataset)
    except ArtifactError as exc:
        raise ImportRefused(exc.message) from None
    except Exception as exc:
        raise ImportRefused(
            f"the model fails on the rows of {data}: {type(exc).__name__}: {exc}"
        ) from None
    save(
        predictor,
        model,
        target_dir,
        data=dataset,
        metrics=metrics,
        evaluation=f"every row of {data}, which may include rows the model was trained on",
        training_rows=len(dataset.rows),
        evaluation_rows=len(dataset.rows),
    )
    for note in notes:
        logger.warning("imported with a difference", note=note)
    logger.info(
        "model imported",
        model_version=model_version,
        path=str(target_dir),
        input=input_format,
        **metrics,
    )
    return target_dir


def describe_model(model: Any) -> str:
    return describe(model) if hasattr(model, "steps") else type(model).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.import_model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="fitted model saved with joblib")
    parser.add_argument("--data", type=Path, required=True, help="CSV with features and target")
    parser.add_argument("--model-version", required=True, help="folder name of the new artifact")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="artifact root")
    parser.add_argument("--force", action="store_true", help="replace an existing version")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        import_model(args.model, args.data, args.out, args.model_version, force=args.force)
    except ImportRefused as exc:
        logger.error("import refused", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
