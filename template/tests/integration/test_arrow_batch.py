"""/v1/predict/batch with the rows sent as an Arrow IPC stream: the same answers as the
same rows sent as JSON, and the same refusals, each naming the column and the row."""

import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from app.api import arrow
from app.api.arrow import ARROW_STREAM, read_batch, read_column
from app.features import FeatureSpec, encode_rows, rows_to_frame
from app.main import create_app
from app.monitoring.prediction_log import batch_rows, prediction_batches
from app.schemas import FEATURE_EXAMPLE, FEATURES, Features
from app.settings import Settings
from tests.checks import assert_sound_response
from tests.clients import ARROW_HEADERS, CALLER_HEADERS, app_client, arrow_stream
from tests.integration.test_api import TYPE_ERROR, field_schema
from tests.integration.test_prediction_log import model_output, rows_in
from tests.server import PROJECT_ROOT, serving
from training.data import load_dataset

ARROW_TYPES: dict[str, pa.DataType] = {
    "float": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "categorical": pa.string(),
}
COLUMN_TYPE_ERROR = {**TYPE_ERROR, "categorical": "string_type"}
WRONG_COLUMN: dict[str, "pa.Array[Any]"] = {
    "float": pa.array(["1.5"] * 3),
    "integer": pa.array([1.0] * 3),
    "boolean": pa.array([1] * 3),
    "categorical": pa.array([1] * 3),
}
"""A column of each feature type's, of an Arrow type the feature does not take."""


def schema(features: tuple[FeatureSpec, ...] = FEATURES) -> pa.Schema:
    return pa.schema([(feature.name, ARROW_TYPES[feature.type]) for feature in features])


