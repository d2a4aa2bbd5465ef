"""The shadow model: a second version that answers the same rows, off the response path.

When ``APP_SHADOW_MODEL_VERSION`` is set, each request's rows are handed to
``Shadow.submit`` once the primary model has answered them. Submitting only
appends to a bounded buffer; one thread per worker predicts what is buffered
with the shadow model, compares its answers with the primary's, tells the
listener how many agreed, and records the shadow's answers in the prediction
log with ``role = "shadow"`` and the prediction id of the primary answer they
shadow. When the buffer is full, new rows are skipped and counted; when the
shadow model fails, its rows are counted and logged. Neither ever reaches the
response. At shutdown the thread predicts what is left before the prediction
log closes.

A classifier's shadow agrees on a row when it predicts the same label; a
regressor's when its value is within ``APP_SHADOW_TOLERANCE`` of the primary's,
relative to the larger of the two (``math.isclose``'s ``rel_tol``).
"""

import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field

from app.model import ClassPrediction, Prediction, Predictor, ValuePrediction
from app.monitoring.prediction_log import PredictionLog

logger = structlog.stdlib.get_logger("app.shadow")

BATCH_ROWS: Final = 500
"""Most rows the shadow model predicts in one call: waiting requests share a call."""
LINGER_SECONDS: Final = 0.1
"""How long the shadow lets rows gather before a call. A call costs scikit-learn
about as much for a row as for a hundred, and the shadow's thread takes the
interpreter from the request handlers while it works: fewer, larger calls keep
the primary's latency close to what it is without a shadow."""


class ShadowListener(Protocol):
    """What the shadow reports as it works; the observers implement it."""

    def shadow_compared(self, rows: int, agreeing: int) -> None:
        """The shadow answered ``rows``; on ``agreeing`` of them it agreed with the primary."""

    def shadow_skipped(self, rows: int) -> None:
        """The shadow's buffer was full: ``rows`` were not predicted by the shadow."""

    def shadow_failed(self, rows: int) -> None:
        """The shadow model raised on ``rows``: they have no shadow answer."""


class ShadowStatus(BaseModel):
    """How the shadow model is doing, in this worker; /ready shows it."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    pending: int = Field(description="Rows waiting for the shadow model.")
    compared: int = Field(description="Rows the shadow answered and compared.")
    agreeing: int = Field(description="Compared rows on which shadow and primary agreed.")
    skipped: int = Field(description="Rows not shadowed because the buffer was full.")
    failed: int = Field(description="Rows on which the shadow model failed.")


@dataclass(frozen=True, slots=True)
class _Job:
    """One request's rows, the primary's answers, and the primary's log rows, or its
    batch's log row, if logged."""

    rows: Sequence[Mapping[str, Any]]
    primary: Sequence[Prediction]
    log_rows: Sequence[Mapping[str, Any]]
    log_batch: Mapping[str, Any] | None


def _output(answer: Prediction) -> dict[str, Any]:
    """An answer as the prediction log keeps it: the fields that are set."""
    return {k: v for k, v in answer._asdict().items() if v is not None}


def agrees(primary: Prediction, shadow: Prediction, tolerance: float) -> bool:
    """Whether the shadow gave the primary's answer: the same label, or a close value."""
    if isinstance(primary, ClassPrediction) and isinstance(shadow, ClassPrediction):
        return primary.label == shadow.label
    if isinstance(primary, ValuePrediction) and isinstance(shadow, ValuePrediction):
        return math.isclose(primary.value, shadow.value, rel_tol=tolerance)
    return False


