"""The API contract: the OpenAPI document must equal the committed snapshot.

A difference means the public API changed. If that is intended, record it with
`make contract-update` and commit tests/contract/openapi.json with the change.
"""

import json
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings

SNAPSHOT = Path(__file__).with_name("openapi.json")


def test_openapi_matches_the_committed_contract(settings: Settings) -> None:
    if not SNAPSHOT.is_file():
        pytest.fail(f"{SNAPSHOT} is missing: run `make contract-update` and commit it")
    recorded = json.loads(SNAPSHOT.read_text(encoding="utf-8"))

    current = json.loads(json.dumps(create_app(settings).openapi()))

    assert current == recorded, (
        "the public API differs from tests/contract/openapi.json; "
        "if the change is intended, run `make contract-update` and commit the file"
    )
