"""The HTTP contract, exercised in-process: every success and every refusal."""

import gc
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Headers, Response

from app.api import docs
from app.api.deps import get_predictor
from app.api.errors import MAX_ERROR_DETAILS, MAX_FIELD_PATH
from app.main import GC_YOUNG_THRESHOLD, create_app
from app.model import Predictor
from app.schemas import FEATURE_EXAMPLE, FEATURES, BatchPredictionResponse, Features
from app.settings import Settings
from tests.checks import assert_sound_response
from tests.clients import app_client

FIRST = FEATURES[0]
REQUIRED = next((feature for feature in FEATURES if not feature.optional), FIRST)
NON_FINITE_ERROR = {
    "float": "finite_number",
    "integer": "int_type",
    "boolean": "bool_type",
    "categorical": "literal_error",
}[FIRST.type]
TYPE_ERROR = {
    "float": "float_type",
    "integer": "int_type",
    "boolean": "bool_type",
    "categorical": "literal_error",
}


def field_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = Features.model_json_schema()["properties"][name]
    return next((part for part in schema.get("anyOf", []) if part.get("type") != "null"), schema)


def invalid_values() -> list[tuple[dict[str, object], str, str]]:
    """One wrong value per kind of check the schema makes, for the fields that make it."""
    cases: list[tuple[dict[str, object], str, str]] = [
        ({"colour_x": "red"}, "colour_x", "extra_forbidden")
    ]
    for feature in FEATURES:
        name, kind = feature.name, TYPE_ERROR[feature.type]
        wrong = {"boolean": "yes", "categorical": "not-a-value"}.get(feature.type, "5")
        cases.append(({name: wrong}, name, kind))
        if not feature.optional:
            cases.append(({name: None}, name, kind))
        schema = field_schema(name)
        if "maximum" in schema:
            cases.append(({name: schema["maximum"] + 1}, name, "less_than_equal"))
        if "minimum" in schema:
            cases.append(({name: schema["minimum"] - 1}, name, "greater_than_equal"))
    return cases


def assert_error(response: Response, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope, and its request id matches the header."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert isinstance(error["details"], list)
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_predict_returns_a_prediction_its_model_version_and_an_id(
    client: TestClient, model_version: str
) -> None:
    response = client.post("/v1/predict", json=FEATURE_EXAMPLE)

    assert response.status_code == 200
    body = response.json()
    assert_sound_response(body)
    assert body["model_version"] == model_version
    assert re.fullmatch(r"[0-9a-f]{32}", body["prediction_id"])


def test_prediction_equals_the_model_s_own_answer(client: TestClient, predictor: Predictor) -> None:
    [expected] = predictor.predict([FEATURE_EXAMPLE])

    body = client.post("/v1/predict", json=FEATURE_EXAMPLE).json()

    assert {key: body[key] for key in expected._asdict() if key in body} == {
        key: value for key, value in expected._asdict().items() if value is not None
    }


def test_optional_features_may_be_left_out(client: TestClient) -> None:
    row = {f.name: FEATURE_EXAMPLE[f.name] for f in FEATURES if not f.optional}

    response = client.post("/v1/predict", json=row)

    assert response.status_code == 200, response.text
    assert_sound_response(response.json())


def test_each_prediction_gets_its_own_id(client: TestClient) -> None:
    ids = {
        client.post("/v1/predict", json=FEATURE_EXAMPLE).json()["prediction_id"] for _ in range(3)
    }

    assert len(ids) == 3


def test_request_id_from_the_caller_is_echoed(client: TestClient) -> None:
    response = client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"X-Request-ID": "abc-123"})

    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize("unusable", ["has space", 'quote"d', "tab\tbed"])
def test_unusable_request_id_is_replaced(client: TestClient, unusable: str) -> None:
    response = client.get("/health", headers={"X-Request-ID": unusable})

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_batch_returns_one_prediction_per_row_in_order(
    client: TestClient, predictor: Predictor
) -> None:
    rows = [FEATURE_EXAMPLE, {**FEATURE_EXAMPLE}, FEATURE_EXAMPLE]

    response = client.post("/v1/predict/batch", json={"rows": rows})

    assert response.status_code == 200
    predictions = response.json()["predictions"]
    expected = predictor.predict(rows)
    assert len(predictions) == len(expected) == 3
    for body, result in zip(predictions, expected, strict=True):
        assert_sound_response(body)
        assert all(
            body[key] == value for key, value in result._asdict().items() if value is not None
        )
    assert len({p["prediction_id"] for p in predictions}) == 3


