import json
from pathlib import Path

import pytest

from app.model import METADATA_FILE, MODEL_FILE, file_sha256
from app.schemas import CLASS_LABELS, FEATURE_TYPES
from training.train import TrainingError, main, train


def test_training_twice_gives_the_same_model_file(tmp_path: Path) -> None:
    first = train(tmp_path, "a")
    second = train(tmp_path, "b")

    assert file_sha256(first / MODEL_FILE) == file_sha256(second / MODEL_FILE)


def test_metadata_records_schema_metrics_versions_and_hashes(tmp_path: Path) -> None:
    artifact = train(tmp_path, "1.0.0")

    metadata = json.loads((artifact / METADATA_FILE).read_text())

    assert metadata["model_version"] == "1.0.0"
    assert [feature["name"] for feature in metadata["features"]] == list(FEATURE_TYPES)
    assert metadata["classes"] == list(CLASS_LABELS)
    assert metadata["metrics"]["accuracy"] > 0.8
    assert set(metadata["library_versions"]) >= {"scikit-learn", "numpy", "joblib"}
    assert metadata["model_sha256"] == file_sha256(artifact / MODEL_FILE)
    assert len(metadata["training_data_sha256"]) == 64
    assert metadata["training_rows"] + metadata["test_rows"] > 0


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


def test_command_line_reports_a_refusal_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train(tmp_path, "1.0.0")

    status = main(["--model-version", "1.0.0", "--out", str(tmp_path)])

    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert len(lines) == 1
    assert "already exists" in lines[0]
