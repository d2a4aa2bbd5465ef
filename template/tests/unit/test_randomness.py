"""Random bytes for ids: read a page at a time, each handed out once, never shared
with a forked worker."""

import os

from app.randomness import POOL_BYTES, random_bytes


def test_pieces_taken_in_turn_are_never_the_same_bytes() -> None:
    # Enough pieces to refill the pool several times, across its boundary too.
    pieces = [random_bytes(16) for _ in range(4 * POOL_BYTES // 16 + 7)]

    assert all(len(piece) == 16 for piece in pieces)
    assert len(set(pieces)) == len(pieces)


def test_a_piece_larger_than_the_pool_is_read_whole() -> None:
    piece = random_bytes(3 * POOL_BYTES)

    assert len(piece) == 3 * POOL_BYTES
    assert len(set(piece)) > 200  # random bytes, not a repeated or zeroed page


def test_a_forked_worker_reads_its_own_bytes() -> None:
    random_bytes(16)  # the pool now holds unused bytes the child would inherit
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.write(writer, random_bytes(16))
        finally:
            os._exit(0)
    os.close(writer)
    try:
        from_child = os.read(reader, 16)
    finally:
        os.close(reader)
        os.waitpid(child, 0)

    assert len(from_child) == 16
    assert from_child != random_bytes(16)
