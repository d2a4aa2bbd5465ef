"""Load a trained model artifact, verify it against this service, and predict.

No web framework is imported here: the HTTP layer, the command line and the tests
all use the same ``Predictor``.

An artifact is a folder ``<model_dir>/<version>/`` holding ``model.joblib`` and
``metadata.json`` (written by ``training/train.py``).
"""

import hashlib
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Final, Literal

import joblib
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from app.errors import ArtifactError
from app.schemas import CLASS_LABELS, FEATURE_EXAMPLE, FEATURE_TYPES
from app.settings import Settings

MODEL_FILE: Final = "model.joblib"
METADATA_FILE: Final = "metadata.json"

# A pickled estimator is only guaranteed to load under the library versions that
# wrote it (https://scikit-learn.org/stable/model_persistence.html). These many
# leading parts of each version must match; a difference past them is logged.
COMPATIBLE_VERSION_PARTS: Final = {"scikit-learn": 2, "numpy": 1}

FeatureType = Literal["float", "integer"]


class FeatureSpec(BaseModel):
    """One input column of the model, in training order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: FeatureType


class ArtifactMetadata(BaseModel):
    """The content of ``metadata.json``: what the model is and how it was made."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    format_version: Literal[1] = 1
    model_version: str
    task: Literal["classification"]
    target: str
    features: tuple[FeatureSpec, ...]
    classes: tuple[str, ...]
    metrics: dict[str, float]
    library_versions: dict[str, str]
    trained_at: datetime
    model_sha256: str
    training_data_sha256: str
    training_rows: int
    test_rows: int


@dataclass(frozen=True, slots=True)
class ClassPrediction:
    """The model's answer for one row."""

    label: str
    probability: float
    probabilities: dict[str, float]


