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
and that much more latency. Measured with two workers (modelship's
``bench.coalescing``; its README, "Performance", has the figures): without
sharing, the service answered under half the requests a second it does with
it; a window of 1 or 5 ms answered fewer than no window, with clients that wait
for each answer, and added its length to the median latency.

A row's answer is the one a call of its own gives, up to the last bits of
floating-point rounding: the model's matrix products run over more rows.

With a ``timeout``, the model runs in a thread of its own, one call at a time,
and a request whose answer has not come within ``timeout`` seconds of its arrival
fails with ``PredictionTimeout`` (504) while the event loop goes on answering
others; a call still running past it makes ``stuck_for`` non-zero, and /ready
reports the worker not ready. Python cannot stop a thread: the call itself runs
to its end. Without a timeout the model runs on the event loop's thread, which
saves the hand-over, 0.3 to 0.4 ms of a request's latency at a light load and
no throughput at full load (modelship's README, "Performance"), and only the
server's worker timeout bounds a call that hangs.
"""

import asyncio
import time
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from app.errors import PredictionTimeout
from app.model import Prediction, Predictor
from app.observability.observer import Observer

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Answer:
    """A request's predictions, and how long the model call that made them took."""

    predictions: list[Prediction]
    seconds: float
    inputs: npt.NDArray[Any] | None = None
    """The request's rows as the model got them from ``encode_rows``; None for a model
    that takes a DataFrame. The drift tally counts them without encoding them again."""


@dataclass
class _Waiting:
    predictor: Predictor
    rows: Sequence[Row]
    future: asyncio.Future[Answer] = field(repr=False)
    encoded: npt.NDArray[Any] | None = field(default=None, repr=False)


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
        self,
        *,
        window: float = 0.0,
        max_rows: int = 64,
        timeout: float | None = None,
        model_threads: int = 1,
        observer: Observer | None = None,
    ) -> None:
        self.window = window
        self.max_rows = max_rows
        self.timeout = timeout
        self._observer = observer
        self._waiting: list[_Waiting] = []
        self._rows = 0
        self._flush: asyncio.Handle | None = None
        # One model thread: calls are answered in turn, as on the event loop. Native
        # thread limits are per thread for OpenMP: the model thread sets its own.
        self._executor = (
            ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix="model",
                initializer=threadpool_limits,
                initargs=(model_threads,),
            )
            if timeout
            else None
        )
        self._in_flight = False
        self._call_started: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def predict(
        self,
        predictor: Predictor,
        rows: Sequence[Row],
        encoded: npt.NDArray[Any] | None = None,
    ) -> Answer:
        """``predictor``'s answers for ``rows``; raises what predicting them alone would.

        ``encoded``, when given, is ``rows`` as ``predictor.encode`` would give them: a
        request of ``max_rows`` or more, called on its own, skips encoding its rows.
        """
        timeout = self.timeout
        if self._executor is None or timeout is None:
            if len(rows) >= self.max_rows:
                return self._call(predictor, rows, encoded)
            return await self._enqueue(predictor, rows)
        arrived = time.monotonic()
        answer: asyncio.Future[Answer]
        if len(rows) >= self.max_rows:
            answer = asyncio.get_running_loop().create_future()
            waiting = _Waiting(predictor, rows, answer, encoded)
            self._start(self._answer_in_thread([waiting]))
        else:
            answer = self._enqueue(predictor, rows)
        try:
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            waited = time.monotonic() - arrived
            raise PredictionTimeout(
                f"the model did not answer within {timeout * 1000:g} ms "
                f"(waited {waited * 1000:.0f} ms); retry later, or raise "
                "APP_PREDICT_TIMEOUT_MS if the model needs longer"
            ) from None

    def stuck_for(self) -> float:
        """Seconds the running model call has gone past the timeout; 0 when none has."""
        started = self._call_started
        if started is None or self.timeout is None:
            return 0.0
        return max(time.monotonic() - started - self.timeout, 0.0)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _enqueue(self, predictor: Predictor, rows: Sequence[Row]) -> asyncio.Future[Answer]:
        """Queue ``rows`` for the next shared call, at once; the future of their answer."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(predictor, rows, loop.create_future())
        self._waiting.append(waiting)
        self._rows += len(rows)
        # While a call runs in the model thread, what waits is answered when it ends.
        if not self._in_flight:
            if self._rows >= self.max_rows:
                self._answer_waiting()
            elif self._flush is None:
                if self.window > 0:
                    self._flush = loop.call_later(self.window, self._answer_waiting)
                else:
                    self._flush = loop.call_soon(self._answer_waiting)
        return waiting.future

    def _answer_waiting(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        waiting, self._waiting, self._rows = self._waiting, [], 0
        by_predictor: dict[int, list[_Waiting]] = {}
        for request in waiting:
            by_predictor.setdefault(id(request.predictor), []).append(request)
        if self._executor is None:
            for requests in by_predictor.values():
                self._answer(requests)
        elif by_predictor:
            self._in_flight = True
            self._start(self._answer_groups(by_predictor)).add_done_callback(self._after_call)

    def _start(self, call: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # The event loop keeps only weak references to tasks: these are kept until done.
        task = asyncio.get_running_loop().create_task(call)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _answer_groups(self, by_predictor: dict[int, list[_Waiting]]) -> None:
        # What gathered during the last call may hold more than max_rows: one call
        # per max_rows, never splitting a request.
        for requests in by_predictor.values():
            call: list[_Waiting] = []
            rows = 0
            for request in requests:
                if call and rows + len(request.rows) > self.max_rows:
                    await self._answer_in_thread(call)
                    call, rows = [], 0
                call.append(request)
                rows += len(request.rows)
            await self._answer_in_thread(call)

    def _after_call(self, task: asyncio.Task[None]) -> None:
        self._in_flight = False
        if self._waiting:
            self._answer_waiting()

    async def _answer_in_thread(self, requests: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._answer, requests, loop)

    def _call(
        self, predictor: Predictor, rows: Sequence[Row], encoded: npt.NDArray[Any] | None = None
    ) -> Answer:
        started = time.perf_counter()
        self._call_started = time.monotonic()
        try:
            model_input = predictor.encode(rows) if encoded is None else encoded
            predictions = predictor.predict_encoded(model_input)
        finally:
            self._call_started = None
        seconds = time.perf_counter() - started
        if self._observer is not None:
            self._observer.model_called(len(rows), seconds)
        inputs = model_input if isinstance(model_input, np.ndarray) else None
        return Answer(predictions, seconds, inputs)

    def _answer(
        self, requests: list[_Waiting], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Call the model for ``requests`` and settle each; from the model thread,
        ``loop`` is the event loop the requests wait on."""

        def settle(request: _Waiting, answer: Answer | BaseException) -> None:
            if loop is None:
                _settle(request, answer)
            else:
                loop.call_soon_threadsafe(_settle, request, answer)

        predictor = requests[0].predictor
        if len(requests) == 1:
            rows, encoded = requests[0].rows, requests[0].encoded
        else:
            rows, encoded = [row for request in requests for row in request.rows], None
        try:
            answer = self._call(predictor, rows, encoded)
        except Exception as exc:
            if len(requests) == 1:
                settle(requests[0], exc)
                return
            # A refused answer or a failure must reach only the request whose rows
            # caused it: each request is predicted again on its own.
            for request in requests:
                try:
                    alone = self._call(predictor, request.rows)
                except Exception as failure:
                    settle(request, failure)
                else:
                    settle(request, alone)
            return
        start = 0
        for request in requests:
            end = start + len(request.rows)
            inputs = answer.inputs[start:end] if answer.inputs is not None else None
            settle(request, Answer(answer.predictions[start:end], answer.seconds, inputs))
            start = end
