"""Render one starter repository per student of a roster, or refuse the roster in one line.

    python hooks/classroom.py ROSTER OUT [--answers answers.yml] [--template PATH_OR_URL]
                              [--vcs-ref REF] [--jobs N]

ROSTER is a CSV file with a `name` and a `handle` column; any other column is a
question of the template (copier.yml) and holds that student's answer (an empty
cell leaves it unset). The --answers file holds the answers locked for every
student; a roster cell overrides it for that student. Each student gets
OUT/<handle>/: a git repository on branch main with one commit, whose identity
and date are fixed so that the same roster, answers and template commit give the
same commit hashes. Everything is rendered next to OUT first and moved into
place only when every student rendered, so a refused roster leaves OUT as it was.
`make classroom` runs it; docs/instructors.md is the guide.
"""

import argparse
import csv
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from copier.errors import CopierError
from render import TEMPLATE_ROOT, render

REQUIRED_COLUMNS = ("name", "handle")
# GitHub's rule for user and organisation names: the handle names a folder and a repository.
HANDLE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}\Z")
# Questions the required columns answer: the name column is each project's author.
ANSWERED_BY_COLUMN = {"author_name": "name"}
DEFAULT_IDENTITY = ("modelship classroom", "classroom@example.invalid")
# For a template outside git, whose commits have no date.
FALLBACK_DATE = "2000-01-01T00:00:00+00:00"
# Git reads neither the user's nor the system's configuration: hooks, templates or a
# signing key there would change the commits, or make them differ between machines.
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


class RosterError(Exception):
    """A mistake of the instructor's, told in one line."""


@dataclass(frozen=True)
class Student:
    roster: Path
    line: int
    name: str
    handle: str
    answers: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"roster {self.roster} line {self.line} (handle {self.handle})"


def dirty(template: str) -> bool:
    """Whether a local template has changes that its commit, the one rendered, lacks."""
    return Path(template).is_dir() and bool(git("status", "--porcelain", cwd=Path(template)))


@dataclass(frozen=True)
class Source:
    """The template as copier reads it, and a git directory to read its commits from."""

    template: str
    vcs_ref: str | None
    git_dir: Path | None
    questions: dict[str, Any]


@dataclass(frozen=True)
class Repository:
    handle: str
    name: str
    dataset: str
    slug: str
    commit: str
    files: int