class Predictor:
    """A verified classifier, ready to predict."""

    def __init__(self, estimator: Any, metadata: ArtifactMetadata) -> None:
        if not callable(getattr(estimator, "predict_proba", None)):
            raise ArtifactError(
                f"the model of version {metadata.model_version} has no predict_proba, "
                "so it cannot return class probabilities"
            )
        # predict_proba's columns follow estimator.classes_, which scikit-learn sorts;
        # metadata.json keeps the schema's order for people to read.
        classes = tuple(str(label) for label in getattr(estimator, "classes_", ()))
        if sorted(classes) != sorted(metadata.classes):
            raise ArtifactError(
                f"the model predicts classes {list(classes)} "
                f"but metadata.json lists {list(metadata.classes)}"
            )
        self._estimator = estimator
        self._classes = classes
        self.metadata = metadata
        self.feature_names = tuple(feature.name for feature in metadata.features)

    @property
    def version(self) -> str:
        return self.metadata.model_version

    def to_matrix(self, rows: Sequence[Mapping[str, float]]) -> npt.NDArray[np.float64]:
        """Put each row's values in training order, whatever order its keys came in."""
        names = self.feature_names
        return np.array([[row[name] for name in names] for row in rows], dtype=np.float64)

    def predict(self, rows: Sequence[Mapping[str, float]]) -> list[ClassPrediction]:
        probabilities = self._estimator.predict_proba(self.to_matrix(rows))
        return self.postprocess(np.asarray(probabilities, dtype=np.float64))

    def postprocess(self, probabilities: npt.NDArray[np.float64]) -> list[ClassPrediction]:
        """Turn predict_proba's matrix into one labelled prediction per row."""
        classes = self._classes
        best = probabilities.argmax(axis=1).tolist()
        return [
            ClassPrediction(
                label=classes[index],
                probability=row[index],
                probabilities=dict(zip(classes, row, strict=True)),
            )
            for index, row in zip(best, probabilities.tolist(), strict=True)
        ]

    def warm_up(self, example: Mapping[str, float]) -> None:
        """Predict once, so a broken model fails at start-up and not on a user's request."""
        try:
            [prediction] = self.predict([example])
        except Exception as exc:
            raise ArtifactError(
                f"the warm-up prediction of model {self.version} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        total = sum(prediction.probabilities.values())
        if not np.isfinite(total) or abs(total - 1.0) > 1e-6:
            raise ArtifactError(
                f"the warm-up prediction of model {self.version} returned probabilities "
                f"that sum to {total}, not 1"
            )


def available_versions(model_dir: Path) -> list[str]:
    """Versions in ``model_dir`` that hold a metadata file, sorted by name.

    Hidden folders are skipped: training writes into one before renaming it.
    """
    if not model_dir.is_dir():
        return []
    return sorted(
        child.name
        for child in model_dir.iterdir()
        if not child.name.startswith(".") and (child / METADATA_FILE).is_file()
    )


def resolve_artifact_dir(model_dir: Path, version: str | None) -> Path:
    """The folder of the version to serve; with no version, the only one there is."""
    if not model_dir.is_dir():
        raise ArtifactError(
            f"model folder {model_dir} does not exist; run `make train` to create it "
            "or set APP_MODEL_DIR to the folder that holds your artifacts"
        )
    versions = available_versions(model_dir)
    if version is None:
        if not versions:
            raise ArtifactError(
                f"model folder {model_dir} holds no trained model; run `make train`"
            )
        if len(versions) > 1:
            raise ArtifactError(
                f"model folder {model_dir} holds {len(versions)} model versions "
                f"({', '.join(versions)}); set APP_MODEL_VERSION to the one to serve"
            )
        return model_dir / versions[0]
    directory = model_dir / version
    if not directory.is_dir():
        known = f" (it holds {', '.join(versions)})" if versions else ""
        raise ArtifactError(
            f"model version {version} not found: {directory} does not exist{known}; "
            f"run `make train MODEL_VERSION={version}` or fix APP_MODEL_VERSION"
        )
    return directory


def read_metadata(directory: Path) -> ArtifactMetadata:
    path = directory / METADATA_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing; retrain the model with `make train`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from None
    try:
        return ArtifactMetadata.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise ArtifactError(
            f"{path} is not valid artifact metadata ({where}: {first['msg']}); "
            "retrain the model with `make train`"
        ) from None


def check_schema(
    metadata: ArtifactMetadata,
    features: Mapping[str, str],
    class_labels: Sequence[str],
) -> None:
    """Refuse a model trained on other columns or classes than this service's schema."""
    trained = {feature.name: feature.type for feature in metadata.features}
    if list(trained.items()) != list(features.items()):
        missing = [name for name in features if name not in trained]
        extra = [name for name in trained if name not in features]
        if missing or extra:
            difference = f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        else:
            difference = "same names, different order or types"
        raise ArtifactError(
            f"model {metadata.model_version} was trained on features "
            f"{[f'{name}:{kind}' for name, kind in trained.items()]} but the service schema "
            f"expects {[f'{name}:{kind}' for name, kind in features.items()]} ({difference}); "
            "retrain the model or update app/schemas.py"
        )
    if sorted(metadata.classes) != sorted(class_labels):
        raise ArtifactError(
            f"model {metadata.model_version} predicts classes {list(metadata.classes)} "
            f"but the service schema declares {list(class_labels)}; "
            "retrain the model or update app/schemas.py"
        )


def _release(version: str) -> list[str]:
    return re.split(r"[.+]", version)


def check_library_versions(recorded: Mapping[str, str]) -> list[str]:
    """Refuse a model pickled by incompatible libraries; describe harmless differences."""
    notes = []
    for library, parts in COMPATIBLE_VERSION_PARTS.items():
        trained = recorded.get(library)
        if trained is None:
            raise ArtifactError(
                f"metadata.json does not record which {library} version trained the model; "
                "retrain it with `make train`"
            )
        installed = importlib_metadata.version(library)
        if _release(trained)[:parts] != _release(installed)[:parts]:
            raise ArtifactError(
                f"the model was trained with {library} {trained} but {installed} is installed; "
                f"retrain it with `make train` or install {library}=={trained}"
            )
        if trained != installed:
            notes.append(f"model trained with {library} {trained}, running {installed}")
    return notes


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _unpickle(path: Path) -> tuple[Any, list[str]]:
    # The sha256 check before this guards against a damaged or swapped file, not an
    # attacker: loading a pickle runs code, so only load artifacts you trust.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator = joblib.load(path)
        except Exception as exc:
            raise ArtifactError(
                f"{path} cannot be loaded ({type(exc).__name__}: {exc}); "
                "retrain the model with `make train`"
            ) from None
    return estimator, [str(warning.message) for warning in caught]


def load_predictor(
    directory: Path,
    *,
    features: Mapping[str, str],
    class_labels: Sequence[str],
    example: Mapping[str, float],
) -> tuple[Predictor, list[str]]:
    """Verify the artifact in ``directory`` and load it; return it with notes to log.

    Every check that can run without unpickling runs first, so a wrong artifact is
    refused before any of its code is executed.
    """
    metadata = read_metadata(directory)
    check_schema(metadata, features, class_labels)
    notes = check_library_versions(metadata.library_versions)
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"{model_path} is missing; retrain the model with `make train`")
    digest = file_sha256(model_path)
    if digest != metadata.model_sha256:
        raise ArtifactError(
            f"{model_path} has sha256 {digest[:12]}… but metadata.json records "
            f"{metadata.model_sha256[:12]}…: the file changed after training; "
            "retrain with `make train` or restore the original file"
        )
    estimator, warnings_raised = _unpickle(model_path)
    predictor = Predictor(estimator, metadata)
    predictor.warm_up(example)
    return predictor, notes + warnings_raised


def load_service_model(settings: Settings) -> tuple[Predictor, list[str]]:
    """Load the model ``settings`` point at, checked against this service's schema."""
    return load_predictor(
        resolve_artifact_dir(settings.model_dir, settings.model_version),
        features=FEATURE_TYPES,
        class_labels=CLASS_LABELS,
        example=FEATURE_EXAMPLE,
    )
