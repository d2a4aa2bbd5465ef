"""Golden predictions: fixed rows whose predictions must not change unnoticed.

    python -m training.golden    # (re)record tests/contract/golden_predictions.json

It trains the model as `make train` does, into a temporary folder, and records
its answers for a dozen rows of the training data, spread over every class.
tests/unit/test_golden_predictions.py then checks that training still gives the
same answers: a difference is a changed model (new data, new code, new library
versions), to look at and then record on purpose with `make golden-update`.
"""

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from app.model import load_service_model
from app.observability.logging import configure_logging
from app.settings import Settings
from training.data import load_dataset
from training.tabular import Dataset
from training.train import train

GOLDEN_FILE = Path("tests/contract/golden_predictions.json")
ROWS = 12

logger = structlog.stdlib.get_logger("training.golden")


def golden_rows(dataset: Dataset, count: int = ROWS) -> list[dict[str, Any]]:
    """``count`` rows spread evenly over the data; for a classifier, as many of each label."""
    if all(isinstance(label, str) for label in dataset.target):
        by_label: dict[str, list[int]] = {}
        for index, label in enumerate(dataset.target):
            by_label.setdefault(label, []).append(index)
        each = max(1, count // len(by_label))
        chosen = [
            indices[step * len(indices) // each]
            for indices in by_label.values()
            for step in range(min(each, len(indices)))
        ]
    else:
        total = len(dataset.rows)
        chosen = [step * total // count for step in range(min(count, total))]
    return [dataset.rows[index] for index in sorted(set(chosen))]


def record(path: Path = GOLDEN_FILE) -> Path:
    rows = golden_rows(load_dataset())
    with tempfile.TemporaryDirectory() as folder:
        train(Path(folder), "golden")
        predictor, _ = load_service_model(Settings(model_dir=Path(folder), model_version="golden"))
        predictions = [prediction._asdict() for prediction in predictor.predict(rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"rows": rows, "predictions": predictions}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    logger.info("golden predictions recorded", path=str(path), rows=len(rows))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.golden", description=__doc__)
    parser.add_argument("--output", type=Path, default=GOLDEN_FILE)
    args = parser.parse_args(argv)
    configure_logging()
    record(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
