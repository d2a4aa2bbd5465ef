"""A periodic thread calls its function until closed, and outlives a call that fails."""

import threading
import time

import pytest

from app import periodic
from app.periodic import Periodic


class Reported:
    """Stands in for the module's logger: the messages it was asked to log with a traceback."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def exception(self, message: str) -> None:
        self.messages.append(message)

    def info(self, message: str) -> None:
        self.messages.append(message)


def test_a_call_that_fails_is_reported_and_the_calls_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported = Reported()
    monkeypatch.setattr(periodic, "logger", reported)
    calls = 0
    went_on = threading.Event()

    def fails_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the first call fails")
        went_on.set()

    repeating = Periodic(fails_once, 0.01, name="test-periodic", failure="nothing handed over")
    try:
        assert went_on.wait(5), "no call came after the one that failed"
    finally:
        repeating.close()

    assert reported.messages == ["nothing handed over", "nothing handed over: working again"]
    assert not repeating.is_alive()


def test_a_failure_that_lasts_is_reported_once_until_it_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported = Reported()
    monkeypatch.setattr(periodic, "logger", reported)
    errors = iter(["disk full"] * 5 + ["disk gone"] * 5)
    done = threading.Event()

    def fails() -> None:
        error = next(errors, None)
        if error is None:
            done.set()
            return
        raise OSError(error)

    repeating = Periodic(fails, 0.005, name="test-periodic", failure="not written")
    try:
        assert done.wait(5), "the calls stopped"
    finally:
        repeating.close()

    assert reported.messages == ["not written", "not written", "not written: working again"]


def test_closing_stops_the_calls_without_a_last_one() -> None:
    calls: list[float] = []
    repeating = Periodic(
        lambda: calls.append(time.monotonic()), 0.01, name="test-periodic", failure="failed"
    )
    deadline = time.monotonic() + 5
    while len(calls) < 2:
        assert time.monotonic() < deadline, "the thread never called twice"
        time.sleep(0.005)
    repeating.close()
    made = len(calls)
    time.sleep(0.05)

    assert len(calls) == made
    assert not repeating.is_alive()
