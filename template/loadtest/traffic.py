"""The requests `make loadtest` sends, drawn from the API's own schema.

Valid rows keep to every feature's type, bounds and categories, centred on the
documented example, and now and then leave an optional feature out or send it as
null. Each invalid request breaks the schema in one way, so the service must
refuse it with a 4xx. Nothing here imports Locust: the tests check the rows in
the test process.
"""

import json
import math
import random
from dataclasses import dataclass
from typing import Any, Final

from app.features import FeatureSpec
from app.schemas import FEATURE_EXAMPLE, FEATURES, Features

PREDICT: Final = "/v1/predict"
BATCH: Final = "/v1/predict/batch"
INVALID: Final = "invalid requests"
"""How refused-on-purpose requests are named in the report, whatever their path."""
BATCH_ROWS: Final = (2, 50)
"""Fewest and most rows of a batch request."""
OMITTED_SHARE: Final = 0.1
NULL_SHARE: Final = 0.05
"""How often a valid row leaves out an optional feature, or sends it as null."""
THINK_SECONDS: Final = (0.05, 0.15)
"""Shortest and longest wait of a simulated user between two requests."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request: its name in the report, where it goes, its body, whether it is valid."""

    name: str
    path: str
    body: str
    valid: bool

    def expects(self, status: int) -> bool:
        """Whether ``status`` is the right answer: 2xx to a valid request, 4xx to an invalid one."""
        return 200 <= status < 300 if self.valid else 400 <= status < 500


@dataclass(frozen=True, slots=True)
class Column:
    """A feature, its bounds, and the range its values are drawn from: between its bounds,
    or around its example where it has none."""

    spec: FeatureSpec
    minimum: float | None
    maximum: float | None
    low: float
    high: float
    example: Any


def _column(spec: FeatureSpec, schema: dict[str, Any]) -> Column:
    # An optional feature's schema is anyOf [its type, null]; the bounds sit on the first.
    typed = next(branch for branch in schema.get("anyOf", [schema]) if branch["type"] != "null")
    minimum, maximum = typed.get("minimum"), typed.get("maximum")
    example = FEATURE_EXAMPLE[spec.name]
    if spec.type not in ("float", "integer"):
        return Column(spec, None, None, 0.0, 0.0, example)
    centre = float(example)
    spread = max(abs(centre), 1.0)
    if minimum is not None:
        low = float(minimum)
    else:
        low = min(centre, maximum if maximum is not None else centre) - spread
    high = float(maximum) if maximum is not None else max(centre, low) + spread
    return Column(spec, minimum, maximum, low, high, example)


_PROPERTIES: Final = Features.model_json_schema()["properties"]
COLUMNS: Final = tuple(_column(spec, _PROPERTIES[spec.name]) for spec in FEATURES)


def _value(column: Column, rng: random.Random) -> Any:
    spec = column.spec
    if spec.type == "boolean":
        return rng.random() < 0.5
    if spec.type == "categorical":
        return rng.choice(spec.values)
    drawn = rng.triangular(column.low, column.high, float(column.example))
    if spec.type == "integer":
        return min(max(round(drawn), math.ceil(column.low)), math.floor(column.high))
    return drawn


def valid_row(rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in COLUMNS:
        draw = rng.random()
        if column.spec.optional and draw < OMITTED_SHARE:
            continue
        if column.spec.optional and draw < OMITTED_SHARE + NULL_SHARE:
            row[column.spec.name] = None
        else:
            row[column.spec.name] = _value(column, rng)
    return row


def _encode(document: object) -> str:
    return json.dumps(document)


def _out_of_range(rng: random.Random) -> str | None:
    limits = [(c, c.minimum - 1) for c in COLUMNS if c.minimum is not None]
    limits += [(c, c.maximum + 1) for c in COLUMNS if c.maximum is not None]
    if not limits:
        return None
    column, outside = rng.choice(limits)
    row = valid_row(rng)
    row[column.spec.name] = round(outside) if column.spec.type == "integer" else outside
    return _encode(row)


def _wrong_type(rng: random.Random) -> str:
    column = rng.choice(COLUMNS)
    row = valid_row(rng)
    row[column.spec.name] = 12345 if column.spec.type == "categorical" else "twelve"
    return _encode(row)


def _missing_field(rng: random.Random) -> str | None:
    required = [column for column in COLUMNS if not column.spec.optional]
    if not required:
        return None
    row = valid_row(rng)
    row.pop(rng.choice(required).spec.name, None)
    return _encode(row)


def _unknown_field(rng: random.Random) -> str:
    return _encode({**valid_row(rng), "unexpected_field": 1})


def _malformed_json(rng: random.Random) -> str:
    text = _encode(valid_row(rng))
    return text[: rng.randint(1, len(text) - 1)]


INVALID_BODIES: Final = (
    _out_of_range,
    _wrong_type,
    _missing_field,
    _unknown_field,
    _malformed_json,
)
"""Each makes one kind of invalid /v1/predict body, or None where the schema cannot be broken
that way (no bounds, no required feature)."""


def invalid_request(rng: random.Random) -> Request:
    if rng.random() < 0.2:
        return Request(INVALID, BATCH, _encode({"rows": []}), valid=False)
    body = None
    while body is None:
        body = rng.choice(INVALID_BODIES)(rng)
    return Request(INVALID, PREDICT, body, valid=False)


def single_request(rng: random.Random) -> Request:
    return Request(PREDICT, PREDICT, _encode(valid_row(rng)), valid=True)


def batch_request(rng: random.Random) -> Request:
    rows = [valid_row(rng) for _ in range(rng.randint(*BATCH_ROWS))]
    return Request(BATCH, BATCH, _encode({"rows": rows}), valid=True)


def next_request(rng: random.Random, invalid_share: float, batch_share: float) -> Request:
    """A request of the mix: invalid, a batch or one row, with the shares given (0 to 1)."""
    draw = rng.random()
    if draw < invalid_share:
        return invalid_request(rng)
    if draw < invalid_share + batch_share:
        return batch_request(rng)
    return single_request(rng)
