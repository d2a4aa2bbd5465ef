"""What a change of the OpenAPI document breaks for clients of the recorded one.

A client written against the recorded API goes on sending what it sent and
reading what it read. A change breaks it when an operation it calls disappears,
when a request it sends is refused (a new required field, a removed field where
unknown ones are refused, a narrower type, enum or range), or when an answer holds
what it cannot read (a field removed, retyped or no longer always there, a value
outside the recorded enum or range). A new operation, a new optional request
field, a new response field or new wording breaks nothing.

Each schema is compared as a set of values: in a request the current schema must
accept everything the recorded one accepted; in a response the recorded schema
must accept everything the current one may answer.
"""

import math
from collections.abc import Iterator
from typing import Any, Literal

Schema = dict[str, Any]
Direction = Literal["request", "response"]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Keywords bounding a value from below (1) or above (-1).
BOUNDS = {
    "minimum": 1,
    "exclusiveMinimum": 1,
    "minLength": 1,
    "minItems": 1,
    "maximum": -1,
    "exclusiveMaximum": -1,
    "maxLength": -1,
    "maxItems": -1,
}
# Schemas nested in another, and how the field path names them.
SUBSCHEMAS = {"items": "[]", "additionalProperties": ".*", "propertyNames": " (keys)"}
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def breaking_changes(recorded: Schema, current: Schema) -> list[str]:
    """Every way ``current`` breaks a client of ``recorded``, one sentence each."""
    problems: list[str] = []
    for path, recorded_operations in recorded.get("paths", {}).items():
        current_operations = current.get("paths", {}).get(path, {})
        for method in METHODS:
            if method not in recorded_operations:
                continue
            where = f"{method.upper()} {path}"
            if method not in current_operations:
                problems.append(f"{where} was removed")
                continue
            old, new = recorded_operations[method], current_operations[method]
            for change in _operation(old, new, recorded, current):
                problems.append(f"{where}: {change}")
    return problems


def _operation(old: Schema, new: Schema, recorded: Schema, current: Schema) -> Iterator[str]:
    # A request must still be accepted: the current schema accepts, the recorded one is given.
    old_body, new_body = _body(old.get("requestBody")), _body(new.get("requestBody"))
    if new_body is not None and old_body is None and new["requestBody"].get("required"):
        yield "a request body is now required"
    elif old_body is not None and new_body is not None:
        for problem in Pair(current, recorded).narrower("request", new_body, old_body):
            yield f"request {problem}"
    old_parameters = {(p["in"], p["name"]): p for p in old.get("parameters", [])}
    for key, parameter in {(p["in"], p["name"]): p for p in new.get("parameters", [])}.items():
        if parameter.get("required") and not old_parameters.get(key, {}).get("required"):
            yield f"{key[0]} parameter `{key[1]}` is now required"
        elif key in old_parameters:
            old_schema, new_schema = old_parameters[key]["schema"], parameter["schema"]
            for problem in Pair(current, recorded).narrower("request", new_schema, old_schema):
                yield f"{key[0]} parameter `{key[1]}`: {problem}"
    # An answer must still be readable: the recorded schema accepts, the current one is given.
    for status, old_response in old.get("responses", {}).items():
        new_response = new.get("responses", {}).get(status)
        if new_response is None:
            if status.startswith("2"):
                yield f"status {status} is no longer answered"
            continue
        old_schema, new_schema = _body(old_response), _body(new_response)
        if old_schema is not None and new_schema is not None:
            for problem in Pair(recorded, current).narrower("response", old_schema, new_schema):
                yield f"response {status} {problem}"


def _body(part: Schema | None) -> Schema | None:
    """The JSON schema of a request body or response, if it has one."""
    content = (part or {}).get("content", {}).get("application/json", {})
    schema: Schema | None = content.get("schema")
    return schema


