"""Errors the service raises on purpose.

Free of any web framework: ``app.api.errors`` maps each class to an HTTP status
and the JSON error envelope, in one place.
"""

from typing import Any, Final


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


class PredictionTimeout(ServiceError):
    """The model did not answer within ``APP_PREDICT_TIMEOUT_MS``."""

    code = "prediction_timeout"


class ModelStuck(ServiceError):
    """A model call has run past ``APP_PREDICT_TIMEOUT_MS`` and still holds the model
    thread: the worker answers 504 until it ends."""

    code = "model_stuck"


class BatchTooLarge(ServiceError):
    """A batch request holds more rows than ``APP_MAX_BATCH_SIZE`` allows."""

    code = "batch_too_large"


class InvalidArrow(ServiceError):
    """A body sent as an Arrow IPC stream cannot be read as one, or is compressed."""

    code = "invalid_arrow"


class PredictionFailed(ServiceError):
    """The model answered with something that is not a valid prediction.

    It is never returned as a success: the request fails, and ``reason``, a short
    name from ``REFUSAL_REASONS``, is what the refusal is counted and logged by.
    """

    code = "prediction_failed"
    reason = "invalid"


class PredictionNotFinite(PredictionFailed):
    """The model returned NaN or an infinite number."""

    code = "prediction_not_finite"
    reason = "not_finite"


class PredictionOutOfBounds(PredictionFailed):
    """The model returned a number outside what the schema declares: a value beyond
    ``TARGET_MIN``/``TARGET_MAX``, or probabilities outside [0, 1] or not summing to 1."""

    code = "prediction_out_of_bounds"
    reason = "out_of_bounds"


REFUSAL_REASONS: Final = (PredictionNotFinite.reason, PredictionOutOfBounds.reason)
"""The reasons the model's own answers are checked for: a bounded set of metric labels."""


class PredictionLogUnavailable(ServiceError):
    """The prediction log is switched off or cannot be read, so a report cannot be made."""

    code = "prediction_log_unavailable"


class PredictionNotFound(ServiceError):
    """Feedback names a prediction id the prediction log does not hold."""

    code = "prediction_not_found"


class FeedbackConflict(ServiceError):
    """Feedback contradicts the feedback already recorded for the same prediction."""

    code = "feedback_conflict"
