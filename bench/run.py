"""Benchmark a rendered service against the obvious alternatives, on this machine.

    uv run python bench/run.py            # the full run, about 12 minutes
    uv run python bench/run.py --smoke    # a few seconds a server: proves the script works

It renders the breast-cancer example (every monitoring feature on; no API keys, as
the servers it is compared with have none), trains it, and imports a
HistGradientBoostingClassifier as a second version. BentoML and MLServer
go into virtual environments of their own under build/bench/venvs, with the
project's scikit-learn. Then each server is started on 127.0.0.1 in turn, alone on
the machine, warmed up, and driven by wrk with the same one-row request for the
same time and connections; its memory is read at the end of the run, and every
process it started is stopped. The service with and without its monitoring, whose
ratio is the closest one judged, run side by side instead and are driven in turn
in short slices, so that both see the same machine. In-process ``predict_proba`` is
the ceiling of what any server can do, and a bare ASGI app that reads a batch as raw
float64 numbers shows what HTTP alone leaves of it. The table and the ratios the
service is held to are printed, and written to build/bench/results.md and results.json.

Absolute figures move with the machine and what else runs on it, and on a shared
virtual machine they drift between runs a minute apart: one round once measured
the service with monitoring off at 0.6 of the same service with it on. So every
run is repeated (``--rounds``, 3 by default), each ratio is taken within a round,
and the median over rounds is judged. The load generator shares the cores with
the servers.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.servers import (
    Server,
    bare_source,
    bentoml_source,
    mlserver_body,
    mlserver_files,
    textbook_source,
)

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench"
LOAD_SCRIPT = Path(__file__).with_name("load.lua")
HGB_VERSION = "hgb"
HALF_LOAD_CONNECTIONS = 2
"""The half-load runs' connections, times ``--connections``: a slot of the fixed
schedule waits only if every connection is waiting for an answer."""
BARE = "bare ASGI app, float64 rows"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
PORTS = {
    "modelship": 8301,
    "textbook": 8302,
    "bentoml": 8303,
    "modelship, monitoring off": 8304,
    "bare": 8305,
    "mlserver": 8310,
}
PEER_PACKAGES = {
    "bentoml": ["bentoml"],
    # MLServer 1.7's inference workers call asyncio.get_event_loop() with no loop
    # running, which uvloop refuses from 0.22 on.
    "mlserver": ["mlserver", "mlserver-sklearn", "uvloop<0.22"],
}


@dataclass
class Result:
    server: str
    model: str
    workers: int
    load: str
    requests_per_s: float
    rows_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    memory_mib: float
    start_to_ready_s: float
    offered_per_s: float = 0.0
    """The fixed rate the load was sent at; 0: as fast as the server answered."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def project_env() -> dict[str, str]:
    """The environment of commands run in the rendered project, as the tests build it."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    root = Path(env.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    interpreters = sorted(str(path) for path in root.glob("3.1[123].*/bin"))
    env["PATH"] = os.pathsep.join([*interpreters, env["PATH"]])
    uv = env.get("UV") or shutil.which("uv")
    if uv:
        env["UV"] = uv
    return env


def run(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        raise SystemExit(
            f"`{' '.join(command)}` failed in {cwd}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def template_digest() -> str:
    """A digest of the template and its questions: a render of another one is stale."""
    digest = hashlib.sha256()
    for path in sorted([ROOT / "copier.yml", *(ROOT / "template").rglob("*")]):
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def render_project(example: str) -> Path:
    """The example rendered and set up (environment, model, contract), once per template."""
    project = BUILD / example
    stamp = BUILD / f"{example}.template-digest"
    digest = template_digest()
    if stamp.is_file() and stamp.read_text() == digest and (project / ".venv").is_dir():
        return project
    shutil.rmtree(project, ignore_errors=True)
    log(f"rendering examples/{example}.yml into {project}")
    run(
        [
            sys.executable,
            "hooks/render.py",
            str(project),
            "--defaults",
            "--data-file",
            f"examples/{example}.yml",
            # The servers it is compared with let anyone in: so does this one.
            "--data",
            "auth=none",
        ],
        ROOT,
    )
    run(["make", "setup"], project, project_env())
    stamp.write_text(digest)
    return project


HGB_SCRIPT = """
import csv, sys
import joblib
from sklearn.ensemble import HistGradientBoostingClassifier
from app.schemas import FEATURES, TARGET
from app.features import encode_rows
from training.data import load_dataset

