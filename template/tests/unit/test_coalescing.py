"""Concurrent requests share model calls, and still get exactly their own answers."""

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.coalescing import Answer, Coalescer
from app.errors import PredictionNotFinite, PredictionTimeout
from app.features import FeatureSpec
from app.model import (
    MODEL_FILE,
    Predictor,
    load_joblib,
)
from app.schemas import FEATURE_EXAMPLE, FEATURES
from tests.checks import assert_same
from tests.user_models import Answers, SpoiledModel

Row = Mapping[str, Any]
FIRST_NUMBER = next(f.name for f in FEATURES if f.type in ("float", "integer"))
SPOILING_VALUE = -123456
"""A row whose first numeric feature holds this gets a NaN answer from the picky model."""


class RecordingModel:
    """The session's model, recording the rows of each call; rows carrying
    SPOILING_VALUE get NaN answers, as a model gone wrong on odd input would."""

    def __init__(self, model: Any, features: Sequence[FeatureSpec]) -> None:
        self.model = model
        self.calls: list[int] = []
        self._column = [f.name for f in features].index(FIRST_NUMBER)

    @property
    def classes_(self) -> Any:
        return self.model.classes_

    def _answer(self, rows: Any, answers: Any) -> Any:
        self.calls.append(len(rows))
        answers = np.asarray(answers, dtype=np.float64)
        spoiled = np.asarray(rows)[:, self._column] == SPOILING_VALUE
        answers[spoiled] = math.nan
        return answers

    def predict(self, rows: Any) -> Any:
        return self._answer(rows, self.model.predict(rows))

    def predict_proba(self, rows: Any) -> Any:
        return self._answer(rows, self.model.predict_proba(rows))


@pytest.fixture
def recording(predictor: Predictor, model_dir: Path, model_version: str) -> RecordingModel:
    model, _ = load_joblib(model_dir / model_version / MODEL_FILE)
    return RecordingModel(model, predictor.features)


@pytest.fixture
def picky(predictor: Predictor, recording: RecordingModel) -> Predictor:
    return Predictor(
        recording,
        predictor.metadata,
        threshold=predictor.threshold,
        target_range=predictor.target_range,
    )


@pytest.fixture(params=[None, 5.0], ids=["on-the-event-loop", "in-a-model-thread"])
def timeout(request: pytest.FixtureRequest) -> float | None:
    """Each test runs with the model called on the event loop (no timeout) and in a
    thread of its own (a timeout)."""
    value: float | None = request.param
    return value


def rows(count: int) -> list[dict[str, Any]]:
    """``count`` rows: the example with its first number moved by a thousandth each."""
    value = float(FEATURE_EXAMPLE[FIRST_NUMBER])
    return [{**FEATURE_EXAMPLE, FIRST_NUMBER: value * (1 + i / 1000)} for i in range(count)]


async def together(
    coalescer: Coalescer, predictor: Predictor, requests: Sequence[Sequence[Row]]
) -> list[Answer | BaseException]:
    """Each request's answer, the requests sent concurrently."""
    return await asyncio.gather(
        *(coalescer.predict(predictor, request) for request in requests), return_exceptions=True
    )


def assert_own_answers(
    answer: Answer | BaseException, predictor: Predictor, rows: Sequence[Row]
) -> None:
    """``answer`` holds what ``rows`` get in a call of their own."""
    assert isinstance(answer, Answer), answer
    assert_same(answer.predictions, predictor.predict(rows))


def test_concurrent_requests_share_one_call_and_get_their_own_answers(
    picky: Predictor, recording: RecordingModel, timeout: float | None
) -> None:
    requests = [[row] for row in rows(10)]

    answers = asyncio.run(together(Coalescer(timeout=timeout), picky, requests))

    assert recording.calls[-1] == 10
    assert len(recording.calls) == 1
    for request, answer in zip(requests, answers, strict=True):
        assert_own_answers(answer, picky, request)


def test_a_lone_request_is_not_kept_waiting_for_others(
    picky: Predictor, recording: RecordingModel, timeout: float | None
) -> None:
    async def one_then_another() -> None:
        coalescer = Coalescer(timeout=timeout, window=0)
        await coalescer.predict(picky, rows(1))
        await coalescer.predict(picky, rows(1))

    asyncio.run(one_then_another())

    assert recording.calls == [1, 1]


