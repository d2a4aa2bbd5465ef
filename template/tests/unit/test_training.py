import json
from pathlib import Path

import pandas as pd
import pytest

from app.model import METADATA_FILE, MODEL_FILE, file_sha256
from app.schemas import CLASS_LABELS, FEATURES, TARGET, TASK
from training.data import load_dataset
from training.train import TrainingError, main, train


def test_training_twice_gives_the_same_model_file(tmp_path: Path) -> None:
    first = train(tmp_path, "a")
    second = train(tmp_path, "b")

    assert file_sha256(first / MODEL_FILE) == file_sha256(second / MODEL_FILE)


def test_metadata_records_schema_metrics_versions_hashes_and_reference(
    model_dir: Path, model_version: str
) -> None:
    artifact = model_dir / model_version

    metadata = json.loads((artifact / METADATA_FILE).read_text())

    assert metadata["model_version"] == model_version
    assert metadata["task"] == TASK
    assert metadata["target"] == TARGET
    assert [feature["name"] for feature in metadata["features"]] == [f.name for f in FEATURES]
    assert metadata["classes"] == list(CLASS_LABELS)
    expected_metrics = (
        {"accuracy", "f1_macro", "log_loss"} if TASK == "classification" else {"mae", "rmse", "r2"}
    )
    assert expected_metrics <= set(metadata["metrics"])
    assert "held-out" in metadata["evaluation"]
    assert set(metadata["library_versions"]) >= {"scikit-learn", "numpy", "joblib"}
    assert metadata["model_sha256"] == file_sha256(artifact / MODEL_FILE)
    assert len(metadata["training_data_sha256"]) == 64
    assert metadata["training_rows"] > metadata["evaluation_rows"] > 0
    assert metadata["source"]["kind"] == "trained"
    assert set(metadata["reference"]["features"]) == {f.name for f in FEATURES}


def test_existing_version_is_never_replaced_without_force(tmp_path: Path) -> None:
    artifact = train(tmp_path, "1.0.0")
    before = (artifact / METADATA_FILE).read_text()

    with pytest.raises(TrainingError, match=r"already exists"):
        train(tmp_path, "1.0.0")

    assert (artifact / METADATA_FILE).read_text() == before


def test_force_replaces_an_existing_version(tmp_path: Path) -> None:
    artifact = train(tmp_path, "1.0.0")
    before = json.loads((artifact / METADATA_FILE).read_text())["trained_at"]

    train(tmp_path, "1.0.0", force=True)

    assert json.loads((artifact / METADATA_FILE).read_text())["trained_at"] != before
    assert [path.name for path in tmp_path.iterdir()] == ["1.0.0"]


@pytest.mark.parametrize("version", ["../escape", "", ".hidden", "a b"])
def test_version_that_is_not_a_plain_folder_name_is_refused(tmp_path: Path, version: str) -> None:
    with pytest.raises(TrainingError, match=r"not usable as a folder name"):
        train(tmp_path, version)


def write_csv(path: Path, rows: int = 120) -> Path:
    dataset = load_dataset()
    frame = pd.DataFrame(dataset.rows[:rows])
    frame = frame.rename(columns={f.name: f.source_column for f in FEATURES})
    frame[TARGET] = dataset.target[:rows]
    frame.to_csv(path, index=False)
    return path


def test_training_on_a_csv_records_that_data(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "train.csv")

    artifact = train(tmp_path / "artifacts", "from-csv", data=data)

    metadata = json.loads((artifact / METADATA_FILE).read_text())
    assert metadata["source"]["data"] == str(data)
    assert metadata["training_rows"] + metadata["evaluation_rows"] == 120


def test_csv_that_does_not_fit_the_schema_is_refused_naming_the_column(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "train.csv")
    column = FEATURES[0].source_column
    pd.read_csv(data).drop(columns=[column]).to_csv(data, index=False)

    with pytest.raises(TrainingError, match=rf"lacks column\(s\) \['{column}'\]"):
        train(tmp_path / "artifacts", "broken", data=data)


def test_command_line_reports_a_refusal_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train(tmp_path, "1.0.0")

    status = main(["--model-version", "1.0.0", "--out", str(tmp_path)])

    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert len(lines) == 1
    assert "already exists" in lines[0]
