"""One JSON error envelope for every non-2xx response.

    {"error": {"code": "validation_failed", "message": "...", "details": [...], "request_id": "..."}}

``code`` is stable for programs, ``message`` is for people, ``details`` lists each
problem with the field it concerns, and ``request_id`` matches the ``X-Request-ID``
header and the server's log line.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from app.api.arrow import ARROW_STREAM
from app.errors import (
    ArtifactError,
    BatchTooLarge,
    FeedbackConflict,
    InvalidArrow,
    ModelNotReady,
    ModelStuck,
    PredictionFailed,
    PredictionLogUnavailable,
    PredictionNotFinite,
    PredictionNotFound,
    PredictionOutOfBounds,
    PredictionTimeout,
    ServiceError,
)
from app.observability.context import current_request_id

STATUS_BY_ERROR: Final[dict[type[ServiceError], int]] = {
    BatchTooLarge: 413,
    InvalidArrow: 400,
    PredictionNotFound: 404,
    FeedbackConflict: 409,
    PredictionFailed: 500,
    PredictionNotFinite: 500,
    PredictionOutOfBounds: 500,
    ModelNotReady: 503,
    ModelStuck: 503,
    ArtifactError: 503,
    PredictionLogUnavailable: 503,
    PredictionTimeout: 504,
}
MAX_ERROR_DETAILS: Final = 50
"""Validation errors listed in a 422's ``details`` and in its request's log line.