def table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as a table with one column per feature, of the type a client would send."""
    return pa.Table.from_pylist(rows, schema=schema())


def post(client: TestClient, body: bytes) -> Any:
    return client.post("/v1/predict/batch", content=body, headers=ARROW_HEADERS)


def refusal(client: TestClient, body: bytes) -> list[tuple[str, str]]:
    """The (field, type) of every detail of a 422 answer to ``body``."""
    response = post(client, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    return [(detail["field"], detail["type"]) for detail in error["details"]]


def rows_with_missing_values() -> list[dict[str, Any]]:
    """The example, and the example with each optional feature missing in turn."""
    rows: list[dict[str, Any]] = [dict(FEATURE_EXAMPLE)]
    rows += [{**FEATURE_EXAMPLE, f.name: None} for f in FEATURES if f.optional]
    return rows


def without_ids(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in item.items() if key != "prediction_id"}
        for item in answer["predictions"]
    ]


def test_an_arrow_batch_gets_the_answers_its_rows_get_as_json(client: TestClient) -> None:
    rows = rows_with_missing_values() * 2

    arrow = post(client, arrow_stream(table(rows)))
    as_json = client.post("/v1/predict/batch", json={"rows": rows})

    assert arrow.status_code == 200, arrow.text
    assert as_json.status_code == 200, as_json.text
    assert arrow.headers["content-type"] == "application/json"
    assert len(arrow.json()["predictions"]) == len(rows)
    for item in arrow.json()["predictions"]:
        assert_sound_response(item)
    assert without_ids(arrow.json()) == without_ids(as_json.json())
    assert arrow.json()["model_version"] == as_json.json()["model_version"]


@pytest.mark.parametrize("redacted", [False, True], ids=["whole", "redacted"])
def test_an_arrow_batch_is_logged_as_one_batch_row_with_its_rows(
    settings: Settings, sqlite_url: str, redacted: bool
) -> None:
    rows = rows_with_missing_values()
    secret = {FEATURES[0].name} if redacted else set()
    logging = settings.model_copy(
        update={"database_url": sqlite_url, "log_redact": frozenset(secret)}
    )
    with app_client(create_app(logging)) as client:
        answer = post(client, arrow_stream(table(rows)))
    # Leaving the client stops the application, which writes what is buffered.

    assert answer.status_code == 200, answer.text
    [logged] = rows_in(sqlite_url, prediction_batches)
    assert logged["rows"] == len(rows)
    validated = [
        {k: v for k, v in Features.model_validate(row).model_dump().items() if k not in secret}
        for row in rows
    ]
    assert batch_rows(logged["features"], logged["rows"]) == validated
    assert list(logged["features"]) == [f.name for f in FEATURES if f.name not in secret]
    assert logged["outputs"] == [model_output(item) for item in answer.json()["predictions"]]


def test_the_rows_and_the_models_matrix_read_from_columns_are_those_of_json_rows() -> None:
    rows = rows_with_missing_values()

    batch = read_batch(arrow_stream(table(rows)), max_rows=len(rows))

    validated = [Features.model_validate(row).model_dump() for row in rows]
    assert list(batch.rows) == validated
    assert [batch.rows[position] for position in range(len(rows))] == validated
    assert batch.rows[-1] == validated[-1]
    assert batch.rows[1:] == validated[1:]
    # A float column no row leaves out stays the array it came as; its rows hold Python
    # numbers, as JSON rows do.
    as_lists = {
        name: column.tolist() if isinstance(column, np.ndarray) else column
        for name, column in batch.columns.items()
    }
    assert as_lists == {f.name: [row[f.name] for row in validated] for f in FEATURES}
    assert not any(isinstance(value, np.generic) for row in batch.rows for value in row.values())
    if any(feature.type == "categorical" for feature in FEATURES):
        assert batch.encoded is None  # the model's object matrix is made from the rows
    else:
        assert batch.encoded is not None
        np.testing.assert_array_equal(batch.encoded, encode_rows(validated, FEATURES))
    # A model that takes a DataFrame reads the rows themselves.
    assert rows_to_frame(batch.rows, FEATURES).equals(rows_to_frame(validated, FEATURES))


NUMBERS = [feature for feature in FEATURES if feature.type in ("float", "integer")]


@pytest.mark.parametrize("number", NUMBERS, ids=[feature.name for feature in NUMBERS])
def test_an_integer_too_wide_for_a_float_is_refused_by_its_bound(
    client: TestClient, number: FeatureSpec
) -> None:
    data = table([FEATURE_EXAMPLE] * 2)
    wide = pa.array([2**62, 2**62], pa.int64())
    data = data.set_column(data.schema.get_field_index(number.name), number.name, wide)

    assert refusal(client, arrow_stream(data)) == [
        (f"rows[{row}].{number.name}", "less_than_equal") for row in range(2)
    ]


def test_columns_may_come_in_any_order_and_optional_ones_may_be_left_out(
    client: TestClient,
) -> None:
    required = [feature for feature in FEATURES if not feature.optional]
    rows = [{f.name: row[f.name] for f in required} for row in load_dataset().rows[:5]]
    reordered = pa.Table.from_pylist(rows, schema=schema(tuple(reversed(required))))

    response = post(client, arrow_stream(reordered))

    assert response.status_code == 200, response.text
    as_json = client.post("/v1/predict/batch", json={"rows": rows})
    assert without_ids(response.json()) == without_ids(as_json.json())


def test_a_dictionary_sent_more_than_once_is_refused_before_it_is_read(
    client: TestClient,
) -> None:
    """Deltas grow a dictionary batch by batch: pyarrow kept a copy of each, and 2,500 of
    one word in a 2 MB body took 2 GB. A replacement is refused with them."""
    first = table([FEATURE_EXAMPLE]).append_column("zz", pa.array(["a"]).dictionary_encode())
    second = table([FEATURE_EXAMPLE]).append_column(
        "zz", pa.DictionaryArray.from_arrays(pa.array([1], pa.int32()), pa.array(["a", "b"]))
    )
    for deltas in (True, False):
        sink = pa.BufferOutputStream()
        options = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=deltas)
        with pa.ipc.new_stream(sink, first.schema, options=options) as writer:
            writer.write_table(first)
            writer.write_table(second.cast(first.schema))

        response = post(client, sink.getvalue().to_pybytes())

        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_arrow"
        assert "dictionary more than once" in response.json()["error"]["message"]


COLOUR = FeatureSpec(name="colour", type="categorical", values=("red", "blue"))


def overlapping_views(text: str, rows: int) -> "pa.Array[Any]":
    """A string_view array whose ``rows`` values are all views of the same bytes."""
    data = pa.py_buffer(text.encode())
    view = np.zeros(4, dtype="<i4")
    view[0] = len(data)  # length; the prefix, buffer 0 and offset 0 follow
    view.view(np.uint8)[4:8] = np.frombuffer(memoryview(data), dtype=np.uint8)[:4]
    views = pa.py_buffer(np.tile(view, rows).tobytes())
    return pa.Array.from_buffers(pa.string_view(), rows, [None, views, data])


@pytest.mark.parametrize("layout", ["dictionary", "string_view"])
def test_rows_pointing_at_one_long_string_are_refused_without_a_copy_each(layout: str) -> None:
    """1,000 rows of one 100 KB string took 195 MB when each row's string was made."""
    long = "x" * 100_000
    if layout == "dictionary":
        chunk: pa.Array[Any] = pa.DictionaryArray.from_arrays(
            pa.array([0] * 1000, pa.int16()), pa.array([long])
        )
    else:
        chunk = overlapping_views(long, 1000)
    chunk.validate(full=True)

    tracemalloc.start()
    try:
        _, _, errors = read_column(COLOUR, pa.chunked_array([chunk]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert len(errors) == 1000
    assert {error["type"] for _, error in errors} == {"literal_error"}
    assert peak < 10_000_000, peak


def test_a_float32_column_is_held_to_a_bound_float32_cannot_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """float32 holds 0.3 as 0.30000001: a bound of 0.3 accepts it, and refuses the next."""
    share = FeatureSpec(name="share", type="float")
    monkeypatch.setitem(arrow.BOUNDS, "share", arrow.Bounds(0.0, 0.3))
    beyond = np.nextafter(np.float32(0.3), np.float32(1))
    column = pa.chunked_array([pa.array([0.3, beyond], pa.float32())])

    _, _, errors = read_column(share, column)

    assert [(error["loc"], error["type"]) for _, error in errors] == [
        (("body", "rows", 1, "share"), "less_than_equal")
    ]


def test_a_null_among_a_dictionarys_values_is_a_missing_value() -> None:
    """A dictionary's null value is not in its column's null count: a required category
    sent that way must be refused as missing, not predicted as None."""
    values = pa.array(["red", None])
    column = pa.chunked_array(
        [pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int32()), values)]
    )

    rows, _, errors = read_column(COLOUR, column)

    assert rows == ["red", None, "red"]
    assert [(error["loc"], error["type"]) for _, error in errors] == [
        (("body", "rows", 1, "colour"), "literal_error")
    ]


