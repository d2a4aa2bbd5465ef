"""Propose the answers for your own CSV: task, target, class labels and the feature schema.

    python hooks/infer_schema.py data.csv --target COLUMN > answers.yml
    copier copy --data-file answers.yml <template> my-service

Each column other than the target becomes a feature: `boolean` when it only holds
true/false or yes/no, `integer` or `float` when it only holds numbers (with
bounds that leave a margin around the values seen), `categorical` when it holds
a few distinct texts, and `optional` when some values are missing. Names are
turned into snake_case; the CSV's spelling is kept in `column` when it differs.
The task is classification when the target holds text or a few whole numbers,
regression otherwise. Read the result before using it: it is a proposal.

Only the standard library is used, so any Python 3.11+ runs it.
"""

import argparse
import csv
import json
import keyword
import math
import re
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MISSING = {"", "na", "n/a", "nan", "null", "none"}
TRUE, FALSE = {"true", "yes", "y", "t"}, {"false", "no", "n", "f"}
RESERVED = {
    "construct", "copy", "dict", "fields", "from_orm", "json", "parse_file", "parse_obj",
    "parse_raw", "schema", "schema_json", "update_forward_refs", "validate",
}  # fmt: skip
MAX_LABELS = 50


class InferenceError(Exception):
    """The CSV cannot be turned into a schema; the message says why."""


def snake_case(header: str) -> str:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", header.strip())
    name = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "column"
    if name[0].isdigit():
        name = f"f_{name}"
    # After lowercasing: `None`, `True` and `False` are keywords only as written, and
    # the template refuses them in any case.
    reserved = keyword.iskeyword(name) or keyword.iskeyword(name.capitalize())
    if reserved or name in RESERVED or name.startswith("model_"):
        name = f"{name.removeprefix('model_')}_value"
    return name[:64]


def number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def whole(values: Sequence[float]) -> bool:
    return all(value.is_integer() for value in values)


def nice(value: float, direction: int) -> float:
    """``value`` rounded outwards (direction -1 down, +1 up) to 3 significant digits."""
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = (math.floor if direction < 0 else math.ceil)(value / scale) * scale
    return float(f"{rounded:.12g}")


def numeric_feature(values: list[float], integer: bool, margin: float) -> dict[str, Any]:
    low, high = min(values), max(values)
    span = (high - low) or abs(high) or 1.0
    lower, upper = low - margin * span, high + margin * span
    if low >= 0:
        lower = max(lower, 0.0)
    middle = statistics.median(values)
    if integer:
        return {
            "type": "integer",
            "min": math.floor(lower),
            "max": math.ceil(upper),
            "example": round(middle),
        }
    return {
        "type": "float",
        "min": nice(lower, -1),
        "max": nice(upper, 1),
        "example": float(f"{middle:.4g}"),
    }


def infer_feature(
    header: str, texts: list[str], margin: float, max_categories: int
) -> dict[str, Any] | str:
    """The feature proposed for a column, or why the column is left out."""
    present = [text.strip() for text in texts if text.strip().lower() not in MISSING]
    if not present:
        return f"column {header!r} is empty"
    lowered = {text.lower() for text in present}
    if lowered <= TRUE | FALSE and lowered & TRUE and lowered & FALSE:
        counts = Counter(text.lower() in TRUE for text in present)
        feature: dict[str, Any] = {"type": "boolean", "example": counts.most_common(1)[0][0]}
    elif all(number(text) is not None for text in present):
        values = [float(text) for text in present]
        feature = numeric_feature(values, whole(values) and "." not in "".join(present), margin)
    else:
        distinct = Counter(present)
        if len(distinct) > max_categories:
            return (
                f"column {header!r} holds {len(distinct)} distinct texts, too many for a "
                f"categorical feature (at most {max_categories}): encode it, or drop it"
            )
        feature = {
            "type": "categorical",
            "values": sorted(distinct),
            "example": distinct.most_common(1)[0][0],
        }
    if len(present) < len(texts):
        feature["optional"] = True
    return feature


