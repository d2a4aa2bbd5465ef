"""Fixtures shared by the template's tests."""

import os
import shutil

import pytest

from tests.helpers import interpreter_dirs


@pytest.fixture(scope="session")
def project_env() -> dict[str, str]:
    """The environment for commands run inside a rendered project.

    Every project shares uv's one package cache, so each variant installs from it
    instead of downloading again.
    """
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)  # the projects use their own .venv, not ours
    env["PATH"] = os.pathsep.join([*interpreter_dirs(), env["PATH"]])
    uv = env.get("UV") or shutil.which("uv")
    if uv:
        env["UV"] = uv
    return env


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect a test marked ``variants(...)`` for each variant the mark does not name."""
    selected, deselected = [], []
    for item in items:
        marker = item.get_closest_marker("variants")
        callspec = getattr(item, "callspec", None)
        if marker and callspec and callspec.params.get("variant") not in marker.args:
            deselected.append(item)
        else:
            selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
