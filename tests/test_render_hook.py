"""hooks/render.py: the non-interactive way to render, with one-line refusals."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TEMPLATE_ROOT

RENDER = TEMPLATE_ROOT / "hooks" / "render.py"


def render_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RENDER), *arguments], capture_output=True, text=True, check=False
    )


def test_wrong_answer_is_one_line_naming_the_question(tmp_path: Path) -> None:
    result = render_command(str(tmp_path / "p"), "--defaults", "--data", "workers=0")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: Validation error for question 'workers': workers must be between 1 and 32, got 0"
    ]
    assert not (tmp_path / "p").exists()


def test_answer_of_the_wrong_type_is_one_line_naming_the_question(tmp_path: Path) -> None:
    result = render_command(str(tmp_path / "p"), "--defaults", "--data", "workers=two")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: Validation error for question 'workers': workers must be a whole number, got 'two'"
    ]
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(("answer", "shown"), [("1.5", "1.5"), ("true", "True")])
def test_a_fraction_or_a_boolean_is_not_taken_for_a_whole_number(
    tmp_path: Path, answer: str, shown: str
) -> None:
    # int() would have made both a single worker, and the render would have gone on.
    result = render_command(str(tmp_path / "p"), "--defaults", "--data", f"workers={answer}")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: Validation error for question 'workers': workers must be a whole number, "
        f"got {shown}"
    ]
    assert not (tmp_path / "p").exists()


def test_answers_file_and_data_render_a_project(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yml"
    answers.write_text("project_name: Sorting Hat\nworkers: 3\n")

    result = render_command(
        str(tmp_path / "p"), "--defaults", "--data-file", str(answers), "--data", "workers=4"
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p" / "README.md").read_text().startswith("# Sorting Hat\n")
    assert "# WEB_CONCURRENCY=4\n" in (tmp_path / "p" / ".env.example").read_text()
