"""`make loadtest` for real: Locust against the real server, its report and its verdicts.

Each run is a few seconds of a few users, so the figures are rough but real.
"""

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadtest.report import README_END, README_START
from tests.server import (
    PROJECT_ROOT,
    free_port,
    run_module,
    serving,
)


def loadtest(
    *arguments: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m loadtest`` as `make loadtest` does, in the project."""
    return run_module("loadtest", *arguments, env=env)


MODEL_REFUSALS = {"error prediction_out_of_bounds", "error prediction_not_finite"}
"""How the report counts a schema-valid row that the model answers with NaN or outside its
declared range: the service refuses the answer with a 500 (README, Outputs). Rows drawn
anywhere within a regressor's input bounds can get such answers from a linear model."""


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


def table_row(report: str, label: str) -> list[str]:
    """The cells after the first of the Markdown table row starting with ``label``."""
    row = next(line for line in report.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in row.strip("|").split("|")][1:]


def status_rows(report: str) -> list[list[str]]:
    """Rows of the table of answers by status: status, requests, count, share, counted as."""
    lines = report.splitlines()
    start = lines.index("| status | requests | count | share | counted as |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def url(model_dir: Path, model_version: str) -> Iterator[str]:
    with serving(model_dir, model_version) as base_url:
        yield base_url


@dataclass(frozen=True)
class Run:
    result: subprocess.CompletedProcess[str]
    report: str
    readme: str


@pytest.fixture(scope="module")
def passing_run(url: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Two seconds of four users, a fifth of the requests invalid, targets that always pass."""
    folder = tmp_path_factory.mktemp("loadtest")
    readme = folder / "README.md"
    readme.write_text((PROJECT_ROOT / "README.md").read_text())
    result = loadtest(
        "--url", url, "--users", "4", "--seconds", "2", "--invalid-pct", "20",
        "--p95-ms", "10000", "--max-error-rate-pct", "100",
        "--report-dir", folder / "reports", "--readme", readme,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (report,) = (folder / "reports").glob("*.md")
    return Run(result, report.read_text(), readme.read_text())


def test_report_holds_sane_figures_and_met_targets(passing_run: Run, model_version: str) -> None:
    report = passing_run.report

    assert f"model {model_version}:" in report

    count, per_second, p50, p95, p99, unexpected = table_row(report, "all requests")
    assert number(count) > 20
    assert 0 < float(per_second) <= number(count)
    assert 0 < float(p50) <= float(p95) <= float(p99) < 10_000
    errors = [row for row in status_rows(report) if row[4] != "expected"]
    assert {(row[0], row[1]) for row in errors} <= {("500", "valid")}
    assert {row[4] for row in errors} <= MODEL_REFUSALS
    assert number(unexpected) == sum(number(row[2]) for row in errors)
    p95_predict = table_row(report, "`/v1/predict`")[3]
    assert table_row(report, "`/v1/predict` p95 at most 10000 ms") == [
        f"{float(p95_predict):.1f} ms",
        "met",
    ]
    assert table_row(report, "unexpected answers at most 100%")[1] == "met"
    assert "loadtest: every target met: p95 " in passing_run.result.stdout.splitlines()[-1]


def test_report_is_copied_into_the_readme_profile(passing_run: Run) -> None:
    body = passing_run.report.split("\n\n", 1)[1]  # without the title

    assert f"{README_START}\n{body}{README_END}\n" in passing_run.readme
    assert "Not measured yet" not in passing_run.readme


def test_invalid_requests_answered_with_a_4xx_are_expected_not_errors(passing_run: Run) -> None:
    report = passing_run.report

    invalid = [row for row in status_rows(report) if row[1] == "invalid"]
    assert {row[0] for row in invalid} <= {"400", "422"}
    assert {row[4] for row in invalid} == {"expected"}
    requests, *_, unexpected = table_row(report, "invalid requests")
    assert sum(number(row[2]) for row in invalid) == number(requests) > 0
    assert unexpected == "0"


def test_missed_targets_fail_naming_each_and_the_local_server_is_stopped(
    model_dir: Path, model_version: str, tmp_path: Path
) -> None:
    # Without --url it starts the server itself; this one refuses every batch (413).
    env = {
        **os.environ,
        "APP_MODEL_DIR": str(model_dir),
        "APP_MODEL_VERSION": model_version,
        "APP_MAX_BATCH_SIZE": "1",
        "WEB_CONCURRENCY": "1",
        "APP_LOG_FORMAT": "json",
    }

    result = loadtest(
        "--users", "4", "--seconds", "1", "--batch-pct", "50",
        "--p95-ms", "0.001", "--max-error-rate-pct", "1",
        "--report-dir", tmp_path, "--no-readme", env=env,
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert "p95 target: MISSED, /v1/predict p95 " in result.stdout
    assert "is above the 0.001 ms target" in result.stdout
    assert "error-rate target: MISSED" in result.stdout
    assert "status 413 batch_too_large to" in result.stdout
    assert "valid requests), above the 1% target" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("loadtest: target missed: ")
    (report,) = (path.read_text() for path in tmp_path.glob("*.md"))
    assert ["413", "valid"] in [row[:2] for row in status_rows(report)]
    assert {row[4] for row in status_rows(report) if row[0] == "413"} == {"error batch_too_large"}
    assert "a server started as `make run` starts it (1 worker)" in report
    pid = int(result.stderr.split("process ")[1].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped, and reaped


def test_a_wrong_option_is_refused_in_one_line() -> None:
    result = loadtest("--users", "0")

    assert result.returncode == 2
    assert "argument --users: 0 is not between 1 and 10000" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_url_is_reported_in_one_line(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    result = loadtest("--url", nowhere, "--report-dir", tmp_path, "--no-readme")

    assert result.returncode == 1
    assert result.stderr == (
        f"loadtest: nothing answers at {nowhere}: start the service or check --url\n"
    )
