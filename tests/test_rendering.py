"""What rendering produces, before any generated command runs."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers import TEMPLATE_ROOT, literal_constants, render


@pytest.fixture(scope="module")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("default") / "project")


def text_files(project: Path) -> list[Path]:
    return [path for path in project.rglob("*") if path.is_file()]


def test_default_answers_render_the_iris_classifier(default_project: Path) -> None:
    schemas = (default_project / "app" / "schemas.py").read_text()

    assert 'API_TITLE: Final = "Iris Classifier"' in schemas
    for name in ("sepal_length", "sepal_width", "petal_length", "petal_width"):
        assert f"    {name}: Annotated[" in schemas
    assert '"setosa",\n    "versicolor",\n    "virginica",\n]' in schemas
    assert "default=2," in (default_project / "app" / "settings.py").read_text()
    assert "WEB_CONCURRENCY=2 " in (default_project / "deploy" / "Dockerfile").read_text()
    assert "# WEB_CONCURRENCY=2\n" in (default_project / ".env.example").read_text()
    assert (default_project / ".python-version").read_text() == "3.11\n"


# Files whose own template language also uses double braces: Prometheus alert
# templates, Grafana legends and GitHub Actions expressions. Jinja's statements
# must not survive in them either.
OWN_TEMPLATES = {
    "deploy/prometheus/rules/alerts.yml",
    "deploy/grafana/dashboards/service.json",
    ".github/workflows/ci.yml",
    ".github/workflows/template-update.yml",
}
# The GitHub Actions contexts the workflows' expressions read.
WORKFLOW_CONTEXTS = ("github.", "secrets.", "steps.")
# The labels Grafana legends name.
LEGEND_LABELS = {
    "label",
    "route",
    "status",
    "version",
    "model_version",
    "field",
    "bin",
    "feature",
    "severity",
    "reason",
}


def test_no_template_syntax_survives_rendering(default_project: Path) -> None:
    leftovers = []
    for path in text_files(default_project):
        name = str(path.relative_to(default_project))
        text = path.read_text()
        jinja_statement = "{%" in text or "{#" in text or path.suffix == ".jinja"
        if jinja_statement or ("{{" in text and name not in OWN_TEMPLATES):
            leftovers.append(name)

    assert leftovers == []


def test_own_templates_hold_only_their_own_expressions(default_project: Path) -> None:
    for name in OWN_TEMPLATES:
        text = (default_project / name).read_text()
        expressions = re.findall(r"\{\{(.*?)\}\}", text)
        assert expressions, name
        # Prometheus expressions read $labels or $value; Grafana legends name a label;
        # GitHub Actions expressions read a context.
        assert all(
            e.strip().startswith("$")
            or re.fullmatch(r'printf ["`]%\.\d[fg]["`] \$value( \| \w+)?', e.strip())
            or e.strip() in LEGEND_LABELS
            or e.strip().startswith(WORKFLOW_CONTEXTS)
            for e in expressions
        ), name


def test_only_the_generated_project_is_rendered(default_project: Path) -> None:
    top_level = sorted(path.name for path in default_project.iterdir())

    assert top_level == sorted(
        [
            ".copier-answers.yml",
            ".dockerignore",
            ".env.example",
            ".github",
            ".gitignore",
            ".pre-commit-config.yaml",
            ".python-version",
            "Makefile",
            "README.md",
            "app",
            "compose.yaml",
            "deploy",
            "docs",
            "loadtest",
            "pyproject.toml",
            "tests",
            "tools",
            "training",
        ]
    )


@pytest.mark.parametrize(
    ("monitoring", "present", "absent"),
    [
        (
            "prometheus",
            ["deploy/prometheus", "deploy/grafana", "app/observability/metrics.py"],
            ["deploy/otel-collector"],
        ),
        (
            "opentelemetry",
            ["deploy/otel-collector", "deploy/prometheus", "app/observability/telemetry.py"],
            ["app/observability/metrics.py"],
        ),
        (
            "none",
            [],
            [
                "deploy/prometheus",
                "deploy/grafana",
                "deploy/alertmanager",
                "docs/runbooks",
                "tests/monitoring",
            ],
        ),
    ],
)
def test_monitoring_backend_renders_its_files_only(
    tmp_path: Path, monitoring: str, present: list[str], absent: list[str]
) -> None:
    project = render(tmp_path / "project", monitoring=monitoring)

    assert [name for name in present if not (project / name).exists()] == []
    assert [name for name in absent if (project / name).exists()] == []


def test_without_monitoring_nothing_mentions_what_was_left_out(tmp_path: Path) -> None:
    project = render(tmp_path / "project", monitoring="none")

    mentions = [
        f"{path.relative_to(project)}: {word}"
        for path in text_files(project)
        if path.name != ".copier-answers.yml"
        for word in ("prometheus", "opentelemetry", "otlp", "grafana", "/metrics", "scrape")
        if word in path.read_text().lower()
    ]

    assert mentions == []


def test_without_auth_no_key_machinery_is_rendered(tmp_path: Path) -> None:
    project = render(tmp_path / "project")

    mentions = [
        f"{path.relative_to(project)}: {word}"
        for path in text_files(project)
        for word in ("APP_API_KEYS", "X-API-Key", "SCRAPE_API_KEY", "app.api.auth")
        if word in path.read_text()
    ]

    assert not (project / "app" / "api" / "auth.py").exists()
    assert mentions == []


def test_with_api_keys_the_answers_and_files_hold_no_key(tmp_path: Path) -> None:
    project = render(tmp_path / "project", auth="api_key")

    answers = (project / ".copier-answers.yml").read_text()
    assert "auth: api_key" in answers
    assert (project / "app" / "api" / "auth.py").exists()
    assert not (project / ".env").exists()  # `make setup` makes the keys, on the machine
    env_example = (project / ".env.example").read_text()
    assert re.search(r"^# APP_API_KEYS=$", env_example, re.MULTILINE)  # commented out, empty


def test_load_test_answers_reach_pyproject_readme_and_release_checklist(tmp_path: Path) -> None:
    project = render(
        tmp_path / "project",
        loadtest_users=7,
        loadtest_seconds=12,
        latency_p95_ms=80,
        max_error_rate_pct=0.5,
        model_version="3.1.0",
        monitoring="none",
    )

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["tool"]["loadtest"] == {
        "users": 7,
        "seconds": 12,
        "p95_ms": 80,
        "max_error_rate_pct": 0.5,
    }
    readme = (project / "README.md").read_text()
    assert "7 simulated clients for 12 s" in readme
    assert (
        "<!-- performance-profile:start -->\nNot measured yet: run `make loadtest`.\n"
        "<!-- performance-profile:end -->\n"
    ) in readme
    checklist = (project / "docs" / "RELEASE_CHECKLIST.md").read_text()
    assert checklist.startswith("# Release checklist: Iris Classifier\n")
    for specific in ("`3.1.0`", "within 80 ms", "at most 0.5% of answers", "7 simulated clients"):
        assert specific in checklist
    assert "promtool" not in checklist + (project / "tools" / "release_check.py").read_text()


def test_release_check_runs_promtool_where_there_is_a_monitoring_stack(
    default_project: Path,
) -> None:
    checklist = (default_project / "docs" / "RELEASE_CHECKLIST.md").read_text()
    release_check = (default_project / "tools" / "release_check.py").read_text()

    assert "- [ ] `promtool`: " in checklist
    assert '"promtool": check_promtool,' in release_check


def test_model_card_and_service_contract_are_written_by_the_project_not_rendered(
    default_project: Path,
) -> None:
    # They describe the trained artifact and the app's own OpenAPI document, so the
    # project writes them (`make setup`, `make docs-update`) from its plain Python.
    assert not (default_project / "docs" / "MODEL_CARD.md").exists()
    assert not (default_project / "docs" / "SERVICE_CONTRACT.md").exists()
    assert list((TEMPLATE_ROOT / "template" / "tools" / "project_docs").glob("*.jinja")) == []
    makefile = (default_project / "Makefile").read_text()
    assert "\ndocs-update: $(UV) ## " in makefile
    assert "python -m tools.project_docs --if-missing" in makefile
    release_check = (default_project / "tools" / "release_check.py").read_text()
    assert '"docs": check_docs,' in release_check
    assert "- [ ] `docs`: " in (default_project / "docs" / "RELEASE_CHECKLIST.md").read_text()


def test_answers_file_records_every_answer_for_copier_update(default_project: Path) -> None:
    answers = yaml.safe_load((default_project / ".copier-answers.yml").read_text())

    assert set(answers) == {
        "_commit",
        "_src_path",
        "dataset",
        "project_name",
        "project_slug",
        "description",
        "author_name",
        "author_email",
        "repository_url",
        "python_version",
        "task",
        "target",
        "features",
        "class_labels",
        "workers",
        "latency_p95_ms",
        "max_error_rate_pct",
        "loadtest_users",
        "loadtest_seconds",
        "monitoring",
        "auth",
        "model_version",
    }
    assert answers["_src_path"] == str(TEMPLATE_ROOT)


def test_regression_answers_record_the_unit_and_no_labels(tmp_path: Path) -> None:
    project = render(tmp_path / "project", dataset="diabetes", target_unit="points")

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())

    assert answers["task"] == "regression"
    assert answers["target_unit"] == "points"
    assert "class_labels" not in answers
    assert "decision_threshold" not in answers


def test_regression_bounds_become_schema_constants(tmp_path: Path) -> None:
    project = render(tmp_path / "project", dataset="diabetes", target_max="400")

    constants = literal_constants(project / "app" / "schemas.py")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())

    assert (constants["TARGET_MIN"], constants["TARGET_MAX"]) == (0.0, 400.0)
    assert (answers["target_min"], answers["target_max"]) == ("0", "400")


def test_a_classifier_declares_no_value_bounds(default_project: Path) -> None:
    constants = literal_constants(default_project / "app" / "schemas.py")

    assert (constants["TARGET_MIN"], constants["TARGET_MAX"]) == (None, None)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Flower Sorter 2.0", "flower-sorter-2-0"),
        ("  My   Model!! (v2) ", "my-model-v2"),
        ('Dr. "Q"\'s Flower\\Model #3', "dr-q-s-flower-model-3"),
        ("Café Crème Prédiction", "cafe-creme-prediction"),
        ("3D Printer Parts", "service-3d-printer-parts"),
    ],
)
def test_project_name_derives_a_valid_slug_and_keeps_its_text(
    tmp_path: Path, name: str, slug: str
) -> None:
    project = render(tmp_path / "project", project_name=name)

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == slug
    assert (project / "README.md").read_text().startswith(f"# {name}\n")
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["project_slug"] == slug
    assert literal_constants(project / "app" / "schemas.py")["API_TITLE"] == name


def test_copier_cli_renders_the_defaults_without_trust(tmp_path: Path) -> None:
    copier = Path(sys.executable).with_name("copier")
    command = ["copy", "--defaults", "--vcs-ref", "HEAD", str(TEMPLATE_ROOT), str(tmp_path / "p")]

    result = subprocess.run([str(copier), *command], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p" / "app" / "main.py").is_file()
    # The message shown after copying says what to run next.
    assert "make setup" in result.stderr
    assert "make run" in result.stderr


def assert_rule_tests_pass(project: Path) -> None:
    """The rendered alert rules pass their own promtool unit tests."""
    result = subprocess.run(
        ["promtool", "test", "rules", "tests/rules_test.yml"],
        cwd=project / "deploy" / "prometheus",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    # Twice the target on a unit boundary: promtool's humanizeDuration sees 0.99999s as
    # 1000ms and 59.9999s as 60s, where the rule test once expected 1s and 1m 0s.
    "latency_p95_ms",
    [50, 500, 700, 30000, 45000],
)
def test_alert_rule_tests_pass_for_any_latency_target(tmp_path: Path, latency_p95_ms: int) -> None:
    project = render(tmp_path / "project", latency_p95_ms=latency_p95_ms)

    assert_rule_tests_pass(project)


@pytest.mark.parametrize(
    ("repository_url", "runbooks"),
    [
        # A trailing slash is not doubled.
        ("https://github.com/ada/iris-service/", "https://github.com/ada/iris-service/blob/main/docs/runbooks/"),
        ("", "docs/runbooks/"),
    ],
)  # fmt: skip
def test_alerts_link_to_their_runbooks_in_the_repository_if_given(
    tmp_path: Path, repository_url: str, runbooks: str
) -> None:
    project = render(tmp_path / "project", repository_url=repository_url)

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    expected_urls = {"Repository": repository_url.rstrip("/")} if repository_url else None
    assert pyproject["project"].get("urls") == expected_urls
    prometheus = project / "deploy" / "prometheus"
    rules = yaml.safe_load((prometheus / "rules" / "alerts.yml").read_text())
    links = [
        rule["annotations"]["runbook_url"] for group in rules["groups"] for rule in group["rules"]
    ]
    assert len(links) > 10
    for link in links:
        assert link.startswith(runbooks), link
        assert (project / "docs" / "runbooks" / link.removeprefix(runbooks)).is_file(), link
    # The rules' own tests expect the same links.
    assert_rule_tests_pass(project)
