"""Render each variant, then hold it to its own checks: `make setup`, `make lint`, `make test`."""

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import TEMPLATE_ROOT, run, succeed

# examples/iris.yml holds the defaults, whose whole suite runs elsewhere:
# tests/test_tutorial.py renders them fresh and runs `make release-check` (format, lint,
# types, tests, contract, docs, promtool, hadolint, load test), and tests/test_update.py
# holds a project updated to them to be the same files. Another run here would only
# cost time.
COVERED_ELSEWHERE = {"iris"}
EXAMPLES = {
    f"example-{path.stem}": yaml.safe_load(path.read_text())
    for path in sorted((TEMPLATE_ROOT / "examples").glob("*.yml"))
    if path.stem not in COVERED_ELSEWHERE
}
VARIANTS: dict[str, dict[str, Any]] = {
    # The other answers files in examples/: breast_cancer, diabetes, churn, and a
    # schema of one's own on CSV data (rental-prices).
    **EXAMPLES,
    # The Iris data with its features and labels renamed, the optional parts of the
    # schema left out, labels whose sorted order differs from their declared order
    # (scikit-learn sorts predict_proba's columns), and OpenTelemetry.
    "renamed-iris-otel-py312": {
        "project_name": "Flower Sorter 2.0",
        "monitoring": "opentelemetry",
        "python_version": "3.12",
        "workers": 1,
        "model_version": "2025.01-rc1",
        "class_labels": ["kind-a", "kind b", "Kind C"],
        "features": [
            {"name": "f1", "type": "float"},
            {"name": "f2", "type": "float", "min": 0},
            {"name": "f3", "type": "float", "max": 100, "unit": "mm"},
            {"name": "f4", "type": "float", "description": "Fourth measure", "example": 0.5},
        ],
    },
    # Integer features on synthetic data, text that must be escaped in Python,
    # TOML and Markdown, no monitoring backend, and API keys without /metrics.
    "integer-csv-nomonitoring-py313": {
        "dataset": "csv",
        "monitoring": "none",
        "auth": "api_key",
        "project_name": 'Dr. "Q"\'s Flower\\Model #3',
        "description": 'Sorts flowers by "shape" \\ size: 100% reproducible.',
        "author_name": "Zoë O'Brien",
        "python_version": "3.13",
        "features": [
            {
                "name": "sepal_mm",
                "type": "integer",
                "min": 0,
                "max": 100,
                "unit": "mm",
                "example": 51,
            },
            {"name": "sepal_width_mm", "type": "integer", "min": 0, "example": 35},
            {"name": "petal_mm", "type": "integer", "max": 100},
            {"name": "petal_width_mm", "type": "integer", "description": 'Width, "rounded"'},
        ],
    },
}


# The diabetes example is a regression served by two workers with Prometheus, as
# rental-prices is, whose whole suite runs: its servers, deployment and load tests
# would only run those same tests again (4 minutes of CI). What differs is its data
# set and the bounds of its answers (target_min), which these parts of its suite read.
PARTS_ONLY = {
    "example-diabetes": [
        "tests/unit",
        "tests/contract",
        "tests/integration/test_refused_answers.py",
        "tests/integration/test_bad_requests.py",
    ]
}


# The server's machinery: how workers start, refuse to start, stop, time out, die and
# are replaced, how connections are bounded, how the prediction log and the shadow ride
# out faults. It runs the same code whatever the schema, the task and the data set, and
# differs only with the monitoring backend, API keys, the Python version and the worker
# count. Three projects take each of their values between them, and run it whole:
# the tutorial's (Prometheus, no keys, 3.11, 2 workers; tests/test_tutorial.py runs its
# make release-check), renamed-iris-otel-py312 (OpenTelemetry, 3.12, 1 worker) and
# integer-csv-nomonitoring-py313 (no backend, API keys, 3.13). In the variants below
# it would only repeat one of them (about 2 minutes of CI each); the rest of their suite,
# their servers answering their own schema included, runs.
MACHINERY = (
    "tests/deploy/test_entrypoint.py",
    "tests/integration/test_connections.py",
    "tests/integration/test_server.py::test_connections_opened_together_spread_over_the_workers",
    "tests/integration/test_server.py::test_a_worker_out_of_file_descriptors_accepts_again",
    "tests/integration/test_server.py::test_missing_artifact_folder_stops_start_up",
    "tests/integration/test_server.py::test_broken_artifact_stops_start_up",
    "tests/integration/test_server.py::test_invalid_setting_stops_start_up",
    "tests/integration/test_server.py::test_invalid_worker_count_stops_start_up",
    "tests/integration/test_server.py::test_a_model_call_past_the_timeout_gets_504",
    "tests/integration/test_metrics.py::test_counters_are_exact_across_workers_even_when_one_dies",
    "tests/integration/test_metrics.py::test_a_worker_killed_mid_request_is_replaced",
    "tests/integration/test_metrics.py::test_requests_the_server_refuses_before_routing",
    "tests/integration/test_prediction_log.py::test_postgresql_down_at_start",
    "tests/integration/test_prediction_log.py::test_postgresql_going_away_under_load",
    "tests/integration/test_prediction_log.py::test_a_worker_losing_the_race",
    "tests/integration/test_prediction_log.py::test_sigterm_during_load",
    "tests/integration/test_shadow.py::test_sigterm_during_load",
)
MACHINERY_ELSEWHERE = {"example-breast_cancer", "example-churn", "example-rental-prices"}
# But Prometheus with API keys is breast_cancer's alone: its metrics' machinery (scraped
# with a key while workers die, refused requests counted) runs there too.
MACHINERY_KEPT = {"example-breast_cancer": "tests/integration/test_metrics.py"}


