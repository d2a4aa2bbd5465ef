"""hooks/classroom.py: one committed starter repository per student, or a one-line refusal."""

import csv
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import TEMPLATE_ROOT
from tests.test_rendering import OWN_TEMPLATES

pytestmark = pytest.mark.xdist_group("classroom")

CLASSROOM = TEMPLATE_ROOT / "hooks" / "classroom.py"
DATASETS = ["iris", "breast_cancer", "diabetes", "churn", ""]
MONITORING = ["", "none", "opentelemetry", "prometheus"]
LOCKED = {"python_version": "3.12", "model_version": "0.1.0", "loadtest_seconds": 10}
EXPECTED_FILES = [
    ".copier-answers.yml",
    "README.md",
    "Makefile",
    "pyproject.toml",
    "app/main.py",
    "app/model.py",
    "training/train.py",
]


@dataclass(frozen=True)
class Run:
    out: Path
    rows: list[dict[str, str]]
    stdout: str
    wall: float
    cpu: float


def classroom(*arguments: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLASSROOM), *map(str, arguments), "--jobs", "2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def roster_rows(count: int) -> list[dict[str, str]]:
    """Fictitious students with a mix of data sets, names, workers and monitoring."""
    return [
        {
            "name": f"Student {number:02d}",
            "handle": f"Student-{number:02d}" if number % 7 == 0 else f"student-{number:02d}",
            "dataset": DATASETS[number % len(DATASETS)],
            "project_name": f"Project {number:02d}" if number % 3 == 0 else "",
            "workers": str(number % 4 + 1) if number % 2 else "",
            "monitoring": MONITORING[number % len(MONITORING)],
        }
        for number in range(1, count + 1)
    ]


