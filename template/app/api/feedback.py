"""Delayed labels: the truth about a prediction, reported once it is known."""

import time
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import ObserverDep
from app.api.errors import BODY_ERROR_RESPONSES, ErrorEnvelope
from app.api.reports import prediction_log
from app.api.routing import OrjsonRoute
from app.errors import PredictionLogUnavailable, PredictionNotFound
from app.monitoring.prediction_log import describe_log_error
from app.monitoring.quality import RecordedFeedback, record_feedback
from app.schemas import Feedback, FeedbackResponse

router = APIRouter(prefix="/v1", tags=["predictions"], route_class=OrjsonRoute)

WRITE_WAIT: Final = 1.0
"""Seconds to wait for a prediction answered a moment ago to reach the log: rows are
written in batches, every half second, so feedback may overtake its prediction."""


def _record(request: Request, body: Feedback, observed: dict[str, object]) -> RecordedFeedback:
    log = prediction_log(request)
    engine = log.engine
    now = datetime.now(UTC)
    observed_at = body.observed_at or now  # in UTC (Feedback's validator)
    try:
        log.ensure_tables()
        try:
            return record_feedback(engine, body.prediction_id, observed, observed_at, now)
        except PredictionNotFound:
            time.sleep(WRITE_WAIT)
            return record_feedback(engine, body.prediction_id, observed, observed_at, now)
    except SQLAlchemyError as exc:
        raise PredictionLogUnavailable(describe_log_error(exc)) from None


# A plain `def` route: the database is used from FastAPI's thread pool, off the event loop.
@router.post(
    "/feedback",
    status_code=201,
    summary="Report the true outcome of a prediction",
    responses={
        **BODY_ERROR_RESPONSES,
        200: {"model": FeedbackResponse, "description": "The same feedback was already recorded."},
        404: {"model": ErrorEnvelope, "description": "No prediction with this id is logged."},
        409: {"model": ErrorEnvelope, "description": "Different feedback was already recorded."},
        503: {"model": ErrorEnvelope, "description": "The prediction log is off or unreachable."},
    },
)
def post_feedback(
    request: Request, response: Response, body: Feedback, observer: ObserverDep
) -> FeedbackResponse:
    """Record the observed outcome of a prediction, by its `prediction_id`; quality
    reports and metrics compare it with what the model said. Sending the same feedback
    again is harmless: the answer is 200 instead of 201 and nothing changes."""
    observed = body.model_dump(exclude={"prediction_id", "observed_at"})
    recorded = _record(request, body, observed)
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