def git(*arguments: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *arguments],
        cwd=cwd,
        env={**os.environ, **GIT_ENV, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        raise RosterError(f"git {arguments[0]} failed: {message[-1]}")
    return result.stdout.strip()


def open_source(template: str | None, vcs_ref: str | None, scratch: Path) -> Source:
    """Find the template, the commit to render and its questions."""
    if template is None:
        template = str(TEMPLATE_ROOT)
    local = Path(template).expanduser()
    if local.is_dir():
        # An absolute path, so `copier update` finds it from inside each student's repository.
        template = str(local.resolve())
        if not (local / ".git").exists():
            questions = yaml.safe_load((local / "copier.yml").read_text())
            return Source(template, vcs_ref, None, questions)
        git_dir = local
        # A commit, never HEAD: copier would add uncommitted changes as a commit of its
        # own, made now, that `_commit` then names but no clone of the template has.
        wanted = vcs_ref or "HEAD"
        try:
            vcs_ref = git("rev-parse", "--verify", "--quiet", f"{wanted}^{{commit}}", cwd=local)
        except RosterError:
            raise RosterError(
                f"--vcs-ref {wanted} is not a commit, branch or tag of {template}"
            ) from None
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[^/]+@[^/]+:", template):
        git_dir = scratch / "template.git"
        url = template.removeprefix("git+")
        git("clone", "--quiet", "--bare", "--filter=blob:none", url, str(git_dir))
    else:
        raise RosterError(f"--template {template} is neither a folder nor a git URL")
    try:
        text = git("show", f"{vcs_ref or 'HEAD'}:copier.yml", cwd=git_dir)
    except RosterError:
        raise RosterError(f"{template} has no copier.yml at {vcs_ref or 'HEAD'}") from None
    return Source(template, vcs_ref, git_dir, yaml.safe_load(text))


def question_types(questions: dict[str, Any]) -> dict[str, str]:
    """The questions a roster column may answer, each with its type."""
    return {
        name: str(spec.get("type", "str")) if isinstance(spec, dict) else "str"
        for name, spec in questions.items()
        if not name.startswith("_") and not (isinstance(spec, dict) and spec.get("when") is False)
    }


def read_answers(path: Path | None, questions: dict[str, str]) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        answers = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise RosterError(f"cannot read the answers file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RosterError(f"the answers file {path} is not valid YAML: {exc}") from None
    if not isinstance(answers, dict):
        raise RosterError(f"the answers file {path} must map question names to answers")
    unknown = sorted(str(key) for key in answers if key not in questions)
    if unknown:
        raise RosterError(
            f"the answers file {path} answers {', '.join(unknown)}, which the template does "
            f"not ask; its questions are {', '.join(sorted(questions))} (docs/questions.md)"
        )
    return answers


def parse_cell(value: str, kind: str, where: str) -> Any:
    # Text answers stay text: YAML would read 3.10 as the number 3.1 and 007 as 7.
    if kind == "str":
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise RosterError(f"{where}: {value!r} is not a valid {kind} value") from None


def read_roster(path: Path, questions: dict[str, str]) -> list[Student]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RosterError(f"roster {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"cannot read roster {path}: {exc}") from None
    # newline="" as the csv module asks: a quoted cell may hold a line break.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [column.strip() for column in reader.fieldnames or []]
    if not columns:
        raise RosterError(f"roster {path} is empty: its first line must name the columns")
    reader.fieldnames = columns
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise RosterError(
            f"roster {path} has no {' and no '.join(missing)} column "
            f"(its columns: {', '.join(columns)}); name and handle are required"
        )
    duplicated = sorted({column for column in columns if columns.count(column) > 1})
    if duplicated:
        raise RosterError(f"roster {path} has the column {duplicated[0]} twice")
    answered = [c for c in columns if c in ANSWERED_BY_COLUMN]
    if answered:
        raise RosterError(
            f"roster {path} column {answered[0]} is what the {ANSWERED_BY_COLUMN[answered[0]]} "
            f"column answers for each student: drop the {answered[0]} column"
        )
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS and c not in questions]
    if unknown:
        allowed = sorted(q for q in questions if q not in ANSWERED_BY_COLUMN)
        raise RosterError(
            f"roster {path} column {unknown[0]} is not a question of the template; besides "
            f"name and handle, a column may be any of: {', '.join(allowed)} "
            "(docs/questions.md)"
        )
    students: list[Student] = []
    seen: dict[str, Student] = {}
    for row in reader:
        # Where the row starts: a quoted cell may have carried it over several lines.
        line = reader.line_num - sum(str(value).count("\n") for value in row.values() if value)
        if None in row:
            raise RosterError(f"roster {path} line {line} has more cells than there are columns")
        cells = {column: (value or "").strip() for column, value in row.items()}
        if not any(cells.values()):
            continue
        name, handle = cells["name"], cells["handle"]
        if not handle:
            raise RosterError(f"roster {path} line {line}: the handle is empty")
        if not HANDLE.match(handle):
            raise RosterError(
                f"roster {path} line {line}: handle {handle!r} is not a GitHub-like handle "
                "(1-39 letters, digits or single hyphens, not starting or ending with one)"
            )
        if not name:
            raise RosterError(f"roster {path} line {line} (handle {handle}): the name is empty")
        if "\n" in name or "\r" in name:
            raise RosterError(
                f"roster {path} line {line} (handle {handle}): the name must fit on one line"
            )
        earlier = seen.get(handle.casefold())
        if earlier is not None:
            raise RosterError(
                f"roster {path} lines {earlier.line} and {line} have the same handle "
                f"{earlier.handle!r}/{handle!r}: each student needs their own"
            )
        where = f"roster {path} line {line} column {{column}}"
        answers = {
            column: parse_cell(value, questions[column], where.format(column=column))
            for column, value in cells.items()
            if column not in REQUIRED_COLUMNS and value
        }
        student = Student(path, line, name, handle, answers)
        seen[handle.casefold()] = student
        students.append(student)
    if not students:
        raise RosterError(f"roster {path} lists no students")
    return students


def commit_date(source: Source, commit: str | None) -> str:
    if source.git_dir is None or not commit:
        return FALLBACK_DATE
    return git("log", "-1", "--format=%cI", f"{commit}^{{commit}}", cwd=source.git_dir)


def build(
    student: Student,
    data: dict[str, Any],
    destination: Path,
    source: Source,
    identity: tuple[str, str],
) -> Repository | str:
    """Render and commit one repository; a wrong answer comes back as its one-line message."""
    try:
        render(destination, data, defaults=True, template=source.template, vcs_ref=source.vcs_ref)
        recorded = yaml.safe_load((destination / ".copier-answers.yml").read_text())
        when = commit_date(source, recorded.get("_commit"))
        name, email = identity
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_AUTHOR_DATE": when,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": when,
        }
        git("init", "--quiet", "--initial-branch=main", cwd=destination)
        git("add", "--all", cwd=destination)
        message = (
            f"Start {recorded['project_name']} from the modelship template"
            f" {recorded.get('_commit', '')}".rstrip()
            + f"\n\nRendered for {student.name} ({student.handle}) by `make classroom`.\n"
        )
        git(
            "commit",
            "--quiet",
            "--no-verify",
            "--no-gpg-sign",
            "-m",
            message,
            cwd=destination,
            env=env,
        )
        commit = git("rev-parse", "HEAD", cwd=destination)
        files = len(git("ls-files", "-z", cwd=destination).split("\0")) - 1
    except (ValueError, OSError, yaml.YAMLError, CopierError, RosterError) as exc:
        return f"{student.where}: {exc}"
    return Repository(
        student.handle,
        student.name,
        str(recorded.get("dataset", "")),
        str(recorded.get("project_slug", "")),
        commit,
        files,
    )


def existing_ancestor(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.is_dir():
            return candidate
    return Path.cwd()


def render_all(
    students: list[Student],
    locked: dict[str, Any],
    source: Source,
    staging: Path,
    jobs: int,
) -> list[Repository]:
    name = locked.get("author_name")
    email = locked.get("author_email")
    identity = (str(name), str(email)) if name and email else DEFAULT_IDENTITY
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(students)))) as pool:
        futures = [
            pool.submit(
                build,
                student,
                # The locked author_name is the instructor's, who commits; the project is the student's.
                {**locked, "author_name": student.name, **student.answers},
                staging / student.handle,
                source,
                identity,
            )
            for student in students
        ]
        repositories = []
        # In roster order, so the refusal reported is the first row's, whatever finished first.
        for future in futures:
            result = future.result()
            if isinstance(result, str):
                pool.shutdown(cancel_futures=True)
                raise RosterError(result)
            repositories.append(result)
    return repositories


