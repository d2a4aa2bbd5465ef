"""hooks/infer_schema.py proposes answers from a CSV that copier accepts as they are."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import TEMPLATE_ROOT, literal_constants, render

INFER = TEMPLATE_ROOT / "hooks" / "infer_schema.py"

CUSTOMERS = [
    ["Customer Age", "plan", "Monthly Charges", "paperless", "satisfaction", "region", "churned"],
    ["34", "basic", "29.90", "yes", "4.5", "north", "no"],
    ["51", "premium", "89.00", "no", "", "south", "yes"],
    ["23", "basic", "31.50", "yes", "3.0", "", "no"],
    ["45", "family", "59.99", "no", "2.5", "east", "yes"],
    ["62", "premium", "99.00", "yes", "5.0", "north", "no"],
    ["38", "family", "61.20", "no", "", "west", "no"],
]

HOUSES = [
    ["rooms", "area", "year", "price"],
    ["3", "72.5", "1985", "210000.0"],
    ["4", "95.0", "2001", "305500.5"],
    ["2", "48.3", "1962", "149999.0"],
    ["5", "130.0", "2015", "455000.0"],
]


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as stream:
        csv.writer(stream).writerows(rows)
    return path


def infer(csv_path: Path, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(INFER), str(csv_path), "--target", target],
        capture_output=True,
        text=True,
        check=False,
    )


def proposed(csv_path: Path, target: str) -> dict[str, object]:
    result = infer(csv_path, target)
    assert result.returncode == 0, result.stderr
    answers: dict[str, object] = yaml.safe_load(result.stdout)
    return answers


def test_categories_booleans_missing_values_and_odd_names_are_inferred(tmp_path: Path) -> None:
    answers = proposed(write(tmp_path / "customers.csv", CUSTOMERS), "churned")

    assert answers["dataset"] == "csv"
    assert answers["task"] == "classification"
    assert answers["target"] == "churned"
    assert answers["class_labels"] == ["no", "yes"]
    assert answers["features"] == [
        {"name": "customer_age", "type": "integer", "min": 19, "max": 66, "example": 42, "column": "Customer Age"},
        {"name": "plan", "type": "categorical", "values": ["basic", "family", "premium"], "example": "basic"},
        {"name": "monthly_charges", "type": "float", "min": 22.9, "max": 106.0, "example": 60.59, "column": "Monthly Charges"},
        {"name": "paperless", "type": "boolean", "example": True},
        {"name": "satisfaction", "type": "float", "min": 2.25, "max": 5.25, "example": 3.75, "optional": True},
        {"name": "region", "type": "categorical", "values": ["east", "north", "south", "west"], "example": "north", "optional": True},
    ]  # fmt: skip


def test_numbers_make_a_regression_with_margins_around_the_values(tmp_path: Path) -> None:
    answers = proposed(write(tmp_path / "houses.csv", HOUSES), "price")

    assert answers["task"] == "regression"
    assert "class_labels" not in answers
    rooms, area, year = answers["features"]  # type: ignore[misc]
    assert rooms == {"name": "rooms", "type": "integer", "min": 1, "max": 6, "example": 4}
    assert area == {"name": "area", "type": "float", "min": 40.1, "max": 139.0, "example": 83.75}
    assert (year["min"], year["max"]) == (1956, 2021)


@pytest.mark.parametrize(
    ("rows", "target", "data"),
    [(CUSTOMERS, "churned", {}), (HOUSES, "price", {"target_unit": "EUR"})],
    ids=["customers", "houses"],
)
def test_proposed_answers_render_a_project(
    tmp_path: Path, rows: list[list[str]], target: str, data: dict[str, object]
) -> None:
    answers = proposed(write(tmp_path / "data.csv", rows), target)

    project = render(tmp_path / "project", **answers, **data)

    features = literal_constants(project / "app" / "schemas.py")
    assert features["TASK"] == answers["task"]
    assert features["TARGET"] == target


def test_columns_that_cannot_be_features_are_left_out_with_a_note(tmp_path: Path) -> None:
    rows = [["id_text", "score", "label"]] + [[f"row-{i}", str(i), "ab"[i % 2]] for i in range(30)]

    result = infer(write(tmp_path / "ids.csv", rows), "label")

    assert result.returncode == 0
    assert "note: left out: column 'id_text' holds 30 distinct texts" in result.stderr
    assert "the positive label, the one the decision threshold is about, is 'b'" in result.stderr
    assert [f["name"] for f in yaml.safe_load(result.stdout)["features"]] == ["score"]


@pytest.mark.parametrize(
    ("rows", "target", "message"),
    [
        (
            HOUSES,
            "cost",
            "has no column 'cost'; its columns are ['rooms', 'area', 'year', 'price']",
        ),
        ([["a", "b"], ["1", "x"], ["2", "x"]], "b", "holds a single value ('x')"),
        ([["a", "b"], ["1", "x"], ["2", ""]], "b", "target column 'b' has missing values"),
        ([["a", "b"]], "b", "needs a header row and at least two data rows"),
    ],
    ids=["unknown-target", "one-class", "missing-target", "no-rows"],
)
def test_unusable_csv_is_refused_in_one_line(
    tmp_path: Path, rows: list[list[str]], target: str, message: str
) -> None:
    result = infer(write(tmp_path / "bad.csv", rows), target)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert message in line
    assert result.stdout == ""


def test_headers_that_lowercase_to_a_python_constant_are_renamed(tmp_path: Path) -> None:
    # `None`, `True` and `False` are keywords only as written; the template refuses them
    # in lowercase too.
    rows = [["None", "True", "price"], *[[str(i), str(i % 3), str(10 * i)] for i in range(1, 9)]]
    answers = proposed(write(tmp_path / "odd.csv", rows), "price")

    names = [feature["name"] for feature in answers["features"]]  # type: ignore[attr-defined,index]
    assert names == ["none_value", "true_value"]
