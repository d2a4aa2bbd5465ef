"""`make template-update` around a stand-in for copier: what it refuses, runs and reports.

The real copier and template are exercised by the template's own tests; here a
small script plays copier's part on a throwaway git repository.
"""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tools.template_update import copier_command, main

GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]


def git(project: Path, *arguments: str) -> None:
    subprocess.run([*GIT, *arguments], cwd=project, check=True, capture_output=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A committed project rendered from template release v0.1.0."""
    root = tmp_path / "project"
    root.mkdir()
    (root / ".copier-answers.yml").write_text("_commit: v0.1.0\n_src_path: gh:example/template\n")
    (root / "README.md").write_text("# Service\n\nTemplate line.\n")
    git(root, "init", "--quiet")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "Render the project")
    return root


def fake_copier(tmp_path: Path, body: str) -> str:
    """A copier stand-in: records its arguments, moves to v0.2.0, then runs ``body``."""
    script = tmp_path / "fake_copier.py"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "Path('arguments.txt').write_text(' '.join(sys.argv[1:]))\n"
        "Path('.copier-answers.yml').write_text("
        "'_commit: v0.2.0\\n_src_path: gh:example/template\\n')\n" + body
    )
    return shlex.join([sys.executable, str(script)])


def test_a_dirty_tree_is_refused_in_one_line(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "README.md").write_text("# Service\n\nMy edit, not committed.\n")

    code = main(["--project", str(project), "--copier", fake_copier(tmp_path, "")])

    errors = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(errors) == 1
    assert "uncommitted change(s) (first: README.md)" in errors[0]
    assert not (project / "arguments.txt").exists()


def test_a_clean_update_runs_copier_with_trust_defaults_and_inline_conflicts(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = "Path('README.md').write_text('# Service\\n\\nTemplate line, v2.\\n')\n"

    code = main(
        [
            "--project",
            str(project),
            "--copier",
            fake_copier(tmp_path, body),
            "--vcs-ref",
            "v0.2.0",
            "--",
            "--skip-answered",
        ]
    )

    output = capsys.readouterr().out
    arguments = (project / "arguments.txt").read_text()
    assert code == 0, output
    assert (
        arguments == "update --trust --defaults --conflict inline --vcs-ref v0.2.0 --skip-answered"
    )
    assert "v0.1.0 -> v0.2.0" in output
    assert "no conflict" in output


def test_conflict_markers_and_rejected_changes_are_listed_with_how_to_resolve(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (
        "Path('README.md').write_text("
        "'# Service\\n\\n<<<<<<< before updating\\nMine.\\n=======\\nTheirs.\\n"
        ">>>>>>> after updating\\n')\n"
        "Path('docs').mkdir()\n"
        "Path('docs/guide.md.rej').write_text('@@ -1 +1 @@\\n')\n"
    )

    code = main(["--project", str(project), "--copier", fake_copier(tmp_path, body)])

    errors = capsys.readouterr().err
    assert code == 1
    assert "left 2 conflict(s)" in errors
    assert "  README.md: conflict markers" in errors
    assert "  docs/guide.md.rej: a change copier could not apply" in errors
    assert "delete the markers" in errors


def test_a_dry_run_says_nothing_was_written_and_asks_for_no_follow_up(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The stand-in plays a dry run: it prints and writes nothing to the project.
    script = tmp_path / "pretend.py"
    script.write_text("print('Updating to template version 0.2.0')\n")
    copier = shlex.join([sys.executable, str(script)])

    code = main(["--project", str(project), "--copier", copier, "--", "--pretend"])

    output = capsys.readouterr().out
    assert code == 0, output
    assert "a dry run (--pretend)" in output
    assert "nothing was written" in output
    assert "->" not in output  # no version change is claimed
    assert "git commit" not in output


def test_a_failing_copier_fails_the_update(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--project", str(project), "--copier", fake_copier(tmp_path, "sys.exit(3)\n")])

    assert code == 1
    assert "failed with status 3" in capsys.readouterr().err


def test_copier_runs_as_configured_with_the_extra_arguments_last() -> None:
    command = copier_command("uv tool run --from 'copier>=9.13.0' copier", None, ["--pretend"])

    assert command[:4] == ["uv", "tool", "run", "--from"]
    assert command[4] == "copier>=9.13.0"
    assert command[-1] == "--pretend"
    assert "--vcs-ref" not in command
