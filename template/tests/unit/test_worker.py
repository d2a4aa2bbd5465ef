"""The worker's listening socket: one connection accepted each time the loop wakes."""

import asyncio
import itertools
import socket
from collections.abc import Iterator
from typing import ClassVar

import pytest
import uvloop

from app.worker import OneByOneServer

QUEUED = 5


class CountingSocket:
    """A listening socket that counts the connections taken from it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.accepted = 0

    def accept(self) -> tuple[socket.socket, object]:
        connection, address = self.sock.accept()
        self.accepted += 1
        return connection, address

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)


class Recorder(asyncio.Protocol):
    made: ClassVar[list[asyncio.BaseTransport]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Recorder.made.append(transport)


def close(loop: asyncio.AbstractEventLoop) -> None:
    """Close the connections set up, then the loop: uvloop waits for open transports."""
    for transport in Recorder.made:
        transport.close()
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()


@pytest.fixture
def queued() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A listening socket with connections waiting in its queue, none accepted yet."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(QUEUED)]
    Recorder.made = []
    yield listener, clients
    for client in clients:
        client.close()
    listener.close()


def sampled(loop: asyncio.AbstractEventLoop, counting: CountingSocket) -> list[int]:
    """The connections accepted so far, read once each time round the loop, for 50 times."""
    samples: list[int] = []

    def sample() -> None:
        samples.append(counting.accepted)
        if len(samples) < 50:
            loop.call_soon(sample)  # runs the next time round, after that one's I/O

    loop.call_soon(sample)
    loop.run_until_complete(asyncio.sleep(0.1))
    return samples


def test_each_time_round_the_loop_accepts_one_connection_at_most(
    queued: tuple[socket.socket, list[socket.socket]],
) -> None:
    """uvloop's own server accepts every queued connection in one go, so one gunicorn
    worker can take a whole burst; this one takes one a turn, and a worker woken with
    it gets the others in between."""
    listener, _ = queued
    counting = CountingSocket(listener)
    loop = uvloop.new_event_loop()
    try:
        server = OneByOneServer(loop, Recorder, counting)  # type: ignore[arg-type]
        samples = sampled(loop, counting)
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        close(loop)

    assert samples[-1] == QUEUED, samples
    assert max(after - before for before, after in itertools.pairwise(samples)) == 1, samples
    assert len(Recorder.made) == QUEUED


def test_a_closed_server_accepts_no_more(
    queued: tuple[socket.socket, list[socket.socket]],
) -> None:
    listener, _ = queued
    counting = CountingSocket(listener)
    loop = uvloop.new_event_loop()
    try:
        server = OneByOneServer(loop, Recorder, counting)  # type: ignore[arg-type]
        loop.run_until_complete(asyncio.sleep(0))
        server.close()
        closed_at = counting.accepted
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        close(loop)

    assert 0 < closed_at < QUEUED
    assert counting.accepted == closed_at
