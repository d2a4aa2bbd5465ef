"""The canary, run as after a deploy: `python -m app canary` against a real server."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.commands import Outcome, run_app
from tests.server import (
    PROJECT_ROOT,
    free_port,
    serving,
)

GOLDEN_FILE = PROJECT_ROOT / "tests" / "contract" / "golden_predictions.json"


@pytest.fixture(scope="module")
def service_url(model_dir: Path, model_version: str) -> Iterator[str]:
    """A server started as `make run` starts it, serving the session's model."""
    with serving(model_dir, model_version) as url:
        yield url


@pytest.fixture
def canary(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Runs `python -m app canary` with the given arguments."""
    return lambda *arguments: run_app(capsys, "canary", *arguments)


def lines_of(output: str, check: str) -> list[str]:
    return [line for line in output.splitlines() if line.split("  ")[0].strip() == check]


def altered_golden(tmp_path: Path, row: int) -> Path:
    """The golden file with the recorded answer of ``row`` changed."""
    document: dict[str, Any] = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    recorded = document["predictions"][row]
    if "value" in recorded:
        recorded["value"] += 1.0
    else:
        probabilities = recorded["probabilities"]
        first = next(iter(probabilities))
        probabilities[first] += 0.1 if probabilities[first] < 0.5 else -0.1
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_the_service_serving_the_trained_model_passes(
    canary: Callable[..., Outcome], service_url: str, model_version: str
) -> None:
    result = canary("--url", service_url, "--model-version", model_version)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = len(json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))["rows"])
    assert result.stdout.splitlines()[0].split() == ["CHECK", "RESULT", "DETAIL"]
    for check in ["ready", "batch", "version", *(f"row {index}" for index in range(rows))]:
        [line] = lines_of(result.stdout, check)
        assert " ok " in line, line
    assert result.stdout.splitlines()[-1] == (
        f"canary passed against {service_url}: {rows + 3} checks"
    )
    assert result.stderr == ""


def test_an_answer_that_differs_from_the_recorded_one_fails_naming_its_row(
    canary: Callable[..., Outcome], service_url: str, tmp_path: Path
) -> None:
    golden = altered_golden(tmp_path, row=2)

    result = canary("--url", service_url, "--golden", str(golden))

    assert result.returncode == 1
    failing = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert [line.split("  ")[0].strip() for line in failing] == ["row 2", "batch"]
    assert "recorded" in failing[0]
    assert "row 2:" in failing[1]
    assert result.stdout.splitlines()[-1].startswith("canary failed against")


def test_another_model_version_than_expected_fails(
    canary: Callable[..., Outcome], service_url: str
) -> None:
    result = canary("--url", service_url, "--model-version", "not-this-one")

    assert result.returncode == 1
    [line] = lines_of(result.stdout, "version")
    assert "FAIL" in line
    assert "expected not-this-one" in line


def test_an_unreachable_service_is_one_clear_line(canary: Callable[..., Outcome]) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = canary("--url", url)

    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"canary: cannot reach {url}/ready:")
    assert "Traceback" not in result.stderr


def test_a_missing_golden_file_is_one_clear_line(
    canary: Callable[..., Outcome], tmp_path: Path
) -> None:
    result = canary("--url", "http://127.0.0.1:9", "--golden", str(tmp_path / "none.json"))

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "none.json does not exist" in line
    assert "make golden-update" in line


def test_a_negative_tolerance_is_refused(canary: Callable[..., Outcome]) -> None:
    result = canary("--url", "http://127.0.0.1:9", "--tolerance", "-1")

    assert result.returncode == 2
    assert "is negative" in result.stderr


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "1e300", "soon"])
def test_a_timeout_that_is_not_a_number_of_seconds_is_refused(
    canary: Callable[..., Outcome], timeout: str
) -> None:
    result = canary("--url", "http://127.0.0.1:9", "--timeout", timeout)

    assert result.returncode == 2
    assert "--timeout" in result.stderr
    assert "number of seconds" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::1", "cannot be read"),
        ("http://127.0.0.1:99999", "cannot be read"),
        ("http://:8000", "names no host"),
    ],
)
def test_a_url_that_cannot_be_called_is_one_clear_line(
    canary: Callable[..., Outcome], url: str, says: str
) -> None:
    result = canary("--url", url)

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("canary: the service URL ")
    assert says in line


def test_a_url_that_is_not_http_is_one_clear_line(canary: Callable[..., Outcome]) -> None:
    result = canary("--url", "file:///etc/passwd")

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line == "canary: the service URL must start with http:// or https://: file:///etc/passwd"
