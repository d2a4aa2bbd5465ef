"""Every answers file in examples/ renders; the Iris one is exactly the defaults."""

from pathlib import Path

import pytest
import yaml

from tests.helpers import TEMPLATE_ROOT, render

EXAMPLES = sorted((TEMPLATE_ROOT / "examples").glob("*.yml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_answers_render(tmp_path: Path, example: Path) -> None:
    answers = yaml.safe_load(example.read_text())

    project = render(tmp_path / "project", **answers)

    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert {key: recorded[key] for key in answers} == answers


def test_there_is_an_example_per_bundled_data_set_and_one_of_your_own() -> None:
    datasets = {yaml.safe_load(path.read_text())["dataset"] for path in EXAMPLES}

    assert datasets == {"iris", "breast_cancer", "diabetes", "churn", "csv"}


def test_iris_example_equals_the_defaults(tmp_path: Path) -> None:
    answers = yaml.safe_load((TEMPLATE_ROOT / "examples" / "iris.yml").read_text())

    from_example = render(tmp_path / "example", **answers)
    from_defaults = render(tmp_path / "defaults")

    for path in from_defaults.rglob("*"):
        if path.is_file() and path.name != ".copier-answers.yml":
            assert (from_example / path.relative_to(from_defaults)).read_text() == path.read_text()
