"""The production command, run for real: gunicorn with uvicorn workers over HTTP."""

import json
import resource
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from app.features import encode_rows
from app.model import METADATA_FILE, MODEL_FILE, file_sha256
from app.schemas import FEATURE_EXAMPLE, FEATURES, TARGET, TASK
from app.worker import ACCEPT_RETRY_SECONDS
from tests.clients import http_client
from tests.server import (
    connections_held,
    json_lines,
    one_line_failure,
    serving,
    serving_env,
    start_server,
    stop,
    wait_for,
    wait_until_ready,
    worker_pids,
)
from tests.user_models import SLOW_SECONDS
from training.data import load_dataset
from training.import_model import import_model
from training.train import build_pipeline


@pytest.fixture(scope="module")
def server(model_dir: Path, model_version: str) -> Iterator[str]:
    with serving(model_dir, model_version, workers=2) as base_url:
        yield base_url


def test_production_server_answers_predictions(server: str, model_version: str) -> None:
    with http_client(server) as client:
        responses = [client.post("/v1/predict", json=FEATURE_EXAMPLE) for _ in range(20)]

    assert {response.status_code for response in responses} == {200}
    assert {response.json()["model_version"] for response in responses} == {model_version}
    assert all(response.headers["x-request-id"] for response in responses)


def test_production_server_refuses_bad_input_with_the_envelope(server: str) -> None:
    with http_client(server) as client:
        response = client.post("/v1/predict", json={"nonsense": 1})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


@pytest.fixture(scope="module")
def threaded_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gradient-boosting model: it predicts with OpenMP threads, which do not survive fork()."""
    root = tmp_path_factory.mktemp("threaded")
    dataset = load_dataset()
    estimator = (
        HistGradientBoostingClassifier(max_iter=20, random_state=0)
        if TASK == "classification"
        else HistGradientBoostingRegressor(max_iter=20, random_state=0)
    )
    preprocess = build_pipeline(FEATURES, TASK).steps[0][1]
    model = Pipeline([("preprocess", preprocess), ("model", estimator)])
    model.fit(encode_rows(dataset.rows, FEATURES), dataset.target)
    joblib.dump(model, root / "model.joblib")
    data = pd.DataFrame(dataset.rows).rename(columns={f.name: f.source_column for f in FEATURES})
    data[TARGET] = dataset.target
    data.to_csv(root / "data.csv", index=False)
    import_model(root / "model.joblib", root / "data.csv", root / "artifacts", "threads")
    return root / "artifacts"


def test_model_using_native_threads_is_served_by_every_worker(threaded_model_dir: Path) -> None:
    env = serving_env(threaded_model_dir, "threads", workers=2)
    base_url = f"http://127.0.0.1:{env['PORT']}"
    server = start_server(env)
    try:
        wait_until_ready(server, base_url)
        with http_client(base_url, timeout=10) as client:
            responses = [client.post("/v1/predict", json=FEATURE_EXAMPLE) for _ in range(20)]
    finally:
        output = stop(server)

    assert {response.status_code for response in responses} == {200}, output
    workers = {
        line.split("pid: ")[1][:8] for line in output.splitlines() if "Booting worker" in line
    }
    assert len(workers) == 2


@contextmanager
def opened_together(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections opened at once, each with a `GET /health` sent."""
    pool: list[socket.socket] = []
    try:
        for _ in range(count):
            pool.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        for connection in pool:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        yield pool
    finally:
        for connection in pool:
            connection.close()


def test_connections_opened_together_spread_over_the_workers(
    model_dir: Path, model_version: str
) -> None:
    """A client that opens its pool at once gets every worker, not only the one that
    woke first (app/worker.py). On an idle machine, uvicorn's own worker left the least
    loaded of two with 10 to 27% of such connections, and none at all in a fifth of
    the rounds; this service's worker left it 40 to 43%, and 34 and 49% in two runs
    with both cores kept busy, but 27 and 28% in a CI run with two test suites beside
    it. How a burst spreads depends on which worker the machine runs when: this holds
    the spread to a bound that such a run keeps, and tests/unit/test_worker.py holds
    the worker to accepting one connection at a time."""
    connections, rounds = 32, 20
    env = serving_env(model_dir, model_version, workers=2)
    port = int(env["PORT"])
    server = start_server(env)
    held: list[list[int]] = []
    answers: list[bytes] = []
    try:
        wait_until_ready(server, f"http://127.0.0.1:{port}")
        # /ready answered from one worker; the other may still be loading the model.
        wait_for(lambda: server.output().count("Application startup complete") == 2)
        workers = worker_pids(server.pid)
        for _ in range(rounds):
            with opened_together(port, connections) as pool:
                # An answer on each: every connection has been accepted by a worker.
                answers += [connection.recv(4096) for connection in pool]
                held.append(sorted(connections_held(pid, port) for pid in workers))
    finally:
        output = stop(server)

    assert len(answers) == connections * rounds
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), output
    assert len(workers) == 2
    assert all(sum(counts) == connections for counts in held), held
    # Evenly spread, the least loaded worker would hold half of them.
    least_loaded = sum(counts[0] for counts in held)
    assert least_loaded >= 0.2 * connections * rounds, f"each round's connections: {held}"


