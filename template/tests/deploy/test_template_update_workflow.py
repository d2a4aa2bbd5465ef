"""The scheduled template-update workflow, checked statically as ci.yml is.

It runs unattended once a week with a token that can push: its schedule, its
permissions and what it runs are pinned down here.
"""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.image import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "template-update.yml"
BIN = Path(sys.executable).parent
COPIER_REQUIREMENT = re.compile(r"--from '(copier[^']*)' copier")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    # PyYAML reads the key `on` as True, as YAML 1.1 says.
    document["on"] = document.pop(True)
    return document


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def scripts(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in steps(workflow))


def test_workflow_follows_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", WORKFLOW],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_it_runs_weekly_and_on_demand(workflow: dict[str, Any]) -> None:
    triggers = workflow["on"]
    (schedule,) = triggers["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()

    assert "workflow_dispatch" in triggers
    assert (day, month) == ("*", "*")
    assert weekday.isdigit()
    assert f"{minute}{hour}".isdigit()


def test_its_token_may_only_push_a_branch_and_open_a_pull_request(
    workflow: dict[str, Any],
) -> None:
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert all("permissions" not in job for job in workflow["jobs"].values())


def test_it_checks_out_the_whole_history(workflow: dict[str, Any]) -> None:
    (checkout,) = [
        step for step in steps(workflow) if step.get("uses", "").startswith("actions/checkout@")
    ]

    assert checkout["with"]["fetch-depth"] == 0


def test_it_merges_with_the_make_target_only_when_a_release_is_newer(
    workflow: dict[str, Any],
) -> None:
    check = next(step for step in steps(workflow) if "check-update" in step.get("run", ""))
    update = next(step for step in steps(workflow) if "make template-update" in step.get("run", ""))
    listed = subprocess.run(
        ["make", "help"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout

    assert "--quiet" in check["run"]
    assert update["if"] == f"steps.{check['id']}.outputs.available == 'true'"
    assert "template-update" in {line.split()[0] for line in listed.splitlines() if line.strip()}


def test_it_opens_a_pull_request_and_then_fails_on_conflicts(workflow: dict[str, Any]) -> None:
    names = [step.get("uses", step.get("run", "")) for step in steps(workflow)]
    opened = next(
        n for n, name in enumerate(names) if name.startswith("peter-evans/create-pull-request@")
    )
    failing = steps(workflow)[-1]

    assert opened < len(names) - 1
    assert failing["if"] == "steps.update.outputs.conflicts == 'true'"
    assert "exit 1" in failing["run"]


def test_it_runs_the_copier_the_makefile_runs(workflow: dict[str, Any]) -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()

    assert set(COPIER_REQUIREMENT.findall(scripts(workflow))) == set(
        COPIER_REQUIREMENT.findall(makefile)
    )
    assert len(set(COPIER_REQUIREMENT.findall(makefile))) == 1


def test_every_action_is_pinned_to_a_release(workflow: dict[str, Any]) -> None:
    actions = [step["uses"] for step in steps(workflow) if "uses" in step]
    release = re.compile(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})")

    assert [action for action in actions if not release.fullmatch(action)] == []
