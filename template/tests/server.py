"""Starting the production command for real, on a free port of 127.0.0.1, and stopping it.

Each server runs `deploy/entrypoint.sh` exactly as `make run` and the container
do, and is stopped by its own process id.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0


def run_module(
    module: str, *arguments: str | Path, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module arguments`` in the project, as a user would; its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, arguments)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A running server; its output goes to a file, which never fills up and blocks it."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """What the server printed; empty once ``stop`` has collected it."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_server(env_overrides: dict[str, str]) -> Server:
    env = {
        **os.environ,
        # The entrypoint runs gunicorn from this environment, as `uv run` would.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOST": "127.0.0.1",
        "APP_LOG_FORMAT": "json",
        **env_overrides,
    }
    log = Path(tempfile.mkstemp(prefix="server-", suffix=".log")[1])
    return launch(["sh", "deploy/entrypoint.sh"], env, log)


def launch(command: list[str], env: dict[str, str], log: Path) -> Server:
    """Run ``command`` from the project root, its output going to ``log``."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return Server(process, log)


def stop(server: Server) -> str:
    """Stop the server with SIGTERM, as an orchestrator would; return all it printed."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=START_TIMEOUT)
    output = server.output()
    server.log.unlink(missing_ok=True)
    return output


def serving_env(model_dir: Path, model_version: str, workers: int) -> dict[str, str]:
    return {
        "PORT": str(free_port()),
        "WEB_CONCURRENCY": str(workers),
        "APP_MODEL_DIR": str(model_dir),
        "APP_MODEL_VERSION": model_version,
    }


@contextmanager
def serving(
    model_dir: Path,
    model_version: str,
    workers: int = 1,
    env_overrides: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """The production command serving ``model_version`` of ``model_dir``: its base URL,
    once ready; the server is stopped on leaving, whatever happened."""
    env = {**serving_env(model_dir, model_version, workers), **(env_overrides or {})}
    base_url = f"http://127.0.0.1:{env['PORT']}"
    server = start_server(env)
    try:
        wait_until_ready(server, base_url)
        yield base_url
    finally:
        stop(server)


def wait_until_ready(server: Server, base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"server exited while starting:\n{stop(server)}")
        try:
            if httpx2.get(f"{base_url}/ready", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"server not ready after {START_TIMEOUT}s:\n{stop(server)}")
        time.sleep(0.1)


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Return once ``condition()`` holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {seconds} s"
        time.sleep(0.01)


def worker_pids(master: int) -> list[int]:
    """The live gunicorn workers of ``master``: its child processes, read from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            children.append(int(stat.parent.name))
    return children


def connections_held(pid: int, port: int) -> int:
    """How many established connections to ``port`` (IPv4) process ``pid`` holds, read
    from /proc: its sockets' inodes among the server side of /proc/net/tcp."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
            established.add(f"socket:[{fields[9]}]")
    held = 0
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held += str(descriptor.readlink()) in established
        except OSError:
            continue  # closed since it was listed
    return held


def json_lines(output: str) -> list[dict[str, Any]]:
    """The JSON lines of a process's output, parsed; the others left out."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def one_line_failure(env_overrides: dict[str, str]) -> str:
    """Start the server, expect it to stop by itself before it listens or forks a
    worker (so it cannot crash-loop), leaving nothing in its TMPDIR (where the
    entrypoint makes the workers' metric folder), and return its single error line."""
    with tempfile.TemporaryDirectory(prefix="server-tmp-") as scratch:
        server = start_server({"PORT": str(free_port()), "TMPDIR": scratch, **env_overrides})
        try:
            server.process.wait(timeout=START_TIMEOUT)
        finally:
            if server.process.poll() is None:
                server.process.kill()
        output = stop(server)
        left = sorted(path.name for path in Path(scratch).iterdir())
    assert left == [], output
    assert server.process.returncode != 0, output
    assert "Traceback" not in output, output
    assert "Listening at" not in output, output
    assert "Booting worker" not in output, output
    errors = [record for record in json_lines(output) if record["level"] == "error"]
    assert len(errors) == 1, output
    [record] = errors
    assert record["event"] == "cannot start"
    error: str = record["error"]
    return error
