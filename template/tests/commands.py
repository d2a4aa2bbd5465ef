"""Running `python -m app ...` commands inside the test process.

The same ``main`` the command line calls, with the environment it would see and
its output captured: a fraction of a second, where a new interpreter importing
scikit-learn and SciPy takes seconds.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from app.cli import main
from app.observability.logging import configure_logging


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def run_app(
    capsys: pytest.CaptureFixture[str], *arguments: str, env: Mapping[str, str] | None = None
) -> Outcome:
    """Run ``python -m app *arguments`` with ``env`` added to the environment."""
    capsys.readouterr()  # what came before is not the command's
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        try:
            code = main(list(arguments))
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            captured = capsys.readouterr()
            configure_logging()  # away from the captured stream, which closes
    return Outcome(code, captured.out, captured.err)
