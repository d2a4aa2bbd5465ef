"""docs/SERVICE_CONTRACT.md: what a caller of this service may rely on.

Written whole from the OpenAPI document the app serves, the settings' defaults,
the error classes and the service level targets of pyproject.toml, so it says
what the code does. ``make docs-update`` rewrites it; it has no hand sections.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.api.errors import STATUS_BY_ERROR
from app.observability.middleware import MAX_REQUEST_ID
from app.settings import ServerSettings, Settings
from app.worker import MAX_HEAD_BYTES

OpenAPI = Mapping[str, Any]
BATCH_BODY = '`{"rows": [...]}`'


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _default(settings: type[Settings] | type[ServerSettings], name: str) -> Any:
    return settings.model_fields[name].get_default(call_default_factory=True)


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ref_name(schema: Mapping[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def type_of(schema: Mapping[str, Any]) -> str:
    """A JSON schema's type in a few words: ``number``, ``array of Prediction``, ..."""
    if name := _ref_name(schema):
        return name
    if "anyOf" in schema:
        return " or ".join(type_of(part) for part in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"object of {type_of(schema['additionalProperties'])}"
    if kind == "string" and "format" in schema:
        return f"string ({schema['format']})"
    return str(kind)


def _bounds(schema: Mapping[str, Any]) -> str:
    for part in schema.get("anyOf", [schema]):
        low, high = part.get("minimum"), part.get("maximum")
        if low is not None and high is not None:
            return f"{_number(low)} to {_number(high)}"
        if low is not None:
            return f"at least {_number(low)}"
        if high is not None:
            return f"at most {_number(high)}"
    return ""


def _example(schema: Mapping[str, Any]) -> str:
    examples = schema.get("examples")
    return f"`{json.dumps(examples[0])}`" if examples else ""


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def fields_table(document: OpenAPI, schema_name: str, *, request: bool) -> str:
    schema = document["components"]["schemas"][schema_name]
    required = set(schema.get("required", []))
    rows: list[tuple[str, ...]] = []
    for name, field in schema.get("properties", {}).items():
        described = _one_line(field.get("description", ""))
        if request:
            rows.append(
                (
                    f"`{name}`",
                    type_of(field),
                    field.get("unit", ""),
                    _bounds(field),
                    "required" if name in required else "optional",
                    _example(field),
                    described,
                )
            )
        else:
            rows.append((f"`{name}`", type_of(field), _bounds(field), described))
    header = (
        ("field", "type", "unit", "range", "presence", "example", "meaning")
        if request
        else ("field", "type", "range", "meaning")
    )
    return _table(header, rows)


def operations(document: OpenAPI) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Every operation: method, path and the OpenAPI operation object, in document order."""
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def _request_schema(operation: Mapping[str, Any]) -> str | None:
    content = operation.get("requestBody", {}).get("content", {})
    return _ref_name(content.get("application/json", {}).get("schema", {}))


def _response_schema(operation: Mapping[str, Any]) -> str | None:
    content = operation.get("responses", {}).get("200", {}).get("content", {})
    return _ref_name(content.get("application/json", {}).get("schema", {}))


def versioning(document: OpenAPI) -> str:
    return f"""- Base path: the operations that serve predictions live under `/v1`; the probes
  (`/health`, `/ready`) are unversioned. The API document's version is
  `{document["info"]["version"]}` (`GET /openapi.json`, interactive at `/docs`).
- Within `/v1` only compatible changes are made: a new operation, a new optional
  request field, a new response field. A change that would break a caller (a field
  removed, renamed, retyped or made required, a range narrowed) is served under `/v2`
  beside `/v1`; `tests/contract/` fails the build on one made in place.
- Every prediction response carries `model_version`, the version of the model
  artifact that answered: a new model is a new `model_version`, not a new API version.
- Every response carries an `X-Request-ID` header: the caller's own (at most
  {MAX_REQUEST_ID} letters, digits and `._:-`) or a new one. Quote it when reporting
  a problem: it is on the server's log line too."""


def authentication(document: OpenAPI) -> str:
    schemes: Mapping[str, Any] = document.get("components", {}).get("securitySchemes", {})
    if not schemes:
        return (
            "None: every operation is open to whoever reaches the service. Put it on a "
            "private network or behind a gateway that authenticates callers."
        )
    ways = []
    for scheme in schemes.values():
        if scheme.get("type") == "apiKey":
            ways.append(f"the `{scheme['name']}: <key>` header")
        elif scheme.get("type") == "http":
            ways.append(f"the `Authorization: {scheme['scheme'].title()} <key>` header")
    guarded = [f"`{path}`" for _, path, op in operations(document) if op.get("security")]
    open_paths = sorted({f"`{path}`" for _, path, op in operations(document)} - set(guarded))
    return (
        "An API key, one of those the service is configured with, "
        f"sent in {' or in '.join(ways)}. Every operation but "
        f"{', '.join(open_paths) or 'none'} requires one; a request without a valid key gets "
        "401 with the error envelope below and a `WWW-Authenticate` header, and never "
        "reaches the model. The probes stay open so that orchestrators can call them."
    )


def operations_table(document: OpenAPI) -> str:
    rows = [
        (
            method,
            f"`{path}`",
            _one_line(operation.get("summary", "")),
            "API key" if operation.get("security") else "none",
        )
        for method, path, operation in operations(document)
    ]
    return _table(("method", "path", "purpose", "auth"), rows)


