"""Every way an artifact can be wrong stops the service with a message saying what to fix."""

import json
import shutil
from pathlib import Path
from typing import Any

import joblib
import pytest

from app.errors import ArtifactError
from app.model import (
    METADATA_FILE,
    MODEL_FILE,
    file_sha256,
    load_service_model,
    resolve_artifact_dir,
)
from app.schemas import TASK
from app.settings import Settings


@pytest.fixture
def artifact(model_dir: Path, model_version: str, tmp_path: Path) -> Path:
    """A private copy of the trained artifact that a test may damage."""
    copy = tmp_path / "artifacts" / model_version
    shutil.copytree(model_dir / model_version, copy)
    return copy


def load(artifact: Path) -> list[str]:
    """Load the artifact as the service does; return its notes about library versions."""
    _, notes = load_service_model(Settings(model_dir=artifact.parent, model_version=artifact.name))
    return [note for note in notes if "synthetic" not in note]


def edit_metadata(artifact: Path, **changes: Any) -> None:
    path = artifact / METADATA_FILE
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def replace_model(artifact: Path, content: bytes) -> None:
    """Swap the model file and record the new file's hash, as a careless copy would."""
    (artifact / MODEL_FILE).write_bytes(content)
    edit_metadata(artifact, model_sha256=file_sha256(artifact / MODEL_FILE))


def test_intact_artifact_loads_without_notes(artifact: Path) -> None:
    assert load(artifact) == []


def test_metadata_naming_another_version_than_its_folder_is_refused(artifact: Path) -> None:
    edit_metadata(artifact, model_version="2.0.0")

    with pytest.raises(
        ArtifactError, match=rf"says model_version 2.0.0 but its folder is {artifact.name}"
    ):
        load(artifact)


def test_missing_model_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ArtifactError, match=r"model folder .*nowhere does not exist; run `make train`"
    ):
        resolve_artifact_dir(tmp_path / "nowhere", None)


def test_unknown_version_is_refused_naming_the_versions_there(artifact: Path) -> None:
    with pytest.raises(ArtifactError, match=rf"version 9\.9 not found.*holds {artifact.name}"):
        resolve_artifact_dir(artifact.parent, "9.9")


def test_only_version_in_the_folder_is_served_when_none_is_chosen(artifact: Path) -> None:
    assert resolve_artifact_dir(artifact.parent, None) == artifact


def test_several_versions_need_an_explicit_choice(artifact: Path) -> None:
    shutil.copytree(artifact, artifact.parent / "2.0.0")

    with pytest.raises(ArtifactError, match=r"2 model versions .*set APP_MODEL_VERSION"):
        resolve_artifact_dir(artifact.parent, None)


def test_unfinished_training_folder_is_not_a_version(artifact: Path) -> None:
    shutil.copytree(artifact, artifact.parent / ".2.0.0-staging")

    assert resolve_artifact_dir(artifact.parent, None) == artifact


def test_missing_metadata_is_refused(artifact: Path) -> None:
    (artifact / METADATA_FILE).unlink()

    with pytest.raises(ArtifactError, match=r"metadata\.json is missing"):
        load(artifact)


def test_metadata_that_is_not_json_is_refused(artifact: Path) -> None:
    (artifact / METADATA_FILE).write_text("{not json")

    with pytest.raises(ArtifactError, match=r"is not valid artifact metadata"):
        load(artifact)


def test_metadata_without_a_required_field_is_refused(artifact: Path) -> None:
    document = json.loads((artifact / METADATA_FILE).read_text())
    del document["model_sha256"]
    (artifact / METADATA_FILE).write_text(json.dumps(document))

    with pytest.raises(ArtifactError, match=r"model_sha256: Field required"):
        load(artifact)


def test_changed_model_file_fails_the_sha256_check(artifact: Path) -> None:
    with (artifact / MODEL_FILE).open("ab") as model_file:
        model_file.write(b"\0")

    with pytest.raises(ArtifactError, match=r"has sha256 .* but metadata\.json records"):
        load(artifact)


def test_missing_model_file_is_refused(artifact: Path) -> None:
    (artifact / MODEL_FILE).unlink()

    with pytest.raises(ArtifactError, match=r"model\.joblib is missing"):
        load(artifact)


def test_corrupt_model_file_is_refused(artifact: Path) -> None:
    replace_model(artifact, b"these bytes are not a pickle")

    with pytest.raises(ArtifactError, match=r"model\.joblib cannot be loaded"):
        load(artifact)


def test_file_that_is_not_a_model_is_refused(artifact: Path, tmp_path: Path) -> None:
    joblib.dump({"not": "a model"}, tmp_path / "other.joblib")
    replace_model(artifact, (tmp_path / "other.joblib").read_bytes())

    with pytest.raises(ArtifactError, match=r"has no predict"):
        load(artifact)


def test_model_made_for_the_other_task_is_refused(artifact: Path) -> None:
    other = "regression" if TASK == "classification" else "classification"
    edit_metadata(artifact, task=other)

    with pytest.raises(ArtifactError, match=rf"does {other} but this service does {TASK}"):
        load(artifact)


def test_features_different_from_the_schema_are_refused(artifact: Path) -> None:
    document = json.loads((artifact / METADATA_FILE).read_text())
    features = document["features"]
    edit_metadata(artifact, features=[*features[:-1], {"name": "colour", "type": "float"}])

    with pytest.raises(ArtifactError, match=r"trained on features .*unexpected \['colour'\]"):
        load(artifact)


def test_features_in_another_order_are_refused(artifact: Path) -> None:
    document = json.loads((artifact / METADATA_FILE).read_text())
    edit_metadata(artifact, features=document["features"][::-1])

    with pytest.raises(ArtifactError, match=r"same names, different order, types"):
        load(artifact)


def test_classes_different_from_the_schema_are_refused(artifact: Path) -> None:
    document = json.loads((artifact / METADATA_FILE).read_text())
    edit_metadata(artifact, classes=[*document["classes"][:-1], "unknown"])

    with pytest.raises(ArtifactError, match=r"predicts classes .* but the service schema declares"):
        load(artifact)


def test_model_from_another_scikit_learn_minor_version_is_refused(artifact: Path) -> None:
    document = json.loads((artifact / METADATA_FILE).read_text())
    edit_metadata(
        artifact, library_versions={**document["library_versions"], "scikit-learn": "0.24.2"}
    )

    with pytest.raises(ArtifactError, match=r"trained with scikit-learn 0\.24\.2 but .* installed"):
        load(artifact)


def test_model_from_another_patch_release_loads_with_a_note(artifact: Path) -> None:
    document = json.loads((artifact / METADATA_FILE).read_text())
    installed = document["library_versions"]["numpy"]
    major = installed.split(".")[0]
    edit_metadata(
        artifact, library_versions={**document["library_versions"], "numpy": f"{major}.0.0"}
    )

    notes = load(artifact)

    assert notes == [f"model trained with numpy {major}.0.0, running {installed}"]