def other_accepted_columns() -> list[tuple[FeatureSpec, "pa.Array[Any]"]]:
    """For each feature with one, a column of another Arrow type it takes, holding the
    example's value: integers for a float, narrower integers, a dictionary of strings."""
    cases: list[tuple[FeatureSpec, pa.Array[Any]]] = []
    for feature in FEATURES:
        value: Any = FEATURE_EXAMPLE[feature.name]
        if feature.type == "float" and float(value).is_integer():
            cases.append((feature, pa.array([int(value)] * 2, pa.int32())))
        elif feature.type == "float":
            cases.append((feature, pa.array([value] * 2, pa.float32())))
        elif feature.type == "integer":
            cases.append((feature, pa.array([value] * 2, pa.int16())))
        elif feature.type == "categorical":
            cases.append((feature, pa.array([value] * 2).dictionary_encode()))
    return cases


@pytest.mark.parametrize(
    ("feature", "column"),
    other_accepted_columns(),
    ids=[f"{feature.name}-{column.type}" for feature, column in other_accepted_columns()],
)
def test_a_feature_takes_every_arrow_type_that_holds_its_values(
    client: TestClient, feature: FeatureSpec, column: "pa.Array[Any]"
) -> None:
    data = table([FEATURE_EXAMPLE] * 2)
    data = data.set_column(data.schema.get_field_index(feature.name), feature.name, column)

    response = post(client, arrow_stream(data))

    assert response.status_code == 200, response.text
    as_json = client.post("/v1/predict/batch", json={"rows": [FEATURE_EXAMPLE] * 2})
    for item, expected in zip(
        without_ids(response.json()), without_ids(as_json.json()), strict=True
    ):
        # A float32 column holds the example's values to 7 digits.
        assert item.keys() == expected.keys()
        for key, value in item.items():
            if isinstance(value, float | dict):
                assert value == pytest.approx(expected[key], rel=1e-4)
            else:
                assert value == expected[key]


