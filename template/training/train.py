"""Train the demo model and write a versioned artifact folder.

    python -m training.train --model-version 1.0.0           # writes artifacts/1.0.0/
    python -m training.train --model-version 1.0.0 --force   # replaces that version

The folder holds ``model.joblib`` and ``metadata.json``: the features in order,
the classes, hold-out metrics, library versions, and sha256 hashes of the model
file and of the training data. The service refuses a folder whose files disagree.
Training is deterministic: the same data and versions give the same model file.
"""

import argparse
import hashlib
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import joblib
import numpy as np
import numpy.typing as npt
import structlog
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from app.model import METADATA_FILE, MODEL_FILE, ArtifactMetadata, FeatureSpec, file_sha256
from app.observability.logging import configure_logging
from app.schemas import CLASS_LABELS, FEATURE_TYPES
from app.settings import VERSION_PATTERN
from training.data import Dataset, TrainingDataError, load_dataset

RANDOM_STATE = 42
TEST_FRACTION = 0.25
RECORDED_LIBRARIES = ("scikit-learn", "numpy", "joblib")

logger = structlog.stdlib.get_logger("training")


class TrainingError(Exception):
    """Training cannot produce the requested artifact."""


def build_pipeline() -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(max_iter=1000, random_state=RANDOM_STATE)),
        ]
    )


def dataset_sha256(dataset: Dataset) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(dataset.features).tobytes())
    digest.update("\n".join(dataset.target.tolist()).encode("utf-8"))
    return digest.hexdigest()


def evaluate(
    model: Pipeline, features: npt.NDArray[np.float64], target: npt.NDArray[np.str_]
) -> dict[str, float]:
    predicted = model.predict(features)
    return {
        "accuracy": round(float(accuracy_score(target, predicted)), 6),
        "f1_macro": round(float(f1_score(target, predicted, average="macro")), 6),
        "log_loss": round(
            float(log_loss(target, model.predict_proba(features), labels=model.classes_)), 6
        ),
    }


def train(out_dir: Path, model_version: str, *, force: bool = False) -> Path:
    """Train, evaluate on a held-out split, and write ``out_dir/model_version``."""
    if not re.fullmatch(VERSION_PATTERN, model_version):
        raise TrainingError(
            f"model version {model_version!r} is not usable as a folder name: "
            "use letters, digits, dots, dashes and underscores, starting with a letter or digit"
        )
    target_dir = out_dir / model_version
    if target_dir.exists() and not force:
        raise TrainingError(
            f"{target_dir} already exists and a version is never silently replaced: "
            "choose a new MODEL_VERSION, or pass --force (make train FORCE=1)"
        )
    try:
        dataset = load_dataset()
    except TrainingDataError as exc:
        raise TrainingError(str(exc)) from None
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.target,
        test_size=TEST_FRACTION,
        random_state=RANDOM_STATE,
        stratify=dataset.target,
    )
    model = build_pipeline().fit(x_train, y_train)

    out_dir.mkdir(parents=True, exist_ok=True)
    # Written in a hidden folder, then renamed: a crash never leaves half an artifact.
    staging = Path(tempfile.mkdtemp(prefix=f".{model_version}-", dir=out_dir))
    try:
        joblib.dump(model, staging / MODEL_FILE)
        metadata = ArtifactMetadata(
            model_version=model_version,
            task="classification",
            target=dataset.target_name,
            features=tuple(
                FeatureSpec.model_validate({"name": name, "type": kind})
                for name, kind in FEATURE_TYPES.items()
            ),
            classes=CLASS_LABELS,
            metrics=evaluate(model, x_test, y_test),
            library_versions={
                name: importlib_metadata.version(name) for name in RECORDED_LIBRARIES
            },
            trained_at=datetime.now(UTC),
            model_sha256=file_sha256(staging / MODEL_FILE),
            training_data_sha256=dataset_sha256(dataset),
            training_rows=len(y_train),
            test_rows=len(y_test),
        )
        (staging / METADATA_FILE).write_text(
            metadata.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        if target_dir.exists():
            shutil.rmtree(target_dir)
        staging.rename(target_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "model trained",
        model_version=model_version,
        path=str(target_dir),
        data=dataset.source,
        **metadata.metrics,
    )
    return target_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-version", required=True, help="folder name of the artifact")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="artifact root")
    parser.add_argument("--force", action="store_true", help="replace an existing version")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        train(args.out, args.model_version, force=args.force)
    except TrainingError as exc:
        logger.error("training failed", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
