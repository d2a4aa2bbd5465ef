"""The servers the benchmark compares, each started the way its documentation says.

- modelship: a rendered project's own entrypoint (`sh deploy/entrypoint.sh`, gunicorn
  with uvicorn workers), every monitoring feature on unless told otherwise;
- textbook: the FastAPI app of every tutorial, a sync ``def`` endpoint calling
  ``predict_proba`` on a NumPy row, under ``uvicorn --workers``;
- bentoml: a ``@bentoml.service`` with as many workers, served by ``bentoml serve``;
- mlserver: Seldon MLServer's scikit-learn runtime with as many parallel workers,
  asked for ``predict_proba`` over the V2 inference protocol;
- bare: the least an HTTP server can do with a batch, for the batch runs only: a
  pure ASGI app, no framework, reading the rows as raw float64 numbers and
  answering each row's probabilities as JSON, under ``uvicorn --workers``.

Every server loads the same joblib file and answers the same one-row question.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

READY_TIMEOUT = 120.0
PORT_FREE_TIMEOUT = 10.0


@dataclass
class Server:
    """How to start one server and what to ask it."""

    name: str
    command: list[str]
    cwd: Path
    ready_url: str
    predict_url: str
    body: bytes
    env: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    process: subprocess.Popen[bytes] | None = None
    start_to_ready: float = 0.0

    def start(self, log: Path) -> None:
        address = urlsplit(self.ready_url)
        host, port = address.hostname or "127.0.0.1", address.port or 80
        # The last round's server may still be letting go of the port.
        free_by = time.perf_counter() + PORT_FREE_TIMEOUT
        while _listening(host, port) and time.perf_counter() < free_by:
            time.sleep(0.1)
        if _listening(host, port):
            # The server would fail to bind, and what listens there could answer for it.
            raise RuntimeError(
                f"{self.name}: another process already listens on {host}:{port}; "
                "stop it before running the benchmark"
            )
        env = {**os.environ, **self.env}
        env.pop("VIRTUAL_ENV", None)
        started = time.perf_counter()
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = started + READY_TIMEOUT
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting; see {log}")
            if _answers(self.ready_url):
                self.start_to_ready = time.perf_counter() - started
                _check_prediction(self)
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {READY_TIMEOUT:.0f} s; see {log}")

    def pids(self) -> list[int]:
        """The server's process and every descendant, read from /proc."""
        if self.process is None:
            return []
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            queue.extend(children.get(pid, []))
        return found

    def memory_mib(self) -> float:
        """Resident memory of the whole process tree, in MiB."""
        total_kib = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        return total_kib / 1024

    def stop(self) -> None:
        """SIGTERM to the server's process group, then SIGKILL after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _listening(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host``:``port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _check_prediction(server: Server) -> None:
    request = urllib.request.Request(
        server.predict_url, data=server.body, headers={"Content-Type": server.content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return
    except urllib.error.HTTPError as exc:
        answer = exc.read()[:500].decode(errors="replace")
        raise RuntimeError(f"{server.name} answered {exc.code} to a prediction: {answer}") from None


def textbook_source(features: Sequence[str]) -> str:
    """The FastAPI app of a tutorial, for ``features``."""
    fields = "\n".join(f"    {name}: float" for name in features)
    row = ", ".join(f"features.{name}" for name in features)
    return f'''"""A textbook FastAPI prediction service: the baseline of the benchmark."""

import os

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

model = joblib.load(os.environ["MODEL_PATH"])
app = FastAPI()


class Features(BaseModel):
{fields}


@app.get("/ready")
def ready() -> dict[str, str]:
    return {{"status": "ready"}}


@app.post("/predict")
def predict(features: Features) -> dict[str, object]:
    row = np.array([[{row}]])
    probabilities = model.predict_proba(row)[0]
    best = int(probabilities.argmax())
    return {{
        "label": str(model.classes_[best]),
        "probabilities": dict(zip(map(str, model.classes_), probabilities.tolist())),
    }}
'''


def bare_source() -> str:
    """The bare ASGI app: the rows as little-endian float64 numbers, row after row."""
    return '''"""The least an HTTP server can do with a batch: the benchmark's batch ceiling."""

import os

import joblib
import numpy as np
import orjson

model = joblib.load(os.environ["MODEL_PATH"])
FEATURES = model.n_features_in_


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    status, body = 200, b'{"status":"ready"}'
    if scope["method"] == "POST":
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        rows = np.frombuffer(b"".join(chunks), dtype="<f8").reshape(-1, FEATURES)
        if np.isfinite(rows).all():
            probabilities = np.ascontiguousarray(model.predict_proba(rows))
            body = orjson.dumps({"probabilities": probabilities}, option=orjson.OPT_SERIALIZE_NUMPY)
        else:
            status, body = 422, b'{"error":"not finite"}'
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
'''


def bentoml_source(features: Sequence[str], workers: int) -> str:
    """A BentoML 1.4 service for ``features``, as its quickstart writes one."""
    parameters = ", ".join(f"{name}: float" for name in features)
    row = ", ".join(features)
    return f'''"""The same model as a BentoML service."""

import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers={workers})
class Classifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["MODEL_PATH"])

    @bentoml.api
    def predict(self, {parameters}) -> dict:
        probabilities = self.model.predict_proba(np.array([[{row}]]))[0]
        best = int(probabilities.argmax())
        return {{
            "label": str(self.model.classes_[best]),
            "probabilities": dict(zip(map(str, self.model.classes_), probabilities.tolist())),
        }}
'''


def mlserver_files(folder: Path, model_path: Path, port: int, workers: int) -> None:
    """settings.json and model-settings.json for MLServer's scikit-learn runtime."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": port + 1,
        "metrics_port": port + 2,
        "parallel_workers": workers,
    }
    model = {
        "name": "model",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_path), "version": "v1"},
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / "model-settings.json").write_text(json.dumps(model, indent=2))


def mlserver_body(row: Mapping[str, float]) -> bytes:
    values = list(row.values())
    return json.dumps(
        {
            "inputs": [
                {"name": "input-0", "shape": [1, len(values)], "datatype": "FP64", "data": values}
            ],
            "outputs": [{"name": "predict_proba"}],
        }
    ).encode()
