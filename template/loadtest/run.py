"""`make loadtest`: drive the service with Locust, report what it measured, judge the targets.

    make loadtest                              # a server started as `make run` starts it
    make loadtest URL=http://127.0.0.1:8000    # a server already running
    uv run python -m loadtest --help           # every option

The load (users, seconds) and the targets (the p95 latency of /v1/predict, the
error rate) default to ``[tool.loadtest]`` in pyproject.toml, set from the
answers given to the template. The report is printed, written to
loadtest/reports/, and copied into README.md between its performance-profile
markers. Exit status 0 when every target is met, 1 when one is missed or the
test could not run.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic import BaseModel, Field, ValidationError

from app.errors import ConfigError
from app.schemas import API_TITLE
from app.settings import load_server_settings
from loadtest.report import (
    Context,
    Summary,
    Targets,
    conclusion,
    format_report,
    judge,
    replace_profile,
)

ROOT: Final = Path(__file__).resolve().parents[1]
LOCUSTFILE: Final = Path(__file__).with_name("locustfile.py")
READY_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0


class LoadTestError(Exception):
    """The load test cannot run: a bad setting, an unreachable service, Locust failing."""


class Defaults(BaseModel):
    """``[tool.loadtest]`` of pyproject.toml."""

    users: int = Field(ge=1, le=10_000)
    seconds: int = Field(ge=1, le=86_400)
    p95_ms: float = Field(gt=0)
    max_error_rate_pct: float = Field(ge=0, le=100)


def read_defaults(pyproject: Path) -> Defaults:
    try:
        table = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["loadtest"]
        return Defaults.model_validate(table)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise LoadTestError(f"cannot read [tool.loadtest] from {pyproject}: {exc}") from None
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise LoadTestError(f"{pyproject} [tool.loadtest] {where}: {problem['msg']}") from None


def _number(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g}")
        return value

    return parse


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or len(text) <= len("https://"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// address")
    return text.rstrip("/")


def parse_arguments(argv: Sequence[str] | None, defaults: Defaults) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--url", type=_url, help="an already running service (default: start one)")
    parser.add_argument(
        "--users",
        type=_number(int, 1, 10_000),
        default=defaults.users,
        help=f"simulated users at once (default: {defaults.users})",
    )
    parser.add_argument(
        "--seconds",
        type=_number(int, 1, 86_400),
        default=defaults.seconds,
        help=f"how long the load lasts (default: {defaults.seconds})",
    )
    parser.add_argument(
        "--p95-ms",
        type=_number(float, 1e-3, 600_000),
        default=defaults.p95_ms,
        help=f"most milliseconds 95%% of /v1/predict requests may take (default: {defaults.p95_ms:g})",
    )
    parser.add_argument(
        "--max-error-rate-pct",
        type=_number(float, 0, 100),
        default=defaults.max_error_rate_pct,
        help=f"most percent of unexpected answers (default: {defaults.max_error_rate_pct:g})",
    )
    parser.add_argument(
        "--invalid-pct",
        type=_number(float, 0, 100),
        default=2.0,
        help="percent of requests that are invalid on purpose (default: 2)",
    )
    parser.add_argument(
        "--batch-pct",
        type=_number(float, 0, 100),
        default=10.0,
        help="percent of requests that are batches (default: 10)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("loadtest/reports"),
        help="where to write the Markdown report (default: loadtest/reports)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=Path("README.md"),
        help="README whose performance profile to rewrite (default: README.md)",
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="leave the README's performance profile alone"
    )
    args = parser.parse_args(argv)
    if args.invalid_pct + args.batch_pct > 100:
        parser.error("--invalid-pct and --batch-pct add up to more than 100")
    return args


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """The status and body of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def model_version(url: str) -> str:
    # /ready names the model and, unlike /v1/model, answers callers without an API key.
    status, body = _get(f"{url}/ready", timeout=5)
    try:
        version = json.loads(body).get("model_version") if status == 200 else None
    except (ValueError, AttributeError):
        version = None
    return version if isinstance(version, str) else "unknown"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _last_line(log: Path) -> str:
    """What a process printed last: the line that says why it stopped."""
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return lines[-1] if lines else "(no output)"


