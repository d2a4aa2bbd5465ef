"""A daemon thread that calls a function every so often until it is closed."""

import threading
from collections.abc import Callable

import structlog

logger = structlog.stdlib.get_logger("app.periodic")


class Periodic:
    """Calls ``action`` every ``interval`` seconds from a daemon thread named ``name``,
    from the moment it is made until ``close``.

    A call that raises is logged, with ``failure`` as its message, and the next call
    comes an interval later as usual: a thread stopped by its first error would leave
    what it hands over to whoever else calls ``action`` (a read of the metrics, the
    shutdown), or to no one, and say nothing about it. A failure is logged when it
    begins or changes, not once a second while it lasts; the first call that succeeds
    after it is logged too.
    """

    def __init__(
        self, action: Callable[[], None], interval: float, *, name: str, failure: str
    ) -> None:
        self._action = action
        self._interval = interval
        self._failure = failure
        self._failing: str | None = None  # the error of the last call, while they fail
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._action()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != self._failing:
                    logger.exception(self._failure)
                self._failing = error
                continue
            if self._failing is not None:
                logger.info(self._failure + ": working again")
                self._failing = None

    def close(self) -> None:
        """Stop calling ``action``; waits for a call under way to end, and makes no
        last call itself."""
        self._stop.set()
        self._thread.join()

    def is_alive(self) -> bool:
        return self._thread.is_alive()
