"""The demo training data: scikit-learn's bundled Iris measurements, nothing downloaded."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_iris

from app.schemas import CLASS_LABELS, FEATURE_TYPES


class TrainingDataError(Exception):
    """The training data does not fit the service's schema."""


@dataclass(frozen=True)
class Dataset:
    features: npt.NDArray[np.float64]
    """One row per example, columns in the schema's feature order."""
    target: npt.NDArray[np.str_]
    target_name: str
    source: str


def load_dataset() -> Dataset:
    """Iris, with columns and classes named as the schema names them, in order."""
    iris = load_iris()
    columns = iris.data.shape[1]
    if len(FEATURE_TYPES) != columns or len(CLASS_LABELS) != len(iris.target_names):
        raise TrainingDataError(
            f"the demo trainer learns from scikit-learn's Iris data ({columns} features, "
            f"{len(iris.target_names)} classes) but the schema has {len(FEATURE_TYPES)} "
            f"features and {len(CLASS_LABELS)} classes; train on your own data instead"
        )
    return Dataset(
        features=np.asarray(iris.data, dtype=np.float64),
        target=np.asarray(CLASS_LABELS)[iris.target],
        target_name="species",
        source="sklearn.datasets.load_iris",
    )
