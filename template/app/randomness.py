"""Random bytes for the ids every request makes, read from the system a page at a time.

A request takes 16 bytes for its request id and 10 for each prediction id.
``secrets.token_bytes`` asks the kernel each time, and releases the GIL while it
does: with monitoring on, a thread of the prediction log or the drift tally can
take it then, and the event loop waits up to Python's switch interval (5 ms) to
get it back, with every request of the worker. Read 4 KiB at a time, the bytes
are the same ones, from the same source, and one read serves about 150 requests:
monitoring on went from 0.78 to 0.86 of the throughput with it off
(modelship's README, "Performance"). Ids are not secrets: callers get them back
and the logs keep them. Secrets, such as the API keys the service can make,
still come from ``secrets``.
"""

import os
import threading
from typing import Final

POOL_BYTES: Final = 4096


class _Pool:
    """Bytes from ``os.urandom``, each handed out once."""

    _lock: threading.Lock
    _bytes: bytes
    _offset: int

    def __init__(self, size: int) -> None:
        self._size = size
        self.forget()

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._offset + count > len(self._bytes):
                self._bytes = os.urandom(max(self._size, count))
                self._offset = 0
            start = self._offset
            self._offset += count
            return self._bytes[start : self._offset]

    def forget(self) -> None:
        """Start afresh; in a forked child, so that the parent's bytes stay the parent's
        and a lock one of its threads held at the fork is not inherited held."""
        self._lock = threading.Lock()
        self._bytes = b""
        self._offset = 0


_pool = _Pool(POOL_BYTES)
os.register_at_fork(after_in_child=_pool.forget)


def random_bytes(count: int) -> bytes:
    """``count`` bytes from the operating system's random source, each handed out once;
    a forked process reads its own."""
    return _pool.take(count)
