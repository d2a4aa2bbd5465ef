"""Load a trained model artifact, verify it against this service, and predict.

No web framework is imported here: the HTTP layer, the command line, training
and the tests all use the same ``Predictor``.

An artifact is a folder ``<model_dir>/<version>/`` holding ``model.joblib`` and
``metadata.json``, written by ``training/train.py`` or ``training/import_model.py``.
"""

import hashlib
import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import joblib
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from app.errors import ArtifactError, PredictionNotFinite, PredictionOutOfBounds
from app.features import FeatureSpec, InputFormat, Task, encode_rows, rows_to_frame
from app.monitoring.reference import InvalidReference, Reference, check_reference
from app.schemas import (
    CLASS_LABELS,
    DECISION_THRESHOLD,
    FEATURE_EXAMPLE,
    FEATURES,
    TARGET_MAX,
    TARGET_MIN,
    TASK,
)
from app.settings import Settings

MODEL_FILE: Final = "model.joblib"
METADATA_FILE: Final = "metadata.json"

# A pickled estimator is only guaranteed to load under the library versions that
# wrote it (https://scikit-learn.org/stable/model_persistence.html). These many
# leading parts of each version must match; a difference past them is logged.
COMPATIBLE_VERSION_PARTS: Final = {"scikit-learn": 2, "numpy": 1}

# How far a probability may stray from [0, 1], and a row's probabilities from a sum
# of 1, through floating-point rounding alone.
PROBABILITY_TOLERANCE: Final = 1e-6


class ModelSource(BaseModel):
    """Where a model came from."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["trained", "imported"]
    data: str
    estimator: str


class ArtifactMetadata(BaseModel):
    """The content of ``metadata.json``: what the model is and how it was made."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    format_version: Literal[1] = 1
    model_version: str
    task: Task
    target: str
    features: tuple[FeatureSpec, ...]
    classes: tuple[str, ...] = ()
    decision_threshold: float | None = None
    input_format: InputFormat = "array"
    metrics: dict[str, float]
    evaluation: str
    library_versions: dict[str, str]
    trained_at: datetime
    model_sha256: str
    training_data_sha256: str
    training_rows: int
    evaluation_rows: int
    source: ModelSource
    reference: Reference


class ClassPrediction(NamedTuple):
    """A classifier's answer for one row.

    Answers are shared by the response, the prediction log, the observers and the
    shadow, so they cannot change. A named tuple rather than a frozen dataclass: made
    in a third of the time, 0.30 ms for 1,000 rows where the dataclass took 0.87.
    """

    label: str
    probability: float
    probabilities: dict[str, float]
    threshold: float | None = None


class ValuePrediction(NamedTuple):
    """A regressor's answer for one row."""

    value: float


Prediction = ClassPrediction | ValuePrediction
TargetRange = tuple[float | None, float | None]


def _rows(positions: npt.ArrayLike) -> str:
    """Which rows of a call broke a bound, for the error message: "row 3", "rows 0, 4"."""
    indices = np.flatnonzero(positions).tolist()
    shown = ", ".join(str(index) for index in indices[:5])
    more = f" and {len(indices) - 5} more" if len(indices) > 5 else ""
    return f"row{'s' if len(indices) > 1 else ''} {shown}{more}"


