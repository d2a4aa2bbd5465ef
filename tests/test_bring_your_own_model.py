"""A learner's own model, built outside the generated project, imported and served for real."""

import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import render, succeed

# Run with the generated project's Python, from outside the project: a user's
# own training script, as in a notebook, with nothing imported from the project.
USER_SCRIPT = """
import json, sys
import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

data, model_file, expected_file = sys.argv[1:]
frame = pd.read_csv(data)
features, target = frame.drop(columns=["churned"]), frame["churned"]
categories = ["contract", "internet_service", "payment_method"]
model = make_pipeline(
    ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categories)],
        remainder="passthrough",
    ),
    HistGradientBoostingClassifier(random_state=0),
)
model.fit(features, target)
joblib.dump(model, model_file)
sample = features.head(25)
rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in sample.to_dict("records")]
json.dump({"rows": rows, "classes": model.classes_.tolist(),
           "probabilities": model.predict_proba(sample).tolist()}, open(expected_file, "w"))
"""

EXPORT = """
import pandas as pd
from training.data import load_dataset
dataset = load_dataset()
frame = pd.DataFrame(dataset.rows)
frame["churned"] = dataset.target
frame.to_csv("data/churn.csv", index=False)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def post(url: str, body: object) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_until_ready(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {process.communicate()[0]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, reset or timed out while the workers boot
            time.sleep(0.2)
    pytest.fail("server not ready in 60 s")


def test_user_pipeline_on_churn_data_is_imported_and_served_over_http(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    project = render(tmp_path / "churn", dataset="churn")
    uv = project_env.get("UV", "uv")
    succeed(["make", "setup"], project, project_env)
    (project / "data").mkdir()
    succeed([uv, "run", "python", "-c", EXPORT], project, project_env)
    outside = tmp_path / "notebook"
    outside.mkdir()
    (outside / "train_my_model.py").write_text(USER_SCRIPT)
    model, expected_file = outside / "my_model.joblib", outside / "expected.json"
    succeed(
        [uv, "run", "--project", str(project), "python", str(outside / "train_my_model.py"),
         str(project / "data" / "churn.csv"), str(model), str(expected_file)],
        outside,
        project_env,
    )  # fmt: skip

    output = succeed(
        ["make", "import-model", f"MODEL={model}", "DATA=data/churn.csv", "MODEL_VERSION=2.0.0"],
        project,
        project_env,
    )

    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "model imported" in events
    port = free_port()
    env = {
        **project_env,
        "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{project_env['PATH']}",
        "PORT": str(port),
        "APP_MODEL_VERSION": "2.0.0",
        "APP_LOG_FORMAT": "json",
    }
    server = subprocess.Popen(
        ["sh", "deploy/entrypoint.sh"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_ready(server, f"http://127.0.0.1:{port}/ready")
        expected = json.loads(expected_file.read_text())
        served = post(f"http://127.0.0.1:{port}/v1/predict/batch", {"rows": expected["rows"]})
        described = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/model"))
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)

    assert served["model_version"] == "2.0.0"
    assert described["source"]["kind"] == "imported"
    assert described["input_format"] == "frame"
    assert "HistGradientBoostingClassifier" in described["source"]["estimator"]
    threshold = served["predictions"][0]["threshold"]
    for prediction, probabilities in zip(
        served["predictions"], expected["probabilities"], strict=True
    ):
        by_class = dict(zip(expected["classes"], probabilities, strict=True))
        for label, probability in by_class.items():
            assert math.isclose(prediction["probabilities"][label], probability, abs_tol=1e-9)
        assert prediction["label"] == ("churns" if by_class["churns"] >= threshold else "stays")
