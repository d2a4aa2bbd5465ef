"""Running commands inside rendered projects."""

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


def interpreter_dirs() -> list[str]:
    """bin folders of pyenv's CPython 3.11-3.13, so uv finds the version a project pins."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob("3.1[123].*/bin")) if root.is_dir() else []
    return [str(path) for path in found]


def run(
    command: Sequence[str], cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def succeed(command: Sequence[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    """Run a command and fail the test with its whole output if it fails."""
    result = run(command, cwd, env, timeout)
    assert result.returncode == 0, (
        f"`{' '.join(command)}` failed in {cwd} with status {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result.stdout


def render(destination: Path, **answers: object) -> Path:
    """Render the template as a user would: no --trust, defaults for what is not given."""
    from copier import run_copy

    run_copy(
        str(TEMPLATE_ROOT),
        destination,
        data=answers,
        defaults=True,
        vcs_ref="HEAD",
        unsafe=False,
        quiet=True,
    )
    return destination


def literal_constants(module: Path) -> dict[str, object]:
    """The module-level constants of a rendered Python file whose values are literals.

    Read from the syntax tree, so the rendered project need not be importable here.
    """
    import ast

    constants: dict[str, object] = {}
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        constants[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        continue
    return constants
