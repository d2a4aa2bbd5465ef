"""The drift report: a window of the prediction log against the reference statistics.

It needs no monitoring stack, only the prediction log and the artifact: `python -m
app drift-report` prints it, GET /v1/drift returns it. For each feature and for
the predictions it gives

- the population stability index (PSI) over the same bins the drift metrics and
  alert rules use, with the same thresholds (APP_DRIFT_PSI_WARNING, _PAGE);
- a two-sample test: Kolmogorov-Smirnov for numbers (live values against the
  training sample kept in the artifact), chi-square for categories and booleans
  (live counts against the training counts), from SciPy;
- the sample sizes; below APP_DRIFT_MIN_ROWS rows every signal says
  ``not_enough_data`` instead of a verdict noise could have made.

The verdict follows the PSI, as the alerts do. A p-value answers "could this be
chance?", which with thousands of rows is "no" even for shifts too small to
matter; the PSI says how large the shift is.
"""

import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select

from app.errors import ServiceError
from app.features import FeatureSpec, is_missing
from app.model import ArtifactMetadata
from app.monitoring.drift import psi, reference_shares
from app.monitoring.prediction_log import (
    batch_rows,
    holds_batches,
    prediction_batches,
    predictions,
)
from app.monitoring.reference import CategoricalReference, NumericReference, Reference
from app.monitoring.text import table
from app.settings import Settings

MAX_ROWS: Final = 200_000
"""Most rows a report reads: the latest ones of a longer window."""

Status = Literal["stable", "warning", "page", "not_enough_data"]
_SEVERITY: Final[dict[str, int]] = {"not_enough_data": 0, "stable": 1, "warning": 2, "page": 3}


class TwoSampleTest(BaseModel):
    name: Literal["kolmogorov-smirnov", "chi-square"]
    statistic: float
    p_value: float = Field(description="Chance of a difference this large between equal samples.")


class BinShare(BaseModel):
    bin: str = Field(description="A value range, a category, or `missing`.")
    reference: float = Field(description="Share of the training rows in this bin.")
    current: float = Field(description="Share of the window's rows in this bin.")


class SignalDrift(BaseModel):
    """How far one feature, or the predictions, moved from the reference."""

    name: str
    kind: Literal["numeric", "categorical"]
    rows: int = Field(description="Rows of the window.")
    reference_rows: int = Field(description="Rows the reference statistics come from.")
    psi: float | None = Field(description="Population stability index; null without rows.")
    test: TwoSampleTest | None = Field(
        description="Null when a sample is empty or holds a single value."
    )
    status: Status
    bins: list[BinShare]


