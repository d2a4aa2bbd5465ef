"""Reports read from the prediction log: drift against the training data, and quality
against the feedback received."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import PredictorDep, SettingsDep
from app.api.errors import GUARD_RESPONSES, ErrorEnvelope
from app.errors import PredictionLogUnavailable
from app.model import Predictor
from app.monitoring.drift_report import DriftReport, report_from_log
from app.monitoring.prediction_log import (
    LogReader,
    PredictionLog,
    ReportT,
    WindowError,
    describe_log_error,
    report_window,
)
from app.monitoring.quality import QualityReport, quality_from_log
from app.settings import Settings

router = APIRouter(prefix="/v1", tags=["monitoring"])

REPORT_RESPONSES = {
    **GUARD_RESPONSES,
    422: {
        "model": ErrorEnvelope,
        "description": "A query parameter is not a number or date, or the window it gives is "
        "empty or too long.",
    },
    503: {
        "model": ErrorEnvelope,
        "description": "The model is not loaded, or the prediction log is off, unreadable "
        "or holds no predictions yet.",
    },
}

Hours = Annotated[
    float,
    Query(
        gt=0,
        le=24 * 366,
        allow_inf_nan=False,
        description="Window length in hours, ending at `until`.",
    ),
]
Since = Annotated[
    AwareDatetime | None, Query(description="Window start (overrides `hours`), ISO 8601.")
]
Until = Annotated[AwareDatetime | None, Query(description="Window end; default now.")]


def window(
    hours: float, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    try:
        return report_window(hours, since, until)
    except WindowError as exc:
        raise RequestValidationError(
            [{"loc": ("query", exc.bound), "msg": exc.message, "type": "value_error"}]
        ) from None


def prediction_log(request: Request) -> PredictionLog:
    log: PredictionLog | None = request.app.state.prediction_log
    if log is None:
        raise PredictionLogUnavailable(
            "the prediction log is off (APP_PREDICTION_LOG_ENABLED=false), "
            "so there is nothing to report on"
        )
    return log


def from_log(
    request: Request,
    predictor: Predictor,
    settings: Settings,
    span: tuple[datetime, datetime],
    read: LogReader[ReportT],
) -> ReportT:
    """``read`` the prediction log over ``span`` for the served model; a log that is off
    or unreachable is a 503."""
    try:
        return read(prediction_log(request).engine, predictor.metadata, settings, *span)
    except SQLAlchemyError as exc:
        raise PredictionLogUnavailable(describe_log_error(exc)) from None


# Plain `def` routes: the database is read in FastAPI's thread pool, off the event loop.
@router.get(
    "/drift", responses=REPORT_RESPONSES, summary="Drift of the live inputs and predictions"
)
def drift(
    request: Request,
    predictor: PredictorDep,
    settings: SettingsDep,
    hours: Hours = 24.0,
    since: Since = None,
    until: Until = None,
) -> DriftReport:
    """PSI and a two-sample test per feature and for the predictions of the served model,
    over a window of the prediction log; `not_enough_data` below APP_DRIFT_MIN_ROWS rows."""
    return from_log(request, predictor, settings, window(hours, since, until), report_from_log)


@router.get("/quality", responses=REPORT_RESPONSES, summary="Quality measured with feedback")
def quality(
    request: Request,
    predictor: PredictorDep,
    settings: SettingsDep,
    hours: Hours = 24.0,
    since: Since = None,
    until: Until = None,
) -> QualityReport:
    """Accuracy, macro F1 and ROC AUC (classifiers) or MAE and RMSE (regressors) of each
    model version on the predictions of the window that received feedback, with the
    label coverage; `not_enough_labels` below APP_QUALITY_MIN_LABELS."""
    return from_log(request, predictor, settings, window(hours, since, until), quality_from_log)
