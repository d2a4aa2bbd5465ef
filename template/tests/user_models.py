"""Models built the way a user would build them outside this project, to import."""

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from app.schemas import FEATURES, TARGET, TASK

SLOW_SECONDS = 0.5
"""How long a model made ``slow`` takes for each call."""


def estimator_for(task: str) -> LogisticRegression | Ridge:
    return LogisticRegression(max_iter=1000) if task == "classification" else Ridge()


def user_pipeline(task: str = TASK) -> Pipeline:
    """A model as a user might build it: a ColumnTransformer over named DataFrame columns."""
    numbers = [f.source_column for f in FEATURES if f.type != "categorical"]
    categories = [f.source_column for f in FEATURES if f.type == "categorical"]
    parts: list[tuple[str, Pipeline, list[str]]] = []
    if numbers:
        parts.append(("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers))
    if categories:
        encoder = OneHotEncoder(handle_unknown="ignore")
        parts.append(
            (
                "categories",
                make_pipeline(SimpleImputer(strategy="most_frequent"), encoder),
                categories,
            )
        )
    return make_pipeline(ColumnTransformer(parts), estimator_for(task))


def features_of(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[feature.source_column for feature in FEATURES]]


def target_of(frame: pd.DataFrame, task: str = TASK) -> pd.Series:
    if task == TASK:
        return frame[TARGET]
    if TASK == "classification":  # a number standing for each label, for a regressor
        return frame[TARGET].astype("category").cat.codes.astype(float)
    return (frame[TARGET] > frame[TARGET].median()).map({True: "high", False: "low"})


def saved(model: object, tmp_path: Path, name: str = "model.joblib") -> Path:
    path = tmp_path / name
    joblib.dump(model, path)
    return path


Answers = npt.NDArray[np.float64]


class SpoiledModel:
    """A fitted model whose answers go through ``spoil`` first: a model gone wrong, as
    one returning NaN after a division by zero or probabilities that were never normalised."""

    def __init__(self, model: Any, spoil: Callable[[Answers], Answers]) -> None:
        self.model = model
        self.spoil = spoil

    @property
    def classes_(self) -> Any:
        return self.model.classes_

    def predict(self, rows: Any) -> Answers:
        return self.spoil(np.asarray(self.model.predict(rows), dtype=np.float64))

    def predict_proba(self, rows: Any) -> Answers:
        return self.spoil(np.asarray(self.model.predict_proba(rows), dtype=np.float64))


IN_FLIGHT_DIR_VARIABLE = "TESTS_IN_FLIGHT_DIR"
"""When this variable names a folder, a slow model leaves a file there on each call, so
a test can tell when its requests have reached the model."""


def pause(rows: Any) -> Any:
    """Wait SLOW_SECONDS, then hand the rows on unchanged."""
    folder = os.environ.get(IN_FLIGHT_DIR_VARIABLE)
    if folder:
        (Path(folder) / uuid.uuid4().hex).touch()
    time.sleep(SLOW_SECONDS)
    return rows


def slow(model: Pipeline) -> Pipeline:
    """``model`` behind a first step that waits SLOW_SECONDS on every call: a model
    as slow as a large ensemble or a remote feature lookup can be."""
    return Pipeline([("pause", FunctionTransformer(pause)), *model.steps])


def refuse(rows: Any) -> Any:
    """Fail, as a model does on input it cannot handle."""
    raise ValueError(f"this model refuses every row ({len(rows)} given)")


def failing(model: Pipeline) -> Pipeline:
    """``model`` behind a first step that raises on every call."""
    return Pipeline([("refuse", FunctionTransformer(refuse)), *model.steps])