dataset = load_dataset()
model = HistGradientBoostingClassifier(random_state=0)
model.fit(encode_rows(dataset.rows, FEATURES), dataset.target)
joblib.dump(model, sys.argv[1])
with open(sys.argv[2], "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow([f.source_column for f in FEATURES] + [TARGET])
    for row, target in zip(dataset.rows, dataset.target):
        writer.writerow([row[f.name] for f in FEATURES] + [target])
"""


def import_gradient_boosting(project: Path) -> None:
    """A HistGradientBoostingClassifier on the same data, imported as version ``hgb``."""
    if (project / "artifacts" / HGB_VERSION).is_dir():
        return
    log("training and importing a HistGradientBoostingClassifier")
    model, data = BUILD / "hgb.joblib", BUILD / "hgb.csv"
    run([".venv/bin/python", "-c", HGB_SCRIPT, str(model), str(data)], project)
    run(
        ["make", "import-model", f"MODEL={model}", f"DATA={data}", f"MODEL_VERSION={HGB_VERSION}"],
        project,
        project_env(),
    )


def project_python(project: Path, code: str) -> str:
    return run([str(project / ".venv" / "bin" / "python"), "-c", code], project)


def library_version(project: Path, name: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    return project_python(project, code).strip()


def peer_environment(name: str, scikit_learn: str) -> Path:
    """A virtual environment holding the peer and the project's scikit-learn."""
    venv = BUILD / "venvs" / name
    wanted = " ".join([*PEER_PACKAGES[name], scikit_learn])
    marker = venv / f".installed-{hashlib.sha256(wanted.encode()).hexdigest()[:12]}"
    if marker.is_file():
        return venv
    uv = project_env().get("UV", "uv")
    log(f"installing {name} into {venv}")
    run(
        [
            uv,
            "venv",
            "--clear",
            "--quiet",
            "--python",
            f"{sys.version_info[0]}.{sys.version_info[1]}",
            str(venv),
        ],
        ROOT,
    )
    run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         *PEER_PACKAGES[name], f"scikit-learn=={scikit_learn}"],
        ROOT,
    )  # fmt: skip
    marker.touch()
    return venv


IN_PROCESS_SCRIPT = """
import json, sys, time
import joblib, numpy as np, orjson
model = joblib.load(sys.argv[1])
example = json.loads(sys.argv[2])
row = np.array([list(example.values())], dtype=np.float64)
seconds = float(sys.argv[3])
def rate(work, rows):
    work()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        work()
        calls += 1
    return calls * rows / (time.perf_counter() - started)
batch = np.repeat(row, 1000, axis=0)
body = orjson.dumps({"rows": [example] * 1000})
# The project's own prediction log writer, into a SQLite file of its own: the row of
# one batch of 1000 built as the service builds it, then written.
import datetime, tempfile
from app.api.predict import prediction_ids
from app.monitoring.prediction_log import (
    BATCH_ID_DIGITS, batch_features, create_log_engine, metadata, write_entries,
)
folder = tempfile.TemporaryDirectory()  # removed when the script ends
engine = create_log_engine(f"sqlite:///{folder.name}/log.db")
metadata.create_all(engine)
labels = [str(label) for label in model.classes_]
probabilities = dict(zip(labels, model.predict_proba(row)[0].tolist()))
output = {"label": labels[0], "probability": probabilities[labels[0]],
          "probabilities": probabilities}
def write_log():
    record = {"batch_id": prediction_ids(1)[0][:BATCH_ID_DIGITS],
             "created_at": datetime.datetime.now(datetime.UTC), "model_version": "1.0.0",
             "role": "primary", "request_id": "r", "rows": 1000,
             "features": batch_features([example] * 1000, list(example)),
             "outputs": [output] * 1000, "latency_ms": 1.0}
    with engine.begin() as connection:
        write_entries(connection, [record])
print(json.dumps({
    "one_row": rate(lambda: model.predict_proba(row), 1),
    "batch_1000": rate(lambda: model.predict_proba(batch), 1000),
    "parse_1000": rate(lambda: orjson.loads(body), 1000),
    "log_1000": rate(write_log, 1000),
}))
"""


