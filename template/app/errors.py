"""Errors the service raises on purpose.

Free of any web framework: ``app.api.errors`` maps each class to an HTTP status
and the JSON error envelope, in one place.
"""

from typing import Any


class ServiceError(Exception):
    """Base class: a failure with a stable machine-readable ``code``."""

    code = "service_error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ConfigError(ServiceError):
    """A setting is missing or invalid; the message names the environment variable."""

    code = "config_invalid"


class ArtifactError(ServiceError):
    """The model artifact is missing, corrupt, or does not match this service."""

    code = "artifact_invalid"


class ModelNotReady(ServiceError):
    """No verified model is loaded yet, so no prediction can be made."""

    code = "model_not_ready"


class BatchTooLarge(ServiceError):
    """A batch request holds more rows than ``APP_MAX_BATCH_SIZE`` allows."""

    code = "batch_too_large"


class PredictionFailed(ServiceError):
    """The model answered with something that is not a valid prediction."""

    code = "prediction_failed"


class PredictionLogUnavailable(ServiceError):
    """The prediction log is switched off or cannot be read, so a report cannot be made."""

    code = "prediction_log_unavailable"


class PredictionNotFound(ServiceError):
    """Feedback names a prediction id the prediction log does not hold."""

    code = "prediction_not_found"


class FeedbackConflict(ServiceError):
    """Feedback contradicts the feedback already recorded for the same prediction."""

    code = "feedback_conflict"
