"""Wiring only: the application, its lifespan, middleware and routers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from app.api import health, predict
from app.api.errors import install_error_handlers
from app.errors import ArtifactError
from app.model import load_service_model
from app.observability.logging import configure_logging
from app.observability.middleware import RequestContextMiddleware
from app.schemas import API_DESCRIPTION, API_TITLE
from app.settings import Settings, get_settings

logger = structlog.stdlib.get_logger("app")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and verify the model once per process, before the first request."""
    settings: Settings = app.state.settings
    try:
        predictor, notes = load_service_model(settings)
    except ArtifactError as exc:
        logger.error("cannot start", error=exc.message)
        raise
    for note in notes:
        logger.warning("model loaded with a difference", note=note)
    app.state.predictor = predictor
    logger.info("model ready", model_version=predictor.version)
    yield
    app.state.predictor = None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = FastAPI(
        title=API_TITLE,
        description=API_DESCRIPTION,
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.predictor = None
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(predict.router)
    app.include_router(health.router)
    return app
