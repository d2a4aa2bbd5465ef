"""What sharing model calls between requests gives, and what waiting for more costs.

    uv run python -m bench.coalescing            # about 3 minutes
    uv run python -m bench.coalescing --smoke    # 1 s a turn: proves the script works

The service coalesces the rows of requests waiting at the same time into one model
call (``app/coalescing.py``): a one-row ``predict_proba`` of a scikit-learn Pipeline
costs about what 64 rows cost. Copies of the rendered breast-cancer service run side
by side, two workers each, every monitoring feature on, and differ only in how
requests reach the model (``VARIANTS``). wrk drives them in turn (``alternate``): at
full load, and at a light fixed rate, where a window's wait is most of the latency
it adds. Each copy's rows a model call are read from its own ``model_call_rows``
histogram. Every figure is compared with the default's in the same run.
"""

import argparse
import json
import shutil
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.run import (
    BUILD,
    Result,
    alternate,
    log,
    modelship,
    project_python,
    ratio,
    render_project,
    serving,
    write_body,
)
from bench.servers import Server

DEFAULT = "default: waiting requests share a call"
VARIANTS: dict[str, dict[str, str]] = {
    DEFAULT: {},
    "coalescing off": {"APP_COALESCE_MAX_ROWS": "1"},
    "window 1 ms": {"APP_COALESCE_WINDOW_MS": "1"},
    "window 5 ms": {"APP_COALESCE_WINDOW_MS": "5"},
    "model on the event loop": {"APP_PREDICT_TIMEOUT_MS": "0"},
}
"""Each copy of the service and the settings it runs with."""
FIRST_PORT = 8340
SETTLE_SECONDS = 1.2
"""Wait before reading a copy's metrics: longer than its workers hold histograms."""


@dataclass
class Row:
    variant: str
    load: str
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rows_per_call: float
    errors: int


def call_rows(server: Server) -> tuple[float, float]:
    """The rows and the calls the server's ``model_call_rows`` histogram counted so far,
    over all its workers."""
    url = server.ready_url.removesuffix("/ready") + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return counted_rows(response.read().decode())


def counted_rows(exposition: str) -> tuple[float, float]:
    """The sum and the count of ``model_call_rows`` in Prometheus's text format, over
    all its series."""
    rows = calls = 0.0
    found = False
    for line in exposition.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(("model_call_rows_sum", "model_call_rows_count")):
            found = True
            if name.startswith("model_call_rows_sum"):
                rows += float(value)
            else:
                calls += float(value)
    if not found:
        raise RuntimeError("the service's /metrics has no model_call_rows histogram")
    return rows, calls


def rows_per_call(before: tuple[float, float], after: tuple[float, float]) -> float:
    return ratio(after[0] - before[0], after[1] - before[1])


def report(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        "| service | load | requests/s | p50 ms | p95 ms | p99 ms | rows a model call | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {row.variant} | {row.load} | {row.requests_per_s:,.0f} | {row.p50_ms:.2f} "
        f"| {row.p95_ms:.2f} | {row.p99_ms:.2f} | {row.rows_per_call:.1f} | {row.errors} |"
        for row in rows
    ]
    lines += ["", "| service | requests/s at full load | p50 at light load | p99 at light load |"]
    lines.append("| --- | ---: | ---: | ---: |")
    default = {row.load: row for row in rows if row.variant == DEFAULT}
    for variant in VARIANTS:
        if variant == DEFAULT:
            continue
        full, light = (
            next(row for row in rows if row.variant == variant and row.load == load)
            for load in ("full", "light")
        )
        lines.append(
            f"| {variant} / default "
            f"| {ratio(full.requests_per_s, default['full'].requests_per_s):.2f} "
            f"| {ratio(light.p50_ms, default['light'].p50_ms):.2f} "
            f"| {ratio(light.p99_ms, default['light'].p99_ms):.2f} |"
        )
    lines += [
        "",
        f"Two workers a copy, all copies side by side; full load: {args.connections} "
        f"connections; light load: {args.light_rate:,.0f} requests/s on a fixed schedule "
        f"over 8 connections; each {args.duration:.0f} s in {args.slices} slices, the "
        f"copies driven in turn, after {args.warmup:.0f} s of warm-up.",
    ]
    return "\n".join(lines)


def measured(
    servers: list[tuple[str, Server, Path]],
    args: argparse.Namespace,
    load: str,
    offered: float,
    connections: int,
) -> list[Row]:
    """Every copy driven in turn at one load: its wrk summary and rows a model call."""
    before = [call_rows(server) for _, server, _ in servers]
    results: list[Result] = alternate(
        [(server, body) for _, server, body in servers],
        args,
        model="logreg",
        workers=args.workers,
        slices=args.slices,
        offered=offered,
        connections=connections,
        load=load,
    )
    time.sleep(SETTLE_SECONDS)
    after = [call_rows(server) for _, server, _ in servers]
    return [
        Row(
            variant=variant,
            load=load,
            requests_per_s=result.requests_per_s,
            p50_ms=result.p50_ms,
            p95_ms=result.p95_ms,
            p99_ms=result.p99_ms,
            rows_per_call=rows_per_call(first, last),
            errors=result.errors,
        )
        for (variant, _, _), result, first, last in zip(
            servers, results, before, after, strict=True
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", default="breast_cancer", help="examples/<name>.yml to render")
    parser.add_argument("--workers", type=int, default=2, help="workers of every copy")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load a copy")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before")
    parser.add_argument("--slices", type=int, default=10, help="turns a copy is driven in")
    parser.add_argument("--connections", type=int, default=32, help="connections at full load")
    parser.add_argument(
        "--light-rate", type=float, default=200, help="requests/s of the light load"
    )
    parser.add_argument("--smoke", action="store_true", help="1 s of each load: proves it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.slices = 1, 1, 1
    if shutil.which("wrk") is None:
        parser.error("wrk is missing: apt-get install wrk")

    for folder in ("logs", "data", "metrics"):
        shutil.rmtree(BUILD / folder, ignore_errors=True)
        (BUILD / folder).mkdir(parents=True)
    project = render_project(args.example)
    example = json.loads(
        project_python(
            project,
            "import json; from app.schemas import FEATURE_EXAMPLE as e; print(json.dumps(e))",
        )
    )
    servers: list[tuple[str, Server, Path]] = []
    try:
        for number, (variant, settings) in enumerate(VARIANTS.items()):
            server = modelship(
                project,
                args.workers,
                "1.0.0",
                name=f"coalescing {variant.split(':')[0]}",
                port=FIRST_PORT + number,
                **settings,
            )
            # Listed before it starts, so that it is stopped if it fails to.
            servers.append((variant, server, write_body(server, example)))
            serving(server)
        log("full load")
        rows = measured(servers, args, "full", 0.0, args.connections)
        log("light load")
        rows += measured(servers, args, "light", args.light_rate, 8)
    finally:
        for _, server, _ in servers:
            server.stop()

    table = report(rows, args)
    print(table)
    (BUILD / "coalescing.md").write_text(table + "\n")
    (BUILD / "coalescing.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 1 if any(row.errors for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
