"""Prediction routes: one row, a batch of rows, and what model answers them."""

import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, cast

import numpy.typing as npt
import orjson
import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from app.api.arrow import ARROW_STREAM, Column, is_arrow, read_batch
from app.api.deps import PredictorDep
from app.api.errors import BATCH_ERROR_RESPONSES, BODY_ERROR_RESPONSES, MODEL_RESPONSES
from app.api.routing import OrjsonRequest, OrjsonRoute, refuse_content_coding
from app.coalescing import Coalescer
from app.errors import BatchTooLarge, PredictionFailed
from app.features import FeatureSpec, InputFormat, Task
from app.model import ClassPrediction, ModelSource, Predictor, ValuePrediction
from app.model import Prediction as ModelPrediction
from app.monitoring.prediction_log import (
    BATCH_ID_DIGITS,
    PredictionLog,
    batch_features,
    batch_row_ids,
)
from app.monitoring.shadow import Shadow
from app.observability.context import current_request_id
from app.observability.observer import Observer
from app.randomness import random_bytes
from app.schemas import (
    FEATURES,
    BatchPredictionResponse,
    BatchRequest,
    Features,
    Prediction,
    PredictionResponse,
)
from app.settings import Settings

router = APIRouter(prefix="/v1", tags=["predictions"], route_class=OrjsonRoute)
logger = structlog.stdlib.get_logger("app.predict")