def test_a_batch_answer_is_written_as_its_response_model_writes_it(client: TestClient) -> None:
    """The route writes its answer with orjson, not through BatchPredictionResponse: the
    model reads it back, and writes the same bytes."""
    response = client.post("/v1/predict/batch", json={"rows": [FEATURE_EXAMPLE] * 3})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = BatchPredictionResponse.model_validate_json(response.content, strict=True)
    assert answer.model_dump_json().encode() == response.content


def test_model_describes_the_loaded_artifact(client: TestClient, predictor: Predictor) -> None:
    response = client.get("/v1/model")

    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == predictor.version
    assert [feature["name"] for feature in body["features"]] == [f.name for f in FEATURES]
    assert body["model_sha256"] == predictor.metadata.model_sha256
    assert body["metrics"] == predictor.metadata.metrics
    assert body["decision_threshold"] == predictor.threshold


def test_health_and_ready_answer_once_loaded(client: TestClient, model_version: str) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready"
    assert ready["model_version"] == model_version
    assert ready["prediction_log"]["state"] == "ok"


def test_once_ready_the_collector_leaves_the_start_up_objects_alone(client: TestClient) -> None:
    """Frozen at start-up, the model and the modules are never traversed by a collection."""
    predictor = client.app.state.predictor  # type: ignore[attr-defined]

    assert gc.is_tracked(predictor)
    assert not any(tracked is predictor for tracked in gc.get_objects())
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD


def test_before_the_model_is_loaded_only_liveness_succeeds(settings: Settings) -> None:
    # Without `with`, TestClient does not run the lifespan, so no model is loaded.
    client = app_client(create_app(settings))

    assert client.get("/health").status_code == 200
    assert_error(client.get("/ready"), 503, "model_not_ready")
    assert_error(client.post("/v1/predict", json=FEATURE_EXAMPLE), 503, "model_not_ready")


@pytest.mark.parametrize(("change", "field", "kind"), invalid_values())
def test_invalid_field_is_refused_naming_it(
    client: TestClient, change: dict[str, object], field: str, kind: str
) -> None:
    error = assert_error(
        client.post("/v1/predict", json={**FEATURE_EXAMPLE, **change}), 422, "validation_failed"
    )

    assert [(d["field"], d["type"]) for d in error["details"]] == [(field, kind)]
    assert error["message"].startswith(f"{field}: ")


def test_missing_required_field_is_refused_naming_it(client: TestClient) -> None:
    row = {name: value for name, value in FEATURE_EXAMPLE.items() if name != REQUIRED.name}

    response = client.post("/v1/predict", json=row)

    if REQUIRED.optional:  # every feature is optional: leaving one out is allowed
        assert response.status_code == 200
    else:
        error = assert_error(response, 422, "validation_failed")
        assert error["details"] == [
            {"field": REQUIRED.name, "message": "Field required", "type": "missing"}
        ]


def test_non_finite_number_is_refused(client: TestClient) -> None:
    body = json.dumps({**FEATURE_EXAMPLE, FIRST.name: "NaN"}).replace('"NaN"', "NaN")

    response = client.post(
        "/v1/predict", content=body, headers={"content-type": "application/json"}
    )

    error = assert_error(response, 422, "validation_failed")
    assert [(d["field"], d["type"]) for d in error["details"]] == [(FIRST.name, NON_FINITE_ERROR)]


def test_malformed_json_is_a_bad_request(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", content=b'{"a": 1', headers={"content-type": "application/json"}
    )

    assert_error(response, 400, "invalid_json")


def test_empty_body_is_refused(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b"", headers={"content-type": "application/json"})

    error = assert_error(response, 422, "validation_failed")
    assert error["message"] == "the request body is required"


def test_body_that_is_not_json_is_an_unsupported_media_type(client: TestClient) -> None:
    response = client.post("/v1/predict", data={FIRST.name: "1"})

    error = assert_error(response, 415, "unsupported_media_type")
    assert "application/json" in error["message"]


def test_body_that_is_not_an_object_is_refused(client: TestClient) -> None:
    error = assert_error(client.post("/v1/predict", json=[1, 2]), 422, "validation_failed")

    assert error["details"][0]["field"] == "body"


def test_invalid_row_of_a_batch_is_named_by_its_position(client: TestClient) -> None:
    rows = [FEATURE_EXAMPLE, {**FEATURE_EXAMPLE, FIRST.name: "x"}]

    error = assert_error(
        client.post("/v1/predict/batch", json={"rows": rows}), 422, "validation_failed"
    )

    assert [d["field"] for d in error["details"]] == [f"rows[1].{FIRST.name}"]


