"""Rolling back is a restart with another APP_MODEL_VERSION, run with the production command.

Every trained version stays in its own folder of the artifact directory, so the
previous one is still there to serve: nothing is rebuilt or retrained.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.schemas import FEATURE_EXAMPLE
from tests.clients import http_client
from tests.contract.compatibility import breaking_changes
from tests.contract.test_openapi import SNAPSHOT
from tests.server import serving
from training.train import train

NEWER_VERSION = "test-2.0"


@dataclass(frozen=True)
class Served:
    """What a server answered: the version of a prediction, of /v1/model, and its contract."""

    prediction_version: str
    model_version: str
    contract: dict[str, Any]


@pytest.fixture(scope="module")
def artifacts(
    model_dir: Path, model_version: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The session's model and a newer version beside it, as `make train` leaves them."""
    root = tmp_path_factory.mktemp("versions")
    shutil.copytree(model_dir / model_version, root / model_version)
    train(root, NEWER_VERSION)
    return root


def serve(artifacts: Path, version: str) -> Served:
    """Start the production command with APP_MODEL_VERSION=``version``, ask it, stop it."""
    with (
        serving(artifacts, version) as base_url,
        http_client(base_url, timeout=10) as client,
    ):
        prediction = client.post("/v1/predict", json=FEATURE_EXAMPLE).json()
        model = client.get("/v1/model").json()
        contract = client.get("/openapi.json").json()
    return Served(prediction["model_version"], model["model_version"], contract)


def test_rolling_back_serves_the_previous_version_under_the_same_contract(
    artifacts: Path, model_version: str
) -> None:
    recorded = json.loads(SNAPSHOT.read_text(encoding="utf-8"))

    newer = serve(artifacts, NEWER_VERSION)
    rolled_back = serve(artifacts, model_version)

    assert (newer.prediction_version, newer.model_version) == (NEWER_VERSION, NEWER_VERSION)
    assert (rolled_back.prediction_version, rolled_back.model_version) == (model_version,) * 2
    # The contract test, against what the rolled-back server serves.
    assert breaking_changes(recorded, rolled_back.contract) == []
    assert rolled_back.contract == recorded
