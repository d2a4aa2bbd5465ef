"""What the service reports about its work, for whatever records it.

The request middleware, the prediction routes and the error handler call the
``Observer`` in ``app.state.observer`` (when there is one) at each step.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import numpy.typing as npt

from app.model import Prediction, Predictor
from app.schemas import FEATURES, Feedback
from app.settings import Settings

# The fields of every request body: the features, a batch's rows, and feedback's.
_FIELD_NAMES: Final = (
    frozenset(feature.name for feature in FEATURES) | {"body", "rows"} | set(Feedback.model_fields)
)
_CATEGORICAL: Final = frozenset(
    feature.name for feature in FEATURES if feature.type == "categorical"
)


def field_label(path: str) -> str:
    """A field path as a bounded label: ``rows[3].age`` -> ``age``; unknown -> ``unknown``.

    Unknown names come from request bodies, so they are never used as labels.
    """
    name = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return name if name in _FIELD_NAMES else "unknown"


def unseen_category(path: str, error_type: str) -> str | None:
    """The categorical feature a validation error refused an unknown value of, if any."""
    name = field_label(path)
    return name if error_type == "literal_error" and name in _CATEGORICAL else None


def rejection_counts(errors: Sequence[tuple[str, str]]) -> tuple[Counter[str], Counter[str]]:
    """Validation errors, (field path, error type) each, counted by ``field_label``, and
    those refusing an unknown category counted by feature.

    Counted first, so a metric is updated once per label, not once per error: a body
    of 200,000 unknown keys spent 0.8 s of its worker on 200,000 updates of one series.
    """
    fields: Counter[str] = Counter()
    unseen: Counter[str] = Counter()
    for path, error_type in errors:
        fields[field_label(path)] += 1
        feature = unseen_category(path, error_type)
        if feature is not None:
            unseen[feature] += 1
    return fields, unseen


class Observer(Protocol):
    def request_started(self) -> None:
        """A request began that counts as traffic (see RequestContextMiddleware.quiet_paths)."""

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """It ended with ``status`` after ``seconds``; ``route`` is the route template."""

    def model_loaded(self, predictor: Predictor, settings: Settings) -> None:
        """The model is verified and warmed up: the process is ready."""

    def model_called(self, rows: int, seconds: float) -> None:
        """One call of the model predicted ``rows`` rows, of one or more requests, in ``seconds``."""

    def predicted(
        self,
        rows: Sequence[Mapping[str, Any]],
        predictions: Sequence[Prediction],
        seconds: float,
        inputs: npt.NDArray[Any] | None,
    ) -> None:
        """The model answered ``predictions`` for a request's ``rows``, in a call that took
        ``seconds`` (a call coalescing several requests answers them all at once);
        ``inputs``, when given, are the rows as ``encode_rows`` gave them to the model."""

    def rejected(self, errors: Sequence[tuple[str, str]], unknown: int = 0) -> None:
        """A request failed validation: (field path, pydantic error type) of each error,
        and ``unknown`` more errors not listed, each an unknown field (a body refused
        before validation, ``app.api.routing.refuse_unknown_fields``)."""

    def feedback_recorded(
        self, model_version: str, output: Mapping[str, Any], observed: Mapping[str, Any]
    ) -> None:
        """The truth ``observed`` arrived for a prediction ``model_version`` answered ``output``."""

    def output_refused(self, reason: str) -> None:
        """The model's answer was refused, never returned; ``reason`` is in REFUSAL_REASONS."""

    def log_written(self, rows: int, pending: int) -> None:
        """The prediction log wrote ``rows``; ``pending`` wait (from its writer thread)."""

    def log_failed(self, pending: int) -> None:
        """A write of the prediction log failed and will be retried."""

    def log_dropped(self, rows: int) -> None:
        """The prediction log's buffer was full: ``rows`` will never be written."""

    def shadow_loaded(self, predictor: Predictor) -> None:
        """The shadow model is verified and warmed up, beside the primary one."""

    def shadow_compared(self, rows: int, agreeing: int) -> None:
        """The shadow answered ``rows``; on ``agreeing`` of them it agreed with the primary."""

    def shadow_skipped(self, rows: int) -> None:
        """The shadow's buffer was full: ``rows`` were not predicted by the shadow."""

    def shadow_failed(self, rows: int) -> None:
        """The shadow model raised on ``rows``: they have no shadow answer."""
