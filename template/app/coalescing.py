"""One model call for the rows of concurrent requests.

A scikit-learn model spends most of a one-row call on checks and bookkeeping
that do not depend on the number of rows: a one-row ``predict_proba`` of a small
Pipeline takes about as long as a 64-row one. So the prediction routes do not
call the model themselves; they hand their rows to the ``Coalescer`` and wait.
It calls the model once for every request that is waiting when the event loop
comes round to it, and gives each request its own rows' answers.

With ``window`` 0 (the default) no request waits for others to arrive: rows
that are already waiting are coalesced, so a lone request is answered as soon as
it would be without coalescing, and under load the calls grow by themselves.
A ``window`` above 0 waits up to that long for more rows: fewer, larger calls,
and that much more latency. README.md, "Performance", has the measurements.

A row's answer is the one a call of its own gives, up to the last bits of
floating-point rounding: the model's matrix products run over more rows.
"""

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.model import Prediction, Predictor
from app.observability.observer import Observer

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Answer:
    """A request's predictions, and how long the model call that made them took."""

    predictions: list[Prediction]
    seconds: float


@dataclass
class _Waiting:
    predictor: Predictor
    rows: Sequence[Row]
    future: asyncio.Future[Answer] = field(repr=False)


def _settle(waiting: _Waiting, answer: Answer | BaseException) -> None:
    # A request whose client went away has been cancelled: nobody reads its answer.
    if waiting.future.done():
        return
    if isinstance(answer, BaseException):
        waiting.future.set_exception(answer)
    else:
        waiting.future.set_result(answer)


class Coalescer:
    """Coalesces the rows of requests waiting at the same time into one model call.

    ``max_rows`` bounds a call: a request that brings that many rows or more is
    predicted on its own, at once, and 1 turns coalescing off.
    """

    def __init__(
        self, *, window: float = 0.0, max_rows: int = 64, observer: Observer | None = None
    ) -> None:
        self.window = window
        self.max_rows = max_rows
        self._observer = observer
        self._waiting: list[_Waiting] = []
        self._rows = 0
        self._flush: asyncio.Handle | None = None

    async def predict(self, predictor: Predictor, rows: Sequence[Row]) -> Answer:
        """``predictor``'s answers for ``rows``; raises what predicting them alone would."""
        if len(rows) >= self.max_rows:
            return self._call(predictor, rows)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(predictor, rows, loop.create_future())
        self._waiting.append(waiting)
        self._rows += len(rows)
        if self._rows >= self.max_rows:
            self._answer_waiting()
        elif self._flush is None:
            if self.window > 0:
                self._flush = loop.call_later(self.window, self._answer_waiting)
            else:
                self._flush = loop.call_soon(self._answer_waiting)
        return await waiting.future

    def _answer_waiting(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        waiting, self._waiting, self._rows = self._waiting, [], 0
        by_predictor: dict[int, list[_Waiting]] = {}
        for request in waiting:
            by_predictor.setdefault(id(request.predictor), []).append(request)
        for requests in by_predictor.values():
            self._answer(requests)

    def _call(self, predictor: Predictor, rows: Sequence[Row]) -> Answer:
        started = time.perf_counter()
        predictions = predictor.predict(rows)
        seconds = time.perf_counter() - started
        if self._observer is not None:
            self._observer.model_called(len(rows), seconds)
        return Answer(predictions, seconds)

    def _answer(self, requests: list[_Waiting]) -> None:
        predictor = requests[0].predictor
        rows = [row for request in requests for row in request.rows]
        try:
            answer = self._call(predictor, rows)
        except Exception as exc:
            if len(requests) == 1:
                _settle(requests[0], exc)
                return
            # A refused answer or a failure must reach only the request whose rows
            # caused it: each request is predicted again on its own.
            for request in requests:
                try:
                    alone = self._call(predictor, request.rows)
                except Exception as failure:
                    _settle(request, failure)
                else:
                    _settle(request, alone)
            return
        start = 0
        for request in requests:
            end = start + len(request.rows)
            _settle(request, Answer(answer.predictions[start:end], answer.seconds))
            start = end
