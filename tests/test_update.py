"""`copier update` from one template release to the next, on projects as users keep them.

A throwaway template repository gets three tagged releases:

- v0.1.0: the released template, `git archive` of the commit this repository tags
  v0.1.0 (by hash, so a clone without tags still has it),
  whose projects keep their golden snapshot at tests/golden/predictions.json;
- v0.2.0: this working tree, uncommitted edits included, with its migration;
- v0.3.0: v0.2.0 with one line of the README and the Makefile's default port
  changed, to meet a user's edit of the same README line.

Run with `-s` to see each update's output and timings.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TEMPLATE_ROOT, run, succeed

pytestmark = pytest.mark.xdist_group("update")

COPIER = str(Path(sys.executable).parent / "copier")
# The commit tagged v0.1.0 (CHANGELOG.md): main's history always holds it, tags may not travel.
FIRST_RELEASE = "a1c2b480f72bf6a9fd99c05197ebf278209c74d0"
OLD_GOLDEN = Path("tests/golden/predictions.json")
NEW_GOLDEN = Path("tests/contract/golden_predictions.json")
# The line v0.3.0 changes, in the template and in a rendered README.
README_LINE = "| `make dev` | one auto-reloading server for development |"
README_LINE_V3 = "| `make dev` | one server that reloads on every change, for development |"
USER_LINE = "| `make dev` | our team's development server, see the wiki |"


def git(repo: Path, *arguments: str) -> str:
    return succeed(["git", *arguments], repo, git_env())


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    for role in ("AUTHOR", "COMMITTER"):
        env.setdefault(f"GIT_{role}_NAME", "Update Test")
        env.setdefault(f"GIT_{role}_EMAIL", "update-test@example.com")
    return env


def working_tree_files() -> list[str]:
    """The template's files as `git ls-files` sees them, uncommitted and new ones included."""
    listed = succeed(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        TEMPLATE_ROOT,
        git_env(),
    )
    return [name for name in listed.split("\0") if name and (TEMPLATE_ROOT / name).is_file()]


def commit_release(repo: Path, tag: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", f"Release {tag}")
    git(repo, "tag", tag)


def clear(repo: Path) -> None:
    for child in repo.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("update") / "modelship"
    repo.mkdir()
    git(repo, "init", "--quiet")
    released = run(
        ["git", "rev-parse", "--verify", f"{FIRST_RELEASE}^{{commit}}"], TEMPLATE_ROOT, git_env()
    )
    if released.returncode:
        pytest.fail(f"release 0.1.0 ({FIRST_RELEASE}) is missing from this clone's history")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", FIRST_RELEASE],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    commit_release(repo, "v0.1.0")

    clear(repo)
    for name in working_tree_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_ROOT / name, repo / name)
    commit_release(repo, "v0.2.0")

    readme = repo / "template" / "README.md.jinja"
    assert README_LINE in readme.read_text(), "pick another README line for v0.3.0 to change"
    readme.write_text(readme.read_text().replace(README_LINE, README_LINE_V3))
    makefile = repo / "template" / "Makefile.jinja"
    assert "PORT ?= 8000\n" in makefile.read_text()
    makefile.write_text(makefile.read_text().replace("PORT ?= 8000\n", "PORT ?= 8001\n"))
    commit_release(repo, "v0.3.0")
    return repo


def render(template_repo: Path, destination: Path, release: str, env: dict[str, str]) -> Path:
    """Render ``release`` with the defaults and commit it, as a user starts a project."""
    succeed(
        [
            COPIER,
            "copy",
            "--defaults",
            "--quiet",
            "--vcs-ref",
            release,
            str(template_repo),
            str(destination),
        ],
        template_repo.parent,
        env,
    )
    git(destination, "init", "--quiet")
    git(destination, "add", "-A")
    git(destination, "commit", "--quiet", "-m", f"Render modelship {release}")
    return destination