class Pair:
    """Two schemas, each read with the references of its own document.

    ``narrower(direction, accepting, accepted)`` lists what the ``accepted`` schema
    allows and the ``accepting`` one refuses, naming the field: in a request, what
    the service no longer accepts; in a response, what it may now answer.
    """

    def __init__(self, accepting_document: Schema, accepted_document: Schema) -> None:
        self.documents = (accepting_document, accepted_document)
        self.seen: set[tuple[str, str]] = set()

    def narrower(
        self, direction: Direction, accepting: Schema, accepted: Schema, path: str = ""
    ) -> Iterator[str]:
        references = (accepting.get("$ref", ""), accepted.get("$ref", ""))
        if all(references):
            if references in self.seen:  # a recursive schema, already compared
                return
            self.seen.add(references)
        wide = _variants(self.documents[0], accepting)
        narrow = _variants(self.documents[1], accepted)
        subject = f"field `{path}`" if path else "body"
        verb = "no longer accepts" if direction == "request" else "may now answer"
        missing = _types(narrow) - _types(wide)
        if "number" in _types(wide):
            missing.discard("integer")
        if missing and "any" not in _types(wide):
            yield f"{subject} {verb} {' or '.join(sorted(missing))}"
        allowed, given = _values(wide), _values(narrow)
        if allowed is not None and given is None:
            yield f"{subject} {verb} values outside the enum [{_listed(allowed)}]"
        elif allowed is not None and given is not None and given - allowed:
            yield f"{subject} {verb} {_listed(given - allowed)}, outside the enum [{_listed(allowed)}]"
        wide_keywords, narrow_keywords = _merged(wide), _merged(narrow)
        for keyword, limit, given_limit in _bounds(wide_keywords, narrow_keywords):
            old, new = (given_limit, limit) if direction == "request" else (limit, given_limit)
            yield f"{subject} {keyword} changed from {_shown(old)} to {_shown(new)}"
        yield from self._fields(direction, wide_keywords, narrow_keywords, path)

    def _fields(
        self, direction: Direction, accepting: Schema, accepted: Schema, path: str
    ) -> Iterator[str]:
        prefix = f"{path}." if path else ""
        for name in sorted(set(accepting.get("required", ())) - set(accepted.get("required", ()))):
            if direction == "request":
                yield f"field `{prefix}{name}` is now required"
            else:
                yield f"field `{prefix}{name}` is no longer always answered (removed or optional)"
        known, given = accepting.get("properties", {}), accepted.get("properties", {})
        for name, schema in given.items():
            if name in known:
                yield from self.narrower(direction, known[name], schema, f"{prefix}{name}")
            elif accepting.get("additionalProperties") is False:
                verb = "is no longer accepted" if direction == "request" else "is not expected"
                yield f"field `{prefix}{name}` {verb}"
        for keyword, suffix in SUBSCHEMAS.items():
            old, new = accepting.get(keyword), accepted.get(keyword)
            if isinstance(old, dict) and isinstance(new, dict):
                yield from self.narrower(direction, old, new, f"{path}{suffix}")


def _resolve(document: Schema, schema: Schema) -> Schema:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _variants(document: Schema, schema: Schema) -> list[Schema]:
    """The alternatives of a schema (anyOf, oneOf), references resolved."""
    schema = _resolve(document, schema)
    choices = schema.get("anyOf") or schema.get("oneOf")
    if not choices:
        return [schema]
    return [variant for choice in choices for variant in _variants(document, choice)]


def _types(variants: list[Schema]) -> set[str]:
    found: set[str] = set()
    for variant in variants:
        kind = variant.get("type")
        if kind is not None:
            found.update([kind] if isinstance(kind, str) else kind)
        elif "enum" in variant or "const" in variant:
            values = variant.get("enum", [variant.get("const")])
            found.update(JSON_TYPES.get(type(value), "any") for value in values)
        else:
            found.add("object" if "properties" in variant else "any")
    return found


def _values(variants: list[Schema]) -> set[Any] | None:
    """The only values allowed, when every alternative lists them; None when unrestricted."""
    values: set[Any] = set()
    for variant in variants:
        if "enum" in variant or "const" in variant:
            values.update(variant.get("enum", [variant.get("const")]))
        elif variant.get("type") == "null":
            values.add(None)
        else:
            return None
    return values


def _merged(variants: list[Schema]) -> Schema:
    """The keywords of every non-null alternative, the first one's winning."""
    merged: Schema = {}
    for variant in variants:
        if variant.get("type") != "null":
            merged = {**variant, **merged}
    return merged


def _bounds(accepting: Schema, accepted: Schema) -> Iterator[tuple[str, float, float]]:
    """Each bound of ``accepting`` tighter than ``accepted``'s: keyword, its limit, the other's."""
    for keyword, sign in BOUNDS.items():
        if keyword in accepting:
            limit, other = accepting[keyword], accepted.get(keyword, -sign * math.inf)
            if sign * limit > sign * other:
                yield keyword, limit, other


def _shown(limit: float) -> object:
    return "none" if math.isinf(limit) else limit


def _listed(values: set[Any]) -> str:
    return ", ".join(repr(value) for value in sorted(values, key=str))