def write_roster(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_locked(path: Path) -> Path:
    path.write_text(yaml.safe_dump(LOCKED))
    return path


def head(repository: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=repository, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def class_of_30(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Run:
    folder = tmp_path_factory.mktemp("class")
    rows = roster_rows(30)
    roster = write_roster(folder / "roster.csv", rows)
    answers = write_locked(folder / "answers.yml")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()

    result = classroom(roster, folder / "out", "--answers", answers)

    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert result.returncode == 0, result.stderr
    # Shown even under output capture, so the time can be recorded (docs/instructors.md).
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"classroom: 30 students in {wall:.1f} s wall clock, {cpu:.1f} s CPU"
            )
    return Run(folder / "out", rows, result.stdout, wall, cpu)


def test_every_student_gets_their_answers_and_the_locked_ones(class_of_30: Run) -> None:
    assert sorted(path.name for path in class_of_30.out.iterdir()) == sorted(
        row["handle"] for row in class_of_30.rows
    )
    for row in class_of_30.rows:
        recorded = yaml.safe_load(
            (class_of_30.out / row["handle"] / ".copier-answers.yml").read_text()
        )
        given = {key: yaml.safe_load(value) for key, value in row.items() if value}
        given.pop("handle")
        given["author_name"] = given.pop("name")
        if "project_name" in given:
            given["project_name"] = row["project_name"]
        assert {key: recorded[key] for key in given} == given, row["handle"]
        assert {key: recorded[key] for key in LOCKED} == LOCKED, row["handle"]
        assert recorded["dataset"] == (row["dataset"] or "iris")
        assert recorded["_src_path"] == str(TEMPLATE_ROOT)


def test_every_repository_has_one_commit_and_a_clean_tree(class_of_30: Run) -> None:
    for row in class_of_30.rows:
        repository = class_of_30.out / row["handle"]
        assert head(repository, "rev-list", "--count", "HEAD") == "1", row["handle"]
        assert head(repository, "status", "--porcelain", "--ignored") == "", row["handle"]
        assert head(repository, "branch", "--show-current") == "main"
        assert head(repository, "log", "--format=%an <%ae>") == (
            "modelship classroom <classroom@example.invalid>"
        )
        for name in EXPECTED_FILES:
            assert (repository / name).is_file(), f"{row['handle']}: {name}"


def test_no_template_syntax_survives_in_any_repository(class_of_30: Run) -> None:
    leftovers = []
    for row in class_of_30.rows:
        repository = class_of_30.out / row["handle"]
        for path in repository.rglob("*"):
            name = path.relative_to(repository).as_posix()
            if name.startswith(".git/") or not path.is_file():
                continue
            text = path.read_text(errors="replace")
            jinja_statement = "{%" in text or "{#" in text or path.suffix == ".jinja"
            if jinja_statement or ("{{" in text and name not in OWN_TEMPLATES):
                leftovers.append(f"{row['handle']}/{name}")

    assert leftovers == []


def test_summary_lists_every_student_and_the_time(class_of_30: Run) -> None:
    lines = class_of_30.stdout.splitlines()

    assert lines[0].split() == ["handle", "name", "dataset", "project", "slug", "commit", "files"]
    for row in class_of_30.rows:
        commit = head(class_of_30.out / row["handle"], "rev-parse", "HEAD")
        assert any(
            line.split()[0] == row["handle"] and commit[:12] in line.split() for line in lines[1:31]
        ), row["handle"]
    assert lines[-1].startswith(f"30 repositories in {class_of_30.out} in ")
    assert lines[-1].endswith(" s CPU")


def test_a_second_run_gives_the_same_commits(class_of_30: Run, tmp_path: Path) -> None:
    rows = class_of_30.rows[:3]
    roster = write_roster(tmp_path / "roster.csv", rows)

    result = classroom(roster, tmp_path / "again", "--answers", write_locked(tmp_path / "a.yml"))

    assert result.returncode == 0, result.stderr
    for row in rows:
        first = head(class_of_30.out / row["handle"], "rev-parse", "HEAD")
        assert head(tmp_path / "again" / row["handle"], "rev-parse", "HEAD") == first


def refusal_cases() -> list[tuple[str, str, str, str]]:
    """(id, roster text, answers text, start of the one line of refusal)."""
    return [
        ("missing-file", "", "", "error: roster {roster} does not exist"),
        (
            "missing-column",
            "name,dataset\nAda,iris\n",
            "",
            "error: roster {roster} has no handle column (its columns: name, dataset)",
        ),
        (
            "unknown-column",
            "name,handle,colour\nAda,ada,blue\n",
            "",
            "error: roster {roster} column colour is not a question of the template; besides "
            "name and handle, a column may be any of: auth, author_email",
        ),
        (
            "duplicate-handles",
            "name,handle\nAda,ada\nBob,bob\nAda Again,ADA\n",
            "",
            "error: roster {roster} lines 2 and 4 have the same handle 'ada'/'ADA'",
        ),
        (
            "unsafe-handle",
            "name,handle\nAda,../ada\n",
            "",
            "error: roster {roster} line 2: handle '../ada' is not a GitHub-like handle",
        ),
        # GitHub refuses these names, so the guide's `gh repo create` would fail later.
        (
            "handle-ending-in-a-hyphen",
            "name,handle\nAda,ada-\n",
            "",
            "error: roster {roster} line 2: handle 'ada-' is not a GitHub-like handle",
        ),
        (
            "handle-with-two-hyphens",
            "name,handle\nAda,ada--x\n",
            "",
            "error: roster {roster} line 2: handle 'ada--x' is not a GitHub-like handle",
        ),
        (
            "author-name-column",
            "name,handle,author_name\nAda,ada,Zed\n",
            "",
            "error: roster {roster} column author_name is what the name column answers",
        ),
        (
            "name-on-two-lines",
            'name,handle\n"Ada\nLovelace",ada\n',
            "",
            "error: roster {roster} line 2 (handle ada): the name must fit on one line",
        ),
        ("empty-roster", "name,handle,dataset\n", "", "error: roster {roster} lists no students"),
        (
            "refused-answer",
            "name,handle,workers\nAda,ada,2\nBob,bob,0\n",
            "",
            "error: roster {roster} line 3 (handle bob): Validation error for question 'workers': "
            "workers must be between 1 and 32, got 0",
        ),
        (
            "refused-locked-answer",
            "name,handle\nAda,ada\n",
            "monitoring: grafana\n",
            "error: roster {roster} line 2 (handle ada): Invalid choice for 'monitoring': "
            "'grafana' is not in ['prometheus', 'opentelemetry', 'none']",
        ),
        (
            "unknown-locked-answer",
            "name,handle\nAda,ada\n",
            "colour: blue\n",
            "error: the answers file {answers} answers colour, which the template does not ask",
        ),
        ("existing-repository", "name,handle\nAda,ada\nBob,taken\n", "", "error: {out}/taken"),
    ]


@pytest.mark.parametrize(
    ("roster_text", "answers_text", "message"),
    [case[1:] for case in refusal_cases()],
    ids=[case[0] for case in refusal_cases()],
)
def test_a_wrong_roster_is_refused_in_one_line_leaving_out_as_it_was(
    tmp_path: Path, roster_text: str, answers_text: str, message: str
) -> None:
    roster = tmp_path / "roster.csv"
    if roster_text:
        roster.write_text(roster_text)
    answers = tmp_path / "answers.yml"
    answers.write_text(answers_text)
    out = tmp_path / "class"
    (out / "taken").mkdir(parents=True)
    (out / "taken" / "work.txt").write_text("a student's work\n")
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))

    result = classroom(roster, out, "--answers", answers)

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message.format(roster=roster, answers=answers, out=out))
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before
    assert (out / "taken" / "work.txt").read_text() == "a student's work\n"