def test_machinery_names_tests_of_the_template() -> None:
    # pytest --deselect takes node-id prefixes and ignores one that matches nothing:
    # a renamed test would run again everywhere, silently.
    for prefix in MACHINERY:
        path, _, test = prefix.partition("::")
        folder, _, name = path.rpartition("/")
        # test_metrics.py is rendered from a conditionally named .jinja file.
        [source] = [
            candidate
            for candidate in (TEMPLATE_ROOT / "template" / folder).iterdir()
            if candidate.name
            in (name, f"{{% if monitoring == 'prometheus' %}}{name}{{% endif %}}.jinja")
        ]
        assert not test or f"\ndef {test}" in source.read_text(), prefix
    assert set(VARIANTS) >= MACHINERY_ELSEWHERE >= set(MACHINERY_KEPT)
    assert all(any(p.startswith(kept) for p in MACHINERY) for kept in MACHINERY_KEPT.values())
    assert not MACHINERY_ELSEWHERE & set(PARTS_ONLY)


# The contract-change and "/v2" guide tests edit the schema, the routes and the wiring,
# and follow the README's steps: what they meet differs with the task, API keys and
# the monitoring backend, which these variants cover between them (diabetes and churn
# repeat rental-prices and breast_cancer there: 2 minutes of CI).
CONTRACT_VARIANTS = pytest.mark.variants(
    "example-breast_cancer",
    "example-rental-prices",
    "renamed-iris-otel-py312",
    "integer-csv-nomonitoring-py313",
)


def test_contract_variants_name_variants() -> None:
    # A misspelt name would deselect its tests everywhere, silently.
    assert set(CONTRACT_VARIANTS.args) <= set(VARIANTS)


@pytest.fixture(
    scope="module",
    # One xdist group per variant: its render, setup and checks stay in one process.
    params=[pytest.param(name, marks=pytest.mark.xdist_group(name)) for name in VARIANTS],
)
def variant(
    request: pytest.FixtureRequest, copie_session: Any, project_env: dict[str, str]
) -> Path:
    """A rendered variant after its own `make setup` (environment, demo model, contract)."""
    result = copie_session.copy(extra_answers=VARIANTS[request.param])
    assert result.exit_code == 0, result.exception
    project: Path = result.project_dir
    succeed(["make", "setup"], project, project_env)
    return project


def test_variant_passes_its_own_lint(variant: Path, project_env: dict[str, str]) -> None:
    succeed(["make", "lint"], variant, project_env)