def copier_update(
    project: Path, release: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """What a project of v0.1.0, which has no `make template-update`, runs by hand."""
    command = [
        COPIER,
        "update",
        "--trust",
        "--defaults",
        "--conflict",
        "inline",
        "--vcs-ref",
        release,
    ]
    return run(command, project, env, timeout=300)


def changed_files(project: Path) -> list[str]:
    status = git(project, "status", "--porcelain=v1", "--untracked-files=all")
    return [line[3:] for line in status.splitlines() if "D" not in line[:2]]


def has_markers(path: Path) -> bool:
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return any(line.startswith("<<<<<<< ") for line in lines)


def conflicted(project: Path) -> list[str]:
    """The files an update changed that hold conflict markers, and its `*.rej` files."""
    return [
        name
        for name in changed_files(project)
        if name.endswith(".rej") or has_markers(project / name)
    ]


def report(title: str, result: subprocess.CompletedProcess[str], seconds: float) -> str:
    text = (
        f"\n===== {title}: exit {result.returncode} in {seconds:.1f} s =====\n"
        f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
    )
    print(text)
    return text


@pytest.fixture
def env(project_env: dict[str, str]) -> dict[str, str]:
    return {**project_env, **{k: v for k, v in git_env().items() if k.startswith("GIT_")}}


def test_an_unmodified_project_updates_without_conflict_and_passes_its_checks(
    template_repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    started = time.monotonic()
    project = render(template_repo, tmp_path / "service", "v0.1.0", env)
    succeed(["make", "setup"], project, env)
    # A project of v0.1.0 records its golden snapshot at the old path, and commits it.
    snapshot = (project / OLD_GOLDEN).read_bytes()
    assert not (project / NEW_GOLDEN).exists()
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "make setup: contract and golden snapshots")
    prepared = time.monotonic()

    result = copier_update(project, "v0.2.0", env)
    updated = time.monotonic()
    output = report("v0.1.0 -> v0.2.0, unmodified project", result, updated - prepared)

    assert result.returncode == 0, output
    assert conflicted(project) == [], output
    assert "_commit: v0.2.0" in (project / ".copier-answers.yml").read_text()
    makefile = (project / "Makefile").read_text()
    assert f"GOLDEN := {NEW_GOLDEN}" in makefile
    assert "\ntemplate-update: " in makefile
    assert (project / ".github" / "workflows" / "template-update.yml").is_file()
    # The migration moved the snapshot, unchanged, and removed the emptied folder.
    assert (project / NEW_GOLDEN).read_bytes() == snapshot
    assert not (project / OLD_GOLDEN.parent).exists()
    assert f"moved {OLD_GOLDEN} to {NEW_GOLDEN}" in result.stderr

    # As the update's last line says: make setup (0.2.0 generates docs/MODEL_CARD.md and
    # docs/SERVICE_CONTRACT.md where they are missing), then make check.
    succeed(["make", "setup"], project, env)
    assert (project / "docs" / "MODEL_CARD.md").is_file()
    # The template's API grew since 0.1.0 (Arrow bodies on /v1/predict/batch): the
    # project's contract test asks for `make contract-update`, as for any change of the
    # API that breaks no client, and the maintainer records it.
    asked = run(
        [env.get("UV", "uv"), "run", "pytest", "-q", "tests/contract/test_openapi.py"],
        project,
        env,
    )
    assert asked.returncode == 1, asked.stdout
    assert "make contract-update" in asked.stdout, asked.stdout
    assert "breaks the clients" not in asked.stdout, asked.stdout
    succeed(["make", "contract-update"], project, env)

    # The updated project is, file for file, the one a fresh render of 0.2.0 and its
    # make setup give, whose whole make check tests/test_tutorial.py runs (make
    # release-check); a whole make check here would run those same tests again, for
    # 4 to 5 minutes of CI. What the update carries over instead of making anew, the
    # model artifact and the golden snapshot, is what the contract and unit tests read.
    fresh = render(template_repo, tmp_path / "fresh", "v0.2.0", env)
    succeed(["make", "setup"], fresh, env)
    updated_files, fresh_files = project_files(project), project_files(fresh)
    differing = [
        name
        for name in sorted(updated_files.keys() | fresh_files.keys())
        if updated_files.get(name) != fresh_files.get(name)
    ]
    assert differing == [], f"the updated project differs from a fresh render: {differing}"
    checked = succeed(
        [env.get("UV", "uv"), "run", "pytest", "-q", "tests/contract", "tests/unit"], project, env
    )
    assert " passed" in checked
    assert " skipped" not in checked  # as tests/test_variants.py holds every other variant
    print(
        f"\ntimings: render + make setup {prepared - started:.1f} s, "
        f"update {updated - prepared:.1f} s, the rest {time.monotonic() - updated:.1f} s"
    )


# What is not the project's own: its environment, git's data and tools' caches. The
# files are walked rather than listed by git (working_tree_files): a project's
# .gitignore leaves out artifacts/, which is what an update carries over.
NOT_THE_PROJECTS = {".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
# The time of training, in the artifact's metadata and the model card made from it.
TRAINED_AT = re.compile(r'^\s*("trained_at": .*|\| Trained at \|.*)$', re.MULTILINE)


def project_files(project: Path) -> dict[str, str]:
    """Each file of ``project`` and its text, less what differs between two renders made
    a minute apart: the training time, and the order uv writes its lock's markers in
    (the locked packages and versions are compared)."""
    files = {}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if not path.is_file() or NOT_THE_PROJECTS.intersection(relative.parts):
            continue
        text = path.read_bytes().decode(errors="replace")
        if relative == Path("uv.lock"):
            text = "\n".join(re.findall(r"^(?:name|version) = .*$", text, re.MULTILINE))
        files[str(relative)] = TRAINED_AT.sub("", text)
    return files


def test_an_edited_line_the_template_also_changes_gets_conflict_markers(
    template_repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    started = time.monotonic()
    project = render(template_repo, tmp_path / "service", "v0.2.0", env)
    readme = project / "README.md"
    assert README_LINE in readme.read_text()
    readme.write_text(readme.read_text().replace(README_LINE, USER_LINE))
    git(project, "commit", "--quiet", "-am", "Our own words for make dev")

    result = run(
        ["make", "template-update", "VCS_REF=v0.3.0", f"COPIER={COPIER}"], project, env, timeout=300
    )
    output = report("v0.2.0 -> v0.3.0, README line edited", result, time.monotonic() - started)

    assert result.returncode != 0, output
    assert conflicted(project) == ["README.md"], output
    assert "left 1 conflict(s):\n  README.md: conflict markers" in result.stderr
    text = readme.read_text()
    assert USER_LINE in text
    assert README_LINE_V3 in text
    assert "<<<<<<< before updating" in text
    assert ">>>>>>> after updating" in text
    # The change nobody else touched merged cleanly.
    assert "PORT ?= 8001\n" in (project / "Makefile").read_text()
    assert "_commit: v0.3.0" in (project / ".copier-answers.yml").read_text()


def test_make_template_update_refuses_a_dirty_tree(
    template_repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = render(template_repo, tmp_path / "service", "v0.2.0", env)
    (project / "notes.txt").write_text("not committed\n")

    result = run(["make", "template-update", f"COPIER={COPIER}"], project, env, timeout=120)

    assert result.returncode != 0
    assert "template-update refused: the git tree has 1 uncommitted change(s)" in result.stderr
    assert "_commit: v0.2.0" in (project / ".copier-answers.yml").read_text()


def test_the_migration_leaves_an_existing_new_snapshot_alone(
    template_repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = render(template_repo, tmp_path / "service", "v0.1.0", env)
    for path, text in ((OLD_GOLDEN, '{"recorded": "0.1.0"}\n'), (NEW_GOLDEN, '{"mine": true}\n')):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "Both snapshots")

    started = time.monotonic()
    result = copier_update(project, "v0.2.0", env)
    output = report(
        "v0.1.0 -> v0.2.0, new snapshot already there", result, time.monotonic() - started
    )

    assert result.returncode == 0, output
    assert (project / OLD_GOLDEN).read_text() == '{"recorded": "0.1.0"}\n'
    assert (project / NEW_GOLDEN).read_text() == '{"mine": true}\n'
    assert f"{NEW_GOLDEN} already exists, so {OLD_GOLDEN} was left where it is" in result.stderr


def test_update_without_trust_is_refused_because_of_the_migration(
    template_repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = render(template_repo, tmp_path / "service", "v0.1.0", env)

    result = run([COPIER, "update", "--defaults", "--vcs-ref", "v0.2.0"], project, env, timeout=300)

    assert result.returncode != 0
    assert "migrations" in result.stderr
    assert "--trust" in result.stderr