def invalid_values() -> list[tuple[str, object, str]]:
    """(feature, value, error type) for each check a column's values get."""
    cases: list[tuple[str, object, str]] = []
    for feature in FEATURES:
        name = feature.name
        if not feature.optional:
            cases.append((name, None, TYPE_ERROR[feature.type]))
        if feature.type == "categorical":
            cases.append((name, "not-a-value", "literal_error"))
        if feature.type == "float":
            cases.append((name, float("nan"), "finite_number"))
            cases.append((name, float("-inf"), "finite_number"))
        field = field_schema(name)
        if "maximum" in field:
            cases.append((name, field["maximum"] + 1, "less_than_equal"))
        if "minimum" in field:
            cases.append((name, field["minimum"] - 1, "greater_than_equal"))
    return cases


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    invalid_values(),
    ids=[f"{name}-{value}" for name, value, _ in invalid_values()],
)
def test_a_value_the_schema_refuses_is_refused_at_its_row_as_in_json(
    client: TestClient, name: str, value: object, kind: str
) -> None:
    rows: list[dict[str, Any]] = [dict(FEATURE_EXAMPLE) for _ in range(3)]
    rows[1][name] = value

    assert refusal(client, arrow_stream(table(rows))) == [(f"rows[1].{name}", kind)]
    if not (isinstance(value, float) and not math.isfinite(value)):  # JSON has neither
        assert refusal_of_json(client, rows) == [(f"rows[1].{name}", kind)]


