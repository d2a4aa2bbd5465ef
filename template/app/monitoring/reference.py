"""Reference statistics: how the training data and its predictions were distributed.

Saved in the artifact's metadata when a model is trained or imported, so live
traffic can later be compared against them (population stability index per
feature and for the predictions). Numbers are cut into about ten quantile bins;
categories keep a fraction per value plus an "unseen" bucket, which is 0 in
training by definition and fills up when production sends new values.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from app.features import FeatureSpec, is_missing

BINS = 10
SAMPLE_SIZE = 1000
"""Most training values kept per numeric signal, for the drift report's two-sample test."""


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
        return categorical_reference(texts, ("false", "true"))
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