def in_process(
    project: Path, model: Path, example: dict[str, float], seconds: float
) -> dict[str, float]:
    """Rows/s in one process on one core: ``predict_proba`` of one row, then of 1000,
    parsing the batch request's JSON body of 1000 rows alone (orjson, the fastest parser),
    and building and writing a batch of 1000 rows to a SQLite prediction log alone (the
    project's own writer, without the hand-over from the request to its thread)."""
    output = run(
        [
            str(project / ".venv" / "bin" / "python"),
            "-c",
            IN_PROCESS_SCRIPT,
            str(model),
            json.dumps(example),
            str(seconds),
        ],
        project,
        {**os.environ, "OMP_NUM_THREADS": "1"},
    )
    rates: dict[str, float] = json.loads(output)
    return rates


def drive(
    server: Server, body: Path, seconds: float, connections: int, rate: float = 0.0
) -> dict[str, float]:
    """One wrk run, at a fixed ``rate`` of requests/s if given; its JSON summary line."""
    env = {
        **os.environ,
        "BENCH_BODY": str(body),
        "BENCH_RATE": str(rate),
        "BENCH_CONTENT_TYPE": server.content_type,
    }
    output = run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{max(seconds, 1):.0f}s",
            "--timeout",
            "10s",
            "--script",
            str(LOAD_SCRIPT),
            server.predict_url,
        ],
        ROOT,
        env,
    )
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    summary: dict[str, float] = json.loads(line.removeprefix("BENCH "))
    return summary


def measure(
    server: Server,
    body: Path,
    args: argparse.Namespace,
    *,
    model: str,
    workers: int,
    rows: int = 1,
    connections: int | None = None,
    offered: float = 0.0,
    load: str = "max",
) -> Result:
    connections = connections or args.connections
    drive(server, body, args.warmup, connections, offered)
    summary = drive(server, body, args.duration, connections, offered)
    return summarise(
        server, [summary], model=model, workers=workers, rows=rows, offered=offered, load=load
    )


def alternate(
    servers: Sequence[tuple[Server, Path]],
    args: argparse.Namespace,
    *,
    model: str,
    workers: int,
    slices: int,
    offered: float = 0.0,
    connections: int | None = None,
    load: str = "max",
) -> list[Result]:
    """Servers running side by side, driven in turn: each gets ``args.duration`` seconds
    of load in ``slices`` slices, the order reversed every slice (A B, B A, ...), at
    ``offered`` requests/s if given, over ``connections`` (``args.connections``).

    The machine's speed drifts over minutes; servers compared this way see the same
    drift, where two runs one after the other do not. An idle server costs nothing."""
    connections = connections or args.connections
    for server, body in servers:
        drive(server, body, args.warmup, connections, offered)
    summaries: list[list[dict[str, float]]] = [[] for _ in servers]
    seconds = max(args.duration / slices, 1)
    for index in range(slices):
        order = list(enumerate(servers))
        for position, (server, body) in order if index % 2 == 0 else reversed(order):
            summaries[position].append(drive(server, body, seconds, connections, offered))
    return [
        summarise(server, parts, model=model, workers=workers, offered=offered, load=load)
        for (server, _), parts in zip(servers, summaries, strict=True)
    ]