def test_variant_passes_its_own_tests(
    variant: Path, project_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["variant"]
    uv_pytest = [project_env.get("UV", "uv"), "run", "pytest"]
    if name in PARTS_ONLY:
        command = [*uv_pytest, *PARTS_ONLY[name]]
    elif name in MACHINERY_ELSEWHERE:
        kept = MACHINERY_KEPT.get(name)
        deselected = [prefix for prefix in MACHINERY if not (kept and prefix.startswith(kept))]
        command = [*uv_pytest, *(f"--deselect={prefix}" for prefix in deselected)]
    else:
        command = ["make", "test"]
    # A bound against a hang, under pytest-timeout's 900 s: a variant's suite takes about
    # 5 minutes alone and longer while other variants' suites share the cores.
    output = succeed(command, variant, project_env, timeout=880)

    assert " passed" in output
    assert " skipped" not in output


@CONTRACT_VARIANTS
def test_variant_contract_test_fails_when_the_api_changes(
    variant: Path, project_env: dict[str, str]
) -> None:
    schemas = variant / "app" / "schemas.py"
    # make contract-update records the change for machines and for people.
    recordings = [variant / "tests" / "contract" / "openapi.json"]
    recordings += [variant / "docs" / "SERVICE_CONTRACT.md", variant / "docs" / "MODEL_CARD.md"]
    original_schemas = schemas.read_text()
    originals = {path: path.read_text() for path in recordings}
    contract_test = [project_env.get("UV", "uv"), "run", "pytest", "-q", "tests/contract"]
    try:
        answered = 'description="Version of the model artifact that answered."'
        assert answered in original_schemas
        schemas.write_text(original_schemas.replace(answered, 'description="Changed."'))

        changed = run(contract_test, variant, project_env)
        succeed(["make", "contract-update"], variant, project_env)
        recorded = run(contract_test, variant, project_env)
        described = (variant / "docs" / "SERVICE_CONTRACT.md").read_text()
    finally:
        schemas.write_text(original_schemas)
        for path, text in originals.items():
            path.write_text(text)

    assert changed.returncode == 1, changed.stdout
    assert "make contract-update" in changed.stdout
    assert recorded.returncode == 0, recorded.stdout
    assert "Changed." in described


def test_variant_contract_test_tells_a_breaking_change_and_points_to_v2(
    variant: Path, project_env: dict[str, str]
) -> None:
    schemas = variant / "app" / "schemas.py"
    original = schemas.read_text()
    contract_test = [project_env.get("UV", "uv"), "run", "pytest", "-q", "tests/contract"]
    typed = "model_version: str = Field("
    assert typed in original
    try:
        schemas.write_text(original.replace(typed, "model_version: int = Field("))
        retyped = run(contract_test, variant, project_env)
    finally:
        schemas.write_text(original)

    assert retyped.returncode == 1, retyped.stdout
    assert (
        "POST /v1/predict: response 200 field `model_version` may now answer integer"
        in retyped.stdout
    )
    assert 'prefix "/v2"' in retyped.stdout


def _v2_guide(readme: str) -> tuple[str, str]:
    """The router and the test that the project's README shows for adding a /v2."""
    start = readme.index("### Add a /v2 beside /v1")
    section = readme[start : readme.index("\n## ", start)]
    blocks = re.findall(r"^   ```python\n(.*?)^   ```$", section, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 2, section
    router, test = (textwrap.dedent(block) for block in blocks)
    return router, test


@CONTRACT_VARIANTS
def test_variant_readme_guide_adds_a_v2_that_passes_the_checks(
    variant: Path, project_env: dict[str, str]
) -> None:
    """Following the README's "Add a /v2 beside /v1" step by step gives a /v2/predict
    that passes the project's format, lint, types, its own test and the contract."""
    router, test = _v2_guide((variant / "README.md").read_text())
    predict, main = variant / "app" / "api" / "predict.py", variant / "app" / "main.py"
    recordings = [variant / "tests" / "contract" / "openapi.json"]
    recordings += [variant / "docs" / "SERVICE_CONTRACT.md", variant / "docs" / "MODEL_CARD.md"]
    originals = {path: path.read_text() for path in [predict, main, *recordings]}
    added = [variant / "app" / "api" / "predict_v2.py"]
    added += [variant / "tests" / "integration" / "test_api_v2.py"]
    uv = project_env.get("UV", "uv")
    contract_test = [uv, "run", "pytest", "-q", "tests/contract"]
    try:
        # Step 1: rename _predict.
        assert "async def _predict(" in originals[predict]
        predict.write_text(re.sub(r"\b_predict\b", "predict_rows", originals[predict]))
        # Steps 2 and 4: the router and its test, as the README writes them.
        added[0].write_text(router)
        added[1].write_text(test)
        # Step 3: wire it beside /v1, with the same arguments.
        lines = []
        for line in originals[main].splitlines(keepends=True):
            lines.append(line)
            if "app.include_router(predict.router" in line:
                lines.append(line.replace("predict.router", "predict_v2.router"))
        wired = "".join(lines)
        imports = "from app.api import docs, feedback, health, predict, reports"
        assert imports in wired
        main.write_text(wired.replace(imports, imports.replace("predict,", "predict, predict_v2,")))

        succeed([uv, "run", "ruff", "format", "--check", "."], variant, project_env)
        succeed([uv, "run", "ruff", "check", "."], variant, project_env)
        succeed([uv, "run", "mypy", "--strict", *map(str, added)], variant, project_env)
        succeed([uv, "run", "pytest", "-q", str(added[1])], variant, project_env)
        # Step 5: the contract test sees a path added, and records it on request.
        unrecorded = run(contract_test, variant, project_env)
        succeed(["make", "contract-update"], variant, project_env)
        recorded = run(contract_test, variant, project_env)
        contract = (variant / "tests" / "contract" / "openapi.json").read_text()
    finally:
        for path, text in originals.items():
            path.write_text(text)
        for path in added:
            path.unlink(missing_ok=True)

    assert unrecorded.returncode == 1, unrecorded.stdout
    assert "make contract-update" in unrecorded.stdout
    assert recorded.returncode == 0, recorded.stdout
    assert '"/v2/predict"' in contract
    assert '"/v1/predict"' in contract
