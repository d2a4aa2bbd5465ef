"""Migration to 0.2.0: the golden predictions move next to the API contract.

    python migrations/v0_2_0_move_golden_snapshot.py [PROJECT]   # PROJECT defaults to .

`make setup` wrote the snapshot to tests/golden/predictions.json before 0.2.0;
from 0.2.0 it lives at tests/contract/golden_predictions.json, beside
tests/contract/openapi.json, so the two snapshots a reviewer approves sit in one
folder. The snapshot is not a template file, so `copier update` cannot move it:
copier runs this script after updating a project from a version before 0.2.0.

It is safe to run again: without the old file it does nothing, and it never
replaces a file already at the new path (it says so and leaves both). It uses
only the standard library, as it runs with copier's own Python.
"""

import sys
from pathlib import Path

OLD = Path("tests/golden/predictions.json")
NEW = Path("tests/contract/golden_predictions.json")


def migrate(project: Path) -> str:
    """Move the snapshot of ``project`` to its new path; return what was done."""
    old, new = project / OLD, project / NEW
    if not old.is_file():
        return f"nothing to move: {OLD} does not exist"
    if new.exists():
        return (
            f"{NEW} already exists, so {OLD} was left where it is: keep the one you "
            f"want at {NEW} and delete the other"
        )
    new.parent.mkdir(parents=True, exist_ok=True)
    old.replace(new)
    folder = old.parent
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return f"moved {OLD} to {NEW}"


def main(argv: list[str]) -> int:
    project = Path(argv[0]) if argv else Path()
    print(f"modelship 0.2.0 migration: {migrate(project)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
