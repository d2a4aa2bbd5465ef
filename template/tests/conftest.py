"""Shared fixtures: one model trained per test session into a temporary folder."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.model import Predictor, load_service_model
from app.settings import Settings
from training.train import train

pytest_plugins = ["tests.databases"]


@pytest.fixture(scope="session", autouse=True)
def _prediction_log_in_a_temporary_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Applications and servers the tests start keep their prediction log out of data/."""
    folder = tmp_path_factory.mktemp("prediction-log")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APP_PREDICTION_LOG_PATH", str(folder / "predictions.db"))
        yield


@pytest.fixture(scope="session")
def model_version() -> str:
    return "test-1.0"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, model_version: str) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    train(root, model_version)
    return root


@pytest.fixture(scope="session")
def predictor(model_dir: Path, model_version: str) -> Predictor:
    loaded, _ = load_service_model(Settings(model_dir=model_dir, model_version=model_version))
    return loaded


@pytest.fixture
def settings(model_dir: Path, model_version: str) -> Settings:
    return Settings(model_dir=model_dir, model_version=model_version, log_format="json")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
