"""Training data as the schema sees it: rows keyed by feature name, and the target.

``read_csv`` turns a CSV file into that shape and refuses, with a message naming
the column, anything the schema does not allow: a missing column, text in a
number column, a category or label the schema does not list, a missing value in
a feature that is not optional.
"""

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from app.features import FeatureSpec, Task, is_missing

_TRUE = {"true", "yes", "1", "1.0", "y", "t"}
_FALSE = {"false", "no", "0", "0.0", "n", "f"}


class DataError(Exception):
    """The data does not fit the service's schema; the message says where."""


@dataclass(frozen=True)
class Dataset:
    rows: list[dict[str, Any]]
    """One mapping per example, keyed by feature name; a missing value is None."""
    target: list[Any]
    """Class labels (text) or numbers, one per row."""
    source: str
    """Where the data came from, for the artifact's metadata."""

    def sha256(self) -> str:
        """A fingerprint of exactly this data, recorded with the model trained on it."""
        digest = hashlib.sha256()
        for row, target in zip(self.rows, self.target, strict=True):
            digest.update(json.dumps([row, target], sort_keys=True, default=str).encode())
        return digest.hexdigest()


def _examples(values: Sequence[Any]) -> str:
    return ", ".join(repr(value) for value in values[:3])


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _coerce(column: pd.Series, feature: FeatureSpec) -> list[Any]:
    """The column's values as the schema types them, None where missing."""
    name = f"column {feature.source_column!r}"
    values = column.tolist()
    missing = sum(1 for value in values if is_missing(value))
    if missing and not feature.optional:
        raise DataError(
            f"{name} has {missing} missing values but feature {feature.name} "
            "is not optional: fill them, or mark the feature `optional: true`"
        )
    present = [value for value in values if not is_missing(value)]
    if feature.type in ("float", "integer"):
        numbers = [_number(value) for value in present]
        wrong = [value for value, number in zip(present, numbers, strict=True) if number is None]
        if wrong:
            raise DataError(f"{name} should hold numbers but has {_examples(wrong)}")
        if feature.type == "integer":
            fractional = [
                number for number in numbers if number is not None and not number.is_integer()
            ]
            if fractional:
                raise DataError(f"{name} should hold whole numbers but has {_examples(fractional)}")
            return [None if is_missing(value) else int(float(value)) for value in values]
        return [None if is_missing(value) else float(value) for value in values]
    if feature.type == "boolean":
        texts = [str(value).strip().lower() for value in present]
        wrong = [
            value for value, text in zip(present, texts, strict=True) if text not in _TRUE | _FALSE
        ]
        if wrong:
            raise DataError(f"{name} should hold true/false but has {_examples(wrong)}")
        return [
            None if is_missing(value) else str(value).strip().lower() in _TRUE for value in values
        ]
    unknown = sorted({str(value) for value in present} - set(feature.values))
    if unknown:
        raise DataError(
            f"{name} has values {unknown[:5]} that feature {feature.name} does not allow "
            f"(its values: {list(feature.values)}); add them to the schema or clean the data"
        )
    return [None if is_missing(value) else str(value) for value in values]


def _target(column: pd.Series, name: str, task: Task, class_labels: Sequence[str]) -> list[Any]:
    if column.isna().any():
        raise DataError(f"target column {name!r} has {int(column.isna().sum())} missing values")
    if task == "regression":
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers.isna().any() or not all(math.isfinite(value) for value in numbers):
            raise DataError(
                f"target column {name!r} should hold numbers but has {_examples(column.tolist())}"
            )
        return [float(value) for value in numbers]
    labels = [
        str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        for value in column
    ]
    unknown = sorted(set(labels) - set(class_labels))
    if unknown:
        raise DataError(
            f"target column {name!r} has labels {unknown[:5]} that are not class labels of "
            f"the schema ({list(class_labels)})"
        )
    return labels


def from_frame(
    frame: pd.DataFrame,
    features: Sequence[FeatureSpec],
    *,
    target: str,
    task: Task,
    class_labels: Sequence[str],
    source: str,
) -> Dataset:
    """Check ``frame`` against the schema and convert it; raise ``DataError`` if it does not fit."""
    missing = [f.source_column for f in features if f.source_column not in frame.columns]
    if target not in frame.columns:
        missing.append(target)
    if missing:
        raise DataError(f"{source} lacks column(s) {missing}; it has {list(frame.columns)[:12]}")
    if frame.empty:
        raise DataError(f"{source} holds no rows")
    columns = {f.name: _coerce(frame[f.source_column], f) for f in features}
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    return Dataset(
        rows=rows, target=_target(frame[target], target, task, class_labels), source=source
    )


def read_csv(
    path: Path,
    features: Sequence[FeatureSpec],
    *,
    target: str,
    task: Task,
    class_labels: Sequence[str],
) -> Dataset:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} cannot be read as CSV: {exc}") from None
    return from_frame(
        frame, features, target=target, task=task, class_labels=class_labels, source=str(path)
    )
