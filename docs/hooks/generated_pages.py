"""MkDocs hook: pages written from the repository at build time, so they cannot drift.

- ``reference/questions.md``: every question of ``copier.yml``, with its help text,
  type, choices, default (a computed default is shown as the rule it is), when it is
  asked and, for a simple validator, the message it refuses an answer with.
- ``reference/performance.md``: the "Performance" section of the root README.md.

Registered under ``hooks:`` in mkdocs.yml (https://www.mkdocs.org/user-guide/configuration/#hooks).
"""

import json
import re
from pathlib import Path
from typing import Any

import yaml
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
JINJA = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)
TAG = re.compile(r"{%-?.*?-?%}", re.DOTALL)
EXPRESSION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.DOTALL)


def markdown_text(text: str) -> str:
    """Plain text as Markdown: `code spans` kept, characters Markdown would read escaped."""
    parts = re.split(r"(`[^`]*`)", text)
    escaped = []
    for part in parts:
        if part.startswith("`"):
            escaped.append(part)
        else:
            part = re.sub(r"([\\*_\[\]])", r"\\\1", part)
            escaped.append(part.replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(escaped)


def code(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.strip()
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def validator_messages(rule: str) -> list[str] | None:
    """The messages of a validator made of if/elif branches of text; None when it computes more."""
    if "{%- set" in rule or "{% set" in rule or "{%- for" in rule:
        return None
    messages = []
    for segment in TAG.split(rule):
        message = " ".join(EXPRESSION.sub(lambda match: f"<{match.group(1)}>", segment).split())
        if message:
            messages.append(message)
    return messages


def describe(name: str, spec: dict[str, Any]) -> list[str]:
    lines = [f"## `{name}`", "", markdown_text(" ".join(str(spec.get("help", "")).split())), ""]
    rows = [("type", code(spec.get("type", "str")))]
    choices = spec.get("choices")
    if choices:
        values = list(choices) if isinstance(choices, dict) else choices
        rows.append(("choices", ", ".join(code(choice) for choice in values)))
    when = spec.get("when")
    if when is None:
        rows.append(("asked", "always"))
    else:
        condition = EXPRESSION.sub(lambda match: match.group(1), str(when)).strip()
        rows.append(("asked", f"only when {code(condition)}"))
    default = spec.get("default")
    computed = isinstance(default, str) and JINJA.search(default)
    if computed:
        rows.append(("default", "computed from earlier answers, by the rule below"))
    elif default is not None:
        rows.append(("default", code(default)))
    lines += ["| property | value |", "| --- | --- |"]
    lines += [f"| {key} | {value.replace('|', '&#124;')} |" for key, value in rows]
    lines.append("")
    if computed:
        lines += ['??? note "The rule of the default"', "", "    ```jinja"]
        lines += [f"    {line}".rstrip() for line in str(default).strip().splitlines()]
        lines += ["    ```", ""]
    rule = spec.get("validator")
    if rule:
        messages = validator_messages(str(rule))
        if messages:
            lines += ["A wrong answer is refused with one of these messages:", ""]
            lines += [f"- {code(message)}" for message in messages]
        else:
            lines.append(
                "A wrong answer is refused by a longer rule in `copier.yml`, with a message "
                "naming the item and the problem ([Answer guide](../questions.md))."
            )
        lines.append("")
    return lines


def questions_page() -> str:
    questions = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    asked = {
        name: spec
        for name, spec in questions.items()
        if not name.startswith("_") and spec.get("when") is not False
    }
    computed = [
        name
        for name, spec in questions.items()
        if not name.startswith("_") and spec.get("when") is False
    ]
    lines = [
        "# Every question",
        "",
        "This page is generated from `copier.yml` each time the site is built, so it",
        "always says what the template asks. The [Answer guide](../questions.md) explains",
        "how to choose each answer, with examples.",
        "",
        "Questions are asked in this order; `copier copy --defaults` takes every default.",
        "A default computed from earlier answers (the project slug from the project name,",
        "the schema from the data set) is shown as the rule it is.",
        "",
    ]
    for name, spec in asked.items():
        lines += describe(name, spec)
    lines += [
        "## Computed, never asked",
        "",
        "Derived once from the answers above and used by the template's files: "
        + ", ".join(code(name) for name in computed)
        + ".",
        "",
    ]
    return "\n".join(lines)


def performance_page() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Performance\n(.*?)(?=^## |\Z)", readme, re.DOTALL | re.MULTILINE)
    section = match.group(1).strip() if match else "The README has no Performance section."
    return "\n".join(
        [
            "# Performance",
            "",
            "The template's benchmark, `make bench`, as reported in the repository's README",
            "(this page is copied from it when the site is built).",
            "",
            section,
            "",
        ]
    )


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for path, content in [
        ("reference/questions.md", questions_page()),
        ("reference/performance.md", performance_page()),
    ]:
        files.append(File.generated(config, path, content=content))
    return files
