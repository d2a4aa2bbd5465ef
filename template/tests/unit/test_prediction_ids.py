"""Prediction ids are UUIDv7: unique, and ordered by the time they were made."""

import time
import uuid

from app.api.predict import prediction_ids


def test_an_id_is_a_version_7_uuid_in_32_hex_digits() -> None:
    [prediction_id] = prediction_ids(1)

    parsed = uuid.UUID(hex=prediction_id)

    assert prediction_id == parsed.hex
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_an_id_starts_with_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    [prediction_id] = prediction_ids(1)
    after = time.time_ns() // 1_000_000

    assert before <= int(prediction_id[:12], 16) <= after


def test_ids_made_later_sort_after_earlier_ones() -> None:
    earlier = prediction_ids(100)
    time.sleep(0.002)
    later = prediction_ids(100)

    assert max(earlier) < min(later)


def test_ids_of_a_batch_are_all_different() -> None:
    ids = prediction_ids(10_000)

    assert len(set(ids)) == 10_000
    assert all(uuid.UUID(hex=one).version == 7 for one in ids)
    assert all(uuid.UUID(hex=one).variant == uuid.RFC_4122 for one in ids)


def test_no_rows_no_ids() -> None:
    assert prediction_ids(0) == []
