"""`make docs-update`: the model card and the service contract, written from the code.

Each test writes into a copy of the project's pyproject.toml and the session's
trained model, never into docs/.
"""

import json
import shutil
from pathlib import Path

import pytest

from app.main import create_app
from app.schemas import FEATURES
from tools.project_docs.__main__ import CARD, CONTRACT, main
from tools.project_docs.markers import MarkerError, block, blocks, merge

ROOT = Path(__file__).resolve().parents[2]
HAND_NOTE = "Only for the examples of the course, never for a real decision."


@pytest.fixture
def project(tmp_path: Path, model_dir: Path, model_version: str) -> Path:
    """A project folder holding pyproject.toml and one trained model version."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(model_dir / model_version, tmp_path / "artifacts" / model_version)
    return tmp_path


def write_docs(project: Path, *arguments: str) -> int:
    return main(["--root", str(project), *arguments])


def test_merge_keeps_text_outside_the_markers_and_replaces_blocks() -> None:
    existing = f"# Card\n\nMy own words.\n\n{block('metrics', 'old')}\n\nMore of mine.\n"
    fresh = f"# Card\n\nStarting text.\n\n{block('metrics', 'new')}\n\nStarting text.\n"

    merged = merge(existing, fresh)

    assert merged == f"# Card\n\nMy own words.\n\n{block('metrics', 'new')}\n\nMore of mine.\n"


def test_merge_adds_new_blocks_and_drops_those_no_longer_generated() -> None:
    existing = f"Mine.\n\n{block('gone', 'old')}\n\nAlso mine.\n"
    fresh = f"{block('added', 'body')}\n"

    merged = merge(existing, fresh)

    assert "Mine." in merged
    assert "Also mine." in merged
    assert "gone" not in merged
    assert blocks(merged) == {"added": "\n\nbody\n\n"}


def test_a_block_without_its_end_marker_is_refused() -> None:
    broken = "<!-- generated: metrics -->\n\nno end\n\n<!-- generated: data -->\n"

    with pytest.raises(MarkerError, match="'metrics' has no <!-- /generated --> line"):
        merge(broken, block("metrics", "new"))


def test_first_write_creates_both_docs_and_check_passes(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert write_docs(project) == 0

    assert (project / CARD).is_file()
    assert (project / CONTRACT).is_file()
    assert write_docs(project, "--check") == 0


def test_hand_edits_outside_the_markers_survive_a_rewrite(project: Path) -> None:
    write_docs(project)
    card = project / CARD
    edited = card.read_text().replace(
        "## Out-of-scope uses\n", f"## Out-of-scope uses\n\n{HAND_NOTE}\n"
    )
    card.write_text(edited)

    assert write_docs(project) == 0

    assert HAND_NOTE in card.read_text()
    assert card.read_text() == edited


def test_a_changed_metric_changes_the_card_and_fails_the_check(
    project: Path, model_version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_docs(project)
    metadata_file = project / "artifacts" / model_version / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    name = next(iter(metadata["metrics"]))
    metadata["metrics"][name] = 0.123456
    metadata_file.write_text(json.dumps(metadata))
    capsys.readouterr()

    assert write_docs(project, "--check") == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert f"{CARD} out of date: run `make docs-update`" in message

    write_docs(project)
    assert f"| `{name}` | 0.123456 |" in blocks((project / CARD).read_text())["metrics"]


def test_the_contract_lists_every_path_and_every_feature(project: Path) -> None:
    write_docs(project)
    contract = (project / CONTRACT).read_text()

    for path in create_app().openapi()["paths"]:
        assert f"`{path}`" in contract
    for feature in FEATURES:
        assert f"| `{feature.name}` |" in contract


def test_the_card_lists_every_feature_and_metric(project: Path, model_version: str) -> None:
    write_docs(project)
    card = (project / CARD).read_text()
    metadata = json.loads((project / "artifacts" / model_version / "metadata.json").read_text())

    assert f"| Model version | `{model_version}`" in card
    for feature in FEATURES:
        assert f"| `{feature.name}` |" in card
    for name in metadata["metrics"]:
        assert f"| `{name}` |" in card


def test_missing_metadata_is_one_line_naming_the_file_and_make_train(
    project: Path, model_version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "artifacts" / model_version / "metadata.json").unlink()

    assert write_docs(project, "--model-version", model_version) == 1

    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert str(project / "artifacts" / model_version / "metadata.json") in message
    assert "`make train`" in message
    assert not (project / CARD).exists()