def summarise(
    server: Server,
    summaries: Sequence[dict[str, float]],
    *,
    model: str,
    workers: int,
    rows: int = 1,
    offered: float = 0.0,
    load: str = "max",
) -> Result:
    """One result from one or more wrk runs: the requests/s of all of them together,
    each latency percentile's median over them."""
    rate = sum(s["requests"] for s in summaries) / (sum(s["duration_us"] for s in summaries) / 1e6)

    def percentile(key: str) -> float:
        return statistics.median(s[key] for s in summaries) / 1000

    result = Result(
        server=server.name,
        model=model,
        workers=workers,
        load=load,
        requests_per_s=rate,
        rows_per_s=rate * rows,
        p50_ms=percentile("p50_us"),
        p95_ms=percentile("p95_us"),
        p99_ms=percentile("p99_us"),
        errors=int(sum(s["status_errors"] + s["socket_errors"] for s in summaries)),
        memory_mib=server.memory_mib(),
        start_to_ready_s=server.start_to_ready,
        offered_per_s=offered,
    )
    log(
        f"{server.name:<22} {model:<8} {load:<10} {rate:9.0f} req/s  p99 {result.p99_ms:7.2f} ms  "
        f"errors {result.errors}"
    )
    return result


def file_name(server: Server) -> str:
    """The server's name as the stem of its log and body files."""
    return server.name.replace(" ", "-").replace(",", "")


def serving(server: Server) -> Server:
    server.start(BUILD / "logs" / f"{file_name(server)}.log")
    return server


def modelship(
    project: Path,
    workers: int,
    version: str,
    name: str = "modelship",
    route: str = "/v1/predict",
    port: int | None = None,
    **env: str,
) -> Server:
    port = port or PORTS.get(name, PORTS["modelship"])
    return Server(
        name=name,
        command=["sh", "deploy/entrypoint.sh"],
        cwd=project,
        ready_url=f"http://127.0.0.1:{port}/ready",
        predict_url=f"http://127.0.0.1:{port}{route}",
        body=b"",
        env={
            "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "PORT": str(port),
            "WEB_CONCURRENCY": str(workers),
            "APP_MODEL_VERSION": version,
            "APP_LOG_FORMAT": "json",
            "APP_PREDICTION_LOG_PATH": str(BUILD / "data" / f"{name}-{version}.db"),
            "PROMETHEUS_MULTIPROC_DIR": str(BUILD / "metrics" / name),
            **env,
        },
    )


def textbook(project: Path, model: Path, workers: int) -> Server:
    return uvicorn_app(
        "textbook FastAPI", "textbook:app", project, model, workers, PORTS["textbook"]
    )


def uvicorn_app(name: str, app: str, project: Path, model: Path, workers: int, port: int) -> Server:
    """``app`` from build/bench/apps under ``uvicorn --workers``, asked at /predict."""
    return Server(
        name=name,
        command=[
            str(project / ".venv" / "bin" / "uvicorn"),
            "--app-dir",
            str(BUILD / "apps"),
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=BUILD,
        ready_url=f"http://127.0.0.1:{port}/ready",
        predict_url=f"http://127.0.0.1:{port}/predict",
        body=b"",
        env={"MODEL_PATH": str(model)},
    )


def bare(project: Path, model: Path, workers: int) -> Server:
    return uvicorn_app(BARE, "bare:app", project, model, workers, PORTS["bare"])


def float64_rows(example: dict[str, float], rows: int) -> bytes:
    """``rows`` copies of ``example`` as the bare app reads them."""
    return struct.pack(f"<{len(example)}d", *example.values()) * rows


def arrow_rows(project: Path, example: dict[str, float], rows: int) -> bytes:
    """``rows`` copies of ``example`` as an Arrow IPC stream, one column per feature,
    written by the project's own pyarrow."""
    path = BUILD / "bodies" / f"arrow-{rows}.arrows"
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import json, pyarrow as pa\n"
        f"table = pa.Table.from_pylist([json.loads({json.dumps(json.dumps(example))})] * {rows})\n"
        f"with pa.ipc.new_stream({str(path)!r}, table.schema) as writer:\n"
        "    writer.write_table(table)\n"
    )
    project_python(project, code)
    return path.read_bytes()


