"""docs/MODEL_CARD.md, after Mitchell et al., "Model Cards for Model Reporting" (2019).

The facts (model details, training data, metrics, limitations) come from the
artifact's metadata.json and the request schema, in generated blocks that
``make docs-update`` rewrites. Intended use, out-of-scope uses, ethical
considerations and caveats are the owner's to write: the first version of the
card starts them from the project's description, and later rewrites keep them.
"""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from app.model import COMPATIBLE_VERSION_PARTS, ArtifactMetadata
from app.monitoring.reference import CategoricalReference, NumericReference
from app.schemas import API_DESCRIPTION, API_TITLE, Features
from tools.project_docs.markers import block

METRIC_DEFINITIONS: Final = {
    "accuracy": "Share of rows whose predicted label is the true one (higher is better).",
    "f1_macro": "Harmonic mean of precision and recall, computed per class and averaged "
    "with equal weight for every class (higher is better).",
    "log_loss": "Mean negative log-probability the model gave the true label; rewards "
    "well-calibrated probabilities (lower is better, 0 is perfect).",
    "precision": "Of the rows predicted positive, the share that are positive (higher is better).",
    "recall": "Of the positive rows, the share predicted positive (higher is better).",
    "roc_auc": "Probability that a random positive row scores above a random negative one; "
    "independent of the threshold (0.5 is chance, 1 is perfect).",
    "mae": "Mean absolute error: the average distance between prediction and truth, in the "
    "target's unit (lower is better).",
    "rmse": "Root mean squared error: like MAE, in the target's unit, but large errors weigh "
    "more (lower is better).",
    "r2": "Coefficient of determination: the share of the target's variance the model "
    "explains (1 is perfect, 0 is no better than predicting the mean).",
}
"""What each metric ``training/artifact.py`` records measures."""


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: object) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _range(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return ", ".join(f"`{value}`" for value in schema["enum"])
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is None and high is None:
        return "any" if schema.get("type") != "boolean" else "true, false"
    if low is None or high is None:
        return f"at least {_number(low)}" if high is None else f"at most {_number(high)}"
    return f"{_number(low)} to {_number(high)}"


def feature_properties() -> dict[str, dict[str, Any]]:
    """The JSON schema of each request field, ``null`` alternatives folded in."""
    properties: dict[str, dict[str, Any]] = Features.model_json_schema()["properties"]
    folded = {}
    for name, schema in properties.items():
        choices = [part for part in schema.get("anyOf", []) if part.get("type") != "null"]
        folded[name] = {**schema, **(choices[0] if choices else {})}
    return folded


def task_text(metadata: ArtifactMetadata) -> str:
    if metadata.task == "regression":
        return f"regression: predicts `{metadata.target}`, a number"
    kind = "binary" if len(metadata.classes) == 2 else f"{len(metadata.classes)}-class"
    labels = ", ".join(f"`{label}`" for label in metadata.classes)
    return f"{kind} classification: predicts `{metadata.target}`, one of {labels}"


def details(metadata: ArtifactMetadata) -> str:
    source = metadata.source
    made = (
        "trained by `training/train.py`"
        if source.kind == "trained"
        else "fitted elsewhere, imported with `make import-model`"
    )
    libraries = ", ".join(
        f"{name} {version}" for name, version in metadata.library_versions.items()
    )
    rows = [
        ("Name", API_TITLE),
        ("Model version", f"`{metadata.model_version}` (`artifacts/{metadata.model_version}/`)"),
        ("Task", task_text(metadata)),
        ("Estimator", f"{source.estimator}, {made}"),
        ("Input", f"{len(metadata.features)} features, listed under Training data"),
        ("Trained at", metadata.trained_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("sha256 of model.joblib", f"`{metadata.model_sha256}`"),
        ("Library versions", libraries),
    ]
    return _table(("", ""), rows)


def _observed(reference: NumericReference | CategoricalReference | None) -> tuple[str, str]:
    """The values seen in training, and the share missing."""
    if reference is None:
        return "", ""
    missing = f"{reference.missing:.1%}"
    if isinstance(reference, NumericReference):
        if not reference.sample:
            return "", missing
        return f"{_number(reference.sample[0])} to {_number(reference.sample[-1])}", missing
    common = sorted(reference.fractions.items(), key=lambda item: -item[1])[:3]
    return ", ".join(f"`{value}` {share:.0%}" for value, share in common), missing


def training_data(metadata: ArtifactMetadata) -> str:
    total = metadata.training_rows + metadata.evaluation_rows
    lines = [
        f"- Data set: `{metadata.source.data}`",
        f"- Rows: {total}: {metadata.training_rows} to train on, {metadata.evaluation_rows} "
        f"to evaluate ({metadata.evaluation})",
        f"- sha256 of the training data: `{metadata.training_data_sha256}`",
    ]
    if metadata.source.data.startswith("synthetic"):
        lines.append(
            "- **Synthetic rows**: this model was trained on generated data, not real "
            "observations. Its predictions mean nothing until it is retrained on real data "
            "(`make train DATA=your.csv`)."
        )
    properties = feature_properties()
    rows = []
    for feature in metadata.features:
        schema = properties.get(feature.name, {})
        seen, missing = _observed(metadata.reference.features.get(feature.name))
        rows.append(
            (
                f"`{feature.name}`",
                feature.type + (", optional" if feature.optional else ""),
                schema.get("unit", ""),
                _range(schema),
                seen,
                missing,
                schema.get("description", ""),
            )
        )
    header = ("feature", "type", "unit", "accepted", "seen in training", "missing", "meaning")
    text = "\n".join(lines) + "\n\n" + _table(header, rows)
    predictions = metadata.reference.predictions
    if metadata.task == "classification" and isinstance(predictions, CategoricalReference):
        shares = ", ".join(
            f"`{label}` {predictions.fractions.get(label, 0.0):.1%}" for label in metadata.classes
        )
        text += (
            f"\n\nShare of each predicted label over the {metadata.reference.rows} rows of the "
            f"data set (recorded for drift monitoring): {shares}."
        )
    return text


def metrics(metadata: ArtifactMetadata) -> str:
    text = (
        f"Measured on {metadata.evaluation_rows} rows: {metadata.evaluation}, by the same "
        "code that answers requests.\n\n"
    )
    text += _table(
        ("metric", "value", "definition"),
        (
            (f"`{name}`", _number(value), METRIC_DEFINITIONS.get(name, ""))
            for name, value in metadata.metrics.items()
        ),
    )
    if metadata.decision_threshold is not None and len(metadata.classes) == 2:
        positive = metadata.classes[1]
        text += (
            f"\n\nDecision threshold: `{positive}` is predicted when its probability is at "
            f"least {_number(metadata.decision_threshold)}; precision and recall above are "
            "measured at this threshold. Every response carries the threshold it used."
        )
    return text


def limitations(metadata: ArtifactMetadata, runbooks: bool) -> str:
    scikit_parts = COMPATIBLE_VERSION_PARTS.get("scikit-learn", 2)
    lines = [
        "- Requests with a field outside its accepted range or values, a missing required "
        "field or an unknown one are refused with 422: the model never sees them. Inside "
        "the accepted range, values unlike those seen in training still get an answer, "
        "which is an extrapolation.",
        "- An answer that is not a finite number"
        + (" or lies outside the target's declared range" if metadata.task == "regression" else "")
        + " is refused with 500, never returned.",
        f"- The artifact loads only under the same first {scikit_parts} parts of the "
        "scikit-learn version it was saved with "
        f"({metadata.library_versions.get('scikit-learn', 'unknown')}).",
    ]
    if metadata.source.data.startswith("synthetic"):
        lines.append("- Trained on synthetic rows: its predictions are not evidence of anything.")
    watch = (
        "- Live inputs and predictions drift away from the training data over time: "
        "`GET /v1/drift` and `python -m app drift-report` compare them with the reference "
        "statistics saved with the artifact, and `GET /v1/quality` scores the model on "
        "the outcomes reported to `POST /v1/feedback`"
    )
    lines.append(watch + (" (what to do when they alert: docs/runbooks/)." if runbooks else "."))
    return "\n".join(lines)


def generated_blocks(metadata: ArtifactMetadata, runbooks: bool) -> dict[str, str]:
    return {
        "details": details(metadata),
        "data": training_data(metadata),
        "metrics": metrics(metadata),
        "limitations": limitations(metadata, runbooks),
    }


def model_card(metadata: ArtifactMetadata, *, runbooks: bool) -> str:
    """The whole card as first written: generated blocks and hand sections to edit."""
    parts = generated_blocks(metadata, runbooks)
    description = API_DESCRIPTION.strip().rstrip(".")
    return f"""# Model card: {API_TITLE}

After Mitchell et al., [Model Cards for Model Reporting](https://arxiv.org/abs/1810.03993).
The blocks between `<!-- generated: ... -->` and `<!-- /generated -->` are rewritten
from `artifacts/<version>/metadata.json` and `app/schemas.py` by `make docs-update`;
everything else is yours to edit and is kept. The hand-written sections below start
from the project's description: replace them with what you know.

## Model details

{block("details", parts["details"])}

## Intended use

{description}.

Written for the people and systems that call this service to get that
prediction, one row at a time or in batches, with the fields and ranges of
[SERVICE_CONTRACT.md](SERVICE_CONTRACT.md).

*Edit this section: who uses the predictions, for which decision, and who checks them.*

## Out-of-scope uses

- Rows from a population or a period unlike the training data below.
- Decisions taken on the prediction alone, with nobody to check or contest it.
- Any use the metrics below were not measured for.

*Edit this section: the uses you know to be wrong for this model.*

## Training data

{block("data", parts["data"])}

## Metrics

{block("metrics", parts["metrics"])}

## Limitations

{block("limitations", parts["limitations"])}

## Ethical considerations

Each prediction is an estimate learned from the data above, with the errors the
metrics measure: treat it as decision support for a person who can check it, not as
the decision itself. Where a prediction concerns a person (their health, money, work
or rights), say who may be harmed by a wrong answer, which groups the data under- or
over-represents, and how someone can contest an answer.

*Edit this section: sensitive data in the features, risks to people, and mitigations.*

## Caveats and recommendations

*Add what a user of this model should know that the sections above do not say.*
"""


def card_path(root: Path) -> Path:
    return root / "docs" / "MODEL_CARD.md"
