"""Probes for orchestrators: liveness without I/O, readiness once the model is verified."""

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.api.deps import PredictorDep
from app.api.errors import ErrorEnvelope

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    status: Literal["ready"] = "ready"
    model_version: str


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    summary="Readiness: the model is loaded, verified and warmed up",
    responses={503: {"model": ErrorEnvelope, "description": "The model is not loaded yet."}},
)
async def ready(predictor: PredictorDep) -> Readiness:
    return Readiness(model_version=predictor.version)
