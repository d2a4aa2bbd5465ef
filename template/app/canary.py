"""Check a running service against the golden predictions, after every deploy.

    make canary URL=http://host:8000 [MODEL_VERSION=1.1.0]
    python -m app canary --url http://host:8000 [--golden tests/golden/predictions.json]

It asks ``/ready``, sends each golden row to ``/v1/predict`` and all of them at
once to ``/v1/predict/batch``, and compares every answer with the recorded one:
labels exactly, probabilities and values within ``--tolerance``, and the model
version when one is given. It prints one line per check and exits 1 when any
fails, so a deploy pipeline can stop (or roll back) on it. Only the standard
library is used, so it runs wherever the service's code is.

The golden predictions are recorded by ``make golden-update`` from the model
``make train`` makes: a service running that model passes; one running another
model, different library versions or a changed threshold does not.
"""

import json
import math
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any, Final, TextIO
from uuid import uuid4

GOLDEN_FILE: Final = Path("tests/golden/predictions.json")
TOLERANCE: Final = 1e-6


class CanaryError(Exception):
    """The canary cannot run at all: an unreachable service or an unusable golden file."""


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    passed: bool
    detail: str


def read_golden(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The golden rows and their recorded predictions, as ``training.golden`` writes them."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CanaryError(
            f"{path} does not exist: run `make golden-update`, or pass --golden"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CanaryError(f"{path} cannot be read as JSON: {exc}") from None
    rows = document.get("rows") if isinstance(document, dict) else None
    expected = document.get("predictions") if isinstance(document, dict) else None
    if (
        not isinstance(rows, list)
        or not isinstance(expected, list)
        or not rows
        or len(rows) != len(expected)
    ):
        raise CanaryError(
            f"{path} is not a golden file: it needs as many `rows` as `predictions`, at least one"
        )
    return rows, expected


def _number(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.6g}"
    return "missing" if value is None else repr(value)


def _close(got: object, recorded: float, tolerance: float) -> bool:
    return (
        isinstance(got, int | float)
        and not isinstance(got, bool)
        and math.isclose(got, recorded, rel_tol=tolerance, abs_tol=tolerance)
    )


def differences(
    answer: Mapping[str, Any], recorded: Mapping[str, Any], tolerance: float
) -> list[str]:
    """How a service's answer differs from the recorded prediction; empty when it does not."""
    if "value" in recorded:
        if _close(answer.get("value"), recorded["value"], tolerance):
            return []
        return [f"value {_number(answer.get('value'))}, recorded {_number(recorded['value'])}"]
    problems = []
    if answer.get("label") != recorded["label"]:
        problems.append(f"label {answer.get('label')!r}, recorded {recorded['label']!r}")
    probabilities = answer.get("probabilities")
    if not isinstance(probabilities, dict):
        probabilities = {}
    for label, probability in recorded["probabilities"].items():
        if not _close(probabilities.get(label), probability, tolerance):
            problems.append(
                f"probability of {label!r} {_number(probabilities.get(label))}, "
                f"recorded {_number(probability)}"
            )
    return problems


class Client:
    """JSON over HTTP to one service, with the standard library."""

    def __init__(self, base_url: str, timeout: float) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise CanaryError(f"the service URL must start with http:// or https://: {base_url}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # Every request of one run shares a prefix, to find them in the service's logs.
        self.run_id = f"canary-{uuid4().hex[:12]}"

    def call(self, path: str, body: object = None, *, tag: str = "") -> tuple[int, Any]:
        """``(status, decoded JSON body)``; a body that is not JSON comes back as text."""
        url = f"{self.base_url}{path}"
        request = urllib.request.Request(
            url,
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-Request-ID": f"{self.run_id}-{tag}" if tag else self.run_id,
            },
        )
        try:
            # bandit B310 warns of file:// and other schemes; __init__ allows http(s) only.
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # nosec B310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CanaryError(f"cannot reach {url}: {reason}") from None
        try:
            return status, json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return status, raw.decode(errors="replace")[:200]


def _failure(status: int, body: Any) -> str:
    """What an answer that is not a 200 says, in a few words."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"HTTP {status} {error.get('code')}: {error.get('message')}"
    return f"HTTP {status}: {body}"


def _summary(answer: Mapping[str, Any]) -> str:
    """A passing answer in a few words: its label and probability, or its value."""
    if "value" in answer:
        return _number(answer["value"])
    return f"{answer.get('label')} ({_number(answer.get('probability'))})"


def run_checks(
    client: Client,
    rows: Sequence[Mapping[str, Any]],
    expected: Sequence[Mapping[str, Any]],
    *,
    tolerance: float = TOLERANCE,
    model_version: str | None = None,
) -> list[Check]:
    """Every check, in order; stops after ``/ready`` when the service is not ready."""
    status, body = client.call("/ready")
    if status != 200:
        return [Check("ready", False, f"GET /ready: {_failure(status, body)}")]
    checks = [Check("ready", True, "GET /ready answered 200")]
    served: set[str] = set()
    for index, (row, recorded) in enumerate(zip(rows, expected, strict=True)):
        status, body = client.call("/v1/predict", row, tag=f"row-{index}")
        if status != 200 or not isinstance(body, dict):
            checks.append(Check(f"row {index}", False, _failure(status, body)))
            continue
        served.add(str(body.get("model_version")))
        problems = differences(body, recorded, tolerance)
        checks.append(Check(f"row {index}", not problems, "; ".join(problems) or _summary(body)))
    status, body = client.call("/v1/predict/batch", {"rows": list(rows)}, tag="batch")
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if status != 200 or not isinstance(body, dict) or not isinstance(predictions, list):
        checks.append(Check("batch", False, _failure(status, body)))
    elif len(predictions) != len(rows):
        checks.append(Check("batch", False, f"{len(predictions)} predictions for {len(rows)} rows"))
    else:
        served.add(str(body.get("model_version")))
        problems = [
            f"row {index}: {problem}"
            for index, (answer, recorded) in enumerate(zip(predictions, expected, strict=True))
            for problem in differences(answer, recorded, tolerance)
        ]
        detail = "; ".join(problems) or f"{len(rows)} rows in one call, the same answers"
        checks.append(Check("batch", not problems, detail))
    versions = ", ".join(sorted(served)) or "none"
    if model_version is not None:
        checks.append(
            Check(
                "version", served == {model_version}, f"served {versions}, expected {model_version}"
            )
        )
    else:
        checks.append(Check("version", len(served) == 1, f"served {versions}"))
    return checks


def report(checks: Sequence[Check], url: str, out: TextIO) -> None:
    """The checks as a table, then one summary line."""
    width = max(len("CHECK"), *(len(check.name) for check in checks))
    out.write(f"{'CHECK':<{width}}  RESULT  DETAIL\n")
    for check in checks:
        out.write(f"{check.name:<{width}}  {'ok' if check.passed else 'FAIL':<6}  {check.detail}\n")
    failed = [check.name for check in checks if not check.passed]
    if failed:
        out.write(f"canary failed against {url}: {len(failed)} of {len(checks)} checks failed\n")
    else:
        out.write(f"canary passed against {url}: {len(checks)} checks\n")


def canary(
    url: str,
    golden: Path = GOLDEN_FILE,
    *,
    tolerance: float = TOLERANCE,
    model_version: str | None = None,
    timeout: float = 10.0,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run every check against ``url`` and print the report (to ``out``, by default the
    standard output of the moment); 0 when all pass, else 1."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        rows, expected = read_golden(golden)
        checks = run_checks(
            Client(url, timeout), rows, expected, tolerance=tolerance, model_version=model_version
        )
    except CanaryError as exc:
        err.write(f"canary: {exc}\n")
        return 1
    report(checks, url, out)
    return 0 if all(check.passed for check in checks) else 1