class Shadow:
    """Predicts submitted rows with the shadow model from a thread of its own."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        tolerance: float = 0.05,
        max_pending: int = 10_000,
        prediction_log: PredictionLog | None = None,
        listener: ShadowListener | None = None,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.predictor = predictor
        self._linger = linger
        self._tolerance = tolerance
        self._max_pending = max_pending
        self._prediction_log = prediction_log
        self._listener = listener
        self._jobs: deque[_Job] = deque()
        self._pending = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._compared = 0
        self._agreeing = 0
        self._skipped = 0
        self._failed = 0

    @property
    def version(self) -> str:
        return self.predictor.version

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow-model", daemon=True)
        self._thread.start()

    def submit(
        self,
        rows: Sequence[Mapping[str, Any]],
        primary: Sequence[Prediction],
        log_rows: Sequence[Mapping[str, Any]] = (),
        log_batch: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue a request's rows for the shadow; never waits for it.

        ``log_rows`` are the primary's prediction log rows for ``rows``, or
        ``log_batch`` its one row for a batch; neither when the log is off. The
        shadow's copy their ids, request id and features.
        """
        with self._wake:
            accepted = not self._stopping and self._pending + len(rows) <= self._max_pending
            if accepted:
                self._jobs.append(_Job(rows, primary, log_rows, log_batch))
                self._pending += len(rows)
                self._wake.notify()
            else:
                self._skipped += len(rows)
        if not accepted and self._listener is not None:
            self._listener.shadow_skipped(len(rows))

    def status(self) -> ShadowStatus:
        return ShadowStatus(
            model_version=self.version,
            pending=self._pending,
            compared=self._compared,
            agreeing=self._agreeing,
            skipped=self._skipped,
            failed=self._failed,
        )

    def close(self, timeout: float = 15.0) -> None:
        """Predict what is buffered, for up to ``timeout`` seconds, then stop."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pending:
            logger.error("shadow model stopped with rows unanswered", rows=self._pending)

    def _take(self) -> list[_Job]:
        """The oldest waiting jobs, up to BATCH_ROWS rows (at least one job), once
        rows have gathered for the linger time; at once when stopping."""
        with self._wake:
            while not self._jobs and not self._stopping:
                self._wake.wait()
            deadline = time.monotonic() + self._linger
            while not self._stopping and self._pending < BATCH_ROWS:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
            jobs: list[_Job] = []
            rows = 0
            while self._jobs and (not jobs or rows + len(self._jobs[0].rows) <= BATCH_ROWS):
                job = self._jobs.popleft()
                jobs.append(job)
                rows += len(job.rows)
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                return  # stopping, and nothing is left
            rows = sum(len(job.rows) for job in jobs)
            try:
                self._answer(jobs)
            except Exception as exc:
                self._failed += rows
                logger.error(
                    "shadow model failed",
                    model_version=self.version,
                    rows=rows,
                    error=f"{type(exc).__name__}: {exc}",
                )
                if self._listener is not None:
                    self._listener.shadow_failed(rows)
            finally:
                with self._wake:
                    self._pending -= rows

    def _answer(self, jobs: Sequence[_Job]) -> None:
        started = time.perf_counter()
        answers = self.predictor.predict([row for job in jobs for row in job.rows])
        latency_ms = (time.perf_counter() - started) * 1000
        now = datetime.now(UTC)
        primary = [prediction for job in jobs for prediction in job.primary]
        agreeing = sum(
            agrees(first, second, self._tolerance)
            for first, second in zip(primary, answers, strict=True)
        )
        self._compared += len(answers)
        self._agreeing += agreeing
        if self._listener is not None:
            self._listener.shadow_compared(len(answers), agreeing)
        if self._prediction_log is None:
            return
        position = 0
        for job in jobs:
            shadowed = answers[position : position + len(job.rows)]
            position += len(job.rows)
            if job.log_batch is not None:
                self._prediction_log.record_batch(
                    {
                        **job.log_batch,
                        "created_at": now,
                        "model_version": self.version,
                        "role": "shadow",
                        "outputs": [_output(answer) for answer in shadowed],
                        "latency_ms": latency_ms,
                    }
                )
            if not job.log_rows:
                continue
            self._prediction_log.record(
                {
                    **row,
                    "created_at": now,
                    "model_version": self.version,
                    "role": "shadow",
                    "output": _output(answer),
                    "latency_ms": latency_ms,
                }
                for row, answer in zip(job.log_rows, shadowed, strict=True)
            )
