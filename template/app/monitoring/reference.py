"""Reference statistics: how the training data and its predictions were distributed.

Saved in the artifact's metadata when a model is trained or imported, so live
traffic can later be compared against them (population stability index per
feature and for the predictions). Numbers are cut into about ten quantile bins;
categories keep a fraction per value plus an "unseen" bucket, which is 0 in
training by definition and fills up when production sends new values.
"""

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from app.features import FeatureSpec, is_missing

BINS = 10
SAMPLE_SIZE = 1000
"""Most training values kept per numeric signal, for the drift report's two-sample test."""
BOOLEAN_CATEGORIES = ("false", "true")
"""The categories a boolean feature is counted in."""


class NumericReference(BaseModel):
    """Bins ``(-inf, edges[0]], (edges[0], edges[1]], ..., (edges[-1], inf)``.

    Upper bounds are inclusive, like the ``le`` buckets of a cumulative histogram.
    """

    model_config = ConfigDict(frozen=True)

    edges: tuple[float, ...]
    fractions: tuple[float, ...]
    missing: float
    sample: tuple[float, ...] = ()
    """Up to ``SAMPLE_SIZE`` of the values, drawn at random and sorted: the drift
    report compares live values with them (Kolmogorov-Smirnov). Like the edges they
    are training data: keep the artifact as private as the data it was made from."""


class CategoricalReference(BaseModel):
    model_config = ConfigDict(frozen=True)

    fractions: dict[str, float]
    unseen: float = 0.0
    missing: float


class Reference(BaseModel):
    """Everything drift monitoring compares live traffic with."""

    model_config = ConfigDict(frozen=True)

    rows: int
    features: dict[str, NumericReference | CategoricalReference]
    predictions: NumericReference | CategoricalReference
    scores: NumericReference | None = None
    """Probability of the positive class (binary) or of the predicted label."""