@contextmanager
def local_server(folder: Path) -> Iterator[str]:
    """Start `deploy/entrypoint.sh` as `make run` does, on a free port of 127.0.0.1, until ready.

    Its prediction log is a file in ``folder``: synthetic traffic never reaches the
    real one. The server is stopped by its process id on the way out.
    """
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "APP_PREDICTION_LOG_PATH": str(folder / "predictions.db"),
    }
    env.pop("APP_DATABASE_URL", None)
    log = folder / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            ["sh", "deploy/entrypoint.sh"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    url = f"http://127.0.0.1:{port}"
    sys.stderr.write(f"loadtest: starting a server on {url}, process {server.pid}\n")
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while _get(f"{url}/ready", timeout=1)[0] != 200:
            if server.poll() is not None:
                raise LoadTestError(f"the server exited while starting: {_last_line(log)}")
            if time.monotonic() > deadline:
                raise LoadTestError(f"the server was not ready after {READY_TIMEOUT:g} s")
            time.sleep(0.2)
        yield url
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        sys.stderr.write(f"loadtest: server process {server.pid} stopped\n")


def check_reachable(url: str) -> None:
    status, _ = _get(f"{url}/ready", timeout=5)
    if status == 0:
        raise LoadTestError(f"nothing answers at {url}: start the service or check --url")
    if status != 200:
        raise LoadTestError(f"{url}/ready answered {status}: the service is not ready")


@contextmanager
def _target(url: str | None, folder: Path) -> Iterator[tuple[str, str]]:
    """The service to load, and how the report describes it."""
    if url:
        check_reachable(url)
        yield url, url
        return
    try:
        workers = load_server_settings().web_concurrency
    except ConfigError as exc:
        raise LoadTestError(exc.message) from None
    with local_server(folder) as local:
        yield (
            local,
            f"a server started as `make run` starts it ({workers} worker{'s' if workers > 1 else ''})",
        )


def run_locust(url: str, args: argparse.Namespace, folder: Path) -> Summary:
    results = folder / "results.json"
    log = folder / "locust.log"
    command = [
        sys.executable, "-m", "locust",
        "--locustfile", str(LOCUSTFILE),
        "--headless",
        "--host", url,
        "--users", str(args.users),
        "--spawn-rate", str(args.users),
        "--run-time", f"{args.seconds}s",
        "--stop-timeout", "5",
        "--only-summary",
        "--exit-code-on-error", "0",
        "--loglevel", "WARNING",
        "--results-file", str(results),
        "--invalid-share", str(args.invalid_pct / 100),
        "--batch-share", str(args.batch_pct / 100),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with log.open("wb") as output:
        try:
            finished = subprocess.run(
                command, cwd=ROOT, env=env, stdout=output, stderr=output,
                timeout=args.seconds + 60, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise LoadTestError(f"Locust did not stop within {args.seconds + 60} s") from None
    if finished.returncode != 0 or not results.exists():
        raise LoadTestError(f"Locust failed (status {finished.returncode}): {_last_line(log)}")
    return Summary.model_validate_json(results.read_text(encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_arguments(argv, read_defaults(ROOT / "pyproject.toml"))
        with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
            folder = Path(scratch)
            with _target(args.url, folder) as (url, where):
                started = datetime.now(UTC)
                version = model_version(url)
                summary = run_locust(url, args, folder)
    except LoadTestError as exc:
        sys.stderr.write(f"loadtest: {exc}\n")
        return 1
    targets = Targets(p95_ms=args.p95_ms, max_error_rate_pct=args.max_error_rate_pct)
    context = Context(
        started=started,
        where=where,
        users=args.users,
        seconds=args.seconds,
        invalid_pct=args.invalid_pct,
        batch_pct=args.batch_pct,
        model_version=version,
        cpus=os.cpu_count() or 1,
    )
    verdicts = judge(summary, targets)
    report = format_report(summary, context, targets, verdicts)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    path = args.report_dir / f"{started:%Y%m%dT%H%M%SZ}.md"
    path.write_text(f"# Load test: {API_TITLE}\n\n{report}", encoding="utf-8")
    sys.stdout.write(report + "\n")
    sys.stdout.write(f"report written to {path}\n")
    if not args.no_readme:
        sys.stdout.write(replace_profile(args.readme, report) + "\n")
    for verdict in verdicts:
        sys.stdout.write(f"{verdict.line()}\n")
    met = all(verdict.met for verdict in verdicts)
    sys.stdout.write(f"loadtest: {conclusion(summary, targets, met)}\n")
    return 0 if met else 1
