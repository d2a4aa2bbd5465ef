"""What the service reports about its work, for whatever records it.

The request middleware, the prediction routes and the error handler call the
``Observer`` in ``app.state.observer`` (when there is one) at each step.
"""

from collections.abc import Sequence
from typing import Protocol

from app.model import Prediction, Predictor


class Observer(Protocol):
    def request_started(self) -> None:
        """A request to a traffic route began (not /health, /ready, /metrics)."""

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """It ended with ``status`` after ``seconds``; ``route`` is the route template."""

    def model_loaded(self, predictor: Predictor) -> None:
        """The model is verified and warmed up: the process is ready."""

    def predicted(self, predictions: Sequence[Prediction], seconds: float) -> None:
        """The model answered for ``len(predictions)`` rows in ``seconds``."""

    def rejected(self, fields: Sequence[str]) -> None:
        """A request failed validation; ``fields`` are the offending field paths."""
