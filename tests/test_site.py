"""The documentation site builds without a warning and keeps up with the template."""

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import TEMPLATE_ROOT, render

pytestmark = pytest.mark.xdist_group("docs")

# Inline code that names a file or folder of the generated project: a path with a
# slash or a known top-level file, no spaces, placeholders or URLs.
TOP_LEVEL_FILES = {
    "Makefile",
    "README.md",
    "pyproject.toml",
    "uv.lock",
    ".python-version",
    ".env.example",
    ".dockerignore",
    "compose.yaml",
    ".copier-answers.yml",
}
# Written by the reader's commands or at run time, not by rendering.
MADE_LATER = (
    "uv.lock",
    "artifacts/",
    "data/",
    "loadtest/reports/",
    "tests/contract/openapi.json",
    "tests/contract/golden_predictions.json",
    "docs/MODEL_CARD.md",
    "docs/SERVICE_CONTRACT.md",
    ".env",
    "server.log",
    "shifted.json",
)


def asked_questions() -> dict[str, dict[str, object]]:
    questions = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    return {
        name: spec
        for name, spec in questions.items()
        if not name.startswith("_") and spec.get("when") is not False
    }


def text_of(page: Path) -> str:
    """A built page's visible text, whitespace collapsed, `code` marked as in Markdown."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", page.read_text(), flags=re.DOTALL)
    body = re.sub(r"<code>(.*?)</code>", r"`\1`", body, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    destination = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(destination)],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    )
    return destination


def test_the_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "tutorial" / "01-contract" / "index.html").is_file()
    assert not list(site.rglob("*.py")), "the site's hooks were published as pages or files"


def test_the_question_reference_holds_every_question_and_its_help(site: Path) -> None:
    reference = text_of(site / "reference" / "questions" / "index.html")

    missing = [
        name
        for name, spec in asked_questions().items()
        if f"`{name}`" not in reference
        or "".join(str(spec["help"]).replace("`", "").split())
        not in "".join(reference.replace("`", "").split())
    ]

    assert missing == []


def test_the_performance_page_follows_the_readme(site: Path) -> None:
    readme = (TEMPLATE_ROOT / "README.md").read_text()
    first_row = re.search(r"^\| textbook FastAPI .*$", readme, re.MULTILINE)
    assert first_row is not None
    cells = [cell.strip() for cell in first_row.group(0).strip("|").split("|")]

    page = text_of(site / "reference" / "performance" / "index.html")

    assert " ".join(cell for cell in cells if cell) in page


def mentioned_paths(page: Path) -> set[str]:
    """Inline code on a page that names a path of the generated project."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.DOTALL | re.MULTILINE)
    found = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        if " " in span or "<" in span or "://" in span or span.startswith(("-", "$", "/")):
            continue
        if span in TOP_LEVEL_FILES or re.fullmatch(r"[\w.-]+(/[\w.-]+)+/?", span):
            found.add(span)
    return found


def test_every_file_the_tutorial_names_is_generated(tmp_path: Path) -> None:
    project = render(tmp_path / "project")
    pages = sorted((TEMPLATE_ROOT / "docs" / "tutorial").glob("*.md"))
    named = {(page.name, path) for page in pages for path in mentioned_paths(page)}

    missing = sorted(
        f"{page}: {path}"
        for page, path in named
        if not path.startswith(MADE_LATER) and not (project / path).exists()
    )

    assert len(named) > 40
    assert missing == []
