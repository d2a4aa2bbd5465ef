"""How long the image's command takes from start to ready, beside an empty FastAPI app.

    uv run python -m tests.deploy.start_to_ready [--workers 1 4] [--repeat 5]

Both run under gunicorn with uvicorn workers on 127.0.0.1 and are stopped with
SIGTERM. "First ready" is the first 200 from /ready; "all ready" is when every
worker has logged that its application started. The ratio says what loading,
verifying and warming up the model adds to a server that loads nothing.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx2
from fastapi import FastAPI

from tests.deploy.image import image_environment, read_image
from tests.server import launch, stop

baseline_app = FastAPI()


@baseline_app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


def time_to_ready(command: list[str], env: dict[str, str], workers: int) -> tuple[float, float]:
    """Seconds from start to the first 200 from /ready, and to every worker started."""
    started = time.perf_counter()
    server = launch(command, env, Path(env["TMPDIR"]) / "server.log")
    process = server.process
    first = 0.0
    try:
        while time.perf_counter() - started < 60:
            if process.poll() is not None:
                raise SystemExit(f"server exited:\n{server.output()}")
            if not first:
                try:
                    response = httpx2.get(f"http://127.0.0.1:{env['PORT']}/ready", timeout=1)
                    if response.status_code == 200:
                        first = time.perf_counter() - started
                except httpx2.TransportError:
                    pass
            if first and server.output().count("Application startup complete") >= workers:
                return first, time.perf_counter() - started
            time.sleep(0.005)
        raise SystemExit(f"not ready after 60 s:\n{server.output()}")
    finally:
        stop(server)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    image = read_image()
    print(f"{'workers':>7} {'server':<10} {'first ready':>11} {'all ready':>9} {'ratio':>6}")
    for workers in args.workers:
        results: dict[str, list[tuple[float, float]]] = {"empty app": [], "service": []}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                env = image_environment(image, Path(folder)) | {"WEB_CONCURRENCY": str(workers)}
                baseline = [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    f"--workers={workers}",
                    "--worker-class=uvicorn_worker.UvicornWorker",
                    f"--bind=127.0.0.1:{env['PORT']}",
                    "tests.deploy.start_to_ready:baseline_app",
                ]
                results["empty app"].append(time_to_ready(baseline, env, workers))
                results["service"].append(time_to_ready(image.command, env, workers))
        medians = {
            name: tuple(statistics.median(run[i] for run in runs) for i in (0, 1))
            for name, runs in results.items()
        }
        for name, (first, every) in medians.items():
            ratio = every / medians["empty app"][1]
            print(f"{workers:>7} {name:<10} {first:>10.2f}s {every:>8.2f}s {ratio:>5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
