"""Render a modelship project, refusing a wrong answer with one line, not a traceback.

    python hooks/render.py DESTINATION [--defaults] [--data-file answers.yml] [--data key=value ...]

It runs `copier copy` on this checkout, including changes not yet committed, so
the answers file of the result points back at this template for `copier update`.
`make demo` uses it; so can scripts that render many projects.
"""

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from copier import run_copy
from copier.errors import CopierError, DirtyLocalWarning

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent


def parse_data(pairs: Sequence[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise ValueError(f"--data {pair!r} is not of the form key=value")
        data[key] = yaml.safe_load(value) if value else value
    return data


# Copier casts an answer to its question's type, but lets int("two") escape as a bare
# "invalid literal for int()" that names no question, and int(.inf) or float(10**400)
# as an OverflowError; check those types first.
NUMBER_TYPES: dict[str, tuple[type, str]] = {
    "int": (int, "a whole number"),
    "float": (float, "a number"),
}


def check_types(data: dict[str, Any]) -> None:
    """Refuse an answer that is not of its question's number type, naming the question."""
    questions = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    for name, answer in data.items():
        spec = questions.get(name)
        if not isinstance(spec, dict) or spec.get("type") not in NUMBER_TYPES:
            continue
        cast, wanted = NUMBER_TYPES[spec["type"]]
        try:
            # int() would take 1.5 as 1 and True as 1: a whole number is one as written.
            if isinstance(answer, bool) or (cast is int and isinstance(answer, float)):
                raise ValueError(answer)
            cast(answer)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"Validation error for question {name!r}: {name} must be {wanted}, got {answer!r}"
            ) from None


def render(
    destination: Path,
    data: dict[str, Any],
    *,
    defaults: bool,
    template: str = str(TEMPLATE_ROOT),
    vcs_ref: str | None = "HEAD",
) -> Path:
    """Render the template into ``destination``; raise ValueError for a wrong answer.

    ``template`` is recorded as ``_src_path`` in the answers file, so `copier update`
    later reads the same source; ``vcs_ref`` None means its latest release tag.
    """
    check_types(data)
    # Rendering uncommitted changes is the point of rendering a checkout.
    warnings.simplefilter("ignore", DirtyLocalWarning)
    worker = run_copy(
        template,
        destination,
        data=data,
        defaults=defaults,
        vcs_ref=vcs_ref,
        unsafe=False,
        quiet=True,
    )
    return Path(worker.dst_path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination", type=Path)
    parser.add_argument("--defaults", action="store_true", help="take defaults, do not ask")
    parser.add_argument("--data-file", type=Path, help="YAML file of answers")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        data = yaml.safe_load(args.data_file.read_text()) if args.data_file else {}
        data.update(parse_data(args.data))
        render(args.destination, data, defaults=args.defaults)
    except (ValueError, OSError, yaml.YAMLError, CopierError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