class Predictor:
    """A verified model, ready to predict.

    Its answers are checked before they are returned: a number that is not finite
    or outside the declared bounds raises ``PredictionNotFinite`` or
    ``PredictionOutOfBounds`` instead. ``target_range`` is the lowest and highest
    value a regressor may return (``None``: no bound).
    """

    def __init__(
        self,
        estimator: Any,
        metadata: ArtifactMetadata,
        *,
        threshold: float | None = None,
        target_range: TargetRange = (None, None),
    ) -> None:
        self._estimator = estimator
        self.metadata = metadata
        self.target_range = target_range
        self._classes: tuple[str, ...] = ()
        self._labels: tuple[str, ...] = ()
        self._label_order: list[int] = []
        self._label_positions: npt.NDArray[np.intp] = np.empty(0, dtype=np.intp)
        self._positive: int | None = None
        self.threshold: float | None = None
        if metadata.task == "regression":
            if not callable(getattr(estimator, "predict", None)):
                raise ArtifactError(f"the model of version {metadata.model_version} has no predict")
            return
        if not callable(getattr(estimator, "predict_proba", None)):
            raise ArtifactError(
                f"the model of version {metadata.model_version} has no predict_proba, "
                "so it cannot return class probabilities"
            )
        # predict_proba's columns follow estimator.classes_, which scikit-learn sorts;
        # metadata.json keeps the schema's order, where the positive label comes last.
        self._classes = tuple(str(label) for label in getattr(estimator, "classes_", ()))
        if sorted(self._classes) != sorted(metadata.classes):
            raise ArtifactError(
                f"the model predicts classes {list(self._classes)} "
                f"but metadata.json lists {list(metadata.classes)}"
            )
        # Probabilities are reported in the schema's order of the labels: the labels, the
        # model's column of each, and the position among the labels of each column.
        self._labels = tuple(metadata.classes)
        self._label_order = [self._classes.index(label) for label in self._labels]
        self._label_positions = np.argsort(self._label_order)
        if len(self._classes) == 2:
            self._positive = self._classes.index(metadata.classes[-1])
            self.threshold = threshold if threshold is not None else metadata.decision_threshold

    @property
    def version(self) -> str:
        return self.metadata.model_version

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        return self.metadata.features

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        """The rows as the model takes them: in training order, missing values as NaN."""
        if self.metadata.input_format == "frame":
            return rows_to_frame(rows, self.metadata.features)
        return encode_rows(rows, self.metadata.features)

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        return self.predict_encoded(self.encode(rows))

    def predict_encoded(self, model_input: Any) -> list[Prediction]:
        """Predict rows that ``encode`` gave."""
        if self.metadata.task == "regression":
            return self.postprocess_values(np.asarray(self._estimator.predict(model_input)))
        return self.postprocess(np.asarray(self._estimator.predict_proba(model_input)))

    def postprocess(self, probabilities: npt.NDArray[Any]) -> list[Prediction]:
        """Turn predict_proba's matrix into one labelled prediction per row.

        Two classes: the positive one when its probability reaches the threshold.
        More: the most probable one. Every probability must be finite and within
        [0, 1], and each row's must sum to 1; the label is one of the declared
        classes because the constructor checked the model's classes against them.
        """
        matrix = np.asarray(probabilities, dtype=np.float64)
        # Checked whole first, and row by row only to name the rows that fail: a
        # seventh of the time for 1,000 rows.
        if not np.isfinite(matrix).all():
            finite = np.isfinite(matrix).all(axis=1)
            raise PredictionNotFinite(
                f"the model returned a probability that is not a finite number ({_rows(~finite)})"
            )
        tolerance = PROBABILITY_TOLERANCE
        if matrix.size and (matrix.min() < -tolerance or matrix.max() > 1 + tolerance):
            outside = ((matrix < -tolerance) | (matrix > 1 + tolerance)).any(axis=1)
            raise PredictionOutOfBounds(
                f"the model returned a probability outside [0, 1] ({_rows(outside)})"
            )
        totals = matrix.sum(axis=1)
        unbalanced = np.abs(totals - 1) > tolerance
        if unbalanced.any():
            first = float(totals[unbalanced][0])
            raise PredictionOutOfBounds(
                f"the model returned probabilities that sum to {first:.6g}, not 1 "
                f"({_rows(unbalanced)})"
            )
        if self._positive is not None and self.threshold is not None:
            positive = self._positive
            chosen = np.where(matrix[:, positive] >= self.threshold, positive, 1 - positive)
        else:
            chosen = matrix.argmax(axis=1)
        # The columns in the schema's order of the labels, once for all rows: each row's
        # probabilities are then its values under the labels, and its label's one is read
        # at the label's position. The zips are not strict: the positions, the rows and
        # each row's values come from one matrix with a column per label. With their
        # lengths checked again row by row, a dict made by zip where a display can name
        # the two labels, and the checks above made row by row, this method took 1.0 ms
        # for 1,000 rows of two classes, where it takes 0.5.
        labels = self._labels
        ordered = matrix[:, self._label_order].tolist()
        positions = self._label_positions[chosen].tolist()
        threshold = self.threshold
        if len(labels) == 2:
            first_label, second_label = labels
            return [
                ClassPrediction(
                    labels[position],
                    row[position],
                    {first_label: row[0], second_label: row[1]},
                    threshold,
                )
                for position, row in zip(positions, ordered, strict=False)
            ]
        return [
            ClassPrediction(
                labels[position], row[position], dict(zip(labels, row, strict=False)), threshold
            )
            for position, row in zip(positions, ordered, strict=False)
        ]

    def postprocess_values(self, values: npt.NDArray[Any]) -> list[Prediction]:
        """One prediction per value, each finite and within ``target_range``."""
        column = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = np.isfinite(column)
        if not finite.all():
            raise PredictionNotFinite(
                f"the model returned a value that is not a finite number ({_rows(~finite)})"
            )
        lowest, highest = self.target_range
        if lowest is not None and (column < lowest).any():
            below = column < lowest
            raise PredictionOutOfBounds(
                f"the model returned {float(column[below][0]):.6g}, below the lowest value "
                f"the service declares, {lowest:g} ({_rows(below)})"
            )
        if highest is not None and (column > highest).any():
            above = column > highest
            raise PredictionOutOfBounds(
                f"the model returned {float(column[above][0]):.6g}, above the highest value "
                f"the service declares, {highest:g} ({_rows(above)})"
            )
        return [ValuePrediction(value=value) for value in column.tolist()]

    def warm_up(self, example: Mapping[str, Any]) -> None:
        """Predict once, so a broken model fails at start-up and not on a user's request."""
        # The answer is checked like any other: probabilities that do not sum to 1
        # or a value out of bounds stop the start-up here.
        try:
            self.predict([example])
        except Exception as exc:
            raise ArtifactError(
                f"the warm-up prediction of model {self.version} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


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


def resolve_artifact_dir(
    model_dir: Path, version: str | None, *, setting: str = "APP_MODEL_VERSION"
) -> Path:
    """The folder of the version to serve; with no version, the only one there is.

    ``setting`` is the environment variable that chose ``version``, named in errors.
    """
    if not model_dir.is_dir():
        raise ArtifactError(
            f"model folder {model_dir} does not exist; run `make train` to create it "
            "or set APP_MODEL_DIR to the folder that holds your artifacts"
        )
    versions = available_versions(model_dir)
    if version is None:
        if not versions:
            # A version folder without its metadata is no model, but `make train` would
            # not replace it unasked.
            unfinished = sorted(
                child.name
                for child in model_dir.iterdir()
                if child.is_dir() and not child.name.startswith(".")
            )
            if unfinished:
                raise ArtifactError(
                    f"model folder {model_dir} holds no trained model: {unfinished[0]} has "
                    f"no {METADATA_FILE}; restore it, or retrain with `make train FORCE=1`"
                )
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
            f"run `make train MODEL_VERSION={version}` or fix {setting}"
        )
    return directory