def table(repositories: Sequence[Repository]) -> str:
    rows = [("handle", "name", "dataset", "project slug", "commit", "files")]
    rows += [
        (r.handle, r.name, r.dataset, r.slug, r.commit[:12], str(r.files)) for r in repositories
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def classroom(arguments: argparse.Namespace) -> str:
    out: Path = arguments.out
    if out.exists() and not out.is_dir():
        raise RosterError(f"{out} exists and is not a folder")
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=".modelship-classroom-", dir=existing_ancestor(out)))
    try:
        source = open_source(arguments.template, arguments.vcs_ref, scratch)
        questions = question_types(source.questions)
        locked = read_answers(arguments.answers, questions)
        students = read_roster(arguments.roster, questions)
        taken = [s for s in students if (out / s.handle).exists()]
        if taken:
            raise RosterError(
                f"{out / taken[0].handle} already exists ({taken[0].where}); "
                "remove it or choose another OUT"
            )
        staging = scratch / "students"
        staging.mkdir()
        repositories = render_all(students, locked, source, staging, arguments.jobs)
        out.mkdir(parents=True, exist_ok=True)
        for repository in repositories:
            (staging / repository.handle).rename(out / repository.handle)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    wall = time.monotonic() - started
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    rendered = f"{source.template} at {source.vcs_ref or 'its latest tag'}"
    if source.git_dir is not None and dirty(source.template):
        rendered += " (its uncommitted changes are left out)"
    count = f"{len(repositories)} repositor{'y' if len(repositories) == 1 else 'ies'}"
    return (
        f"{table(repositories)}\n\ntemplate: {rendered}\n{count} in {out} "
        f"in {wall:.1f} s wall clock, {cpu:.1f} s CPU\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("roster", type=Path, help="CSV file: name, handle, optional answers")
    parser.add_argument("out", type=Path, help="folder that receives one repository per student")
    parser.add_argument("--answers", type=Path, help="YAML answers locked for every student")
    parser.add_argument("--template", help="template folder or git URL (default: this checkout)")
    parser.add_argument("--vcs-ref", help="template tag, branch or commit (e.g. v0.2.0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel renders")
    arguments = parser.parse_args(argv)
    try:
        sys.stdout.write(classroom(arguments))
    except RosterError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
