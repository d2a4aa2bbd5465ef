"""Delayed labels: the truth about a prediction, reported once it is known."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.api.deps import ObserverDep
from app.api.errors import REQUEST_BODY_RESPONSES, ErrorEnvelope
from app.api.reports import prediction_log
from app.api.routing import OrjsonRoute
from app.errors import PredictionLogUnavailable, PredictionNotFound
from app.monitoring.prediction_log import describe_log_error
from app.monitoring.quality import RecordedFeedback, record_feedback
from app.schemas import Feedback, FeedbackResponse


class FeedbackRoute(OrjsonRoute):
    """/v1/feedback: its body holds Feedback's fields, and no others."""

    rows_at = "body"
    fields = frozenset(Feedback.model_fields)


router = APIRouter(prefix="/v1", tags=["predictions"], route_class=FeedbackRoute)

WRITE_WAIT: Final = 1.0
"""Seconds to wait for a prediction answered a moment ago to reach the log: rows are
written in batches, every half second, so feedback may overtake its prediction."""
UNWRITTEN_FOR: Final = 60.0
"""Seconds a prediction's row may still wait to be written, as far as feedback on it
waits for: one whose id was made longer ago, or later (another machine's clock), is
not waited for."""


def may_be_unwritten(prediction_id: str) -> bool:
    """Whether the prediction could still wait in a worker's buffer, judged by its id: a
    UUIDv7, or a batch's (``app.monitoring.prediction_log``), starts with the time it
    was made, in milliseconds. An id that is neither is not waited for."""
    try:
        made = int(prediction_id[:12], 16) / 1000
    except ValueError:
        return False
    return abs(time.time() - made) <= UNWRITTEN_FOR


def _record(
    request: Request, body: Feedback, observed: dict[str, object], now: datetime
) -> RecordedFeedback:
    log = prediction_log(request)
    observed_at = body.observed_at or now  # in UTC (Feedback's validator)
    try:
        log.ensure_tables()
        return record_feedback(log.engine, body.prediction_id, observed, observed_at, now)
    except SQLAlchemyError as exc:
        raise PredictionLogUnavailable(describe_log_error(exc)) from None


@router.post(
    "/feedback",
    status_code=201,
    summary="Report the true outcome of a prediction",
    responses={
        **REQUEST_BODY_RESPONSES,
        200: {"model": FeedbackResponse, "description": "The same feedback was already recorded."},
        404: {"model": ErrorEnvelope, "description": "No prediction with this id is logged."},
        409: {"model": ErrorEnvelope, "description": "Different feedback was already recorded."},
        503: {"model": ErrorEnvelope, "description": "The prediction log is off or unreachable."},
    },
)
async def post_feedback(
    request: Request, response: Response, body: Feedback, observer: ObserverDep
) -> FeedbackResponse:
    """Record the observed outcome of a prediction, by its `prediction_id`; quality
    reports and metrics compare it with what the model said. Sending the same feedback
    again is harmless: the answer is 200 instead of 201 and nothing changes."""
    observed = body.model_dump(exclude={"prediction_id", "observed_at"})
    now = datetime.now(UTC)
    # The database is used from the thread pool, off the event loop; the wait for a
    # row not written yet holds no thread: 400 feedbacks on unknown ids at once held
    # the pool for a second each, and the reports that use it waited.
    try:
        recorded = await run_in_threadpool(_record, request, body, observed, now)
    except PredictionNotFound:
        if not may_be_unwritten(body.prediction_id):
            raise
        await asyncio.sleep(WRITE_WAIT)
        recorded = await run_in_threadpool(_record, request, body, observed, now)
    if recorded.status == "already_recorded":
        response.status_code = 200
    elif observer is not None:
        for answer in recorded.answers:
            observer.feedback_recorded(answer.model_version, answer.output, recorded.observed)
    primary = recorded.answers[0]
    return FeedbackResponse.model_validate(
        {
            "prediction_id": body.prediction_id,
            **recorded.observed,
            "observed_at": recorded.observed_at,
            "received_at": recorded.received_at,
            "model_version": primary.model_version,
            "status": recorded.status,
        }
    )
