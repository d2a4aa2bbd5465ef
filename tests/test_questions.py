"""A wrong answer is refused with a message that names the question and the problem."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TEMPLATE_ROOT, literal_constants, render

IRIS = {"name": "sepal_length", "type": "float"}
COLOUR = {"name": "colour", "type": "categorical", "values": ["red", "blue"]}
CSV = {"dataset": "csv"}
BINARY = {"dataset": "breast_cancer"}
REGRESSION = {"dataset": "csv", "task": "regression"}

# (question, wrong answer, what the message says, other answers given with it)
WRONG_ANSWERS: list[tuple[str, object, str, dict[str, object]]] = [
    ("dataset", "mnist", "Invalid choice for 'dataset'", {}),
    ("project_name", "   ", "the project name is empty", {}),
    ("project_name", "!!!", "needs at least one letter or digit", {}),
    ("project_name", "x" * 81, "keep it to 80", {}),
    ("project_slug", "Bad_Slug", 'project slug "Bad_Slug" must be lowercase', {}),
    ("project_slug", "ends-", "not end with a hyphen", {}),
    ("project_slug", "9lives", "start with a letter", {}),
    ("description", "", "the description is empty", {}),
    ("author_name", " ", "the author name is empty", {}),
    ("author_email", "not-an-address", 'author e-mail "not-an-address" is not an address', {}),
    ("author_email", "me@example", 'author e-mail "me@example" is not an address', {}),
    ("author_email", "me @example.com", "is not an address like name@example.com", {}),
    ("author_email", "", 'author e-mail "" is not an address', {}),
    ("repository_url", "github.com/me/svc", 'repository URL "github.com/me/svc" is not', {}),
    ("repository_url", "http://github.com/me/svc", "is not a web address like https://", {}),
    ("repository_url", 'https://github.com/me/"svc', "https, no spaces or quotes", {}),
    ("repository_url", "https://github.com/me/svc\n", "is not a web address", {}),
    ("python_version", "3.9", "Invalid choice for 'python_version'", {}),
    ("python_version", "2.7", "Invalid choice for 'python_version'", {}),
    ("python_version", "3.14", "Invalid choice for 'python_version'", {}),
    ("task", "clustering", "Invalid choice for 'task'", {}),
    ("task", "regression", "the iris data set is for classification; choose dataset csv", {}),
    ("target", " ", "the target is empty", {}),
    (
        "target_unit",
        "a\nb",
        "the target unit must be short text on one line",
        {"dataset": "diabetes"},
    ),
    ("target_min", "zero", 'target_min "zero" is not a number', {"dataset": "diabetes"}),
    ("target_max", "1,5", 'target_max "1,5" is not a number', {"dataset": "diabetes"}),
    ("target_max", "0", "target_max (0) must be above target_min (0)", {"dataset": "diabetes"}),
    (
        "target_max",
        "-5",
        "target_max (-5) must be above target_min (10)",
        {"dataset": "diabetes", "target_min": "10"},
    ),
    # Numbers too large for a float parse as infinity, which no Python file can hold.
    ("target_max", "1e999", "target_max must be a finite number, got 1e999", REGRESSION),
    ("target_min", "-1e999", "target_min must be a finite number, got -1e999", REGRESSION),
    ("target_min", "1" + "0" * 400, "target_min must be a finite number, got 1000", REGRESSION),
    ("features", "sepal_length", "features must be a non-empty YAML list", CSV),
    ("features", [], "features must be a non-empty YAML list", CSV),
    ("features", ["sepal_length"], "feature 1 is not a mapping", CSV),
    ("features", [{"type": "float"}], "feature 1 has no name", CSV),
    (
        "features",
        [{"name": "Sepal Length", "type": "float"}],
        "a name must be lowercase snake_case",
        CSV,
    ),
    ("features", [{"name": "class", "type": "float"}], "reserved by Python or Pydantic", CSV),
    ("features", [{"name": "model_size", "type": "float"}], "reserved by Python or Pydantic", CSV),
    ("features", [{"name": "json", "type": "float"}], "reserved by Python or Pydantic", CSV),
    ("features", [IRIS, IRIS], "feature sepal_length appears twice", CSV),
    ("features", [{**IRIS, "maximum": 3}], "unknown key(s) maximum; allowed: name, type", CSV),
    (
        "features",
        [{**IRIS, "type": "string"}],
        "type must be float, integer, boolean or categorical, not string",
        CSV,
    ),
    ("features", [{**IRIS, "min": "low"}], "min must be a number, not low", CSV),
    ("features", [{**IRIS, "max": True}], "max must be a number, not True", CSV),
    ("features", [{**IRIS, "min": float("nan")}], "min must be a finite number, not nan", CSV),
    ("features", [{**IRIS, "min": float("-inf")}], "min must be a finite number, not -inf", CSV),
    ("features", [{**IRIS, "max": float("inf")}], "max must be a finite number, not inf", CSV),
    ("features", [{**IRIS, "example": float("nan")}], "example must be a finite number", CSV),
    ("features", [{**IRIS, "max": 10**400}], "max must be a finite number, not 1000", CSV),
    ("features", [{**IRIS, "min": 1e16}], "min 1e+16 is beyond 10^15, the bound", CSV),
    (
        "features",
        [{**IRIS, "max": 5, "example": -2e15}],
        "example -2000000000000000.0 is beyond 10^15",
        CSV,
    ),
    ("features", "[{name: x, type: float, min: .nan}]", "min must be a finite number", CSV),
    ("features", "[{name: x, type: float, max: .inf}]", "max must be a finite number", CSV),
    (
        "features",
        [{"name": "age", "type": "integer", "min": float("nan")}],
        "feature age: min must be a finite number, not nan",
        CSV,
    ),
    (
        "features",
        [{"name": "age", "type": "integer", "example": 3.5}],
        "example must be a whole number",
        CSV,
    ),
    ("features", [{**IRIS, "min": 5, "max": 5}], "min (5) must be below max (5)", CSV),
    ("features", [{**IRIS, "min": 0, "example": -1}], "example -1 is below min 0", CSV),
    ("features", [{**IRIS, "max": 10, "example": 11}], "example 11 is above max 10", CSV),
    ("features", [{**IRIS, "description": "two\nlines"}], "description must be one line", CSV),
    ("features", [{**IRIS, "unit": 5}], "unit must be short text", CSV),
    (
        "features",
        [{"name": "colour", "type": "categorical"}],
        "is categorical and needs `values`",
        CSV,
    ),
    ("features", [{**COLOUR, "values": []}], "is categorical and needs `values`", CSV),
    ("features", [{**COLOUR, "values": ["red", "red"]}], "values must be distinct", CSV),
    ("features", [{**COLOUR, "values": ["red", 3]}], "every value must be text; quote 3", CSV),
    (
        "features",
        [{**COLOUR, "example": "green"}],
        "example green is not one of its values red, blue",
        CSV,
    ),
    (
        "features",
        [{**COLOUR, "min": 0}],
        "min and max apply to numbers; a categorical feature has none",
        CSV,
    ),
    ("features", [{**IRIS, "values": ["a"]}], "only a categorical feature has `values`", CSV),
    (
        "features",
        [{"name": "fresh", "type": "boolean", "example": "yes"}],
        "example must be true or false",
        CSV,
    ),
    ("features", [{**IRIS, "optional": "sometimes"}], "optional must be true or false", CSV),
    ("features", [{**IRIS, "column": ""}], "column must be the column's name in your data", CSV),
    (
        "features",
        [{"name": "target", "type": "float"}],
        "feature target is also the target (target)",
        CSV,
    ),
    (
        "features",
        [{**IRIS, "column": "species"}],
        "is also the target (species)",
        {"dataset": "csv", "target": "species"},
    ),
    (
        "features",
        [IRIS, {**IRIS, "name": "x"}, {**IRIS, "name": "y"}],
        "the iris data has 4 features, the schema lists 3",
        {},
    ),
    (
        "features",
        [{**IRIS, "name": n, "type": "integer" if n == "d" else "float"} for n in "abcd"],
        "feature d stands for the iris column petal_width, which is float: keep its type",
        {},
    ),
    ("class_labels", ["only"], "at least 2 class labels, got 1", {}),
    ("class_labels", "setosa", "class labels must be a YAML list", {}),
    ("class_labels", ["a", "b", "a"], "class labels must be distinct", {}),
    ("class_labels", ["yes", True], "class label 2 (True) is not text", CSV),
    ("class_labels", ["a", " b"], "class label 2 is empty or has surrounding spaces", CSV),
    (
        "class_labels",
        ["a", "b"],
        "the iris data has 3 classes (setosa, versicolor, virginica), you listed 2",
        {},
    ),
    ("decision_threshold", 0, "must be between 0 and 1 (exclusive), got 0", BINARY),
    ("decision_threshold", 1.5, "must be between 0 and 1 (exclusive), got 1.5", BINARY),
    ("decision_threshold", float("nan"), "between 0 and 1 (exclusive), got nan", BINARY),
    ("decision_threshold", "nan", "between 0 and 1 (exclusive), got nan", BINARY),
    ("workers", 0, "workers must be between 1 and 32, got 0", {}),
    ("workers", 33, "workers must be between 1 and 32, got 33", {}),
    ("workers", 10000, "workers must be between 1 and 32, got 10000", {}),
    ("workers", -1, "workers must be between 1 and 32, got -1", {}),
    ("latency_p95_ms", 0, "the latency target must be between 1 and 60000 milliseconds", {}),
    ("max_error_rate_pct", -0.5, "max_error_rate_pct must be a percentage between 0 and 100", {}),
    ("max_error_rate_pct", 101, "between 0 and 100, got 101", {}),
    ("max_error_rate_pct", float("nan"), "between 0 and 100, got nan", {}),
    ("max_error_rate_pct", "nan", "between 0 and 100, got nan", {}),
    ("loadtest_users", 0, "loadtest_users must be between 1 and 1000 simulated clients, got 0", {}),
    ("loadtest_users", 1001, "loadtest_users must be between 1 and 1000", {}),
    ("loadtest_seconds", 4, "loadtest_seconds must be between 5 and 3600 seconds, got 4", {}),
    ("loadtest_seconds", 3601, "loadtest_seconds must be between 5 and 3600 seconds", {}),
    ("monitoring", "datadog", "Invalid choice for 'monitoring'", {}),
    ("monitoring", "Prometheus", "Invalid choice for 'monitoring'", {}),
    ("monitoring", "", "Invalid choice for 'monitoring'", {}),
    ("auth", "password", "Invalid choice for 'auth'", {}),
    ("auth", "API_KEY", "Invalid choice for 'auth'", {}),
    ("model_version", "../1.0", 'model version "../1.0" must be', {}),
    ("model_version", "1 0", 'model version "1 0" must be', {}),
    # A YAML block scalar (`name: |`) ends in a line break, which a pattern ending in $
    # lets through: it would break the line of code or TOML the answer lands on.
    ("project_slug", "my-svc\n", "must be lowercase letters, digits and single hyphens", {}),
    ("author_name", "Ada\nLovelace", "the author name must fit on one line", {}),
    ("author_email", "a@b.co\n", "is not an address like name@example.com", {}),
    ("author_email", "a\nb@c.co", "is not an address like name@example.com", {}),
    ("features", [{"name": "abc\n", "type": "float"}], "must be lowercase snake_case", CSV),
    ("model_version", "1.0.0\n", "must be 1-64 letters, digits, dots", {}),
]


@pytest.mark.parametrize(
    ("question", "answer", "message", "others"),
    WRONG_ANSWERS,
    ids=[f"{question}-{index}" for index, (question, *_) in enumerate(WRONG_ANSWERS)],
)
def test_wrong_answer_is_refused_naming_the_question(
    tmp_path: Path, question: str, answer: object, message: str, others: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match=rf"'{question}'") as refusal:
        render(tmp_path / "project", **{**others, question: answer})

    assert message in str(refusal.value)
    assert not (tmp_path / "project").exists()  # nothing is left behind


def test_optional_parts_of_a_feature_get_sensible_defaults(tmp_path: Path) -> None:
    project = render(
        tmp_path / "project",
        dataset="csv",
        features=[
            {"name": "height_cm", "type": "float", "min": 100, "max": 220},
            {"name": "age", "type": "integer", "min": 18},
            {"name": "score", "type": "float"},
        ],
    )

    schemas = project / "app" / "schemas.py"
    assert literal_constants(schemas)["FEATURE_EXAMPLE"] == {
        "height_cm": 160.0,
        "age": 18,
        "score": 0.0,
    }
    source = schemas.read_text()
    assert 'description="Height cm",' in source
    assert "ge=100.0,\n            le=220.0,\n" in source
    # No upper bound declared for age, none at all for score: the generic one holds.
    assert "ge=18,\n            le=LARGEST_MAGNITUDE,\n" in source
    assert "ge=-LARGEST_MAGNITUDE,\n            le=LARGEST_MAGNITUDE,\n" in source


def test_example_between_bounds_near_the_float_limit_is_finite(tmp_path: Path) -> None:
    # min + max overflows to infinity; the midpoint example must not.
    project = render(
        tmp_path / "project",
        dataset="csv",
        features=[{"name": "huge", "type": "float", "min": 1.0e308, "max": 1.7e308}],
    )

    assert literal_constants(project / "app" / "schemas.py")["FEATURE_EXAMPLE"] == {
        "huge": 1.35e308
    }


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("workers=.inf", "workers must be a whole number, got inf"),
        ("decision_threshold=1" + "0" * 400, "decision_threshold must be a number, got 1000"),
    ],
    ids=["workers-inf", "decision_threshold-1e400"],
)
def test_render_hook_refuses_a_number_too_large_to_cast_naming_the_question(
    tmp_path: Path, answer: str, message: str
) -> None:
    question = answer.partition("=")[0]
    result = subprocess.run(
        [
            sys.executable,
            str(TEMPLATE_ROOT / "hooks" / "render.py"),
            str(tmp_path / "p"),
            "--defaults",
            "--data",
            "dataset=breast_cancer",
            "--data",
            answer,
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: Validation error for question '{question}': {message}")
    assert not (tmp_path / "p").exists()
