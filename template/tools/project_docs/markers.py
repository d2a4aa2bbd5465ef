"""Documents whose generated blocks are rewritten and whose other text is kept.

A generated block runs from ``<!-- generated: NAME -->`` to ``<!-- /generated -->``,
each marker on a line of its own. Rewriting a document replaces the body of each
block with the new one of the same name and leaves every other line as it is:
the sections written by hand survive ``make docs-update``.
"""

import re
from collections.abc import Iterator
from typing import Final

_START: Final = re.compile(r"^<!-- generated: (?P<name>[a-z0-9_-]+) -->$", re.MULTILINE)
END: Final = "<!-- /generated -->"


class MarkerError(Exception):
    """A document's markers are broken: a block never ends, or a name comes twice."""


def block(name: str, body: str) -> str:
    """A generated block holding ``body``, one blank line inside each marker."""
    return f"<!-- generated: {name} -->\n\n{body.strip()}\n\n{END}"


def _blocks(text: str) -> Iterator[tuple[str, int, int]]:
    """Each block's name and the span of its body, between the two markers."""
    seen: set[str] = set()
    position = 0
    while match := _START.search(text, position):
        name = match["name"]
        if name in seen:
            raise MarkerError(f"the generated block {name!r} appears twice")
        seen.add(name)
        end = text.find(f"\n{END}", match.end())
        following = _START.search(text, match.end())
        if end == -1 or (following is not None and following.start() < end):
            raise MarkerError(f"the generated block {name!r} has no {END} line")
        yield name, match.end(), end + 1
        position = end + 1 + len(END)


def blocks(text: str) -> dict[str, str]:
    """The body of every generated block of ``text``, by name."""
    return {name: text[start:end] for name, start, end in _blocks(text)}


def merge(existing: str, fresh: str) -> str:
    """``existing`` with the body of each generated block taken from ``fresh``.

    A block ``fresh`` has and ``existing`` lacks is added at the end; a block
    ``existing`` has and ``fresh`` lacks is removed, markers included.
    """
    new = blocks(fresh)
    pieces = []
    position = 0
    for name, start, end in list(_blocks(existing)):
        if name in new:
            pieces.append(existing[position:start] + new.pop(name))
            position = end
        else:
            opening = existing.rfind("<!-- generated:", 0, start)
            pieces.append(existing[position:opening].rstrip("\n") + "\n")
            position = end + len(END)
    merged = "".join(pieces) + existing[position:]
    for name, body in new.items():
        merged = merged.rstrip("\n") + f"\n\n<!-- generated: {name} -->{body}{END}\n"
    return merged