class ModelInfo(BaseModel):
    """The loaded model artifact, as recorded when it was trained or imported."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    task: Task
    target: str = Field(description="Name of the predicted column in the training data.")
    features: list[FeatureSpec] = Field(description="Input columns, in training order.")
    classes: list[str] = Field(description="Labels, for a classifier; the last is positive.")
    decision_threshold: float | None = Field(
        description="Threshold in use for the positive label (binary classifiers)."
    )
    input_format: InputFormat
    metrics: dict[str, float]
    evaluation: str = Field(description="What data the metrics were measured on.")
    source: ModelSource
    trained_at: datetime
    library_versions: dict[str, str]
    model_sha256: str
    training_data_sha256: str


_FEATURE_NAMES: Final = tuple(feature.name for feature in FEATURES)
_FEATURE_FIELDS: Final = frozenset(_FEATURE_NAMES)
_ANSWER_DEFAULTS: Final = {
    name: field.default
    for name, field in Prediction.model_fields.items()
    if not field.is_required() and field.default is not None
}
"""Fields an answer carries whatever the model said (a regressor's unit): the batch
answer, written without its response model, adds them itself."""


# A UUIDv7's last 80 bits are random but for its version (7) in the top 4 bits of their
# first byte and its variant (0b10) in the top 2 bits of their third.
_VERSION_7: Final = bytes((byte & 0x0F) | 0x70 for byte in range(256))
_VARIANT: Final = bytes((byte & 0x3F) | 0x80 for byte in range(256))


def prediction_ids(count: int) -> list[str]:
    """``count`` new prediction ids: UUIDv7 (RFC 9562) as 32 hex digits.

    A UUIDv7 starts with the time in milliseconds, so the prediction log's primary
    key grows at its end. With random ids every insert lands on a random page of an
    index that outgrows SQLite's page cache: writing a row cost 3.5 times as much
    once the log held 800,000 rows (modelship's README, "Performance").
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    # 10 random bytes a row, taken for the whole request at once, and their version and
    # variant bits set for all rows in two passes in C: a fifth of the time of setting
    # them row by row as integers, for a batch of 1,000.
    randomness = bytearray(random_bytes(10 * count))
    randomness[0::10] = randomness[0::10].translate(_VERSION_7)
    randomness[2::10] = randomness[2::10].translate(_VARIANT)
    digits = randomness.hex()
    return [stamp + digits[start : start + 20] for start in range(0, 20 * count, 20)]


def _outputs(results: list[ModelPrediction]) -> list[dict[str, object]]:
    """Each prediction as the fields its answer and its log row report: a classifier's
    threshold only where it has one (two classes).

    A dict display per kind of answer, not a loop over its fields: 0.15 ms for 1,000
    rows, where the loop took 0.28. The answers of one call are all of one kind, with
    one threshold.
    """
    if not results:
        return []
    if isinstance(results[0], ValuePrediction):
        values = cast("list[ValuePrediction]", results)
        return [{"value": value} for (value,) in values]
    classes = cast("list[ClassPrediction]", results)
    if classes[0].threshold is None:
        return [
            {"label": label, "probability": probability, "probabilities": probabilities}
            for label, probability, probabilities, _ in classes
        ]
    return [
        {
            "label": label,
            "probability": probability,
            "probabilities": probabilities,
            "threshold": threshold,
        }
        for label, probability, probabilities, threshold in classes
    ]


def _redacted(row: dict[str, Any], settings: Settings) -> dict[str, Any]:
    return {
        key: "[redacted]" if key in settings.log_redact else value for key, value in row.items()
    }


def _latency_ms(request: Request) -> float:
    """How long the request has taken so far, in ms."""
    started = getattr(request.state, "started", None)
    return (time.perf_counter() - started) * 1000 if started is not None else 0.0


def _logged(record: Mapping[str, Any], redact: frozenset[str]) -> Mapping[str, Any]:
    """A row's features, or a batch's columns, as the log keeps them: redacted fields
    left out."""
    return {k: v for k, v in record.items() if k not in redact} if redact else record


def _log_rows(
    request: Request,
    records: Sequence[dict[str, Any]],
    ids: list[str],
    outputs: list[dict[str, object]],
    version: str,
    settings: Settings,
) -> list[dict[str, Any]]:
    """The prediction log's rows for a one-row request."""
    now = datetime.now(UTC)
    latency_ms = _latency_ms(request)
    request_id = current_request_id()
    redact = settings.log_redact
    return [
        {
            "prediction_id": prediction_id,
            "created_at": now,
            "model_version": version,
            "role": "primary",
            "request_id": request_id,
            "features": _logged(record, redact),
            # The dict the answer copies with its id in front; the writer only reads it.
            "output": output,
            "latency_ms": latency_ms,
        }
        for record, prediction_id, output in zip(records, ids, outputs, strict=True)
    ]


def _log_batch(
    request: Request,
    records: Sequence[dict[str, Any]],
    columns: Mapping[str, Column] | None,
    batch_id: str,
    outputs: list[dict[str, object]],
    version: str,
    settings: Settings,
) -> dict[str, Any]:
    """The prediction log's one row for a batch: its rows' features, a list per feature
    (``columns`` when the batch came as columns), and outputs, in order."""
    redact = settings.log_redact
    if columns is None:
        columns = batch_features(records, _FEATURE_NAMES)
    return {
        "batch_id": batch_id,
        "created_at": datetime.now(UTC),
        "model_version": version,
        "role": "primary",
        "request_id": current_request_id(),
        "rows": len(records),
        "features": _logged(columns, redact),
        "outputs": outputs,
        "latency_ms": _latency_ms(request),
    }


async def _predict(
    request: Request,
    records: Sequence[dict[str, Any]],
    predictor: Predictor,
    *,
    batch: bool = False,
    columns: Mapping[str, Column] | None = None,
    encoded: npt.NDArray[Any] | None = None,
) -> list[dict[str, object]]:
    """Predict the validated rows ``records`` and leave what the request's log line
    reports in its state. A ``batch`` is logged as one row of ``prediction_batches``.
    ``columns`` and ``encoded``, when given, are ``records`` a list per feature and
    as the model takes them."""
    # From the application's state rather than as dependencies: FastAPI resolves each
    # dependency on every request, and these never change while the service runs.
    settings: Settings = request.app.state.settings
    observer: Observer | None = request.app.state.observer
    coalescer: Coalescer = request.app.state.coalescer
    try:
        answer = await coalescer.predict(predictor, records, encoded)
    except PredictionFailed as exc:
        # Refused, never returned: counted, and logged without the rows' values.
        if observer is not None:
            observer.output_refused(exc.reason)
        logger.warning(
            "prediction refused",
            reason=exc.reason,
            code=exc.code,
            error=exc.message,
            model_version=predictor.version,
            rows=len(records),
        )
        raise
    results = answer.predictions
    if observer is not None:
        observer.predicted(records, results, answer.seconds, answer.inputs)
    if batch:
        batch_id = prediction_ids(1)[0][:BATCH_ID_DIGITS]
        ids = batch_row_ids(batch_id, len(results))
    else:
        batch_id, ids = "", prediction_ids(len(results))
    outputs = _outputs(results)
    answers = [
        {"prediction_id": prediction_id, **output, **_ANSWER_DEFAULTS}
        for prediction_id, output in zip(ids, outputs, strict=True)
    ]
    prediction_log: PredictionLog | None = request.app.state.prediction_log
    log_rows: list[dict[str, Any]] = []
    log_batch: dict[str, Any] | None = None
    if prediction_log is not None and batch:
        log_batch = _log_batch(
            request, records, columns, batch_id, outputs, predictor.version, settings
        )
        prediction_log.record_batch(log_batch)
    elif prediction_log is not None:
        log_rows = _log_rows(request, records, ids, outputs, predictor.version, settings)
        prediction_log.record(log_rows)
    shadow: Shadow | None = request.app.state.shadow
    if shadow is not None:
        # Only queued: the shadow predicts from its own thread, after this response.
        shadow.submit(records, results, log_rows, log_batch)
    if len(answers) == 1:
        request.state.prediction_id = answers[0]["prediction_id"]
    else:
        request.state.predictions = len(answers)
    if settings.log_payloads:
        payload = [_redacted(record, settings) for record in records]
        request.state.payload = payload[0] if len(payload) == 1 else payload
    return answers


class RowRoute(OrjsonRoute):
    """/v1/predict: its body is one row."""

    rows_at = "body"
    fields = _FEATURE_FIELDS


async def predict(
    request: Request,
    features: Features,
    predictor: PredictorDep,
) -> PredictionResponse:
    [answer] = await _predict(request, [features.model_dump()], predictor)
    return PredictionResponse.model_validate({**answer, "model_version": predictor.version})


router.add_api_route(
    "/predict",
    predict,
    methods=["POST"],
    responses=BODY_ERROR_RESPONSES,
    summary="Predict one row",
    route_class_override=RowRoute,
)


async def rows_within_limit(request: Request) -> None:
    """Refuse a batch of more than APP_MAX_BATCH_SIZE rows before its rows are validated.

    FastAPI validates the body before the route runs: 200,000 empty rows, an 800 KB
    body, took a worker 2.4 GB and its timeout to refuse row by row. The body is
    already parsed when this runs (``OrjsonRequest`` keeps it), so counting its rows
    costs nothing. A body FastAPI did not parse (empty, or not sent as JSON), or that
    is not an object with a list of rows, is left to the validation, which names
    what is wrong. ``async`` though it awaits nothing: FastAPI runs a plain function
    in its thread pool.
    """
    settings: Settings = request.app.state.settings
    body = request.json_read if isinstance(request, OrjsonRequest) else None
    rows = body.get("rows") if isinstance(body, dict) else None
    if isinstance(rows, list) and len(rows) > settings.max_batch_size:
        raise BatchTooLarge(
            f"the batch holds {len(rows)} rows; the limit is {settings.max_batch_size} "
            "(APP_MAX_BATCH_SIZE): split it into smaller batches",
            details=[
                {
                    "field": "rows",
                    "message": f"at most {settings.max_batch_size} rows",
                    "type": "too_long",
                }
            ],
        )


async def _answer_batch(
    request: Request,
    records: Sequence[dict[str, Any]],
    predictor: Predictor,
    columns: Mapping[str, Column] | None = None,
    encoded: npt.NDArray[Any] | None = None,
) -> Response:
    answers = await _predict(
        request, records, predictor, batch=True, columns=columns, encoded=encoded
    )
    # Written by orjson, not through BatchPredictionResponse: the same bytes (the
    # contract tests compare them), in 0.4 ms for 1,000 answers where validating and
    # serializing them through the model took 5 ms. Every answer is checked already:
    # the Predictor refuses a probability or value the schema would.
    body = orjson.dumps({"model_version": predictor.version, "predictions": answers})
    return Response(body, media_type="application/json")


async def predict_batch(
    request: Request,
    batch: BatchRequest,
    predictor: PredictorDep,
) -> Response:
    # One dump of the whole batch: pydantic loops over the rows in its compiled core.
    return await _answer_batch(request, batch.model_dump()["rows"], predictor)


async def predict_batch_arrow(request: Request, predictor: PredictorDep) -> Response:
    """/v1/predict/batch for a body sent as an Arrow IPC stream (``app.api.arrow``)."""
    settings: Settings = request.app.state.settings
    refuse_content_coding(request.scope)
    batch = read_batch(await request.body(), settings.max_batch_size)
    # The columns give the model its matrix and the log its features without a dict
    # per row: the rows are made only for what reads them one by one.
    encoded = batch.encoded if predictor.metadata.input_format == "array" else None
    return await _answer_batch(request, batch.rows, predictor, batch.columns, encoded)


class BatchRoute(OrjsonRoute):
    """/v1/predict/batch: a JSON body is validated by FastAPI for ``predict_batch``, an
    Arrow stream is read by ``predict_batch_arrow``. Both run behind the route's
    dependencies (the API key, where there is one), and answer JSON."""

    reads_arrow = True
    rows_at = "rows"
    fields = _FEATURE_FIELDS

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        json_handler = super().get_route_handler()
        arrow_handler = APIRoute(
            self.path,
            predict_batch_arrow,
            methods=["POST"],
            dependencies=self.dependencies,
            response_class=self.response_class,
            dependency_overrides_provider=self.dependency_overrides_provider,
        ).get_route_handler()

        async def handle(request: Request) -> Response:
            if is_arrow(request.headers.get("content-type")):
                return await arrow_handler(request)
            return await json_handler(request)

        return handle


router.add_api_route(
    "/predict/batch",
    predict_batch,
    methods=["POST"],
    response_model=BatchPredictionResponse,
    responses=BATCH_ERROR_RESPONSES,
    summary="Predict several rows",
    description=(
        "Send the rows as JSON, or as an Arrow IPC stream with one column per feature "
        f"(Content-Type: {ARROW_STREAM}): a DataFrame written by pyarrow or Polars. "
        "The answer is JSON either way."
    ),
    dependencies=[Depends(rows_within_limit)],
    route_class_override=BatchRoute,
    openapi_extra={
        "requestBody": {
            "content": {ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}}
        }
    },
)


@router.get("/model", responses=MODEL_RESPONSES, summary="Describe the loaded model")
async def model_info(predictor: PredictorDep) -> ModelInfo:
    return ModelInfo.model_validate(
        {**predictor.metadata.model_dump(), "decision_threshold": predictor.threshold}
    )
