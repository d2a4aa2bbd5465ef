"""Drift bins and the population stability index."""

import math
import threading
from collections import Counter

import pytest

from app.features import FeatureSpec, encode_rows
from app.model import ClassPrediction, Predictor, ValuePrediction
from app.monitoring.drift import MISSING, BinCounts, DriftBins, DriftTally, psi, reference_shares
from app.monitoring.reference import compute_reference, numeric_reference
from app.schemas import FEATURES
from training.artifact import reference_for
from training.data import load_dataset


def test_identical_shares_have_no_drift() -> None:
    assert psi({"a": 0.5, "b": 0.5}, {"a": 40, "b": 40}) == 0


def test_psi_matches_the_formula_with_empty_bins_floored() -> None:
    reference = {"0": 0.25, "1": 0.25, "2": 0.25, "3": 0.25}

    moved = psi(reference, {"0": 9, "1": 4, "2": 4, "3": 3})
    all_in_one = psi(reference, {"0": 20})

    shares = [0.45, 0.2, 0.2, 0.15]
    assert moved == pytest.approx(sum((s - 0.25) * math.log(s / 0.25) for s in shares))
    assert all_in_one == pytest.approx(
        0.75 * math.log(4) + 3 * (1e-4 - 0.25) * math.log(1e-4 / 0.25)
    )


def test_no_rows_has_no_psi() -> None:
    assert math.isnan(psi({"a": 1.0}, {}))


def test_shares_of_a_signal_add_up_to_one_with_missing_values() -> None:
    reference = numeric_reference([1.0, 2.0, 3.0, 4.0, math.nan])

    shares = reference_shares(reference)

    assert sum(shares.values()) == pytest.approx(1)
    assert shares[MISSING] == pytest.approx(0.2)


def test_binning_the_training_rows_gives_back_the_reference_shares(predictor: Predictor) -> None:
    dataset = load_dataset()
    predictions = predictor.predict(dataset.rows)
    reference = reference_for(predictor, dataset)
    bins = DriftBins(reference, FEATURES)

    counts = Counter(position for row in dataset.rows for position in bins.row_bins(row))

    for position, (feature, name) in enumerate(bins.feature_bins):
        share = counts[position] / len(dataset.rows)
        assert share == pytest.approx(bins.feature_reference[position], abs=1e-5), (feature, name)
    predicted = Counter(bins.prediction_bin(p) for p in predictions)
    for position, expected in enumerate(bins.prediction_reference):
        assert predicted[position] / len(predictions) == pytest.approx(expected, abs=1e-5)


def test_each_row_falls_in_one_bin_per_feature(predictor: Predictor) -> None:
    bins = DriftBins(predictor.metadata.reference, FEATURES)
    row = load_dataset().rows[0]

    positions = bins.row_bins(row)

    assert sorted(bins.feature_bins[p][0] for p in positions) == sorted(f.name for f in FEATURES)


def test_values_beyond_the_training_range_fall_in_the_outer_bins() -> None:
    feature = FeatureSpec(name="x", type="float")
    reference = compute_reference(
        [{"x": float(v)} for v in range(100)], [feature], [float(v) for v in range(100)]
    )
    bins = DriftBins(reference, [feature])

    [low] = bins.row_bins({"x": -1e9})
    [high] = bins.row_bins({"x": 1e9})

    assert bins.feature_bins[low] == ("x", "0")
    assert bins.feature_bins[high] == ("x", str(len(bins.feature_bins) - 1))
    assert bins.prediction_bin(ValuePrediction(value=1e9)) == len(bins.prediction_bins) - 1


def test_an_optional_feature_left_out_counts_as_missing() -> None:
    feature = FeatureSpec(name="x", type="float", optional=True)
    reference = compute_reference(
        [{"x": 1.0}, {"x": None}, {"x": 2.0}, {"x": 3.0}], [feature], [1.0] * 4
    )
    bins = DriftBins(reference, [feature])

    [position] = bins.row_bins({})

    assert bins.feature_bins[position] == ("x", MISSING)
    assert bins.feature_reference[position] == pytest.approx(0.25)


def test_counting_rows_at_once_agrees_with_binning_each_row() -> None:
    features = [
        FeatureSpec(name="x", type="float", optional=True),
        FeatureSpec(name="n", type="integer"),
        FeatureSpec(name="colour", type="categorical", values=("red", "blue"), optional=True),
        FeatureSpec(name="flag", type="boolean"),
    ]
    training: list[dict[str, object]] = [
        {"x": float(v), "n": v % 7, "colour": ("red", "blue")[v % 2], "flag": v % 3 == 0}
        for v in range(100)
    ]
    reference = compute_reference(training, features, [float(v) for v in range(100)])
    bins = DriftBins(reference, features)
    rows: list[dict[str, object]] = [
        *training[::3],
        {"x": None, "n": 3, "flag": True},  # optional features left out
        {"x": math.nan, "n": -50, "colour": None, "flag": False},  # NaN, below every edge
        {"x": 1e12, "n": 10**6, "colour": "blue", "flag": True},  # above every edge
        {"x": 49.0, "n": 3, "colour": "red", "flag": False},  # on an edge: its lower bin
    ]
    predictions = [ValuePrediction(value=float(v)) for v in (-1, 0, 49.5, 99, 1e9)]

    features_counted, predictions_counted = bins.count(rows, predictions)

    assert features_counted == Counter(p for row in rows for p in bins.row_bins(row))
    assert predictions_counted == Counter(bins.prediction_bin(p) for p in predictions)
    assert 0 not in features_counted.values()