def refusal_of_json(client: TestClient, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    response = client.post("/v1/predict/batch", json={"rows": rows})
    assert response.status_code == 422, response.text
    return [(detail["field"], detail["type"]) for detail in response.json()["error"]["details"]]


@pytest.mark.parametrize("feature", FEATURES, ids=[feature.name for feature in FEATURES])
def test_a_column_of_the_wrong_type_is_refused_naming_it_and_what_it_should_be(
    client: TestClient, feature: FeatureSpec
) -> None:
    data = table([FEATURE_EXAMPLE] * 3)
    index = data.schema.get_field_index(feature.name)
    data = data.set_column(index, feature.name, WRONG_COLUMN[feature.type])

    response = post(client, arrow_stream(data))

    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == f"rows.{feature.name}"
    assert detail["type"] == COLUMN_TYPE_ERROR[feature.type]
    assert "the column is of type" in detail["message"]


def test_unknown_missing_and_repeated_columns_are_refused_by_name(client: TestClient) -> None:
    required = next(feature for feature in FEATURES if not feature.optional)
    data = table([FEATURE_EXAMPLE] * 2)
    data = data.drop_columns([required.name])
    data = data.append_column("colour_x", pa.array(["red"] * 2))
    repeated = next(name for name in data.column_names if name != "colour_x")
    data = data.append_column(repeated, data.column(repeated))

    assert sorted(refusal(client, arrow_stream(data))) == sorted(
        [
            ("rows.colour_x", "extra_forbidden"),
            (f"rows.{repeated}", "duplicate_column"),
            (f"rows.{required.name}", "missing"),
        ]
    )


def test_an_empty_batch_is_refused_as_its_json_counterpart_is(client: TestClient) -> None:
    assert refusal(client, arrow_stream(table([]))) == [("rows", "too_short")]
    assert refusal_of_json(client, []) == [("rows", "too_short")]


def test_errors_of_many_rows_are_listed_in_row_order(client: TestClient) -> None:
    required = next(feature for feature in FEATURES if not feature.optional)
    rows = [{**FEATURE_EXAMPLE, required.name: None} for _ in range(5)]

    fields = [field for field, _ in refusal(client, arrow_stream(table(rows)))]

    assert fields == [f"rows[{row}].{required.name}" for row in range(5)]


def test_a_batch_over_the_maximum_is_refused_before_its_values_are_read(
    settings: Settings,
) -> None:
    required = next(feature for feature in FEATURES if not feature.optional)
    rows = [{**FEATURE_EXAMPLE, required.name: None}] * 4
    with app_client(create_app(settings.model_copy(update={"max_batch_size": 3}))) as client:
        response = post(client, arrow_stream(table(rows)))

    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "batch_too_large"
    assert "4 rows" in error["message"]
    assert "APP_MAX_BATCH_SIZE" in error["message"]


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_a_compressed_stream_is_refused_saying_how_to_send_it(
    client: TestClient, codec: Literal["lz4", "zstd"]
) -> None:
    response = post(client, arrow_stream(table([FEATURE_EXAMPLE]), compression=codec))

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_arrow"
    assert "compression=None" in error["message"]


@pytest.mark.parametrize(
    "body",
    [b"", b"not arrow at all", arrow_stream(table([FEATURE_EXAMPLE]))[:-40]],
    ids=["empty", "text", "cut-short"],
)
def test_a_body_that_is_not_an_arrow_stream_gets_400(client: TestClient, body: bytes) -> None:
    response = post(client, body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_arrow"
    assert "not an Arrow IPC stream" in response.json()["error"]["message"]


@pytest.mark.parametrize("after", ["a second stream", "other bytes"])
def test_bytes_after_the_streams_end_are_refused_not_left_unanswered(
    client: TestClient, after: str
) -> None:
    stream = arrow_stream(table([FEATURE_EXAMPLE] * 3))
    extra = stream if after == "a second stream" else b"GARBAGE"
    response = post(client, stream + extra)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_arrow"
    assert f"goes on for {len(extra)} bytes after the Arrow stream's end" in error["message"]


def test_the_contract_offers_the_batch_route_both_bodies(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/predict/batch"]["post"]

    assert set(operation["requestBody"]["content"]) == {"application/json", ARROW_STREAM}
    assert ARROW_STREAM in operation["responses"]["415"]["description"]
    assert "invalid_arrow" in operation["responses"]["400"]["description"]


def test_another_body_type_on_the_batch_route_is_told_both_types(client: TestClient) -> None:
    response = client.post(
        "/v1/predict/batch", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"}
    )

    assert response.status_code == 415, response.text
    assert ARROW_STREAM in response.json()["error"]["message"]
    one_row = client.post("/v1/predict", content=b"a", headers={"content-type": "text/csv"})
    assert ARROW_STREAM not in one_row.json()["error"]["message"]


def test_no_cut_or_flipped_byte_of_a_stream_gets_a_server_error(client: TestClient) -> None:
    """Every way of breaking a stream's headers and values is answered as the caller's
    mistake: 400, 413 or 422, never 500."""
    stream = arrow_stream(table([FEATURE_EXAMPLE] * 3))
    broken = [stream[:cut] for cut in range(0, len(stream), 29)]
    broken += [
        stream[:position] + bytes([stream[position] ^ 0xFF]) + stream[position + 1 :]
        for position in range(0, len(stream), 11)
    ]

    statuses = {post(client, body).status_code for body in broken}

    assert statuses <= {200, 400, 413, 422}, statuses
    assert 400 in statuses


def readme_example() -> str:
    """The Python example of README.md's "Batches as Arrow"."""
    section = (PROJECT_ROOT / "README.md").read_text().split("### Batches as Arrow", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_example_gets_predictions_from_the_server(
    model_dir: Path, model_version: str
) -> None:
    with serving(model_dir, model_version) as base_url:
        example = readme_example().replace("http://127.0.0.1:8000", base_url)
        key = next(iter(CALLER_HEADERS.values()), "")
        run = subprocess.run(
            [sys.executable, "-c", example],
            cwd=PROJECT_ROOT,
            env={**os.environ, "API_KEY": key},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert run.returncode == 0, run.stderr
    assert "'prediction_id'" in run.stdout