def prediction_sections(document: OpenAPI) -> str:
    sections = []
    max_batch = _default(Settings, "max_batch_size")
    for method, path, operation in operations(document):
        request = _request_schema(operation)
        response = _response_schema(operation)
        if request == "Features" and response:
            sections.append(
                f"### {method} {path}\n\n{operation.get('summary', '')}. The body is one row "
                "of features, a JSON object; fields it does not list are refused.\n\n"
                + fields_table(document, "Features", request=True)
                + f"\n\nThe answer ({response}):\n\n"
                + fields_table(document, response, request=False)
            )
        elif request == "BatchRequest" and response:
            sections.append(
                f"### {method} {path}\n\n{operation.get('summary', '')}. The body is "
                + BATCH_BODY
                + f": 1 to {max_batch} rows (`APP_MAX_BATCH_SIZE`), each "
                "shaped as the body of a single prediction. More rows get 413."
                + (f" {_one_line(operation['description'])}" if "description" in operation else "")
                + f"\n\nThe answer ({response}):\n\n"
                + fields_table(document, response, request=False)
                + "\n\n`predictions` holds one entry per row, in the order of `rows`, each with "
                "the fields:\n\n" + fields_table(document, "Prediction", request=False)
            )
    return "\n\n".join(sections)


def errors(document: OpenAPI) -> str:
    meanings: dict[int, list[str]] = {}
    for _, _, operation in operations(document):
        for status, response in operation.get("responses", {}).items():
            if not status.isdigit() or int(status) < 400:
                continue
            text = _one_line(response.get("description", ""))
            said = meanings.setdefault(int(status), [])
            if text and text not in said:
                said.append(text)
    status_rows = [
        (status, " / ".join(texts)) for status, texts in sorted(meanings.items()) if texts
    ]
    code_rows = sorted(
        (
            f"`{error.code}`",
            status,
            _one_line((error.__doc__ or "").strip().split("\n\n")[0]),
        )
        for error, status in STATUS_BY_ERROR.items()
    )
    envelope = (
        '{"error": {"code": "validation_failed", "message": "...", '
        '"details": [{"field": "...", "message": "...", "type": "..."}], "request_id": "..."}}'
    )
    return (
        "Every response with a status of 400 or more has the same JSON body:\n\n"
        f"```json\n{envelope}\n```\n\n"
        "`code` is stable and meant for programs, `message` is for people, `details` lists "
        "each problem with the field it concerns (`rows[3].name` in a batch), and "
        "`request_id` equals the `X-Request-ID` header.\n\n"
        + _table(("status", "meaning"), status_rows)
        + "\n\nThe codes a failure of the service itself answers with:\n\n"
        + _table(("code", "status", "meaning"), code_rows)
    )


def limits() -> str:
    body = _default(Settings, "max_body_bytes")
    rows = [
        ("request body", f"{body} bytes ({body / 1024**2:g} MiB)", "`APP_MAX_BODY_BYTES`", 413),
        ("rows per batch", _default(Settings, "max_batch_size"), "`APP_MAX_BATCH_SIZE`", 413),
        (
            "wait for the model",
            f"{_number(_default(Settings, 'predict_timeout_ms'))} ms",
            "`APP_PREDICT_TIMEOUT_MS`",
            504,
        ),
        ("X-Request-ID length", f"{MAX_REQUEST_ID} characters", "", 431),
        ("request line and headers", f"{MAX_HEAD_BYTES // 1024} KiB", "", 431),
        (
            "request line and headers arrive within",
            f"{_default(ServerSettings, 'header_timeout')} s",
            "`HEADER_TIMEOUT`",
            408,
        ),
        (
            "longest pause in a request body's arrival",
            f"{_default(ServerSettings, 'header_timeout')} s",
            "`HEADER_TIMEOUT`",
            408,
        ),
        (
            "idle connection kept open",
            f"{_default(ServerSettings, 'keep_alive')} s",
            "`KEEP_ALIVE`",
            "closed",
        ),
    ]
    return "Defaults, which the operator may change with the setting named:\n\n" + _table(
        ("limit", "default", "setting", "past it"), rows
    )


def service_levels(targets: Mapping[str, Any]) -> str:
    return (
        f"- Latency: 95% of prediction requests answered within {targets['p95_ms']} ms "
        "(p95), as measured by the caller.\n"
        f"- Errors: at most {targets['max_error_rate_pct']}% of requests answered with "
        "something else than the expected answer (a 5xx status, a timeout, a broken "
        "body).\n\n"
        f"`make loadtest` holds the service to both under {targets['users']} concurrent "
        f"users for {targets['seconds']} s before each release (`[tool.loadtest]` in "
        "pyproject.toml)."
    )


def service_contract(document: OpenAPI, targets: Mapping[str, Any]) -> str:
    """The whole document."""
    title = document["info"]["title"]
    return f"""# Service contract: {title}

{_one_line(document["info"].get("description", ""))}

What a caller of this service may rely on. Generated from the OpenAPI document
(`python -m app openapi`), `app/settings.py` and `pyproject.toml` by
`make docs-update`: do not edit it by hand, change the code and regenerate.

## Versioning

{versioning(document)}

## Authentication

{authentication(document)}

## Operations

{operations_table(document)}

## Predictions

{prediction_sections(document)}

## Errors

{errors(document)}

## Limits

{limits()}

## Service level targets

{service_levels(targets)}
"""