def bentoml(venv: Path, model: Path, workers: int) -> Server:
    port = PORTS["bentoml"]
    return Server(
        name="BentoML",
        command=[
            str(venv / "bin" / "bentoml"),
            "serve",
            "bentoml_service:Classifier",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=BUILD / "apps",
        ready_url=f"http://127.0.0.1:{port}/readyz",
        predict_url=f"http://127.0.0.1:{port}/predict",
        body=b"",
        env={"MODEL_PATH": str(model), "BENTOML_DO_NOT_TRACK": "true"},
    )


def mlserver(venv: Path, model: Path, workers: int) -> Server:
    port = PORTS["mlserver"]
    folder = BUILD / "apps" / "mlserver"
    mlserver_files(folder, model, port, workers)
    return Server(
        name="MLServer",
        command=[str(venv / "bin" / "mlserver"), "start", str(folder)],
        cwd=folder,
        ready_url=f"http://127.0.0.1:{port}/v2/models/model/ready",
        predict_url=f"http://127.0.0.1:{port}/v2/models/model/infer",
        body=b"",
        env={},
    )


def write_body(server: Server, payload: object) -> Path:
    path = BUILD / "bodies" / f"{file_name(server)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    path.write_bytes(body)
    server.body = body
    return path


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return ""
    return "met" if passed else "MISSED"


Check = tuple[str, float, float | None, bool]
"""A ratio's name, its value, its target (None: shown, not judged) and whether
higher is better."""


def ratios(results: list[Result], baseline: dict[str, float]) -> list[Check]:
    """The ratios the service is held to, from one round's results."""

    def find(server: str, model: str = "logreg", load: str = "max") -> Result | None:
        return next(
            (r for r in results if r.server == server and r.model == model and r.load == load),
            None,
        )

    checks: list[Check] = []
    ours, book = find("modelship"), find("textbook FastAPI")
    bento, mls = find("BentoML"), find("MLServer")
    if ours and book:
        checks.append(
            (
                "one row: modelship / textbook FastAPI",
                ratio(ours.requests_per_s, book.requests_per_s),
                1.5,
                True,
            )
        )
    if ours and bento:
        checks.append(
            (
                "one row: modelship / BentoML",
                ratio(ours.requests_per_s, bento.requests_per_s),
                3,
                True,
            )
        )
    if ours and mls:
        checks.append(
            (
                "one row: modelship / MLServer",
                ratio(ours.requests_per_s, mls.requests_per_s),
                3,
                True,
            )
        )
    paced_ours, paced_book = find("modelship", load="half"), find("textbook FastAPI", load="half")
    if paced_ours and paced_book:
        checks.append(
            (
                "p99 at half the textbook's maximum: modelship / textbook (ms/ms)",
                ratio(paced_ours.p99_ms, paced_book.p99_ms),
                1.0,
                False,
            )
        )
    hgb_ours, hgb_book = find("modelship", "hgb"), find("textbook FastAPI", "hgb")
    if hgb_ours and hgb_book:
        checks.append(
            (
                "gradient boosting: modelship / textbook FastAPI",
                ratio(hgb_ours.requests_per_s, hgb_book.requests_per_s),
                3,
                True,
            )
        )
    quiet = find("modelship, monitoring off")
    if ours and quiet:
        checks.append(
            ("monitoring on / off", ratio(ours.requests_per_s, quiet.requests_per_s), 0.9, True)
        )
    batch = find("modelship", load="batch 1000")
    if batch:
        checks.append(
            (
                "batch of 1000 as JSON: modelship rows/s / in-process rows/s",
                ratio(batch.rows_per_s, baseline["batch_1000"]),
                0.5,
                True,
            )
        )
    arrow = find("modelship", load="batch 1000, Arrow")
    if arrow:
        checks.append(
            (
                "batch of 1000 as Arrow: modelship rows/s / in-process rows/s",
                ratio(arrow.rows_per_s, baseline["batch_1000"]),
                0.5,
                True,
            )
        )
    floor = find(BARE, load="batch 1000")
    if floor:
        # No target: what HTTP itself leaves of in-process speed, with a body that
        # costs nothing to read, no validation and no monitoring.
        checks.append(
            (
                "batch of 1000: bare ASGI app on float64 rows / in-process rows/s",
                ratio(floor.rows_per_s, baseline["batch_1000"]),
                None,
                True,
            )
        )
    if batch:
        # No target: the ceiling of any JSON API, which must at least parse the body.
        checks.append(
            (
                "batch of 1000: parsing its JSON alone / in-process predict_proba rows/s",
                ratio(baseline["parse_1000"], baseline["batch_1000"]),
                None,
                True,
            )
        )
        # No target: the ceiling of a service that logs every row it answers, on one core.
        checks.append(
            (
                "batch of 1000: writing its rows to the prediction log alone / in-process "
                "predict_proba rows/s",
                ratio(baseline["log_1000"], baseline["batch_1000"]),
                None,
                True,
            )
        )
    if ours:
        checks.append(
            (f"start to /ready, {ours.workers} workers (s)", ours.start_to_ready_s, 2.0, False)
        )
    if ours and book:
        # No target: whether a missed start is the machine's or the service's. The
        # textbook app only imports FastAPI and scikit-learn and loads the model.
        checks.append(
            (
                "start to /ready: modelship / textbook FastAPI (s/s)",
                ratio(ours.start_to_ready_s, book.start_to_ready_s),
                None,
                False,
            )
        )
    return checks


def median_results(rounds: list[list[Result]]) -> list[Result]:
    """Per server, model and load, the round with the median requests/s (the lower
    of the middle two for an even count), in the order of the first round."""
    medians = []
    for first in rounds[0]:
        same = sorted(
            (
                r
                for results in rounds
                for r in results
                if (r.server, r.model, r.load) == (first.server, first.model, first.load)
            ),
            key=lambda r: r.requests_per_s,
        )
        medians.append(same[(len(same) - 1) // 2])
    return medians


def report(rounds: list[list[Result]], baseline: dict[str, float], args: argparse.Namespace) -> str:
    lines = [
        "| server | model | workers | load | requests/s | rows/s | p50 ms | p95 ms | p99 ms "
        "| errors | memory MiB | start to ready s |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.server} | {r.model} | {r.workers} | {r.load} | {r.requests_per_s:,.0f} "
        f"| {r.rows_per_s:,.0f} | {r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} | {r.errors} "
        f"| {r.memory_mib:,.0f} | {r.start_to_ready_s:.2f} |"
        for r in median_results(rounds)
    ]
    lines.append(
        f"| in-process predict_proba | logreg | 1 core | one row | | {baseline['one_row']:,.0f} "
        "| | | | | | |"
    )
    lines.append(
        f"| in-process predict_proba | logreg | 1 core | 1000 rows | "
        f"| {baseline['batch_1000']:,.0f} | | | | | | |"
    )
    lines.append(
        f"| in-process orjson.loads of the batch body | | 1 core | 1000 rows | "
        f"| {baseline['parse_1000']:,.0f} | | | | | | |"
    )
    lines.append(
        "| in-process prediction log writer (SQLite) | | 1 core | 1000 rows | "
        f"| {baseline['log_1000']:,.0f} | | | | | | |"
    )
    # Each ratio is taken within a round, between servers measured minutes apart, then
    # the median over rounds is judged: the machine's speed drifts between runs.
    per_round = [ratios(results, baseline) for results in rounds]
    lines += [
        "",
        "| ratio | median | each round | target | |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for index, (name, _, target, higher) in enumerate(per_round[0]):
        values = [checks[index][1] for checks in per_round]
        middle = statistics.median(values)
        sign = "≥" if higher else "≤"
        verdict = None if target is None else middle >= target if higher else middle <= target
        lines.append(
            f"| {name} | {middle:.2f} | {', '.join(f'{v:.2f}' for v in values)} "
            f"| {'' if target is None else f'{sign} {target:g}'} | {_verdict(verdict)} |"
        )
    lines += [
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}. "
        f"Load: wrk, 1 thread, {args.connections} connections, {args.duration:g} s after a "
        f"{args.warmup:g} s warm-up, on the same cores; 'half': requests sent on a fixed schedule "
        "(wrk2's way) at half the textbook app's maximum, the same rate to both servers, "
        f"over {HALF_LOAD_CONNECTIONS * args.connections} connections. "
        f"{len(rounds)} round(s) of every run, one server after another, except modelship "
        f"with and without monitoring: both running, driven in turn in {args.slices} slices "
        f"of {args.duration / args.slices:g} s, their order reversed every slice, the "
        "requests/s of all slices together and each latency percentile's median over them. "
        "The table shows each run's median round.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", default="breast_cancer", help="examples/<name>.yml to render")
    parser.add_argument("--workers", type=int, default=2, help="workers of every server")
    parser.add_argument("--hgb-workers", type=int, default=1, help="workers for the boosting runs")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before each run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--rounds", type=int, default=3, help="times every run is repeated; medians are judged"
    )
    parser.add_argument(
        "--slices",
        type=int,
        # Each slice is a wrk run of its own, whose connections all land on one of the
        # two workers about one time in six (then about 0.6 of the requests/s): many
        # short slices average that out where five left it to chance.
        default=10,
        help="slices in which servers run side by side are driven in turn",
    )
    parser.add_argument("--smoke", action="store_true", help="1 s runs, no peers: proves it works")
    parser.add_argument(
        "--peers", default="bentoml,mlserver", help="comma-separated peers to install and run"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.peers, args.rounds, args.slices = 1, 1, "", 1, 1
    if shutil.which("wrk") is None:
        parser.error("wrk is missing: apt-get install wrk")
    peers = [peer for peer in args.peers.split(",") if peer]

    BUILD.mkdir(parents=True, exist_ok=True)
    for folder in ("logs", "data", "metrics", "apps"):
        shutil.rmtree(BUILD / folder, ignore_errors=True)
        (BUILD / folder).mkdir()
    project = render_project(args.example)
    if not args.smoke:
        import_gradient_boosting(project)
    example = json.loads(
        project_python(
            project,
            "import json; from app.schemas import FEATURE_EXAMPLE as e; print(json.dumps(e))",
        )
    )
    features = list(example)
    model = project / "artifacts" / "1.0.0" / "model.joblib"
    hgb_model = project / "artifacts" / HGB_VERSION / "model.joblib"
    (BUILD / "apps" / "textbook.py").write_text(textbook_source(features))
    (BUILD / "apps" / "bare.py").write_text(bare_source())
    (BUILD / "apps" / "bentoml_service.py").write_text(bentoml_source(features, args.workers))
    scikit_learn = library_version(project, "scikit-learn")
    venvs = {peer: peer_environment(peer, scikit_learn) for peer in peers}

    baseline = in_process(project, model, example, min(args.duration, 5))
    log(f"in-process predict_proba: {baseline['one_row']:,.0f} rows/s one by one, "
        f"{baseline['batch_1000']:,.0f} rows/s by 1000; parsing a batch's JSON alone: "
        f"{baseline['parse_1000']:,.0f} rows/s; writing a batch's rows to the prediction "
        f"log alone: {baseline['log_1000']:,.0f} rows/s")  # fmt: skip
    rounds: list[list[Result]] = []
    workers = args.workers

    def session(server: Server, body: object, model_name: str, n: int, **kwargs: object) -> Result:
        path = write_body(server, body)
        try:
            serving(server)
            result = measure(server, path, args, model=model_name, workers=n, **kwargs)  # type: ignore[arg-type]
        finally:
            server.stop()
        rounds[-1].append(result)
        return result

    def paired(servers: list[Server], body: object, model_name: str, n: int) -> None:
        pairs = []
        try:
            for server in servers:
                pairs.append((server, write_body(server, body)))
                serving(server)
            rounds[-1] += alternate(pairs, args, model=model_name, workers=n, slices=args.slices)
        finally:
            for server in servers:
                server.stop()

    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            log(f"round {number} of {args.rounds}")
        rounds.append([])
        book = session(textbook(project, model, workers), example, "logreg", workers)
        # With and without monitoring: side by side, in alternating slices (``alternate``).
        paired(
            [
                modelship(project, workers, "1.0.0"),
                modelship(
                    project,
                    workers,
                    "1.0.0",
                    name="modelship, monitoring off",
                    APP_METRICS_ENABLED="false",
                    APP_PREDICTION_LOG_ENABLED="false",
                    APP_LOG_LEVEL="WARNING",
                ),
            ],
            example,
            "logreg",
            workers,
        )
        # Both offered the same fixed rate, half of what the textbook app answered, with
        # spare connections, so a slow server still gets all of its load.
        half = book.requests_per_s / 2
        spare = HALF_LOAD_CONNECTIONS * args.connections
        session(
            textbook(project, model, workers),
            example,
            "logreg",
            workers,
            offered=half,
            connections=spare,
            load="half",
        )
        session(
            modelship(project, workers, "1.0.0"),
            example,
            "logreg",
            workers,
            offered=half,
            connections=spare,
            load="half",
        )
        batch = {"rows": [example] * 1000}
        session(
            modelship(project, workers, "1.0.0", route="/v1/predict/batch"),
            batch,
            "logreg",
            workers,
            rows=1000,
            connections=4,
            load="batch 1000",
        )
        # The same batch as an Arrow stream: one column per feature.
        as_arrow = modelship(project, workers, "1.0.0", route="/v1/predict/batch")
        as_arrow.content_type = ARROW_STREAM
        session(
            as_arrow,
            arrow_rows(project, example, 1000),
            "logreg",
            workers,
            rows=1000,
            connections=4,
            load="batch 1000, Arrow",
        )
        # The same batch, served by the least an HTTP server can do with it.
        session(
            bare(project, model, workers),
            float64_rows(example, 1000),
            "logreg",
            workers,
            rows=1000,
            connections=4,
            load="batch 1000",
        )
        if "bentoml" in venvs:
            session(bentoml(venvs["bentoml"], model, workers), example, "logreg", workers)
        if "mlserver" in venvs:
            session(
                mlserver(venvs["mlserver"], model, workers),
                mlserver_body(example),
                "logreg",
                workers,
            )
        if not args.smoke:
            n = args.hgb_workers
            session(textbook(project, hgb_model, n), example, "hgb", n)
            session(modelship(project, n, HGB_VERSION), example, "hgb", n)

    table = report(rounds, baseline, args)
    print(table)
    (BUILD / "results.md").write_text(table + "\n")
    (BUILD / "results.json").write_text(
        json.dumps(
            {
                "results": [asdict(r) for r in median_results(rounds)],
                "rounds": [[asdict(r) for r in results] for results in rounds],
                "in_process": baseline,
            },
            indent=2,
        )
    )
    errors = sum(result.errors for results in rounds for result in results)
    if errors:
        log(f"{errors} requests failed: see build/bench/logs")
    return 1 if errors else 0


if __name__ == "__main__":
    started = time.perf_counter()
    try:
        status = main()
    except RuntimeError as exc:
        raise SystemExit(f"bench: {exc}") from None
    log(f"done in {time.perf_counter() - started:.0f} s")
    sys.exit(status)