@pytest.mark.parametrize("unknown", [MAX_ERROR_DETAILS, MAX_ERROR_DETAILS + 1])
def test_the_first_invalid_fields_are_listed_and_the_message_counts_them_all(
    client: TestClient, unknown: int
) -> None:
    names = [f"unknown_{i}" for i in range(unknown)]

    error = assert_error(
        client.post("/v1/predict", json={**FEATURE_EXAMPLE, **dict.fromkeys(names, 1)}),
        422,
        "validation_failed",
    )

    assert [d["field"] for d in error["details"]] == names[:MAX_ERROR_DETAILS]
    # Past MAX_ERROR_DETAILS unknown fields are refused before validation, which
    # would check the others too (refuse_unknown_fields): the message says which.
    counted = "unknown" if unknown > MAX_ERROR_DETAILS else "invalid"
    assert error["message"].startswith(f"{unknown} fields are {counted}, first unknown_0: ")
    listed_in_part = f"; details lists the first {MAX_ERROR_DETAILS}"
    assert error["message"].endswith(listed_in_part) == (unknown > MAX_ERROR_DETAILS)


def test_an_unknown_field_with_a_long_name_is_named_by_its_beginning(client: TestClient) -> None:
    name = "x" * 100_000

    response = client.post("/v1/predict", json={**FEATURE_EXAMPLE, name: 1})

    error = assert_error(response, 422, "validation_failed")
    assert [d["field"] for d in error["details"]] == [name[:MAX_FIELD_PATH] + "..."]
    assert len(response.content) < 1000


def test_empty_batch_is_refused(client: TestClient) -> None:
    error = assert_error(
        client.post("/v1/predict/batch", json={"rows": []}), 422, "validation_failed"
    )

    assert error["details"][0]["field"] == "rows"


@pytest.fixture
def small_batch_client(model_dir: Any, model_version: str) -> Iterator[TestClient]:
    settings = Settings(model_dir=model_dir, model_version=model_version, max_batch_size=2)
    with app_client(create_app(settings)) as client:
        yield client


def test_batch_over_the_limit_is_refused_naming_the_limit(small_batch_client: TestClient) -> None:
    response = small_batch_client.post("/v1/predict/batch", json={"rows": [FEATURE_EXAMPLE] * 3})

    error = assert_error(response, 413, "batch_too_large")
    assert "3 rows; the limit is 2 (APP_MAX_BATCH_SIZE)" in error["message"]
    assert error["details"][0]["field"] == "rows"


def test_batch_over_the_limit_is_refused_before_its_rows_are_validated(
    small_batch_client: TestClient, client: TestClient
) -> None:
    # Rows that would each fail validation: the count is refused first, so a huge
    # batch of junk costs no more than counting it.
    small = small_batch_client.post("/v1/predict/batch", json={"rows": [{}] * 3})
    huge = client.post("/v1/predict/batch", json={"rows": [{}] * 20_000})

    assert "3 rows; the limit is 2" in assert_error(small, 413, "batch_too_large")["message"]
    error = assert_error(huge, 413, "batch_too_large")
    assert "20000 rows" in error["message"]
    assert len(error["details"]) == 1


def test_a_batch_with_no_body_or_one_not_sent_as_json_is_refused_as_such(
    small_batch_client: TestClient,
) -> None:
    rows = json.dumps({"rows": [FEATURE_EXAMPLE] * 3})

    empty = small_batch_client.post("/v1/predict/batch")
    text = small_batch_client.post(
        "/v1/predict/batch", content=rows, headers={"content-type": "text/plain"}
    )

    assert_error(empty, 415, "unsupported_media_type")  # no content type either
    assert_error(text, 415, "unsupported_media_type")


def test_batch_at_the_limit_is_accepted(small_batch_client: TestClient) -> None:
    response = small_batch_client.post("/v1/predict/batch", json={"rows": [FEATURE_EXAMPLE] * 2})

    assert response.status_code == 200


def test_unknown_path_is_not_found(client: TestClient) -> None:
    error = assert_error(client.get("/v1/nowhere"), 404, "not_found")

    assert "/docs" in error["message"]


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/predict/"), ("GET", "/health/")])
def test_a_trailing_slash_is_not_found_saying_so(
    client: TestClient, method: str, path: str
) -> None:
    # Not a 307 to the path without it: behind a proxy, that could point to plain http.
    response = client.request(method, path, json=FEATURE_EXAMPLE, follow_redirects=False)

    error = assert_error(response, 404, "not_found")
    assert "(paths end without a slash)" in error["message"]


def test_wrong_method_is_refused_with_the_allowed_one(client: TestClient) -> None:
    response = client.get("/v1/predict")

    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_head_answers_every_get_route_as_get_does_without_the_body(client: TestClient) -> None:
    """Uptime monitors probe with HEAD; the OpenAPI document still describes GET only."""
    paths = client.get("/openapi.json").json()["paths"]
    get_paths = [path for path, operations in paths.items() if "get" in operations]

    assert {"/health", "/ready", "/v1/model"} <= set(get_paths)
    assert not [path for path, operations in paths.items() if "head" in operations]
    for path in [*get_paths, "/docs", "/openapi.json"]:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        assert head.headers["x-request-id"]
        assert unvarying(head.headers) == unvarying(get.headers), path


