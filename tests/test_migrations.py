"""The migration scripts of copier.yml's `_migrations`, run on folders built by hand."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TEMPLATE_ROOT

SCRIPT = TEMPLATE_ROOT / "migrations" / "v0_2_0_move_golden_snapshot.py"
OLD = Path("tests/golden/predictions.json")
NEW = Path("tests/contract/golden_predictions.json")


def migrate(project: Path) -> subprocess.CompletedProcess[str]:
    """Run the script as copier does: with a bare Python, in the project."""
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_snapshot_moves_and_its_empty_folder_goes(tmp_path: Path) -> None:
    write(tmp_path / OLD, '{"rows": []}\n')

    result = migrate(tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / NEW).read_text() == '{"rows": []}\n'
    assert not (tmp_path / "tests" / "golden").exists()
    assert result.stderr == f"modelship 0.2.0 migration: moved {OLD} to {NEW}\n"
    assert result.stdout == ""


def test_a_folder_holding_other_files_stays(tmp_path: Path) -> None:
    write(tmp_path / OLD, "{}\n")
    write(tmp_path / "tests" / "golden" / "notes.md", "mine\n")

    migrate(tmp_path)

    assert (tmp_path / NEW).is_file()
    assert (tmp_path / "tests" / "golden" / "notes.md").read_text() == "mine\n"


def test_running_it_again_changes_nothing(tmp_path: Path) -> None:
    write(tmp_path / OLD, "{}\n")
    migrate(tmp_path)

    again = migrate(tmp_path)

    assert again.returncode == 0
    assert "nothing to move" in again.stderr
    assert (tmp_path / NEW).read_text() == "{}\n"


def test_without_the_old_snapshot_it_does_nothing(tmp_path: Path) -> None:
    result = migrate(tmp_path)

    assert result.returncode == 0
    assert "nothing to move" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["file", "folder"])
def test_an_existing_new_snapshot_is_never_overwritten(tmp_path: Path, target: str) -> None:
    write(tmp_path / OLD, "old\n")
    if target == "file":
        write(tmp_path / NEW, "new\n")
    else:
        (tmp_path / NEW).mkdir(parents=True)

    result = migrate(tmp_path)

    assert result.returncode == 0
    assert (tmp_path / OLD).read_text() == "old\n"
    assert (tmp_path / NEW).exists()
    if target == "file":
        assert (tmp_path / NEW).read_text() == "new\n"
    assert f"{NEW} already exists, so {OLD} was left where it is" in result.stderr