def settled_descriptors(pid: int) -> set[int]:
    """The descriptors process ``pid`` holds once the same ones are open 0.2 s apart: the
    connection of the last readiness check closes a moment after it is answered, and
    a descriptor freed after the limit is set would let one connection in."""
    held: set[int] = set()
    deadline = time.monotonic() + 10
    while True:
        now = {int(descriptor.name) for descriptor in Path(f"/proc/{pid}/fd").iterdir()}
        if now == held:
            return now
        assert time.monotonic() < deadline, "the worker's descriptors never settled"
        held = now
        time.sleep(0.2)


def test_a_worker_out_of_file_descriptors_accepts_again_once_it_has_some(
    model_dir: Path, model_version: str
) -> None:
    """Too many open files: the worker says so once, leaves the connections queued in
    the listening socket rather than dropping them, and answers them when it can."""
    env = serving_env(model_dir, model_version, workers=1)
    port = int(env["PORT"])
    server = start_server(env)
    try:
        wait_until_ready(server, f"http://127.0.0.1:{port}")
        [worker] = worker_pids(server.pid)
        limits = resource.prlimit(worker, resource.RLIMIT_NOFILE)
        # The limit bounds descriptor numbers: below the lowest free one, none is left.
        taken = settled_descriptors(worker)
        lowest_free = min(set(range(len(taken) + 1)) - taken)
        resource.prlimit(worker, resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        with opened_together(port, 8) as pool:
            wait_for(lambda: "connections not accepted" in server.output())
            time.sleep(3 * ACCEPT_RETRY_SECONDS)  # it tries again, and says nothing new
            resource.prlimit(worker, resource.RLIMIT_NOFILE, limits)
            answers = [connection.recv(4096) for connection in pool]
    finally:
        output = stop(server)

    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), output
    warnings = [line for line in json_lines(output) if line["event"] == "connections not accepted"]
    assert len(warnings) == 1, output
    assert "Too many open files" in warnings[0]["error"]
    assert "connections accepted again" in output
    assert "Traceback" not in output


def test_missing_artifact_folder_stops_start_up_with_one_line(tmp_path: Path) -> None:
    error = one_line_failure({"APP_MODEL_DIR": str(tmp_path / "missing")})

    assert "missing does not exist; run `make train`" in error


def append_to_model(artifact: Path) -> None:
    with (artifact / MODEL_FILE).open("ab") as model_file:
        model_file.write(b"tampered")


def corrupt_model(artifact: Path) -> None:
    """Bytes that are no model, with their hash recorded, as a careless copy would."""
    (artifact / MODEL_FILE).write_bytes(b"these bytes are not a pickle")
    edit_metadata(artifact, model_sha256=file_sha256(artifact / MODEL_FILE))


def rename_a_feature(artifact: Path) -> None:
    features = read_metadata_document(artifact)["features"]
    edit_metadata(artifact, features=[*features[:-1], {"name": "colour", "type": "float"}])


def claim_an_old_scikit_learn(artifact: Path) -> None:
    versions = read_metadata_document(artifact)["library_versions"]
    edit_metadata(artifact, library_versions={**versions, "scikit-learn": "0.24.2"})


def make_metadata_unreadable(artifact: Path) -> None:
    # Not UTF-8: tests run as root in CI, where file permissions would not stop a read.
    (artifact / METADATA_FILE).write_bytes(b"\xff\xfe{}")


def break_metadata_json(artifact: Path) -> None:
    (artifact / METADATA_FILE).write_text("{not json")


