"""A wrong answer is refused with a message that names the question and the problem."""

from pathlib import Path

import pytest

from tests.helpers import render

IRIS = {"name": "sepal_length", "type": "float"}

WRONG_ANSWERS = [
    ("project_name", "   ", "the project name is empty"),
    ("project_name", "!!!", "needs at least one letter or digit"),
    ("project_name", "x" * 81, "keep it to 80"),
    ("project_slug", "Bad_Slug", 'project slug "Bad_Slug" must be lowercase'),
    ("project_slug", "ends-", "not end with a hyphen"),
    ("project_slug", "9lives", "start with a letter"),
    ("description", "", "the description is empty"),
    ("author_name", " ", "the author name is empty"),
    ("author_email", "not-an-address", 'author e-mail "not-an-address" is not an address'),
    ("python_version", "3.9", "Invalid choice for 'python_version'"),
    ("task", "clustering", "Invalid choice for 'task'"),
    ("task", "regression", "regression serving is not available in this template version yet"),
    ("features", "sepal_length", "features must be a non-empty YAML list"),
    ("features", [], "features must be a non-empty YAML list"),
    ("features", ["sepal_length"], "feature 1 is not a mapping"),
    ("features", [{"type": "float"}], "feature 1 has no name"),
    (
        "features",
        [{"name": "Sepal Length", "type": "float"}],
        "a name must be lowercase snake_case",
    ),
    ("features", [{"name": "class", "type": "float"}], "reserved by Python or Pydantic"),
    ("features", [{"name": "model_size", "type": "float"}], "reserved by Python or Pydantic"),
    ("features", [{"name": "json", "type": "float"}], "reserved by Python or Pydantic"),
    ("features", [IRIS, IRIS], "feature sepal_length appears twice"),
    ("features", [{**IRIS, "maximum": 3}], "unknown key(s) maximum; allowed: name, type"),
    ("features", [{**IRIS, "type": "string"}], "type must be float or integer, not string"),
    ("features", [{**IRIS, "min": "low"}], "min must be a number, not low"),
    ("features", [{**IRIS, "max": True}], "max must be a number, not True"),
    (
        "features",
        [{"name": "age", "type": "integer", "example": 3.5}],
        "example must be a whole number",
    ),
    ("features", [{**IRIS, "min": 5, "max": 5}], "min (5) must be below max (5)"),
    ("features", [{**IRIS, "min": 0, "example": -1}], "example -1 is below min 0"),
    ("features", [{**IRIS, "max": 10, "example": 11}], "example 11 is above max 10"),
    ("features", [{**IRIS, "description": "two\nlines"}], "description must be one line"),
    ("features", [{**IRIS, "unit": 5}], "unit must be short text"),
    ("class_labels", ["only"], "at least 2 class labels, got 1"),
    ("class_labels", "setosa", "class labels must be a YAML list"),
    ("class_labels", ["a", "b", "a"], "class labels must be distinct"),
    ("class_labels", ["yes", True], "class label 2 (True) is not text"),
    ("class_labels", ["a", " b"], "class label 2 is empty or has surrounding spaces"),
    ("workers", 0, "workers must be between 1 and 32, got 0"),
    ("workers", 33, "workers must be between 1 and 32, got 33"),
    ("monitoring", "datadog", "Invalid choice for 'monitoring'"),
    ("model_version", "../1.0", 'model version "../1.0" must be'),
    ("model_version", "1 0", 'model version "1 0" must be'),
]


@pytest.mark.parametrize(
    ("question", "answer", "message"),
    WRONG_ANSWERS,
    ids=[f"{question}-{index}" for index, (question, _, _) in enumerate(WRONG_ANSWERS)],
)
def test_wrong_answer_is_refused_naming_the_question(
    tmp_path: Path, question: str, answer: object, message: str
) -> None:
    with pytest.raises(ValueError, match=rf"'{question}'") as refusal:
        render(tmp_path / "project", **{question: answer})

    assert message in str(refusal.value)
    assert not (tmp_path / "project" / "app").exists()


def test_optional_parts_of_a_feature_get_sensible_defaults(tmp_path: Path) -> None:
    project = render(
        tmp_path / "project",
        features=[
            {"name": "height_cm", "type": "float", "min": 100, "max": 220},
            {"name": "age", "type": "integer", "min": 18},
            {"name": "score", "type": "float"},
        ],
    )

    namespace: dict[str, object] = {}
    exec(compile((project / "app" / "schemas.py").read_text(), "schemas.py", "exec"), namespace)
    assert namespace["FEATURE_EXAMPLE"] == {"height_cm": 160.0, "age": 18, "score": 0.0}
    assert namespace["FEATURE_TYPES"] == {"height_cm": "float", "age": "integer", "score": "float"}
    features = namespace["Features"].model_json_schema()["properties"]  # type: ignore[attr-defined]
    assert features["height_cm"]["description"] == "Height cm"
    assert features["age"]["minimum"] == 18
    assert "maximum" not in features["age"]
