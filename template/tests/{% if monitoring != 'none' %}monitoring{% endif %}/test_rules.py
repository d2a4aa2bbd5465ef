"""Prometheus configuration and alert rules, checked and unit-tested with promtool."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.release_check import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus"
RUNBOOK_SECTIONS = (
    "**What it means.**",
    "**Safe first actions.**",
    "**Confirm the impact.**",
    "**Where to look.**",
    "**When to roll back.**",
)

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian/Ubuntu: apt-get install prometheus; "
    "macOS: brew install prometheus)",
)


def promtool(*arguments: str) -> str:
    result = subprocess.run(
        ["promtool", *arguments], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def alerts() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@needs_promtool
def test_prometheus_configuration_is_valid() -> None:
    output = promtool("check", "config", "prometheus.yml")

    assert "SUCCESS" in output


@needs_promtool
def test_release_check_runs_every_promtool_check(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--only", "promtool"])

    output = capsys.readouterr().out
    assert code == 0, output
    assert "configuration and rules valid, rule tests pass" in output


@needs_promtool
def test_rule_files_are_valid() -> None:
    output = promtool("check", "rules", "rules/recording.yml", "rules/alerts.yml")

    assert output.count("SUCCESS") == 2


@needs_promtool
def test_every_alert_fires_on_bad_traffic_and_stays_quiet_on_good() -> None:
    output = promtool("test", "rules", "tests/rules_test.yml")

    assert "SUCCESS" in output


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not() -> None:
    document = yaml.safe_load((PROMETHEUS / "tests" / "rules_test.yml").read_text())
    checks = [check for test in document["tests"] for check in test.get("alert_rule_test", [])]

    for alert in alerts():
        name = alert["alert"]
        assert any(c["alertname"] == name and c["exp_alerts"] for c in checks), name
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in checks), name


def test_every_alert_explains_itself_and_has_a_complete_runbook() -> None:
    for alert in alerts():
        annotations = alert["annotations"]
        assert annotations["summary"], alert["alert"]
        assert annotations["description"], alert["alert"]
        runbook = PROJECT_ROOT / annotations["runbook_url"]
        assert runbook.is_file(), annotations["runbook_url"]
        text = runbook.read_text()
        assert text.startswith(f"# {alert['alert']}\n")
        missing = [section for section in RUNBOOK_SECTIONS if section not in text]
        assert missing == [], f"{runbook.name} lacks {missing}"
