"""Every way an artifact can be wrong stops the service with a message saying what to fix."""

import json
import shutil
from collections.abc import Callable
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
from app.schemas import CLASS_LABELS, FEATURES, TASK
from app.settings import Settings
from tests.commands import run_app
from tests.server import json_lines


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


def test_a_version_without_metadata_asks_to_restore_it_or_retrain_over_it(
    artifact: Path,
) -> None:
    # `make train` alone refuses to replace the folder: the message must not send there.
    (artifact / METADATA_FILE).unlink()

    with pytest.raises(
        ArtifactError,
        match=rf"{artifact.name} has no metadata\.json; restore it, or .*`make train FORCE=1`",
    ):
        resolve_artifact_dir(artifact.parent, None)


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


def edit_reference(artifact: Path, change: Callable[[dict[str, Any]], object]) -> None:
    """Apply ``change`` to the reference statistics in the artifact's metadata."""
    reference = json.loads((artifact / METADATA_FILE).read_text())["reference"]
    change(reference)
    edit_metadata(artifact, reference=reference)


def test_reference_without_a_feature_is_refused(artifact: Path) -> None:
    name = FEATURES[0].name
    edit_reference(artifact, lambda reference: reference["features"].pop(name))

    with pytest.raises(
        ArtifactError,
        match=rf"is not valid artifact metadata \(reference\.features: no statistics for {name}\)",
    ):
        load(artifact)


NUMERIC = [feature.name for feature in FEATURES if feature.type in ("float", "integer")]


def shorten_fractions(reference: dict[str, Any]) -> None:
    reference["features"][NUMERIC[0]]["fractions"] = [1]


def drop_the_last_class(reference: dict[str, Any]) -> None:
    reference["predictions"]["fractions"].pop(CLASS_LABELS[-1])


def count_values_as_categories(reference: dict[str, Any]) -> None:
    reference["predictions"] = {"fractions": {"low": 0.5, "high": 0.5}, "unseen": 0, "missing": 0}


def reference_damages() -> list[tuple[str, Callable[[dict[str, Any]], None], str]]:
    """Each damage this schema's reference can have: bins need a numeric feature, and
    the predictions' statistics are a classifier's classes or a regressor's values."""
    damages: list[tuple[str, Callable[[dict[str, Any]], None], str]] = []
    if NUMERIC:
        fractions = rf"reference\.features\.{NUMERIC[0]}\.fractions: 1 fractions, but \d+ edges"
        damages.append(("fractions of the wrong length", shorten_fractions, fractions))
    if CLASS_LABELS:
        classes = r"reference\.predictions\.fractions: categories"
        damages.append(("a class missing", drop_the_last_class, classes))
    else:
        values = r"reference\.predictions"
        damages.append(("categories for a regressor's values", count_values_as_categories, values))
    return damages


DAMAGES = reference_damages()


@pytest.mark.parametrize(
    ("damage", "says"),
    [(damage, says) for _, damage, says in DAMAGES],
    ids=[name for name, *_ in DAMAGES],
)
def test_reference_the_drift_code_cannot_use_is_refused(
    artifact: Path, damage: Callable[[dict[str, Any]], None], says: str
) -> None:
    edit_reference(artifact, damage)

    with pytest.raises(ArtifactError, match=rf"is not valid artifact metadata \({says}"):
        load(artifact)


def test_check_refuses_a_damaged_reference_with_one_line(
    artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m app check`, the preflight the server's master runs before any worker
    starts, stops there: workers would each crash on it building their drift bins."""
    edit_reference(artifact, lambda reference: reference["features"].pop(FEATURES[0].name))

    result = run_app(
        capsys,
        "check",
        env={"APP_MODEL_DIR": str(artifact.parent), "APP_MODEL_VERSION": artifact.name},
    )

    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    errors = [record for record in json_lines(result.stdout) if record["level"] == "error"]
    assert [record["event"] for record in errors] == ["cannot start"], result.stdout
    assert "is not valid artifact metadata (reference.features: " in errors[0]["error"]


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


def record_scikit_learn(artifact: Path, version: str) -> None:
    """Make the metadata say ``version`` of scikit-learn trained the model."""
    document = json.loads((artifact / METADATA_FILE).read_text())
    edit_metadata(
        artifact, library_versions={**document["library_versions"], "scikit-learn": version}
    )


def test_model_from_another_scikit_learn_minor_version_is_refused(artifact: Path) -> None:
    record_scikit_learn(artifact, "0.24.2")

    with pytest.raises(ArtifactError, match=r"trained with scikit-learn 0\.24\.2 but .* installed"):
        load(artifact)


def test_a_library_version_that_is_no_version_is_refused(artifact: Path) -> None:
    # Compared part by part, "banana" was told to be installed: scikit-learn==banana.
    record_scikit_learn(artifact, "banana")

    with pytest.raises(ArtifactError, match=r"scikit-learn version 'banana', which is no version"):
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
