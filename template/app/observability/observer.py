"""What the service reports about its work, for whatever records it.

The request middleware, the prediction routes and the error handler call the
``Observer`` in ``app.state.observer`` (when there is one) at each step.
"""

from collections.abc import Sequence
from typing import Final, Protocol

from app.model import Prediction, Predictor
from app.schemas import FEATURES

_FIELD_NAMES: Final = frozenset(feature.name for feature in FEATURES) | {"body", "rows"}


def field_label(path: str) -> str:
    """A field path as a bounded label: ``rows[3].age`` -> ``age``; unknown -> ``unknown``.

    Unknown names come from request bodies, so they are never used as labels.
    """
    name = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return name if name in _FIELD_NAMES else "unknown"


class Observer(Protocol):
    def request_started(self) -> None:
        """A request began that counts as traffic (see RequestContextMiddleware.quiet_paths)."""

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """It ended with ``status`` after ``seconds``; ``route`` is the route template."""

    def model_loaded(self, predictor: Predictor) -> None:
        """The model is verified and warmed up: the process is ready."""

    def predicted(self, predictions: Sequence[Prediction], seconds: float) -> None:
        """The model answered for ``len(predictions)`` rows in ``seconds``."""

    def rejected(self, fields: Sequence[str]) -> None:
        """A request failed validation; ``fields`` are the offending field paths."""