def read_metadata_document(artifact: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((artifact / METADATA_FILE).read_text())
    return document


def edit_metadata(artifact: Path, **changes: object) -> None:
    (artifact / METADATA_FILE).write_text(
        json.dumps({**read_metadata_document(artifact), **changes})
    )


BROKEN_ARTIFACTS: list[tuple[str, Callable[[Path], None], str]] = [
    ("sha256 mismatch", append_to_model, "the file changed after training"),
    ("corrupt model file", corrupt_model, "model.joblib cannot be loaded"),
    ("features differ from the schema", rename_a_feature, "unexpected ['colour']"),
    ("incompatible scikit-learn", claim_an_old_scikit_learn, "trained with scikit-learn 0.24.2"),
    ("unreadable metadata", make_metadata_unreadable, "metadata.json cannot be read"),
    ("metadata not JSON", break_metadata_json, "is not valid artifact metadata"),
]


@pytest.mark.parametrize(
    ("damage", "says"),
    [(damage, says) for _, damage, says in BROKEN_ARTIFACTS],
    ids=[name for name, *_ in BROKEN_ARTIFACTS],
)
def test_broken_artifact_stops_start_up_with_one_line(
    model_dir: Path,
    model_version: str,
    tmp_path: Path,
    damage: Callable[[Path], None],
    says: str,
) -> None:
    artifact = tmp_path / model_version
    shutil.copytree(model_dir / model_version, artifact)
    damage(artifact)

    error = one_line_failure({"APP_MODEL_DIR": str(tmp_path)})

    assert says in error


def test_invalid_setting_stops_start_up_naming_the_variable(model_dir: Path) -> None:
    error = one_line_failure({"APP_MODEL_DIR": str(model_dir), "APP_MAX_BATCH_SIZE": "lots"})

    assert error.startswith("invalid setting APP_MAX_BATCH_SIZE:")


@pytest.mark.parametrize("where", ["under /proc", "a folder"])
def test_a_log_file_that_cannot_be_made_stops_start_up_naming_it(
    model_dir: Path, tmp_path: Path, where: str
) -> None:
    path = "/proc/no-such-process/log.db" if where == "under /proc" else str(tmp_path)
    error = one_line_failure({"APP_MODEL_DIR": str(model_dir), "APP_PREDICTION_LOG_PATH": path})

    assert error.startswith(f"APP_PREDICTION_LOG_PATH={path} cannot be made or written: ")


def test_a_port_in_use_stops_start_up_in_one_line_naming_it(model_dir: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        error = one_line_failure({"APP_MODEL_DIR": str(model_dir), "PORT": str(port)})

    assert error.startswith(f"cannot listen on 127.0.0.1 port {port} (HOST, PORT): ")
    assert error.endswith("choose another PORT")


def test_a_host_name_is_probed_as_gunicorn_binds_it(model_dir: Path) -> None:
    """gunicorn binds a name such as localhost over IPv4: that port, held, is in use."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        error = one_line_failure(
            {"APP_MODEL_DIR": str(model_dir), "HOST": "localhost", "PORT": str(port)}
        )

    assert error.startswith(f"cannot listen on localhost port {port} (HOST, PORT): ")


def test_an_address_this_machine_does_not_have_stops_start_up_naming_host(
    model_dir: Path,
) -> None:
    # 192.0.2.0/24 is for documentation (RFC 5737): no machine has it.
    error = one_line_failure({"APP_MODEL_DIR": str(model_dir), "HOST": "192.0.2.1"})

    assert error.startswith("HOST 192.0.2.1 is not an address of this machine")


# gunicorn reads WEB_CONCURRENCY as it is imported: all but 0 ended in its traceback.
@pytest.mark.parametrize("workers", ["0", "-2", "two", "2.5", "2.0", ""])
def test_invalid_worker_count_stops_start_up_naming_the_variable(
    model_dir: Path, workers: str
) -> None:
    error = one_line_failure({"APP_MODEL_DIR": str(model_dir), "WEB_CONCURRENCY": workers})

    assert error.startswith("invalid setting WEB_CONCURRENCY:")


def test_a_model_call_past_the_timeout_gets_504_and_the_worker_reports_it(
    shadow_model_dir: Path,
) -> None:
    """The slow version takes SLOW_SECONDS a call: with a 100 ms timeout the request is
    answered 504 at once, /ready says 503 while the call holds the model thread, and
    200 again once it ends."""
    env = {**serving_env(shadow_model_dir, "slow", workers=1), "APP_PREDICT_TIMEOUT_MS": "100"}
    base_url = f"http://127.0.0.1:{env['PORT']}"
    server = start_server(env)
    try:
        wait_until_ready(server, base_url)
        with http_client(base_url, timeout=10) as client:
            started = time.monotonic()
            response = client.post("/v1/predict", json=FEATURE_EXAMPLE)
            answered_after = time.monotonic() - started
            time.sleep(0.05)
            during = client.get("/ready")
            time.sleep(SLOW_SECONDS)
            after = client.get("/ready")
    finally:
        stop(server)

    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "prediction_timeout"
    assert answered_after < SLOW_SECONDS
    assert during.status_code == 503, during.text
    assert during.json()["error"]["code"] == "model_stuck"
    assert after.status_code == 200, after.text
