"""Probes for orchestrators: liveness without I/O, readiness once the model is verified."""

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import PredictorDep, caller_is_trusted
from app.api.errors import GUARD_RESPONSES, ErrorEnvelope
from app.coalescing import Coalescer
from app.errors import ModelStuck, PredictionLogUnavailable
from app.monitoring.prediction_log import PredictionLog, PredictionLogStatus
from app.monitoring.shadow import Shadow, ShadowStatus
from app.settings import Settings

router = APIRouter(tags=["operations"])
HIDDEN_ERROR = "shown to callers with an API key; the service's log has it too"


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    status: Literal["ready"] = "ready"
    model_version: str
    prediction_log: PredictionLogStatus | None = Field(
        description="Absent when APP_PREDICTION_LOG_ENABLED is false."
    )
    shadow: ShadowStatus | None = Field(
        default=None, description="The shadow model; absent when APP_SHADOW_MODEL_VERSION is unset."
    )


@router.get("/health", responses=GUARD_RESPONSES, summary="Liveness: the process answers")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    summary="Readiness: the model is loaded, verified and warmed up",
    responses={
        **GUARD_RESPONSES,
        503: {
            "model": ErrorEnvelope,
            "description": "The model is not loaded yet, a model call is stuck past "
            "APP_PREDICT_TIMEOUT_MS, or the prediction log cannot write and "
            "APP_READY_REQUIRES_PREDICTION_LOG is true.",
        },
    },
)
async def ready(request: Request, predictor: PredictorDep) -> Readiness:
    coalescer: Coalescer = request.app.state.coalescer
    stuck = coalescer.stuck_for()
    if stuck:
        raise ModelStuck(
            f"a model call has run {stuck:.1f} s past APP_PREDICT_TIMEOUT_MS and still holds "
            "this worker's model thread; predictions get 504 until it ends"
        )
    prediction_log: PredictionLog | None = request.app.state.prediction_log
    log_status = prediction_log.status() if prediction_log is not None else None
    if log_status is not None and log_status.last_error and not caller_is_trusted(request):
        # /ready is open: a database's error names its host, port and user.
        log_status = log_status.model_copy(update={"last_error": HIDDEN_ERROR})
    settings: Settings = request.app.state.settings
    if settings.ready_requires_prediction_log and log_status and log_status.state == "failing":
        raise PredictionLogUnavailable(
            f"the prediction log cannot write ({log_status.last_error}); "
            f"{log_status.pending} rows wait, and APP_READY_REQUIRES_PREDICTION_LOG is true",
            details=[log_status.model_dump()],
        )
    shadow: Shadow | None = request.app.state.shadow
    return Readiness(
        model_version=predictor.version,
        prediction_log=log_status,
        shadow=shadow.status() if shadow is not None else None,
    )