def test_a_window_gathers_requests_that_arrive_within_it(
    picky: Predictor, recording: RecordingModel, timeout: float | None
) -> None:
    async def second_arriving_later(window: float) -> None:
        coalescer = Coalescer(timeout=timeout, window=window)

        async def later() -> Answer:
            await asyncio.sleep(0.01)
            return await coalescer.predict(picky, rows(1))

        await asyncio.gather(coalescer.predict(picky, rows(1)), later())

    asyncio.run(second_arriving_later(0.0))
    asyncio.run(second_arriving_later(0.5))

    assert recording.calls == [1, 1, 2]


def test_max_rows_bounds_each_call(
    picky: Predictor, recording: RecordingModel, timeout: float | None
) -> None:
    requests = [[row] for row in rows(10)]

    answers = asyncio.run(together(Coalescer(timeout=timeout, max_rows=4), picky, requests))

    assert recording.calls == [4, 4, 2]
    for request, answer in zip(requests, answers, strict=True):
        assert_own_answers(answer, picky, request)


def test_max_rows_of_one_gives_every_request_its_own_call(
    picky: Predictor, recording: RecordingModel, timeout: float | None
) -> None:
    asyncio.run(
        together(Coalescer(timeout=timeout, max_rows=1), picky, [rows(1) for _ in range(5)])
    )

    assert recording.calls == [1, 1, 1, 1, 1]


def test_a_request_as_large_as_a_call_is_predicted_on_its_own(
    picky: Predictor, recording: RecordingModel, timeout: float | None
) -> None:
    asyncio.run(together(Coalescer(timeout=timeout, max_rows=8), picky, [rows(8), rows(1)]))

    assert sorted(recording.calls) == [1, 8]


def test_a_refused_answer_fails_only_the_request_that_caused_it(
    picky: Predictor, recording: RecordingModel, timeout: float | None
) -> None:
    good = [[row] for row in rows(3)]
    bad = [{**FEATURE_EXAMPLE, FIRST_NUMBER: SPOILING_VALUE}]

    answers = asyncio.run(
        together(Coalescer(timeout=timeout), picky, [good[0], bad, good[1], good[2]])
    )

    assert isinstance(answers[1], PredictionNotFinite)
    # The shared call failed, then each request was predicted on its own.
    assert recording.calls == [4, 1, 1, 1, 1]
    for request, answer in zip(good, [answers[0], *answers[2:]], strict=True):
        assert_own_answers(answer, picky, request)


def test_a_cancelled_request_leaves_the_others_answered(
    picky: Predictor, recording: RecordingModel, timeout: float | None
) -> None:
    async def one_cancelled() -> list[Answer | BaseException]:
        coalescer = Coalescer(timeout=timeout)
        tasks = [asyncio.create_task(coalescer.predict(picky, rows(1))) for _ in range(3)]
        await asyncio.sleep(0)  # every task is now waiting for the shared call
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(one_cancelled())

    assert isinstance(answers[1], asyncio.CancelledError)
    assert isinstance(answers[0], Answer)
    assert isinstance(answers[2], Answer)
    assert recording.calls == [3]


def slow_predictor(picky: Predictor, recording: RecordingModel, seconds: float) -> Predictor:
    """``picky`` taking ``seconds`` longer on every call."""

    def wait(answers: Answers) -> Answers:
        time.sleep(seconds)
        return answers

    return Predictor(
        SpoiledModel(recording, wait),
        picky.metadata,
        threshold=picky.threshold,
        target_range=picky.target_range,
    )


def test_a_call_past_the_timeout_fails_every_request_waiting_on_it(
    picky: Predictor, recording: RecordingModel
) -> None:
    slow = slow_predictor(picky, recording, 0.5)

    async def while_the_model_is_stuck() -> tuple[list[Answer | BaseException], float, float]:
        coalescer = Coalescer(timeout=0.1)
        answers = await together(coalescer, slow, [rows(1), rows(1), rows(100)])
        await asyncio.sleep(0.05)  # the call began a little after the requests arrived
        during = coalescer.stuck_for()
        await asyncio.sleep(1.2)  # the shared call, then the large one, each 0.5 s
        return answers, during, coalescer.stuck_for()

    answers, during, after = asyncio.run(while_the_model_is_stuck())

    assert all(isinstance(answer, PredictionTimeout) for answer in answers), answers
    assert "did not answer within 100 ms" in str(answers[0])
    assert during > 0
    assert after == 0


def test_a_call_within_the_timeout_is_answered_from_the_model_thread(
    picky: Predictor, recording: RecordingModel
) -> None:
    slow = slow_predictor(picky, recording, 0.05)
    requests = [rows(1), rows(2)]

    answers = asyncio.run(together(Coalescer(timeout=1.0), slow, requests))

    for request, answer in zip(requests, answers, strict=True):
        assert_own_answers(answer, picky, request)
