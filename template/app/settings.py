"""Configuration, read from environment variables only and checked once at start-up.

Service settings carry the ``APP_`` prefix (``APP_MODEL_DIR``, ``APP_LOG_LEVEL``, ...).
The server's ``HOST``, ``PORT`` and ``WEB_CONCURRENCY`` keep the names that
gunicorn and hosting platforms already use.
"""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigError

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A model version is also a folder name: letters, digits, dots, dashes, underscores."""

LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR"],
    BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
]


class Settings(BaseSettings):
    """Settings of the prediction service."""

    model_config = SettingsConfigDict(env_prefix="APP_", frozen=True)

    model_dir: Path = Field(
        default=Path("artifacts"),
        description="Folder holding one sub-folder per trained model version.",
    )
    model_version: str | None = Field(
        default=None,
        pattern=VERSION_PATTERN,
        description="Model version to serve; when unset, the only version in model_dir.",
    )
    log_level: LogLevel = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="auto: readable on a terminal, JSON lines otherwise.",
    )
    max_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Most rows /v1/predict/batch accepts."
    )
    decision_threshold: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Binary classifiers: overrides the threshold answered to the template.",
    )


class ServerSettings(BaseSettings):
    """Where and how wide the server listens; read by ``deploy/gunicorn_conf.py``."""

    model_config = SettingsConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=1, ge=1, le=64)


def _config_error(exc: ValidationError, prefix: str) -> ConfigError:
    """One error naming each offending environment variable and what is wrong with it."""
    problems = [
        f"{(prefix + '_'.join(str(part) for part in error['loc'])).upper()}: {error['msg']}"
        for error in exc.errors()
    ]
    return ConfigError("invalid setting " + "; ".join(problems))


def load_settings() -> Settings:
    """The service settings from the environment, or one ``ConfigError`` saying what to fix."""
    try:
        return Settings()
    except ValidationError as exc:
        raise _config_error(exc, "APP_") from None


def load_server_settings() -> ServerSettings:
    """The server settings from the environment, or one ``ConfigError`` saying what to fix."""
    try:
        return ServerSettings()
    except ValidationError as exc:
        raise _config_error(exc, "") from None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
