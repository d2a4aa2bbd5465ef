"""The drift report judges each feature and the predictions of a window of rows."""

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.model import Predictor
from app.monitoring.drift_report import (
    DriftReport,
    DriftThresholds,
    drift_report,
    format_report,
    write_plots,
)
from app.schemas import FEATURES
from training.data import load_dataset

THRESHOLDS = DriftThresholds(min_rows=500, warning=0.1, page=0.25)
UNTIL = datetime(2026, 1, 2, tzinfo=UTC)
MOVED = next(feature.name for feature in FEATURES if feature.type in ("float", "integer"))


def training_like_rows(count: int) -> list[dict[str, Any]]:
    """``count`` rows drawn from the training data: each feature keeps its reference shares."""
    rows = load_dataset().rows
    return random.Random(7).choices(rows, k=count)


def moved(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with one numeric feature at its training maximum: all in its top bin."""
    highest = max(row[MOVED] for row in load_dataset().rows if row[MOVED] is not None)
    return [{**row, MOVED: highest} for row in rows]


def report_of(
    predictor: Predictor, rows: list[dict[str, Any]], logged: set[str] | None = None
) -> DriftReport:
    outputs = [prediction._asdict() for prediction in predictor.predict(rows)]
    window = [
        ({k: v for k, v in row.items() if logged is None or k in logged}, output)
        for row, output in zip(rows, outputs, strict=True)
    ]
    return drift_report(
        window,
        model_version=predictor.version,
        reference=predictor.metadata.reference,
        features=predictor.features,
        thresholds=THRESHOLDS,
        since=UNTIL - timedelta(hours=24),
        until=UNTIL,
    )


def test_traffic_like_training_has_not_drifted(predictor: Predictor) -> None:
    report = report_of(predictor, training_like_rows(1000))

    assert report.status == "stable", format_report(report)
    assert report.drifted == []
    assert [signal.name for signal in report.features] == [f.name for f in FEATURES]
    for signal in [*report.features, report.predictions]:
        assert signal.rows == 1000
        assert signal.psi is not None
        assert signal.psi < THRESHOLDS.warning, signal
        assert signal.test is not None
        assert signal.test.p_value > 0.001, signal
        assert sum(b.current for b in signal.bins) == pytest.approx(1, abs=1e-4)
        assert sum(b.reference for b in signal.bins) == pytest.approx(1, abs=1e-3)


def test_exactly_the_moved_feature_is_flagged_with_its_test(predictor: Predictor) -> None:
    report = report_of(predictor, moved(training_like_rows(1000)))

    assert report.drifted == [MOVED], format_report(report)
    signal = next(s for s in report.features if s.name == MOVED)
    assert signal.status == "page"
    assert signal.psi is not None
    assert signal.psi > THRESHOLDS.page
    assert signal.test is not None
    assert signal.test.name == "kolmogorov-smirnov"
    assert signal.test.p_value < 1e-6
    assert signal.bins[-1].current == 1.0
    assert report.status == "page"


def test_categories_are_compared_with_a_chi_square_test(predictor: Predictor) -> None:
    report = report_of(predictor, training_like_rows(1000))

    for signal in report.features:
        feature = next(f for f in FEATURES if f.name == signal.name)
        expected = (
            "chi-square" if feature.type in ("categorical", "boolean") else "kolmogorov-smirnov"
        )
        assert signal.test is not None
        assert signal.test.name == expected
    classifier = bool(predictor.metadata.classes)
    assert report.predictions.kind == ("categorical" if classifier else "numeric")


def test_a_small_window_gives_no_verdict(predictor: Predictor) -> None:
    report = report_of(predictor, moved(training_like_rows(THRESHOLDS.min_rows - 1)))

    assert report.status == "not_enough_data"
    assert report.drifted == []
    assert {signal.status for signal in report.features} == {"not_enough_data"}
    assert "Not enough data: 499 rows, 500 needed." in format_report(report)


def test_features_the_log_leaves_out_are_not_judged(predictor: Predictor) -> None:
    logged = {feature.name for feature in FEATURES if feature.name != MOVED}

    report = report_of(predictor, moved(training_like_rows(1000)), logged)

    assert report.not_logged == [MOVED]
    assert report.drifted == []
    assert MOVED not in [signal.name for signal in report.features]


def test_the_table_lists_every_signal_and_names_the_drifted(predictor: Predictor) -> None:
    table = format_report(report_of(predictor, moved(training_like_rows(1000))))

    for feature in FEATURES:
        assert any(line.startswith(feature.name + " ") for line in table.splitlines()), table
    assert f"Drifted features: {MOVED}." in table
    assert "PAGE" in table


def test_a_plot_is_written_for_each_drifted_signal_only(
    predictor: Predictor, tmp_path: Path
) -> None:
    report = report_of(predictor, moved(training_like_rows(1000)))
    flagged = [s.name for s in [*report.features, report.predictions] if s.status != "stable"]

    written = write_plots(report, tmp_path / "plots")

    assert sorted(path.name for path in written) == sorted(f"drift-{name}.png" for name in flagged)
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