def test_counting_class_predictions_needs_a_classifiers_bins() -> None:
    feature = FeatureSpec(name="x", type="float")
    reference = compute_reference([{"x": 1.0}, {"x": 2.0}], [feature], [1.0, 2.0])
    bins = DriftBins(reference, [feature])
    label = ClassPrediction(label="yes", probability=0.9, probabilities={"yes": 0.9, "no": 0.1})

    with pytest.raises(TypeError, match="regressor"):
        bins.count([{"x": 1.0}], [label])


def test_counting_values_needs_a_regressors_bins() -> None:
    feature = FeatureSpec(name="x", type="float")
    rows = [{"x": 1.0}, {"x": 2.0}]
    reference = compute_reference(rows, [feature], ["yes", "no"], classes=["no", "yes"])
    bins = DriftBins(reference, [feature])

    with pytest.raises(TypeError, match="ValuePrediction for a classifier"):
        bins.count([{"x": 1.0}], [ValuePrediction(value=1.0)])


class Delivered:
    """What a tally handed over, summed, and how many times."""

    def __init__(self) -> None:
        self.features: Counter[int] = Counter()
        self.predictions: Counter[int] = Counter()
        self.calls = 0
        self.arrived = threading.Event()

    def __call__(self, features: BinCounts, predictions: BinCounts) -> None:
        assert 0 not in features.values()
        assert 0 not in predictions.values()
        self.features.update(features)
        self.predictions.update(predictions)
        self.calls += 1
        self.arrived.set()


def test_a_tally_hands_over_exactly_what_binning_each_row_counts(predictor: Predictor) -> None:
    bins = DriftBins(predictor.metadata.reference, FEATURES)
    rows = load_dataset().rows[:50]
    predictions = predictor.predict(rows)
    delivered = Delivered()
    tally = DriftTally(bins, delivered, interval=3600)

    for start in range(0, 50, 7):
        chunk = rows[start : start + 7]
        # Some with the matrix the model got, as the prediction routes give them.
        inputs = encode_rows(chunk, FEATURES) if start % 2 else None
        tally.add(chunk, predictions[start : start + 7], inputs)
    assert delivered.calls == 0  # held back until a flush
    tally.flush()
    tally.flush()  # nothing new: nothing handed over

    assert delivered.calls == 1
    assert delivered.features == Counter(p for row in rows for p in bins.row_bins(row))
    assert delivered.predictions == Counter(bins.prediction_bin(p) for p in predictions)


def test_a_tally_hands_over_by_itself_and_its_last_counts_on_close(predictor: Predictor) -> None:
    bins = DriftBins(predictor.metadata.reference, FEATURES)
    rows = load_dataset().rows[:2]
    predictions = predictor.predict(rows)
    delivered = Delivered()
    tally = DriftTally(bins, delivered, interval=0.05)
    tally.start()

    tally.add(rows[:1], predictions[:1])
    assert delivered.arrived.wait(5), "the tally's thread never handed its counts over"
    tally.add(rows[1:], predictions[1:])
    tally.close()

    assert sum(delivered.predictions.values()) == 2
    assert sum(delivered.features.values()) == sum(len(bins.row_bins(row)) for row in rows)


def test_a_tally_whose_hand_over_failed_goes_on_handing_over(predictor: Predictor) -> None:
    bins = DriftBins(predictor.metadata.reference, FEATURES)
    rows = load_dataset().rows[:2]
    predictions = predictor.predict(rows)
    delivered = Delivered()
    failed = threading.Event()

    def fails_once(features: BinCounts, outputs: BinCounts) -> None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("the metrics refused the counts")
        delivered(features, outputs)

    tally = DriftTally(bins, fails_once, interval=0.02)
    tally.start()
    try:
        tally.add(rows[:1], predictions[:1])
        assert failed.wait(5), "the tally's thread never handed its counts over"
        tally.add(rows[1:], predictions[1:])
        assert delivered.arrived.wait(5), "the thread stopped at the failed hand-over"
    finally:
        tally.close()

    # The first row's counts went with the failed call; the second's arrived.
    assert sum(delivered.predictions.values()) == 1
