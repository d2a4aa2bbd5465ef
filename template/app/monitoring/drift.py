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
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from app.features import FeatureSpec, encode_rows, is_missing
from app.model import ClassPrediction, Prediction, ValuePrediction
from app.monitoring.reference import CategoricalReference, NumericReference, Reference
from app.periodic import Periodic

MISSING: Final = "missing"
UNSEEN: Final = "unseen"
SMOOTHING: Final = 1e-4
"""Smallest share a bin counts with, in PSI: an empty bin adds a finite term."""
TALLY_SECONDS: Final = 1.0
"""How often ``DriftTally`` hands its counts to the metrics: at most this late."""


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


BinCounts = dict[int, int]
"""Rows per position in ``DriftBins.feature_bins`` or ``prediction_bins``; no zeros."""


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
    boolean: bool
    """Encoded as 1.0 and 0.0, binned as ``"true"`` and ``"false"``."""


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DriftBins:
    """Which bin each value of a row, and each prediction, falls in.

    ``feature_bins`` lists every (feature, bin) pair once; ``row_bins`` gives,
    for one row, the positions in that list of the bins its values fall in, so a
    metrics backend can keep one counter per position and never build a label
    per request. ``count`` gives the same for many rows at once, feature by
    feature with NumPy, several times cheaper per row, and ``count_encoded`` for
    rows already encoded by ``encode_rows``. Only bins that can receive a value
    are listed: ``missing`` for optional features, ``unseen`` for none (the
    API refuses an unknown category before the model sees it; such requests are
    counted as validation errors).
    """

    def __init__(self, reference: Reference, features: Sequence[FeatureSpec]) -> None:
        self.features = tuple(features)
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
                    boolean=feature.type == "boolean",
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

    def prediction_bin(self, prediction: Prediction) -> int:
        """Position in ``prediction_bins`` of the bin ``prediction`` falls in."""
        if isinstance(prediction, ClassPrediction):
            return self._prediction_positions[prediction.label]
        if self._prediction_edges is None:
            raise TypeError(f"a {type(prediction).__name__} for a classifier's drift bins")
        return bisect_left(self._prediction_edges, prediction.value)

    def count(
        self, rows: Sequence[Mapping[str, Any]], predictions: Sequence[Prediction]
    ) -> tuple[BinCounts, BinCounts]:
        """Rows per position of ``feature_bins``, and predictions per position of
        ``prediction_bins``: what ``row_bins`` and ``prediction_bin`` give, summed."""
        return self.count_encoded(encode_rows(rows, self.features), predictions)

    def count_encoded(
        self, inputs: npt.NDArray[Any], predictions: Sequence[Prediction]
    ) -> tuple[BinCounts, BinCounts]:
        """What ``count`` gives for the rows ``encode_rows`` turned into ``inputs``."""
        features: Counter[int] = Counter()
        for plan, column in zip(self._plans, inputs.T, strict=True):
            if plan.edges is None:
                for value, rows_with_it in Counter(column.tolist()).items():
                    position = (
                        plan.missing
                        if is_missing(value)
                        else plan.positions.get(_text(bool(value) if plan.boolean else value), -1)
                    )
                    features[position] += rows_with_it
                continue
            # A missing value is NaN, whatever the feature's type.
            numbers = column.astype(np.float64, copy=False)
            present = ~np.isnan(numbers)
            _add_bins(features, plan.first, plan.edges, numbers[present])
            features[plan.missing] += len(numbers) - int(np.count_nonzero(present))
        if self._prediction_edges is None:
            # Rows per label, read in C, then per bin: 0.05 µs a row, where
            # ``prediction_bin`` row by row took 0.16.
            try:
                labels = Counter(map(_LABEL, predictions))
            except AttributeError:
                kind = next(p for p in predictions if not isinstance(p, ClassPrediction))
                raise TypeError(f"a {type(kind).__name__} for a classifier's drift bins") from None
            positions = self._prediction_positions
            outputs = Counter({positions[label]: rows for label, rows in labels.items()})
        else:
            predicted = [p.value for p in predictions if isinstance(p, ValuePrediction)]
            if len(predicted) != len(predictions):
                raise TypeError("a class prediction for a regressor's drift bins")
            outputs = Counter()
            _add_bins(outputs, 0, self._prediction_edges, np.array(predicted, dtype=np.float64))
        return _without_empty(features), _without_empty(outputs)


