"""`make docs-update`: write docs/MODEL_CARD.md and docs/SERVICE_CONTRACT.md from the code.

    python -m tools.project_docs                       # rewrite both
    python -m tools.project_docs --check               # fail if either is out of date
    python -m tools.project_docs --if-missing          # write only those absent (make setup)
    python -m tools.project_docs --model-version 1.1.0 # the card of another version

The model card describes one artifact: the version given, else the one the card
already describes, else the only version in artifacts/. Its hand-written sections
are kept; the service contract is rewritten whole.
"""

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from app.errors import ArtifactError
from app.model import METADATA_FILE, ArtifactMetadata, read_metadata, resolve_artifact_dir
from app.settings import Settings
from tools.project_docs.markers import MarkerError, merge
from tools.project_docs.model_card import model_card
from tools.project_docs.service_contract import service_contract

ROOT: Final = Path(__file__).resolve().parents[2]
CARD: Final = Path("docs") / "MODEL_CARD.md"
CONTRACT: Final = Path("docs") / "SERVICE_CONTRACT.md"
_DESCRIBED: Final = re.compile(r"^\| Model version \| `(?P<version>[^`]+)`", re.MULTILINE)


class DocsError(Exception):
    """A document cannot be written; the message says what to do."""


def described_version(card: str) -> str | None:
    """The model version an existing card describes."""
    match = _DESCRIBED.search(card)
    return match["version"] if match else None


def load_metadata(model_dir: Path, version: str | None) -> ArtifactMetadata:
    if version is None:
        version = Settings.model_fields["model_version"].get_default()
    try:
        directory = resolve_artifact_dir(model_dir, version)
    except ArtifactError as exc:
        raise DocsError(f"{exc.message} (the model card describes a trained model)") from None
    if not (directory / METADATA_FILE).is_file():
        raise DocsError(f"{directory / METADATA_FILE} is missing: run `make train` first")
    try:
        return read_metadata(directory)
    except ArtifactError as exc:
        raise DocsError(exc.message) from None


def service_targets(root: Path) -> dict[str, Any]:
    pyproject = root / "pyproject.toml"
    try:
        table: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"][
            "loadtest"
        ]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise DocsError(f"cannot read [tool.loadtest] from {pyproject}: {exc}") from None
    return table


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    document: dict[str, Any] = json.loads(json.dumps(create_app().openapi()))
    return document


def expected(root: Path, version: str | None, model_dir: Path | None = None) -> dict[Path, str]:
    """What each document should hold: the card merged into the one on disk, if any."""
    card_file = root / CARD
    existing = card_file.read_text(encoding="utf-8") if card_file.is_file() else None
    if version is None and existing is not None:
        version = described_version(existing)
    metadata = load_metadata(model_dir or root / "artifacts", version)
    fresh = model_card(metadata, runbooks=(root / "docs" / "runbooks").is_dir())
    try:
        card = fresh if existing is None else merge(existing, fresh)
    except MarkerError as exc:
        raise DocsError(
            f"{card_file}: {exc}; restore the marker, or delete the file and run "
            "`make docs-update` to start it again"
        ) from None
    contract = service_contract(openapi_document(), service_targets(root))
    return {CARD: card, CONTRACT: contract}


# artifacts/ stays out of git and CI retrains: the same data and library versions
# give the same model, but a new time, and the file's bytes may differ by platform.
_PER_TRAINING_RUN: Final = re.compile(
    r"^\| (Trained at|sha256 of model\.joblib) \| .* \|$", re.MULTILINE
)


def _comparable(text: str) -> str:
    return _PER_TRAINING_RUN.sub(r"| \1 | |", text)


def stale(root: Path, documents: dict[Path, str]) -> list[Path]:
    """The documents whose file differs from what would be written, but for the rows
    that change with every training run."""
    return [
        path
        for path, text in documents.items()
        if not (root / path).is_file()
        or _comparable((root / path).read_text(encoding="utf-8")) != _comparable(text)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.project_docs",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if a document is out of date")
    mode.add_argument("--if-missing", action="store_true", help="write only absent documents")
    parser.add_argument("--model-version", help="the version the model card describes")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project (default: this one)")
    parser.add_argument("--model-dir", type=Path, help="artifacts (default: ROOT/artifacts)")
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        documents = expected(root, args.model_version, args.model_dir)
    except DocsError as exc:
        sys.stderr.write(f"project docs: {exc}\n")
        return 1
    if args.check:
        if outdated := stale(root, documents):
            names = " and ".join(
                f"{path}{'' if (root / path).is_file() else ' (missing)'}" for path in outdated
            )
            sys.stderr.write(f"project docs: {names} out of date: run `make docs-update`\n")
            return 1
        sys.stdout.write(f"project docs: {CARD} and {CONTRACT} are current\n")
        return 0
    for path, text in documents.items():
        target = root / path
        if args.if_missing and target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        sys.stdout.write(f"project docs: wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
