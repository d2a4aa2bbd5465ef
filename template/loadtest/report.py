"""What a load test measured, and the Markdown that reports it.

The Locust process records every response with a ``Recorder`` and writes its
``Summary`` as JSON; ``python -m loadtest`` reads it back, judges it against the
targets and writes the report. Latencies are exact (milliseconds as measured by
Locust's client), not Locust's rounded buckets.
"""

import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from pydantic import BaseModel, Field

from loadtest.traffic import BATCH, BATCH_ROWS, INVALID, PREDICT, THINK_SECONDS

NAMES: Final = (PREDICT, BATCH, INVALID)
ALL: Final = "all requests"
README_START: Final = "<!-- performance-profile:start -->"
README_END: Final = "<!-- performance-profile:end -->"


class Endpoint(BaseModel):
    """The requests of one name: one-row predictions, batches or invalid requests."""

    name: str
    requests: int
    failures: int = Field(description="Responses that were not the expected ones.")
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


class StatusCount(BaseModel):
    """How often one status code answered requests of one name; 0: no response at all."""

    name: str
    status: int
    requests: int
    expected: bool
    code: str = Field(default="", description="The error envelope's code of unexpected answers.")


class Summary(BaseModel):
    seconds: float
    endpoints: list[Endpoint] = Field(description="Per name, those that had requests.")
    total: Endpoint = Field(description="Every request together.")
    statuses: list[StatusCount]

    @property
    def error_rate(self) -> float:
        """Unexpected responses among all requests, from 0 to 1."""
        return self.total.failures / self.total.requests if self.total.requests else 0.0

    def endpoint(self, name: str) -> Endpoint | None:
        return next((endpoint for endpoint in self.endpoints if endpoint.name == name), None)


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values: ``fraction`` of them are at most it."""
    if not ordered:
        return 0.0
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def error_code(body: str | None) -> str:
    """The ``code`` of the service's error envelope, or "" when the body has none."""
    try:
        code = json.loads(body or "")["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return code if isinstance(code, str) else ""


class Recorder:
    """Collects every response of a run, in the Locust process."""

    def __init__(self) -> None:
        self.started = self.stopped = time.monotonic()
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)
        self.statuses: Counter[tuple[str, int, bool, str]] = Counter()

    def start(self) -> None:
        self.started = time.monotonic()

    def stop(self) -> None:
        self.stopped = time.monotonic()

    def record(
        self, name: str, status: int, milliseconds: float, expected: bool, code: str = ""
    ) -> None:
        self.latencies[name].append(milliseconds)
        self.statuses[name, status, expected, code] += 1

    def _endpoint(self, name: str, latencies: list[float], seconds: float) -> Endpoint:
        ordered = sorted(latencies)
        return Endpoint(
            name=name,
            requests=len(ordered),
            failures=sum(
                count
                for (of, _, expected, _), count in self.statuses.items()
                if not expected and (name == ALL or of == name)
            ),
            requests_per_second=len(ordered) / seconds,
            p50_ms=percentile(ordered, 0.50),
            p95_ms=percentile(ordered, 0.95),
            p99_ms=percentile(ordered, 0.99),
        )

    def summary(self) -> Summary:
        seconds = max(self.stopped - self.started, 1e-3)
        everything = [latency for name in NAMES for latency in self.latencies[name]]
        return Summary(
            seconds=seconds,
            endpoints=[
                self._endpoint(name, self.latencies[name], seconds)
                for name in NAMES
                if self.latencies[name]
            ],
            total=self._endpoint(ALL, everything, seconds),
            statuses=[
                StatusCount(name=name, status=status, requests=count, expected=expected, code=code)
                for (name, status, expected, code), count in sorted(self.statuses.items())
            ],
        )


@dataclass(frozen=True, slots=True)
class Targets:
    p95_ms: float
    max_error_rate_pct: float