def read_metadata(directory: Path) -> ArtifactMetadata:
    """The artifact's metadata, its reference statistics checked against its own
    features and classes."""
    metadata = parse_metadata(directory)
    verify_reference(directory, metadata)
    return metadata


def parse_metadata(directory: Path) -> ArtifactMetadata:
    """The artifact's metadata, each field of the right type; ``read_metadata`` checks more."""
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
        raise invalid_metadata(directory, where, first["msg"]) from None


def verify_reference(directory: Path, metadata: ArtifactMetadata) -> None:
    """Refuse reference statistics that do not cover the features and answers of
    ``metadata``: drift monitoring reads them in every worker and in the drift
    report, long after start-up, and a gap there would crash them instead."""
    try:
        check_reference(metadata.reference, metadata.features, metadata.classes)
    except InvalidReference as exc:
        raise invalid_metadata(directory, f"reference.{exc.where}", exc.message) from None


def invalid_metadata(directory: Path, where: str, problem: str) -> ArtifactError:
    return ArtifactError(
        f"{directory / METADATA_FILE} is not valid artifact metadata ({where}: {problem}); "
        "retrain the model with `make train`"
    )


def _describe(features: Sequence[FeatureSpec]) -> list[str]:
    return [f"{feature.name}:{feature.type}" for feature in features]


def check_schema(
    metadata: ArtifactMetadata,
    task: Task,
    features: Sequence[FeatureSpec],
    class_labels: Sequence[str],
) -> None:
    """Refuse a model made for another task, other columns or other classes."""
    if metadata.task != task:
        raise ArtifactError(
            f"model {metadata.model_version} does {metadata.task} but this service does {task}"
        )
    if tuple(metadata.features) != tuple(features):
        trained = {feature.name for feature in metadata.features}
        expected = {feature.name for feature in features}
        missing, extra = sorted(expected - trained), sorted(trained - expected)
        if missing or extra:
            difference = f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        else:
            difference = "same names, different order, types, values or columns"
        raise ArtifactError(
            f"model {metadata.model_version} was trained on features "
            f"{_describe(metadata.features)} but the service schema expects "
            f"{_describe(features)} ({difference}); retrain the model or update app/schemas.py"
        )
    if sorted(metadata.classes) != sorted(class_labels):
        raise ArtifactError(
            f"model {metadata.model_version} predicts classes {list(metadata.classes)} "
            f"but the service schema declares {list(class_labels)}; "
            "retrain the model or update app/schemas.py"
        )


def release_parts(version: str) -> list[str]:
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
        if not re.match(r"\d", trained):  # a version starts with its release number
            raise ArtifactError(
                f"metadata.json records {library} version {trained!r}, which is no version "
                "number; retrain the model with `make train`"
            )
        installed = importlib_metadata.version(library)
        if release_parts(trained)[:parts] != release_parts(installed)[:parts]:
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


