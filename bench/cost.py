"""What each part of the service's monitoring costs a request, in CPU time.

    uv run python -m bench.cost            # 6 rounds of 3 s a variant, about 2 minutes
    uv run python -m bench.cost --smoke    # 1 round of 1 s: proves the script works
    uv run python -m bench.cost --rows 1000   # batches of 1,000 rows instead of one
    uv run python -m bench.cost --rows 1000 --arrow   # the batches as Arrow streams

Requests/s, what ``bench.run`` judges, moves with everything else the machine runs,
and the load generator shares the cores with the servers. The CPU time the server's
processes spent per request answered moves much less, so it tells apart costs of a
few microseconds. Five copies of the rendered breast-cancer service run side by side,
one worker each: with all of its monitoring, without its metrics, without its
prediction log, without its request lines, and with none of them. With two cores or
more every worker runs on the first core this process may use and wrk on the second,
so a worker's CPU time is its own. wrk drives the copies in turn, for ``--seconds``
each, the order reversed every round; each copy's figure is the median over the
rounds. A turn's CPU time is read once the copy's threads have written what the
turn left them (the prediction log's writer waits up to half a second, the drift
tally a second), and is told apart: the main threads (the worker's request thread
and the idle gunicorn master) and the others (the model calls, the log's writer,
the drift tally).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.run import (
    ARROW_STREAM,
    BUILD,
    arrow_rows,
    drive,
    log,
    modelship,
    project_python,
    ratio,
    render_project,
    serving,
    write_body,
)
from bench.servers import Server

MONITORING_OFF = {
    "APP_METRICS_ENABLED": "false",
    "APP_PREDICTION_LOG_ENABLED": "false",
    "APP_LOG_LEVEL": "WARNING",
}
VARIANTS: dict[str, dict[str, str]] = {
    "monitoring on": {},
    "without metrics": {"APP_METRICS_ENABLED": "false"},
    "without the prediction log": {"APP_PREDICTION_LOG_ENABLED": "false"},
    # Request lines are written at INFO; of the lines at INFO, a request writes no other.
    "without request lines": {"APP_LOG_LEVEL": "WARNING"},
    "monitoring off": MONITORING_OFF,
}
"""Each copy of the service and the settings it runs with."""
FIRST_PORT = 8320
SETTLE_SECONDS = 1.2
"""Wait after a turn before reading its CPU time: longer than the log's writer and the
drift tally wait before writing what requests left them."""


@dataclass
class Cost:
    variant: str
    cpu_us_per_request: float
    main_thread_us: float
    other_threads_us: float
    rounds_us: list[float]
    requests_per_s: float
    errors: int
    serves_metrics: bool


Turn = tuple[float, float, dict[str, float]]
"""One turn of a copy: its CPU seconds, its main threads' alone, and wrk's summary."""


def _ticks(stat: Path) -> int:
    """User and system time in ``stat`` (/proc/<pid>/stat or a thread's), in ticks."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:  # a process that ended between the listing and the read
        return 0
    return int(fields[11]) + int(fields[12])


def cpu_seconds(server: Server) -> tuple[float, float]:
    """User and system time of the server's processes so far: all their threads, and
    their main threads alone."""
    pids = server.pids()
    every = sum(_ticks(Path(f"/proc/{pid}/stat")) for pid in pids)
    main = sum(_ticks(Path(f"/proc/{pid}/task/{pid}/stat")) for pid in pids)
    tick = os.sysconf("SC_CLK_TCK")
    return every / tick, main / tick


def serves_metrics(server: Server) -> bool:
    url = server.ready_url.removesuffix("/ready") + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except urllib.error.URLError:
        return False


def report(costs: list[Cost], args: argparse.Namespace, pinned: tuple[int, int] | None) -> str:
    on = next(c for c in costs if c.variant == "monitoring on")
    off = next(c for c in costs if c.variant == "monitoring off")
    lines = [
        "| service | CPU µs a request | main threads | other threads | each round "
        "| saved against monitoring on | requests/s | errors |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for cost in costs:
        saved = on.cpu_us_per_request - cost.cpu_us_per_request
        lines.append(
            f"| {cost.variant} | {cost.cpu_us_per_request:.0f} | {cost.main_thread_us:.0f} "
            f"| {cost.other_threads_us:.0f} | {', '.join(f'{us:.0f}' for us in cost.rounds_us)} "
            f"| {'' if cost is on else f'{saved:.0f}'} | {cost.requests_per_s:,.0f} "
            f"| {cost.errors} |"
        )
    share = ratio(off.cpu_us_per_request, on.cpu_us_per_request)
    lines += [
        "",
        f"monitoring on / off, by CPU a request: {share:.2f} (the target of requests/s is 0.9)",
        "",
        f"One worker each, {args.rows} row(s) a request"
        + (" as an Arrow stream" if args.arrow else "")
        + f", {args.connections} connections, "
        f"{args.rounds} round(s) of "
        f"{args.seconds} s a service; "
        + (
            f"workers on CPU {pinned[0]}, wrk on CPU {pinned[1]}."
            if pinned
            else "one core: wrk and the workers share it, so their times mix."
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", default="breast_cancer", help="examples/<name>.yml to render")
    parser.add_argument("--rounds", type=int, default=6, help="times every service is driven")
    parser.add_argument("--seconds", type=int, default=3, help="seconds of load a turn")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--rows", type=int, default=1, help="rows a request; above 1, to /v1/predict/batch"
    )
    parser.add_argument(
        "--arrow", action="store_true", help="send the batch as an Arrow stream, not JSON"
    )
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 s: proves it works")
    args = parser.parse_args(argv)
    if args.arrow and args.rows == 1:
        parser.error("--arrow sends a batch: give --rows above 1")
    if args.smoke:
        args.rounds, args.seconds = 1, 1
    if shutil.which("wrk") is None:
        parser.error("wrk is missing: apt-get install wrk")
    # The first two cores this process may use: under a cpuset they need not be 0 and 1.
    usable = sorted(os.sched_getaffinity(0))
    pinned = (usable[0], usable[1]) if len(usable) >= 2 and shutil.which("taskset") else None

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
                1,
                "1.0.0",
                name=f"cost {variant}",
                route="/v1/predict" if args.rows == 1 else "/v1/predict/batch",
                port=FIRST_PORT + number,
                **settings,
            )
            if pinned:
                server.command = ["taskset", "--cpu-list", str(pinned[0]), *server.command]
            payload: object = example if args.rows == 1 else {"rows": [example] * args.rows}
            if args.arrow:
                payload = arrow_rows(project, example, args.rows)
                server.content_type = ARROW_STREAM
            # Listed before it starts, so that it is stopped if it fails to.
            servers.append((variant, server, write_body(server, payload)))
            serving(server)
        if pinned:
            # wrk, started from here, inherits this process's core.
            os.sched_setaffinity(0, {pinned[1]})
        metrics = {variant: serves_metrics(server) for variant, server, _ in servers}
        for _, server, body in servers:
            drive(server, body, 1, args.connections)
        time.sleep(SETTLE_SECONDS)
        turns: dict[str, list[Turn]] = {v: [] for v in VARIANTS}
        for number in range(args.rounds):
            log(f"round {number + 1} of {args.rounds}")
            for variant, server, body in servers if number % 2 == 0 else servers[::-1]:
                every, main = cpu_seconds(server)
                summary = drive(server, body, args.seconds, args.connections)
                time.sleep(SETTLE_SECONDS)
                every_after, main_after = cpu_seconds(server)
                turns[variant].append((every_after - every, main_after - main, summary))
    finally:
        for _, server, _ in servers:
            server.stop()

    costs = []
    for variant, runs in turns.items():
        per_request = [every * 1e6 / max(s["requests"], 1) for every, _, s in runs]
        main_per_request = [main * 1e6 / max(s["requests"], 1) for _, main, s in runs]
        costs.append(
            Cost(
                variant=variant,
                cpu_us_per_request=statistics.median(per_request),
                main_thread_us=statistics.median(main_per_request),
                other_threads_us=statistics.median(
                    every - main for every, main in zip(per_request, main_per_request, strict=True)
                ),
                rounds_us=per_request,
                requests_per_s=statistics.median(
                    s["requests"] / (s["duration_us"] / 1e6) for _, _, s in runs
                ),
                errors=int(sum(s["status_errors"] + s["socket_errors"] for _, _, s in runs)),
                serves_metrics=metrics[variant],
            )
        )
    table = report(costs, args, pinned)
    print(table)
    stem = "cost" if args.rows == 1 else f"cost-{args.rows}-rows" + ("-arrow" if args.arrow else "")
    (BUILD / f"{stem}.md").write_text(table + "\n")
    (BUILD / f"{stem}.json").write_text(json.dumps([asdict(c) for c in costs], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
