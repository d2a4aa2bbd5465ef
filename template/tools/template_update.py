"""`make template-update`: bring this project up to a newer release of its template.

    make template-update                    # the newest release
    make template-update VCS_REF=v0.2.0     # a given release (a tag, branch or commit)
    python -m tools.template_update --help

It refuses to start on a git tree with uncommitted changes, because copier's
three-way merge needs a clean one to tell your edits from the template's. It then
runs `copier update --trust --defaults --conflict inline`, keeping every answer
of .copier-answers.yml, and looks at each file the update changed: a file with
conflict markers, or a `*.rej` file, is listed with how to resolve it, and the
exit status is 1. `--trust` lets the template's migrations run (docs of the
template: updating.md); use it only with a template source you trust.
"""

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

COPIER: Final = "uv tool run --from 'copier>=9.13.0' copier"
ANSWERS: Final = Path(".copier-answers.yml")
MARKERS: Final = ("<<<<<<< ", ">>>>>>> ")
# copier's own dry run: it lists what it would change and writes nothing.
PRETEND: Final = frozenset({"-n", "--pretend"})


class UpdateRefused(Exception):
    """The update cannot start: the reason, in one line."""


def _git(project: Path, *arguments: str) -> str:
    finished = subprocess.run(
        ["git", *arguments], cwd=project, capture_output=True, text=True, check=False
    )
    if finished.returncode:
        raise UpdateRefused(f"`git {' '.join(arguments)}` failed: {finished.stderr.strip()}")
    return finished.stdout


def changed_files(project: Path) -> list[str]:
    """The paths git reports as changed or new, untracked folders listed file by file."""
    status = _git(project, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries = status.split("\0")
    paths: list[str] = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if not entry:
            continue
        code, path = entry[:2], entry[3:]
        if "R" in code or "C" in code:
            index += 1  # the entry after a rename or a copy is its old path
        if "D" not in code:
            paths.append(path)
    return paths


def require_clean_tree(project: Path) -> None:
    _git(project, "rev-parse", "--is-inside-work-tree")
    status = _git(project, "status", "--porcelain=v1", "--untracked-files=normal")
    dirty = status.splitlines()
    if dirty:
        raise UpdateRefused(
            f"the git tree has {len(dirty)} uncommitted change(s) (first: {dirty[0][3:]}): "
            "commit or stash them first, copier needs a clean tree to merge"
        )


def has_conflict_markers(path: Path) -> bool:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError):
        return False
    opened = any(line.startswith(MARKERS[0]) for line in lines)
    closed = any(line.startswith(MARKERS[1]) for line in lines)
    return opened and closed


def conflicts(project: Path, paths: Sequence[str]) -> list[str]:
    """Which of ``paths`` still need a person: conflict markers, or a rejected change."""
    found = []
    for path in paths:
        if path.endswith(".rej"):
            found.append(f"{path}: a change copier could not apply; apply it by hand, then delete")
        elif has_conflict_markers(project / path):
            found.append(f"{path}: conflict markers")
    return found


def template_version(project: Path) -> str:
    """The template version .copier-answers.yml records (`_commit`), or "unknown"."""
    answers = project / ANSWERS
    if answers.is_file():
        for line in answers.read_text(encoding="utf-8").splitlines():
            if line.startswith("_commit:"):
                return line.partition(":")[2].strip().strip("'\"") or "unknown"
    return "unknown"


def copier_command(copier: str, vcs_ref: str | None, extra: Sequence[str]) -> list[str]:
    ref = ["--vcs-ref", vcs_ref] if vcs_ref else []
    return [
        *shlex.split(copier),
        "update",
        "--trust",
        "--defaults",
        "--conflict",
        "inline",
        *ref,
        *extra,
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.template_update",
        description="Update this project to a newer release of its copier template.",
    )
    parser.add_argument("--copier", default=COPIER, help=f"how to run copier (default: {COPIER})")
    parser.add_argument("--vcs-ref", help="the template release to update to (default: newest)")
    parser.add_argument("--project", type=Path, default=Path(), help="the project (default: .)")
    parser.add_argument("extra", nargs="*", help="more arguments for `copier update`, after --")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    project: Path = args.project
    try:
        require_clean_tree(project)
    except UpdateRefused as refused:
        print(f"template-update refused: {refused}", file=sys.stderr)
        return 1
    before = template_version(project)
    command = copier_command(args.copier, args.vcs_ref, args.extra)
    try:
        finished = subprocess.run(command, cwd=project, check=False)
    except FileNotFoundError:
        print(
            f"template-update: cannot run `{command[0]}`: install it or set COPIER", file=sys.stderr
        )
        return 1
    if finished.returncode:
        print(
            f"template-update: `{shlex.join(command)}` failed with status {finished.returncode}",
            file=sys.stderr,
        )
        return 1
    if PRETEND.intersection(args.extra):
        print(
            "template-update: a dry run (--pretend): copier listed above what it would "
            "change, and nothing was written; run it again without --pretend to update."
        )
        return 0
    after = template_version(project)
    changed = changed_files(project)
    unresolved = conflicts(project, changed)
    if unresolved:
        listed = "\n".join(f"  {line}" for line in unresolved)
        print(
            f"template-update: {before} -> {after} left {len(unresolved)} conflict(s):\n{listed}\n"
            "Resolve each: edit the file, keep the lines you want between <<<<<<< and >>>>>>>,\n"
            "delete the markers (and each .rej file once applied), run `make setup` and\n"
            "`make check`, then `git add -A && git commit`.",
            file=sys.stderr,
        )
        return 1
    print(
        f"template-update: {before} -> {after}, {len(changed)} file(s) changed, no conflict: "
        "review `git diff`, run `make setup` (new dependencies, new generated files) and "
        "`make check`, then `git add -A && git commit`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
