"""The documentation keeps up with the template."""

import re

import yaml

from tests.helpers import TEMPLATE_ROOT


def test_every_question_is_documented() -> None:
    questions = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    asked = [
        name
        for name, spec in questions.items()
        if not name.startswith("_") and spec.get("when") is not False
    ]
    reference = (TEMPLATE_ROOT / "docs" / "questions.md").read_text()

    undocumented = [name for name in asked if f"`{name}`" not in reference]

    assert undocumented == []


def test_every_question_explains_itself() -> None:
    questions = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())

    unexplained = [
        name
        for name, spec in questions.items()
        if not name.startswith("_")
        and spec.get("when") is not False
        and len(spec.get("help", "")) < 40
    ]

    assert unexplained == []


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    readme = (TEMPLATE_ROOT / "README.md").read_text()

    first_block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)

    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_test_command_the_readme_gives() -> None:
    ci = (TEMPLATE_ROOT / ".ci" / "run").read_text()

    assert re.search(r"^make test$", ci, re.MULTILINE)