def numeric_reference(
    values: Sequence[float] | npt.NDArray[Any], bins: int = BINS
) -> NumericReference:
    data = np.asarray([math.nan if is_missing(v) else float(v) for v in values], dtype=np.float64)
    present = data[~np.isnan(data)]
    missing = 1.0 - len(present) / len(data) if len(data) else 0.0
    if not len(present):
        return NumericReference(edges=(), fractions=(1.0,), missing=missing)
    # Each edge is the value at a tenth of the sorted data (integer arithmetic, so
    # exactly), a value the data really holds: repeated values and integers get
    # whole bins instead of edges falling between them.
    ordered = np.sort(present)
    positions = [(step * len(ordered) + bins - 1) // bins - 1 for step in range(1, bins)]
    edges = np.unique(ordered[positions])
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    if len(present) > SAMPLE_SIZE:
        # A fixed seed: retraining on the same data writes the same artifact metadata.
        sample = np.sort(np.random.default_rng(0).choice(present, SAMPLE_SIZE, replace=False))
    else:
        sample = ordered
    return NumericReference(
        edges=tuple(float(edge) for edge in edges),
        fractions=tuple(round(float(c) / len(present), 6) for c in counts),
        missing=round(missing, 6),
        sample=tuple(float(value) for value in sample),
    )


def categorical_reference(
    values: Sequence[object], categories: Sequence[str]
) -> CategoricalReference:
    present = [str(value) for value in values if not is_missing(value)]
    total = len(present) or 1
    return CategoricalReference(
        fractions={category: round(present.count(category) / total, 6) for category in categories},
        unseen=round(sum(1 for value in present if value not in categories) / total, 6),
        missing=round(1.0 - len(present) / len(values), 6) if len(values) else 0.0,
    )


def feature_reference(
    rows: Sequence[Mapping[str, Any]], feature: FeatureSpec
) -> NumericReference | CategoricalReference:
    values = [row.get(feature.name) for row in rows]
    if feature.type == "categorical":
        return categorical_reference(values, feature.values)
    if feature.type == "boolean":
        texts = [None if is_missing(v) else ("true" if v else "false") for v in values]
        return categorical_reference(texts, BOOLEAN_CATEGORIES)
    return numeric_reference(values)  # type: ignore[arg-type]


def compute_reference(
    rows: Sequence[Mapping[str, Any]],
    features: Sequence[FeatureSpec],
    predictions: Sequence[str] | Sequence[float],
    classes: Sequence[str] = (),
    scores: Sequence[float] | None = None,
) -> Reference:
    """Reference statistics of ``rows`` and of the model's ``predictions`` for them."""
    return Reference(
        rows=len(rows),
        features={feature.name: feature_reference(rows, feature) for feature in features},
        predictions=(
            categorical_reference(list(predictions), classes)
            if classes
            else numeric_reference(list(predictions))  # type: ignore[arg-type]
        ),
        scores=numeric_reference(scores) if scores is not None else None,
    )


class InvalidReference(ValueError):
    """Reference statistics drift monitoring cannot use; ``where`` is the field's path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def _share(where: str, value: float) -> None:
    # NaN fails the comparison too.
    if not 0.0 <= value <= 1.0:
        raise InvalidReference(where, f"{value} is not a share from 0 to 1")


def _check_numeric(where: str, statistics: NumericReference) -> None:
    edges = statistics.edges
    if not all(math.isfinite(edge) for edge in edges):
        raise InvalidReference(f"{where}.edges", "every edge must be a finite number")
    # Values are binned by bisection: the edges must rise.
    if any(lower >= upper for lower, upper in pairwise(edges)):
        raise InvalidReference(f"{where}.edges", "the edges must be in increasing order")
    if len(statistics.fractions) != len(edges) + 1:
        raise InvalidReference(
            f"{where}.fractions",
            f"{len(statistics.fractions)} fractions, but {len(edges)} edges make "
            f"{len(edges) + 1} bins",
        )
    for index, fraction in enumerate(statistics.fractions):
        _share(f"{where}.fractions.{index}", fraction)
    _share(f"{where}.missing", statistics.missing)
    if not all(math.isfinite(value) for value in statistics.sample):
        raise InvalidReference(f"{where}.sample", "every value must be a finite number")


def _check_categorical(
    where: str, statistics: CategoricalReference, categories: Sequence[str], of: str
) -> None:
    # A value is counted in its category's bin: one the statistics lack would be
    # missing from every drift figure, or fail the request that predicted it.
    if set(statistics.fractions) != set(categories):
        raise InvalidReference(
            f"{where}.fractions",
            f"categories {list(statistics.fractions)}, not {of} {list(categories)}",
        )
    for category, fraction in statistics.fractions.items():
        _share(f"{where}.fractions.{category}", fraction)
    _share(f"{where}.unseen", statistics.unseen)
    _share(f"{where}.missing", statistics.missing)


def check_reference(
    reference: Reference, features: Sequence[FeatureSpec], classes: Sequence[str]
) -> None:
    """Refuse statistics that do not describe ``features`` and the model's answers
    (its ``classes``; none for a regressor) in the shape the drift code reads.

    Drift monitoring bins every feature and prediction with them in each worker and
    in the drift report: a gap there would crash every worker, or the report, long
    after the artifact was verified. Raises ``InvalidReference``.
    """
    if reference.rows < 0:
        raise InvalidReference("rows", f"{reference.rows} is not a number of rows")
    names = [feature.name for feature in features]
    missing = [name for name in names if name not in reference.features]
    if missing:
        raise InvalidReference("features", f"no statistics for {', '.join(missing)}")
    extra = sorted(set(reference.features) - set(names))
    if extra:
        raise InvalidReference("features", f"statistics for {', '.join(extra)}, not a feature")
    for feature in features:
        where = f"features.{feature.name}"
        statistics = reference.features[feature.name]
        numeric = feature.type in ("float", "integer")
        if numeric != isinstance(statistics, NumericReference):
            kind = "categorical" if numeric else "numeric"
            raise InvalidReference(where, f"{kind} statistics for a {feature.type} feature")
        if isinstance(statistics, NumericReference):
            _check_numeric(where, statistics)
        else:
            categories = feature.values if feature.type == "categorical" else BOOLEAN_CATEGORIES
            _check_categorical(where, statistics, categories, "the feature's values")
    if classes:
        if not isinstance(reference.predictions, CategoricalReference):
            raise InvalidReference("predictions", "numeric statistics for a classifier's labels")
        _check_categorical("predictions", reference.predictions, classes, "the model's classes")
    elif not isinstance(reference.predictions, NumericReference):
        raise InvalidReference("predictions", "categorical statistics for a regressor's values")
    else:
        _check_numeric("predictions", reference.predictions)
    if reference.scores is not None:
        _check_numeric("scores", reference.scores)