def load_joblib(path: Path) -> tuple[Any, list[Warning | str]]:
    """Unpickle ``path``, returning the warnings it raised instead of printing them.

    Loading a pickle runs code: only load files you trust. Errors propagate.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = joblib.load(path)
    return estimator, [warning.message for warning in caught]


def unpickle(path: Path) -> tuple[Any, list[str]]:
    """Load the artifact's model file, with the warnings it raised as notes to log."""
    # The sha256 check before this guards against a damaged or swapped file, not an
    # attacker: loading a pickle runs code, so only load artifacts you trust.
    try:
        estimator, raised = load_joblib(path)
    except Exception as exc:
        raise ArtifactError(
            f"{path} cannot be loaded ({type(exc).__name__}: {exc}); "
            "retrain the model with `make train`"
        ) from None
    return estimator, [str(message) for message in raised]


def load_predictor(
    directory: Path,
    *,
    task: Task,
    features: Sequence[FeatureSpec],
    class_labels: Sequence[str],
    example: Mapping[str, Any],
    threshold: float | None = None,
    target_range: TargetRange = (None, None),
    warm_up: bool = True,
) -> tuple[Predictor, list[str]]:
    """Verify the artifact in ``directory`` and load it; return it with notes to log.

    Every check that can run without unpickling runs first, so a wrong artifact is
    refused before any of its code is executed.
    """
    metadata = parse_metadata(directory)
    if metadata.model_version != directory.name:
        # The folder is what APP_MODEL_VERSION chooses; answers, logs and metrics name
        # the version in metadata.json: both must say the same.
        raise ArtifactError(
            f"{directory / METADATA_FILE} says model_version {metadata.model_version} but "
            f"its folder is {directory.name}: put the artifact in a folder named after its "
            "version, or retrain it with `make train`"
        )
    check_schema(metadata, task, features, class_labels)
    # After the schema: a model made for other features or classes is told so, not
    # that its statistics do not match them.
    verify_reference(directory, metadata)
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
    estimator, warnings_raised = unpickle(model_path)
    predictor = Predictor(estimator, metadata, threshold=threshold, target_range=target_range)
    if warm_up:
        predictor.warm_up(example)
    return predictor, notes + warnings_raised


def load_service_model(settings: Settings, *, warm_up: bool = True) -> tuple[Predictor, list[str]]:
    """Load the model ``settings`` point at, checked against this service's schema."""
    predictor, notes = load_predictor(
        resolve_artifact_dir(settings.model_dir, settings.model_version),
        task=TASK,
        features=FEATURES,
        class_labels=CLASS_LABELS,
        example=FEATURE_EXAMPLE,
        threshold=settings.decision_threshold or DECISION_THRESHOLD,
        target_range=(TARGET_MIN, TARGET_MAX),
        warm_up=warm_up,
    )
    if predictor.metadata.source.data.startswith("synthetic"):
        notes.append(
            "the model learned from synthetic rows, so its predictions mean nothing: "
            "train it on your data (make train DATA=...)"
        )
    return predictor, notes


def load_shadow_model(
    settings: Settings, *, warm_up: bool = True
) -> tuple[Predictor | None, list[str]]:
    """Load the shadow model ``settings`` name, verified exactly like the primary one.

    None when APP_SHADOW_MODEL_VERSION is unset. Every error names that variable.
    """
    version = settings.shadow_model_version
    if version is None:
        return None, []
    # Settings refuse the version APP_MODEL_VERSION names; left unset, the served
    # version is the only one in the folder, known only once the folder is read.
    served = resolve_artifact_dir(settings.model_dir, settings.model_version)
    try:
        directory = resolve_artifact_dir(
            settings.model_dir, version, setting="APP_SHADOW_MODEL_VERSION"
        )
        if directory == served:
            chosen = (
                f"APP_MODEL_VERSION is unset and it is the only version in {settings.model_dir}"
                if settings.model_version is None
                else "APP_MODEL_VERSION"
            )
            raise ArtifactError(
                f"{version} is the version served ({chosen}): a shadow must be another version"
            )
        return load_predictor(
            directory,
            task=TASK,
            features=FEATURES,
            class_labels=CLASS_LABELS,
            example=FEATURE_EXAMPLE,
            threshold=settings.decision_threshold or DECISION_THRESHOLD,
            warm_up=warm_up,
        )
    except ArtifactError as exc:
        raise ArtifactError(
            f"shadow model (APP_SHADOW_MODEL_VERSION={version}): {exc.message}"
        ) from None