def unvarying(headers: Headers) -> dict[str, str]:
    """The headers of a response but those that differ between two answers."""
    return {k: v for k, v in headers.items() if k not in ("x-request-id", "date")}


def test_head_on_a_route_without_get_is_refused_with_the_allowed_method(
    client: TestClient,
) -> None:
    response = client.head("/v1/predict")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.content == b""
    assert client.head("/v1/nowhere").status_code == 404


def test_unexpected_failure_is_a_500_envelope_without_internals(settings: Settings) -> None:
    def broken_predictor() -> Predictor:
        raise RuntimeError("secret internal detail")

    app = create_app(settings)
    app.dependency_overrides[get_predictor] = broken_predictor
    with app_client(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/predict", json=FEATURE_EXAMPLE)

    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert error["details"] == []


def test_docs_show_a_valid_example_request(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    schema = document["components"]["schemas"]["Features"]
    assert schema["examples"] == [FEATURE_EXAMPLE]
    assert client.post("/v1/predict", json=schema["examples"][0]).status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_pinned_files_the_browser_checks(
    client: TestClient, path: str
) -> None:
    """Users paste their key into /docs: a script the CDN changed must not run there."""
    page = client.get(path).text
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page)
    loaded = [tag for tag in tags if re.search(r'(?:src|href)="(?!data:)', tag)]

    assert loaded, page
    for tag in loaded:
        # One release, never a range such as @5, whose files change under the hash.
        assert re.search(r'"https://cdn\.jsdelivr\.net/npm/[a-z-]+@\d+\.\d+\.\d+/', tag), tag
        assert re.search(r' integrity="sha384-[A-Za-z0-9+/]{64}"', tag), tag
        assert 'crossorigin="anonymous"' in tag, tag
    assert "fonts.googleapis.com" not in page
    assert "/openapi.json" in page


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_ask_for_the_document_under_the_path_prefix(
    client: TestClient, settings: Settings, path: str
) -> None:
    """Behind a proxy that serves the API under a prefix, the page asks for the
    document under it too; each page is made once, and never served for the other."""

    def pages_made() -> int:
        return sum(page.cache_info().misses for page in (docs.swagger_ui_page, docs.redoc_page))

    assert "/model-api" not in client.get(path).text
    made = pages_made()
    with TestClient(create_app(settings), root_path="/model-api") as prefixed:
        for _ in range(2):
            assert "/model-api/openapi.json" in prefixed.get(path).text
    assert pages_made() == made + 1
    assert "/model-api" not in client.get(path).text
    assert pages_made() == made + 1


def test_a_full_batch_of_the_example_fits_under_the_default_body_limit() -> None:
    body = json.dumps({"rows": [FEATURE_EXAMPLE] * Settings().max_batch_size}).encode()

    assert len(body) < Settings().max_body_bytes


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    answers = [
        client.post("/v1/predict", json=FEATURE_EXAMPLE),
        client.post("/v1/predict", json={}),
        client.get("/no/such/path"),
    ]

    for response in answers:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    # The documentation page loads Swagger UI's scripts: it keeps the browser's defaults.
    assert "content-security-policy" not in client.get("/docs").headers


def test_no_origin_may_call_from_a_browser_by_default(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", json=FEATURE_EXAMPLE, headers={"Origin": "https://elsewhere.example"}
    )

    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_origins_from_the_settings_may_call_from_a_browser(settings: Settings) -> None:
    allowed = "https://app.example.com"
    with app_client(create_app(settings.model_copy(update={"cors_origins": (allowed,)}))) as client:
        preflight = client.options(
            "/v1/predict",
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        refused = client.options(
            "/v1/predict",
            headers={
                "Origin": "https://elsewhere.example",
                "Access-Control-Request-Method": "POST",
            },
        )
        answer = client.post("/v1/predict", json=FEATURE_EXAMPLE, headers={"Origin": allowed})

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == allowed
    error = assert_error(refused, 400, "bad_request")
    assert "Disallowed CORS origin" in error["message"]
    assert "APP_CORS_ORIGINS" in error["message"]
    assert answer.headers["access-control-allow-origin"] == allowed
    assert answer.headers["access-control-expose-headers"] == "X-Request-ID"


def test_request_id_over_128_characters_is_refused(client: TestClient) -> None:
    error = assert_error(
        client.get("/v1/model", headers={"X-Request-ID": "x" * 129}),
        431,
        "request_header_too_large",
    )

    assert "X-Request-ID" in error["message"]