Its message gives the count of them all. A body under APP_MAX_BODY_BYTES can hold
hundreds of thousands of unknown keys, one error each: listed whole, 200,000 made
a 17.5 MB answer and a 1.9 MB log line. Fifty name every problem of one row of a
wide model, or the same mistake in row after row of a batch, enough to see what to
fix, in a few KB.
"""
MAX_FIELD_PATH: Final = 100
"""Characters of a field path shown; an unknown key may be as long as the body."""
_CODE_BY_STATUS: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "content_too_large",
    415: "unsupported_media_type",
}


class ErrorDetail(BaseModel):
    field: str | None = Field(default=None, description="Path of the offending field.")
    message: str
    type: str = Field(description="Machine-readable kind of problem.")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong, for a person.")
    details: list[ErrorDetail] = Field(default_factory=list)
    request_id: str | None = Field(description="Same as the X-Request-ID response header.")


class ErrorEnvelope(BaseModel):
    """The body of every error response."""

    error: ErrorBody


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Iterable[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": list(details),
            "request_id": current_request_id(),
        }
    }
    return JSONResponse(body, status_code=status_code, headers=headers)


def field_path(location: Iterable[int | str]) -> str:
    """``("body", "rows", 3, "sepal_length")`` -> ``"rows[3].sepal_length"``."""
    parts = list(location)
    if parts[:1] == ["body"]:
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _shown(path: str) -> str:
    return path if len(path) <= MAX_FIELD_PATH else path[:MAX_FIELD_PATH] + "..."


class UnknownFields(HTTPException):
    """Rows holding more unknown fields than an answer lists, refused before they are
    validated (``app.api.routing.refuse_unknown_fields``): ``errors`` are the first
    MAX_ERROR_DETAILS, as pydantic gives them, ``count`` is how many there are."""

    def __init__(self, errors: list[dict[str, Any]], count: int) -> None:
        super().__init__(422)
        self.errors = errors
        self.count = count


def _note_rejection(request: Request, errors: Sequence[Mapping[str, Any]], count: int) -> list[str]:
    """The paths of ``errors``, of ``count`` in all, noted for the request's log line
    and counted by the observer; the ones not in ``errors`` are unknown fields."""
    paths = [field_path(error["loc"]) for error in errors]
    # Paths, never values: the request's log line says which fields were wrong, the
    # first MAX_ERROR_DETAILS of them, and how many there were.
    request.state.invalid_fields = [_shown(path) for path in paths[:MAX_ERROR_DETAILS]]
    request.state.invalid_field_count = count
    observer = getattr(request.app.state, "observer", None)
    if observer is not None:
        # Every error is counted: the observer's labels are bounded, not the errors.
        observer.rejected(
            [(path, error["type"]) for path, error in zip(paths, errors, strict=True)],
            unknown=count - len(errors),
        )
    return paths


def _validation_failed(
    paths: Sequence[str], errors: Sequence[Mapping[str, Any]], count: int, kind: str = "invalid"
) -> JSONResponse:
    """422 for ``count`` ``kind`` fields, the first of ``errors`` (at ``paths``) listed."""
    details = [
        {"field": _shown(path), "message": error["msg"], "type": error["type"]}
        for path, error in zip(paths[:MAX_ERROR_DETAILS], errors[:MAX_ERROR_DETAILS], strict=True)
    ]
    first = details[0]
    if count == 1:
        message = f"{first['field']}: {first['message']}"
    else:
        message = f"{count} fields are {kind}, first {first['field']}: {first['message']}"
    if count > MAX_ERROR_DETAILS:
        message += f"; details lists the first {MAX_ERROR_DETAILS}"
    return error_response(422, "validation_failed", message, details)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for RequestValidationError only
        raise exc
    errors = exc.errors()
    paths = _note_rejection(request, errors, len(errors))
    for error in errors:
        if error["type"] == "json_invalid":
            reason = error.get("ctx", {}).get("error", "malformed JSON")
            return error_response(
                400, "invalid_json", f"the request body is not valid JSON: {reason}"
            )
    whole_body = [error for error in errors if tuple(error["loc"]) == ("body",)]
    if whole_body and not _is_json(request):
        message = "send the request body as JSON with the header Content-Type: application/json"
        if getattr(request.scope.get("route"), "reads_arrow", False):
            message += ", or as an Arrow IPC stream with Content-Type: " + ARROW_STREAM
        return error_response(415, "unsupported_media_type", message)
    if whole_body and whole_body[0]["type"] == "missing":
        return error_response(422, "validation_failed", "the request body is required")
    return _validation_failed(paths, errors, len(errors))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        raise exc
    if isinstance(exc, UnknownFields):
        paths = _note_rejection(request, exc.errors, exc.count)
        return _validation_failed(paths, exc.errors, exc.count, "unknown")
    status = exc.status_code
    if status == 404:
        path = request.url.path
        slash = " (paths end without a slash)" if len(path) > 1 and path.endswith("/") else ""
        message = f"no endpoint at {path[:200]}{slash}; the API is described at /docs"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path[:200]}"
    elif status == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # What orjson refuses goes to json.loads, which raises this on bytes that are
        # not UTF-8; FastAPI turns it into a bare 400 too.
        return error_response(
            400, "invalid_json", "the request body is not valid JSON: it is not UTF-8 text"
        )
    elif status == 400 and isinstance(exc.__cause__, RecursionError):
        # FastAPI turns what json.loads raises on deep nesting into a bare 400.
        return error_response(
            400, "invalid_json", "the request body nests arrays or objects too deeply to be read"
        )
    else:
        message = str(exc.detail)
    return error_response(
        status, _CODE_BY_STATUS.get(status, "http_error"), message, headers=exc.headers
    )


async def _on_service_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ServiceError):  # registered for ServiceError only
        raise exc
    status = next((code for kind, code in STATUS_BY_ERROR.items() if isinstance(exc, kind)), 500)
    return error_response(status, exc.code, exc.message, exc.details)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(ServiceError, _on_service_error)


GUARD_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: {
        "model": ErrorEnvelope,
        "description": "The request is not valid HTTP/1.1 (`invalid_http`): a malformed "
        "request line, header or body framing.",
    },
    408: {
        "model": ErrorEnvelope,
        "description": "The request line and headers took longer than HEADER_TIMEOUT seconds "
        "to arrive, from the connection's start or its last answer (`request_timeout`); the "
        "connection is closed.",
    },
    413: {"model": ErrorEnvelope, "description": "The body is larger than APP_MAX_BODY_BYTES."},
    431: {
        "model": ErrorEnvelope,
        "description": "The X-Request-ID header is longer than 128 characters, or the request "
        "line and headers are larger than 64 KiB (the connection is then closed).",
    },
    500: {
        "model": ErrorEnvelope,
        "description": "An unexpected failure (`internal_error`); quote the request id to "
        "report it.",
    },
}
"""Error responses of every route: the server, the guards and the error handler give
them whatever the route does."""

MODEL_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **GUARD_RESPONSES,
    503: {"model": ErrorEnvelope, "description": "The model is not loaded yet."},
}
"""Error responses of a route that reads the loaded model and nothing else."""

REQUEST_BODY_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **GUARD_RESPONSES,
    400: {
        "model": ErrorEnvelope,
        "description": "The body is not valid JSON, or nests arrays or objects too deeply "
        "(`invalid_json`); or the request is not valid HTTP/1.1 (`invalid_http`).",
    },
    408: {
        "model": ErrorEnvelope,
        "description": "The request line and headers took longer than HEADER_TIMEOUT seconds "
        "to arrive, or the body sent nothing for that long (`request_timeout`); the "
        "connection is closed.",
    },
    415: {
        "model": ErrorEnvelope,
        "description": "The body is not sent with the header Content-Type: application/json.",
    },
    422: {"model": ErrorEnvelope, "description": "A field is missing, unknown or out of range."},
}
"""Error responses of a route that reads a JSON body and calls no model."""

ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **GUARD_RESPONSES,
    422: REQUEST_BODY_RESPONSES[422],
    500: {
        "model": ErrorEnvelope,
        "description": (
            "The model's answer was refused: `prediction_not_finite` (NaN or infinite) or "
            "`prediction_out_of_bounds` (outside the declared range), and nothing is "
            "returned; or an unexpected failure (`internal_error`)."
        ),
    },
    503: MODEL_RESPONSES[503],
    504: {
        "model": ErrorEnvelope,
        "description": "The model did not answer within APP_PREDICT_TIMEOUT_MS.",
    },
}
"""Error responses of a route that calls the model."""

BODY_ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **ERROR_RESPONSES,
    **REQUEST_BODY_RESPONSES,
    500: ERROR_RESPONSES[500],
}
"""Error responses of a route that reads a JSON body and calls the model."""

BATCH_ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    **BODY_ERROR_RESPONSES,
    400: {
        "model": ErrorEnvelope,
        "description": "The body is not valid JSON, or nests arrays or objects too deeply "
        "(`invalid_json`); sent as Arrow, it is not an uncompressed Arrow IPC stream "
        "(`invalid_arrow`); or the request is not valid HTTP/1.1 (`invalid_http`).",
    },
    415: {
        "model": ErrorEnvelope,
        "description": "The body is sent neither as JSON (Content-Type: application/json) "
        f"nor as an Arrow IPC stream (Content-Type: {ARROW_STREAM}).",
    },
    413: {
        "model": ErrorEnvelope,
        "description": "The body is larger than APP_MAX_BODY_BYTES, or the batch holds more "
        "rows than APP_MAX_BATCH_SIZE.",
    },
}
"""Error responses documented on /v1/predict/batch, which reads JSON or Arrow."""
