"""Drift: how far live inputs and predictions moved from the reference statistics.

Every input value and every prediction falls in one bin of the reference: a
quantile bin of a number (``"0"`` is the lowest), a category, ``"unseen"`` for a
category training never saw, or ``"missing"`` for an optional feature left out.
Rows are counted per bin as they are predicted; the population stability index
(PSI) compares the shares of a window with the reference shares:

    PSI = sum over bins of (current - reference) * ln(current / reference)

Shares are floored at ``SMOOTHING`` first, so an empty bin adds a large but finite
term instead of an infinite one. Rules of thumb: under 0.1 stable, 0.1 to 0.25 a
moderate shift worth a look, over 0.25 a shift that changes what the model sees.
Where the service exports metrics, its alert rules compute the same number.
"""

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.features import FeatureSpec, is_missing
from app.model import ClassPrediction, Prediction
from app.monitoring.reference import CategoricalReference, NumericReference, Reference

MISSING: Final = "missing"
UNSEEN: Final = "unseen"
SMOOTHING: Final = 1e-4
"""Smallest share a bin counts with, in PSI: an empty bin adds a finite term."""


def reference_shares(reference: NumericReference | CategoricalReference) -> dict[str, float]:
    """Share of the reference rows per bin; the bins of one signal sum to 1."""
    present = 1.0 - reference.missing
    if isinstance(reference, NumericReference):
        shares = {str(index): share * present for index, share in enumerate(reference.fractions)}
    else:
        shares = {value: share * present for value, share in reference.fractions.items()}
        shares[UNSEEN] = reference.unseen * present
    shares[MISSING] = reference.missing
    return shares


def psi(reference: Mapping[str, float], counts: Mapping[str, int]) -> float:
    """Population stability index of ``counts`` (rows per bin) against ``reference`` shares."""
    total = sum(counts.values())
    if not total:
        return math.nan
    index = 0.0
    for name, expected in reference.items():
        actual = max(counts.get(name, 0) / total, SMOOTHING)
        expected = max(expected, SMOOTHING)
        index += (actual - expected) * math.log(actual / expected)
    return index


@dataclass(frozen=True, slots=True)
class _FeaturePlan:
    name: str
    edges: tuple[float, ...] | None
    """Numeric features: the reference bin edges; None for categories and booleans."""
    positions: Mapping[str, int]
    """Categories and booleans: the position of each known value's bin."""
    first: int
    missing: int
    """Position of the ``missing`` bin; -1 for a required feature."""


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DriftBins:
    """Which bin each value of a row, and each prediction, falls in.

    ``feature_bins`` lists every (feature, bin) pair once; ``row_bins`` gives,
    for one row, the positions in that list of the bins its values fall in, so a
    metrics backend can keep one counter per position and never build a label
    per request. Only bins that can receive a value are listed: ``missing`` for
    optional features, ``unseen`` for none (the API refuses an unknown category
    before the model sees it; such requests are counted as validation errors).
    """

    def __init__(self, reference: Reference, features: Sequence[FeatureSpec]) -> None:
        self.feature_bins: list[tuple[str, str]] = []
        self.feature_reference: list[float] = []
        plans = []
        for feature in features:
            statistics = reference.features[feature.name]
            shares = reference_shares(statistics)
            first = len(self.feature_bins)
            names = [name for name in shares if name not in (MISSING, UNSEEN)]
            if feature.optional:
                names.append(MISSING)
            for name in names:
                self.feature_bins.append((feature.name, name))
                self.feature_reference.append(shares[name])
            plans.append(
                _FeaturePlan(
                    name=feature.name,
                    edges=statistics.edges if isinstance(statistics, NumericReference) else None,
                    positions={name: first + offset for offset, name in enumerate(names)},
                    first=first,
                    missing=first + names.index(MISSING) if feature.optional else -1,
                )
            )
        self._plans = tuple(plans)
        predictions = reference.predictions
        shares = reference_shares(predictions)
        self.prediction_bins = [name for name in shares if name not in (MISSING, UNSEEN)]
        self.prediction_reference = [shares[name] for name in self.prediction_bins]
        self._prediction_edges = (
            predictions.edges if isinstance(predictions, NumericReference) else None
        )
        self._prediction_positions = {name: i for i, name in enumerate(self.prediction_bins)}

    def row_bins(self, row: Mapping[str, Any]) -> list[int]:
        """Positions in ``feature_bins`` of the bins the values of ``row`` fall in."""
        positions = []
        for plan in self._plans:
            value = row.get(plan.name)
            if value is None or is_missing(value):
                positions.append(plan.missing)
            elif plan.edges is not None:
                positions.append(plan.first + bisect_left(plan.edges, value))
            else:
                positions.append(plan.positions.get(_text(value), -1))
        return [position for position in positions if position >= 0]

    def count(
        self, rows: Iterable[Mapping[str, Any]], predictions: Iterable[Prediction]
    ) -> tuple[Counter[int], Counter[int]]:
        """How many values fell in each position of ``feature_bins``, and how many
        predictions in each of ``prediction_bins``: one update per bin, not per row."""
        features = Counter(position for row in rows for position in self.row_bins(row))
        outputs = Counter(self.prediction_bin(prediction) for prediction in predictions)
        return features, outputs

    def prediction_bin(self, prediction: Prediction) -> int:
        """Position in ``prediction_bins`` of the bin ``prediction`` falls in."""
        if isinstance(prediction, ClassPrediction):
            return self._prediction_positions[prediction.label]
        assert self._prediction_edges is not None
        return bisect_left(self._prediction_edges, prediction.value)