_LABEL: Final = attrgetter("label")


def _add_bins(
    counts: Counter[int], first: int, edges: tuple[float, ...], values: np.ndarray[Any, Any]
) -> None:
    # searchsorted(side="left") is bisect_left: upper bounds are inclusive.
    per_bin = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    for offset, rows_in_bin in enumerate(per_bin.tolist()):
        counts[first + offset] += rows_in_bin


def _without_empty(counts: Counter[int]) -> BinCounts:
    # Position -1: a missing value of a required feature, which the API refuses.
    return {position: n for position, n in counts.items() if n and position >= 0}


class DriftTally:
    """Rows per drift bin, counted in bulk and handed over in bulk.

    A row touches one bin per feature. Updating a metric per bin on every request
    is the most expensive thing monitoring would do: where several workers share
    their counters through files, each update is a write to a file, and the 30
    features of the breast-cancer example cost about 36 microseconds a request,
    more than the model call; binning the row alone, value by value, costs 14. So
    ``add`` only keeps the rows and their predictions, and a thread bins what was
    kept, all rows at once (``DriftBins.count_encoded``), and hands the counts to
    ``deliver`` every ``interval`` seconds and when ``flush`` is called (the
    metrics are read, the worker stops). Drift is judged on shares over minutes; a
    count reaches the metrics at most ``interval`` late, and a worker killed
    outright loses at most that much of them.

    Rows come with the matrix ``encode_rows`` made of them for the model, when the
    model takes one: counting from it saves encoding them again, 3 of the 4 µs a
    row of the breast-cancer example costs when counted from its fields.
    """

    def __init__(
        self,
        bins: DriftBins,
        deliver: Callable[[BinCounts, BinCounts], None],
        interval: float = TALLY_SECONDS,
    ) -> None:
        self.bins = bins
        self._deliver = deliver
        self._interval = interval
        self._lock = threading.Lock()
        self._rows: list[Mapping[str, Any]] = []
        self._inputs: list[npt.NDArray[Any]] = []
        self._predictions: list[Prediction] = []
        self._thread: Periodic | None = None

    def start(self) -> None:
        """Hand the counts over every ``interval`` seconds from a thread of the tally's
        own, until ``close``."""
        self._thread = Periodic(
            self.flush, self._interval, name="drift-tally", failure="drift counts not handed over"
        )

    def add(
        self,
        rows: Iterable[Mapping[str, Any]],
        predictions: Iterable[Prediction],
        inputs: npt.NDArray[Any] | None = None,
    ) -> None:
        """Keep ``rows`` and their ``predictions`` to be counted in their bins;
        ``inputs``, when given, are the rows as ``encode_rows`` gave them."""
        with self._lock:
            if inputs is None:
                self._rows.extend(rows)
            else:
                self._inputs.append(inputs)
            self._predictions.extend(predictions)

    def flush(self) -> None:
        """Count what was added since the last flush and hand it to ``deliver``, now."""
        with self._lock:
            rows, self._rows = self._rows, []
            inputs, self._inputs = self._inputs, []
            predictions, self._predictions = self._predictions, []
        if rows:
            inputs.append(encode_rows(rows, self.bins.features))
        # Rows and their predictions are added together: no rows, nothing to count.
        if not inputs:
            return
        features, outputs = self.bins.count_encoded(np.concatenate(inputs), predictions)
        if features or outputs:
            self._deliver(features, outputs)

    def close(self) -> None:
        """Stop the thread, if started, and hand over the last counts."""
        if self._thread is not None:
            self._thread.close()
            self._thread = None
        self.flush()
