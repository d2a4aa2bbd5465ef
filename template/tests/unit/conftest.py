"""Data as a user holds it: a DataFrame and a CSV file with one column per feature."""

from pathlib import Path

import pandas as pd
import pytest

from app.schemas import FEATURES, TARGET
from training.data import load_dataset

ROWS = 200


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The project's data as a user would read it from a CSV: one column per feature."""
    dataset = load_dataset()
    table = pd.DataFrame(dataset.rows[:ROWS]).rename(
        columns={feature.name: feature.source_column for feature in FEATURES}
    )
    table[TARGET] = dataset.target[:ROWS]
    return table


@pytest.fixture
def data(frame: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    return path
