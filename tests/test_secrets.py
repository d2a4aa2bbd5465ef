"""The template asks for no secret, and keeps any it ever asks out of the answers file.

Copier records every answer in .copier-answers.yml, which is committed with the
project, except those of questions marked ``secret: true`` or listed in
``_secret_questions``, and those never asked (``when: false``).
"""

from pathlib import Path

import pytest
import yaml

from tests.helpers import TEMPLATE_ROOT, render

SECRET_WORDS = ("password", "passwd", "secret", "token", "key", "credential")


def looks_secret(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


@pytest.mark.parametrize("dataset", ["iris", "breast_cancer", "diabetes"])
def test_answers_file_holds_no_secret_looking_answer(tmp_path: Path, dataset: str) -> None:
    project = render(tmp_path / "project", dataset=dataset)

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())

    assert answers["dataset"] == dataset
    assert {name: value for name, value in answers.items() if looks_secret(name) and value} == {}


def recorded(name: str, question: object, secret_questions: set[str]) -> bool:
    """Whether copier writes the answer to question ``name`` to the answers file."""
    if name.startswith("_") or name in secret_questions:
        return False
    if isinstance(question, dict):
        return not (question.get("secret") or question.get("when") is False)
    return True


def test_a_question_that_looks_secret_is_never_recorded() -> None:
    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    secret_questions = set(config.get("_secret_questions", []))

    recorded_secrets = [
        name
        for name, question in config.items()
        if looks_secret(name) and recorded(name, question, secret_questions)
    ]

    assert recorded("dataset", config["dataset"], secret_questions)
    assert recorded_secrets == []