@dataclass(frozen=True, slots=True)
class Context:
    """How a run was made, for its report."""

    started: datetime
    where: str
    users: int
    seconds: int
    invalid_pct: float
    batch_pct: float
    model_version: str
    cpus: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target, what was measured against it, and whether it was met."""

    target: str
    measured: str
    met: bool
    why: str

    def line(self) -> str:
        return f"{self.target}: {'met' if self.met else 'MISSED'}, {self.why}"


def _answer(count: StatusCount) -> str:
    if not count.status:
        return "no answer"
    return f"status {count.status}" + (f" {count.code}" if count.code else "")


def _unexpected(summary: Summary) -> str:
    counts = Counter[tuple[str, str]]()
    for count in summary.statuses:
        if not count.expected:
            kind = "invalid" if count.name == INVALID else "valid"
            counts[_answer(count), kind] += count.requests
    return ", ".join(
        f"{answer} to {number} {kind} requests" for (answer, kind), number in counts.most_common()
    )


def judge(summary: Summary, targets: Targets) -> list[Verdict]:
    predict = summary.endpoint(PREDICT)
    if predict is None:
        latency = Verdict("p95 target", "-", False, f"no {PREDICT} request was sent")
    else:
        met = predict.p95_ms <= targets.p95_ms
        measured = f"{predict.p95_ms:.1f} ms"
        comparison = "within" if met else "above"
        latency = Verdict(
            "p95 target",
            measured,
            met,
            f"{PREDICT} p95 {measured} is {comparison} the {targets.p95_ms:g} ms target",
        )
    rate = summary.error_rate * 100
    met = rate <= targets.max_error_rate_pct
    measured = f"{rate:.2f}%"
    why = f"{measured} of requests got an unexpected answer"
    if not met:
        why += f" ({_unexpected(summary)})"
    why += f", {'within' if met else 'above'} the {targets.max_error_rate_pct:g}% target"
    return [latency, Verdict("error-rate target", measured, met, why)]


def conclusion(summary: Summary, targets: Targets, met: bool) -> str:
    """One line for the end of the output: the verdict and the figures behind it."""
    predict = summary.endpoint(PREDICT)
    p95 = f"{predict.p95_ms:.1f} ms" if predict else "not measured"
    return (
        f"{'every target met' if met else 'target missed'}: "
        f"p95 {p95} (target {targets.p95_ms:g} ms), "
        f"{summary.error_rate:.2%} unexpected answers (target {targets.max_error_rate_pct:g}%), "
        f"{summary.total.requests_per_second:.1f} requests/s"
    )


def _count(value: int) -> str:
    return f"{value:,}"


def _endpoint_row(endpoint: Endpoint) -> str:
    label = {
        PREDICT: f"`{PREDICT}`",
        BATCH: f"`{BATCH}` ({BATCH_ROWS[0]}-{BATCH_ROWS[1]} rows)",
    }.get(endpoint.name, endpoint.name)
    return (
        f"| {label} | {_count(endpoint.requests)} | {endpoint.requests_per_second:.1f} "
        f"| {endpoint.p50_ms:.1f} | {endpoint.p95_ms:.1f} | {endpoint.p99_ms:.1f} "
        f"| {_count(endpoint.failures)} |"
    )


def _status_rows(summary: Summary) -> list[str]:
    counts = Counter[tuple[int, str, str]]()
    for count in summary.statuses:
        kind = "invalid" if count.name == INVALID else "valid"
        verdict = "expected" if count.expected else f"error {count.code}".rstrip()
        counts[count.status, kind, verdict] += count.requests
    total = max(summary.total.requests, 1)
    return [
        f"| {status or 'none'} | {kind} | {_count(number)} | {number / total:.2%} | {verdict} |"
        for (status, kind, verdict), number in sorted(counts.items())
    ]


def format_report(
    summary: Summary, context: Context, targets: Targets, verdicts: Sequence[Verdict]
) -> str:
    """The Markdown report of a run: throughput and latency, answers by status, targets."""
    low, high = THINK_SECONDS
    lines = [
        f"Measured on {context.started:%Y-%m-%d %H:%M} UTC against {context.where}, "
        f"model {context.model_version}: {context.users} simulated users for "
        f"{context.seconds} s, each waiting {low:g} to {high:g} s between requests; "
        f"{context.invalid_pct:g}% of requests invalid on purpose, {context.batch_pct:g}% "
        f"batches. Locust and the service shared one machine with {context.cpus} CPUs.",
        "",
        "| requests | count | per second | p50 ms | p95 ms | p99 ms | unexpected |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(_endpoint_row(endpoint) for endpoint in summary.endpoints),
        _endpoint_row(summary.total),
        "",
        "| status | requests | count | share | counted as |",
        "| --- | --- | ---: | ---: | --- |",
        *_status_rows(summary),
        "",
        "| target | measured | result |",
        "| --- | --- | --- |",
        f"| `{PREDICT}` p95 at most {targets.p95_ms:g} ms | {verdicts[0].measured} "
        f"| {'met' if verdicts[0].met else '**missed**'} |",
        f"| unexpected answers at most {targets.max_error_rate_pct:g}% | {verdicts[1].measured} "
        f"| {'met' if verdicts[1].met else '**missed**'} |",
    ]
    return "\n".join(lines) + "\n"


def replace_profile(readme: Path, report: str) -> str:
    """Put ``report`` between the README's performance-profile markers; say what was done."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return f"{readme} cannot be read: the performance profile was not copied there"
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        return f"{readme} has no {README_START} ... {README_END} block: the profile was not copied"
    block = f"{README_START}\n{report}{README_END}"
    readme.write_text(pattern.sub(lambda _: block, text, count=1), encoding="utf-8")
    return f"{readme} performance profile updated"
