"""The load test's requests keep to the API's schema, or break it on purpose."""

import json
import random
from collections import Counter

import pytest
from pydantic import ValidationError

from app.schemas import FEATURES, BatchRequest, Features
from loadtest.traffic import (
    BATCH,
    BATCH_ROWS,
    INVALID,
    PREDICT,
    invalid_request,
    next_request,
    valid_row,
)


def test_valid_rows_pass_the_request_schema_and_vary() -> None:
    rng = random.Random(7)
    rows = [valid_row(rng) for _ in range(500)]

    refused = []
    for row in rows:
        try:
            Features.model_validate_json(json.dumps(row))
        except ValidationError as exc:
            refused.append((row, str(exc)))

    assert refused == []
    for spec in FEATURES:
        seen = {json.dumps(row.get(spec.name)) for row in rows}
        possible = len(spec.values) if spec.type == "categorical" else 2
        assert len(seen) >= min(possible + spec.optional, 2), spec.name
        if spec.optional:
            assert any(spec.name not in row for row in rows), f"{spec.name} is never left out"


def test_every_invalid_request_breaks_the_schema() -> None:
    rng = random.Random(11)
    requests = [invalid_request(rng) for _ in range(300)]

    accepted = []
    for request in requests:
        model = BatchRequest if request.path == BATCH else Features
        try:
            model.model_validate_json(request.body)
        except ValidationError:
            continue
        accepted.append(request)

    assert accepted == []
    assert {request.name for request in requests} == {INVALID}
    assert {request.path for request in requests} == {PREDICT, BATCH}


def test_batches_hold_valid_rows_within_their_size() -> None:
    rng = random.Random(5)
    requests = [next_request(rng, invalid_share=0.0, batch_share=1.0) for _ in range(20)]

    sizes = [len(BatchRequest.model_validate_json(request.body).rows) for request in requests]

    assert {request.path for request in requests} == {BATCH}
    assert all(BATCH_ROWS[0] <= size <= BATCH_ROWS[1] for size in sizes)


def test_the_mix_follows_the_shares_asked_for() -> None:
    rng = random.Random(3)

    names = Counter(
        next_request(rng, invalid_share=0.02, batch_share=0.1).name for _ in range(10_000)
    )

    assert 150 <= names[INVALID] <= 250
    assert 850 <= names[BATCH] <= 1150
    assert names[PREDICT] == 10_000 - names[INVALID] - names[BATCH]


@pytest.mark.parametrize(
    ("valid", "status", "expected"),
    [
        (True, 200, True),
        (True, 422, False),
        (True, 500, False),
        (False, 422, True),
        (False, 400, True),
        (False, 200, False),
        (False, 503, False),
        (True, 0, False),
    ],
)
def test_only_a_2xx_to_a_valid_request_or_a_4xx_to_an_invalid_one_is_expected(
    valid: bool, status: int, expected: bool
) -> None:
    rng = random.Random(1)
    request = next_request(rng, 0.0, 0.0) if valid else invalid_request(rng)

    assert request.expects(status) is expected