class DriftReport(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    since: datetime
    until: datetime
    rows: int = Field(description="Predictions of this model version in the window.")
    truncated: bool = Field(description=f"True when only the latest {MAX_ROWS} rows were read.")
    min_rows: int = Field(description="Fewest rows for a verdict (APP_DRIFT_MIN_ROWS).")
    psi_warning: float
    psi_page: float
    status: Status = Field(description="The worst status of any signal.")
    drifted: list[str] = Field(description="Features whose PSI reaches the warning threshold.")
    features: list[SignalDrift]
    predictions: SignalDrift
    not_logged: list[str] = Field(
        description="Features the prediction log leaves out (APP_LOG_REDACT): not judged."
    )


class DriftThresholds(BaseModel):
    """When a window is judged, and how: APP_DRIFT_MIN_ROWS, _PSI_WARNING, _PSI_PAGE."""

    min_rows: int
    warning: float
    page: float


def read_window(
    engine: Engine, model_version: str, since: datetime, until: datetime, limit: int = MAX_ROWS
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(features, output) of the primary model's predictions in [since, until), latest
    first, up to ``limit``: one-row predictions and the rows of batches."""
    query = (
        select(predictions.c.created_at, predictions.c.features, predictions.c.output)
        .where(
            predictions.c.model_version == model_version,
            predictions.c.role == "primary",
            predictions.c.created_at >= since,
            predictions.c.created_at < until,
        )
        .order_by(predictions.c.created_at.desc())
        .limit(limit)
    )
    batches = prediction_batches.c
    batched = (
        select(batches.created_at, batches.rows, batches.features, batches.outputs)
        .where(
            batches.model_version == model_version,
            batches.role == "primary",
            batches.created_at >= since,
            batches.created_at < until,
        )
        .order_by(batches.created_at.desc())
        # Each batch holds a row at least: ``limit`` batches hold ``limit`` rows.
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = [(row.created_at, row.features, row.output) for row in connection.execute(query)]
        if holds_batches(connection):
            rows += _rows_of_batches(connection.execute(batched), limit)
    # Stable: a batch's rows keep their order.
    rows.sort(key=lambda row: row[0], reverse=True)
    return [(features, output) for _, features, output in rows[:limit]]


def _rows_of_batches(batches: Iterable[Any], limit: int) -> list[tuple[Any, Any, Any]]:
    """(created_at, features, output) of each row of ``batches``, newest first, until
    ``limit`` rows are read."""
    rows: list[tuple[Any, Any, Any]] = []
    for created_at, count, features, outputs in batches:
        if len(rows) >= limit:
            break
        pairs = zip(batch_rows(features, count), outputs, strict=True)
        rows += [(created_at, *pair) for pair in pairs]
    return rows


def _number(value: float) -> str:
    return f"{value:.4g}"


def _numeric_bin_names(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    names = [f"<= {_number(edges[0])}"]
    names += [f"({_number(low)}, {_number(high)}]" for low, high in pairwise(edges)]
    return [*names, f"> {_number(edges[-1])}"]


def _status(rows: int, index: float | None, thresholds: DriftThresholds) -> Status:
    if rows < thresholds.min_rows or index is None:
        return "not_enough_data"
    if index >= thresholds.page:
        return "page"
    return "warning" if index >= thresholds.warning else "stable"


def _ks(current: Sequence[float], sample: Sequence[float]) -> TwoSampleTest | None:
    if not current or not sample:
        return None
    # Imported here: scipy.stats takes longer to import than the rest of the service
    # together, and only reports need it.
    from scipy import stats

    result = stats.ks_2samp(current, sample)
    return TwoSampleTest(
        name="kolmogorov-smirnov",
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
    )


def _chi_square(current: Sequence[int], reference: Sequence[float]) -> TwoSampleTest | None:
    """Chi-square test of homogeneity: the window's counts against the training counts."""
    table = np.array([reference, current], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]  # a bin empty in both samples says nothing
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return None
    from scipy import stats

    result = stats.chi2_contingency(table, correction=False)
    return TwoSampleTest(
        name="chi-square", statistic=float(result.statistic), p_value=float(result.pvalue)
    )


class _Judge:
    """Turns one signal's live values into a ``SignalDrift``."""

    def __init__(self, rows: int, reference_rows: int, thresholds: DriftThresholds) -> None:
        self.rows = rows
        self.reference_rows = reference_rows
        self.thresholds = thresholds

    def judge(
        self,
        name: str,
        statistics: NumericReference | CategoricalReference,
        values: Sequence[Any],
        *,
        optional: bool,
    ) -> SignalDrift:
        shares = reference_shares(statistics)
        present = [value for value in values if not is_missing(value)]
        counts: dict[str, int] = {}
        if isinstance(statistics, NumericReference):
            names = _numeric_bin_names(statistics.edges)
            keys = [str(index) for index in range(len(names))]
            for value in present:
                key = str(bisect_left(statistics.edges, float(value)))
                counts[key] = counts.get(key, 0) + 1
            test = _ks([float(value) for value in present], statistics.sample)
            kind: Literal["numeric", "categorical"] = "numeric"
        else:
            names = keys = list(statistics.fractions)
            for value in present:
                key = ("true" if value else "false") if isinstance(value, bool) else str(value)
                counts[key] = counts.get(key, 0) + 1
            kind = "categorical"
            test = None
        if optional:
            names, keys = [*names, "missing"], [*keys, "missing"]
            counts["missing"] = len(values) - len(present)
        # The bins the metrics count in, so the PSI here is the alert rules' PSI.
        expected = {key: shares[key] for key in keys}
        if kind == "categorical":
            present_share = sum(expected.values()) or 1.0
            test = _chi_square(
                [counts.get(key, 0) for key in keys],
                [self.reference_rows * expected[key] / present_share for key in keys],
            )
        index = psi(expected, counts) if counts else None
        total = sum(counts.values())
        return SignalDrift(
            name=name,
            kind=kind,
            rows=self.rows,
            reference_rows=self.reference_rows,
            psi=None if index is None or math.isnan(index) else round(index, 6),
            test=test,
            status=_status(self.rows, index, self.thresholds),
            bins=[
                BinShare(
                    bin=label,
                    reference=round(expected[key], 6),
                    current=round(counts.get(key, 0) / total, 6) if total else 0.0,
                )
                for label, key in zip(names, keys, strict=True)
            ],
        )


def drift_report(
    window: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    model_version: str,
    reference: Reference,
    features: Sequence[FeatureSpec],
    thresholds: DriftThresholds,
    since: datetime,
    until: datetime,
    truncated: bool = False,
) -> DriftReport:
    """Judge each feature and the predictions of ``window`` against ``reference``."""
    judge = _Judge(len(window), reference.rows, thresholds)
    logged = set().union(*(row.keys() for row, _ in window)) if window else set()
    judged = [feature for feature in features if not window or feature.name in logged]
    signals = [
        judge.judge(
            feature.name,
            reference.features[feature.name],
            [row.get(feature.name) for row, _ in window],
            optional=feature.optional,
        )
        for feature in judged
    ]
    outputs = [output.get("label", output.get("value")) for _, output in window]
    prediction = judge.judge("prediction", reference.predictions, outputs, optional=False)
    worst = max((s.status for s in [*signals, prediction]), key=_SEVERITY.__getitem__)
    return DriftReport(
        model_version=model_version,
        since=since,
        until=until,
        rows=len(window),
        truncated=truncated,
        min_rows=thresholds.min_rows,
        psi_warning=thresholds.warning,
        psi_page=thresholds.page,
        status=worst,
        drifted=[s.name for s in signals if s.status in ("warning", "page")],
        features=signals,
        predictions=prediction,
        not_logged=[feature.name for feature in features if feature not in judged],
    )


def report_from_log(
    engine: Engine,
    metadata: ArtifactMetadata,
    settings: Settings,
    since: datetime,
    until: datetime,
) -> DriftReport:
    """The drift report of ``metadata``'s model over [since, until) of the prediction log."""
    window = read_window(engine, metadata.model_version, since, until, MAX_ROWS + 1)
    return drift_report(
        window[:MAX_ROWS],
        model_version=metadata.model_version,
        reference=metadata.reference,
        features=metadata.features,
        thresholds=DriftThresholds(
            min_rows=settings.drift_min_rows,
            warning=settings.drift_psi_warning,
            page=settings.drift_psi_page,
        ),
        since=since,
        until=until,
        truncated=len(window) > MAX_ROWS,
    )


def _p_value(test: TwoSampleTest | None) -> str:
    if test is None:
        return "-"
    return "<0.001" if test.p_value < 0.001 else f"{test.p_value:.3f}"


def format_report(report: DriftReport) -> str:
    """The report as a table for a terminal."""
    header = (
        f"Drift of model {report.model_version}, {report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC: {report.rows} predictions "
        f"(a verdict needs {report.min_rows}; PSI warns at {report.psi_warning}, "
        f"pages at {report.psi_page})"
    )
    rows = [("signal", "kind", "rows", "PSI", "test", "statistic", "p-value", "status")]
    for signal in [*report.features, report.predictions]:
        test = signal.test
        rows.append(
            (
                signal.name,
                signal.kind,
                str(signal.rows),
                "-" if signal.psi is None else f"{signal.psi:.3f}",
                {"kolmogorov-smirnov": "KS", "chi-square": "chi2"}[test.name] if test else "-",
                "-" if test is None else f"{test.statistic:.3f}",
                _p_value(test),
                signal.status.upper() if signal.status in ("warning", "page") else signal.status,
            )
        )
    lines = [header, "", *table(rows), ""]
    if report.status == "not_enough_data":
        lines.append(f"Not enough data: {report.rows} rows, {report.min_rows} needed.")
    else:
        lines.append(f"Drifted features: {', '.join(report.drifted) or 'none'}.")
    if report.truncated:
        lines.append(f"Only the latest {MAX_ROWS} predictions of the window were read.")
    if report.not_logged:
        lines.append(f"Not logged, so not judged: {', '.join(report.not_logged)}.")
    return "\n".join(lines) + "\n"


def write_plots(report: DriftReport, folder: Path) -> list[Path]:
    """A PNG per drifted signal: its reference and current share of each bin, side by side.

    Needs matplotlib, a development dependency: plots are drawn where reports are
    read, not in the serving image.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        from matplotlib import pyplot
    except ImportError:
        raise ServiceError(
            "plots need matplotlib, a development dependency: run `uv sync` (not --no-dev)"
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    signals = [*report.features, report.predictions]
    for signal in (s for s in signals if s.status in ("warning", "page")):
        figure, axes = pyplot.subplots(figsize=(max(6.0, 0.6 * len(signal.bins) + 2), 4))
        positions = np.arange(len(signal.bins))
        axes.bar(positions - 0.2, [b.reference for b in signal.bins], 0.4, label="reference")
        axes.bar(positions + 0.2, [b.current for b in signal.bins], 0.4, label="current")
        axes.set_xticks(positions, [b.bin for b in signal.bins], rotation=30, ha="right")
        axes.set_ylabel("share of rows")
        axes.set_title(
            f"{signal.name}: PSI {signal.psi:.3f} ({signal.status}), {signal.rows} rows, "
            f"model {report.model_version}"
        )
        axes.legend()
        figure.tight_layout()
        path = folder / f"drift-{re.sub(r'[^A-Za-z0-9_.-]', '_', signal.name)}.png"
        figure.savefig(path, dpi=100)
        pyplot.close(figure)
        written.append(path)
    return written