def infer_target(header: str, texts: list[str]) -> dict[str, Any]:
    values = [text.strip() for text in texts]
    if any(value.lower() in MISSING for value in values):
        raise InferenceError(f"target column {header!r} has missing values: drop those rows first")
    distinct = sorted(set(values))
    if len(distinct) < 2:
        raise InferenceError(
            f"target column {header!r} holds a single value ({distinct[0]!r}): "
            "a model needs at least two classes or varying numbers to learn from"
        )
    numbers = [number(value) for value in values]
    numeric = all(value is not None for value in numbers)
    few_whole = numeric and whole([n for n in numbers if n is not None]) and len(distinct) <= 10
    if numeric and not few_whole:
        return {"task": "regression", "target": header}
    if len(distinct) > MAX_LABELS:
        raise InferenceError(
            f"target column {header!r} holds {len(distinct)} distinct labels, more than "
            f"{MAX_LABELS}: is it really a class to predict?"
        )
    # Numbers in numeric order, then text in alphabetical order, which puts
    # 0/no/false before 1/yes/true: a binary target's positive label comes second.
    labels = sorted(distinct, key=lambda label: (number(label) is None, number(label) or 0, label))
    return {"task": "classification", "target": header, "class_labels": labels}


def infer(
    path: Path, target: str, *, margin: float = 0.1, max_categories: int = 20
) -> tuple[dict[str, Any], list[str]]:
    """The proposed answers for ``path``, and notes on columns left out or renamed."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            rows = list(csv.reader(stream))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InferenceError(f"{path} cannot be read as a CSV file: {exc}") from None
    if len(rows) < 3:
        raise InferenceError(f"{path} needs a header row and at least two data rows")
    headers, data = rows[0], [row for row in rows[1:] if any(cell.strip() for cell in row)]
    if target not in headers:
        raise InferenceError(f"{path} has no column {target!r}; its columns are {headers}")
    if len(set(headers)) != len(headers):
        raise InferenceError(f"{path} repeats a column name: {headers}")
    columns = {
        header: [row[i] if i < len(row) else "" for row in data] for i, header in enumerate(headers)
    }
    answers: dict[str, Any] = {"dataset": "csv", **infer_target(target, columns[target])}
    features, notes, names = [], [], set()
    for header in headers:
        if header == target:
            continue
        proposal = infer_feature(header, columns[header], margin, max_categories)
        if isinstance(proposal, str):
            notes.append(f"left out: {proposal}")
            continue
        name = snake_case(header)
        while name in names or name == target:
            name = f"{name}_2"
        names.add(name)
        feature = {"name": name, **proposal}
        if name != header:
            feature["column"] = header
        features.append(feature)
    if not features:
        raise InferenceError(f"no column of {path} besides {target!r} can be a feature")
    answers["features"] = features
    return answers, notes


def to_yaml(answers: dict[str, Any], source: Path) -> str:
    """YAML for copier's --data-file; every scalar is written as JSON, which YAML reads."""
    lines = [
        f"# Proposed by hooks/infer_schema.py from {source}: check every line before use.",
        "# Then: copier copy --data-file <this file> <template> <destination>",
    ]
    for key, value in answers.items():
        if key == "features":
            lines.append("features:")
            for feature in value:
                first = True
                for field, item in feature.items():
                    prefix = "  - " if first else "    "
                    lines.append(f"{prefix}{field}: {json.dumps(item, ensure_ascii=False)}")
                    first = False
        else:
            lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="The answers go to standard output."
    )
    parser.add_argument("csv", type=Path, help="the training data, with a header row")
    parser.add_argument("--target", required=True, help="the column the model predicts")
    parser.add_argument(
        "--margin", type=float, default=0.1, help="bounds margin, as a share of the range"
    )
    parser.add_argument(
        "--max-categories", type=int, default=20, help="most distinct texts of a categorical"
    )
    args = parser.parse_args(argv)
    try:
        answers, notes = infer(
            args.csv, args.target, margin=args.margin, max_categories=args.max_categories
        )
    except InferenceError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    labels = answers.get("class_labels", [])
    if len(labels) == 2:
        notes.append(
            f"the positive label, the one the decision threshold is about, is {labels[1]!r}"
        )
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    sys.stdout.write(to_yaml(answers, args.csv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
