"""Shared fixtures: one model trained per test session into a temporary folder."""

from collections.abc import Iterator
from pathlib import Path

import joblib
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from app.features import encode_rows
from app.main import create_app
from app.model import Predictor, load_service_model
from app.schemas import FEATURES, TARGET, TASK
from app.settings import Settings
from tests.user_models import slow
from training.data import load_dataset
from training.import_model import import_model
from training.train import build_pipeline, train

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


@pytest.fixture(scope="session")
def shadow_model_dir(tmp_path_factory: pytest.TempPathFactory, model_version: str) -> Path:
    """The trained model beside two shadows: ``stump``, a one-split decision tree that
    agrees with it on some rows only, and ``slow``, the trained pipeline taking
    half a second per call."""
    root = tmp_path_factory.mktemp("shadow")
    artifacts = root / "artifacts"
    train(artifacts, model_version)
    dataset = load_dataset()
    data = pd.DataFrame(dataset.rows).rename(columns={f.name: f.source_column for f in FEATURES})
    data[TARGET] = dataset.target
    data.to_csv(root / "data.csv", index=False)
    matrix = encode_rows(dataset.rows, FEATURES)
    tree = (
        DecisionTreeClassifier(max_depth=1, random_state=0)
        if TASK == "classification"
        else DecisionTreeRegressor(max_depth=1, random_state=0)
    )
    preprocess = build_pipeline(FEATURES, TASK).steps[0][1]
    stump = Pipeline([("preprocess", preprocess), ("model", tree)]).fit(matrix, dataset.target)
    slowly = slow(build_pipeline(FEATURES, TASK)).fit(matrix, dataset.target)
    for version, model in (("stump", stump), ("slow", slowly)):
        joblib.dump(model, root / f"{version}.joblib")
        import_model(root / f"{version}.joblib", root / "data.csv", artifacts, version)
    return artifacts
