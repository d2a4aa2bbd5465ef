import re
from pathlib import Path

import pytest
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings

from app.errors import ConfigError
from app.settings import (
    ServerSettings,
    Settings,
    config_error,
    env_example,
    load_server_settings,
    load_settings,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (ServerSettings, Settings)


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_MODEL_VERSION", raising=False)

    settings = load_settings()

    assert settings.model_version is None
    assert settings.max_batch_size == 1000


def test_invalid_setting_is_reported_by_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_LOG_LEVEL", "LOUD")

    with pytest.raises(ConfigError, match=r"^invalid setting APP_LOG_LEVEL: Input should be"):
        load_settings()


def test_log_level_accepts_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_LOG_LEVEL", "debug")

    assert load_settings().log_level == "DEBUG"


@pytest.mark.parametrize("version", ["../etc", "a/b", " "])
def test_model_version_must_be_a_plain_folder_name(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setenv("APP_MODEL_VERSION", version)

    with pytest.raises(ConfigError, match=r"APP_MODEL_VERSION: String should match pattern"):
        load_settings()


def test_worker_count_out_of_range_is_reported_by_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "0")

    with pytest.raises(ConfigError, match=r"WEB_CONCURRENCY: Input should be greater than"):
        load_server_settings()


@pytest.mark.parametrize("threshold", ["0", "1", "1.5", "high"])
def test_decision_threshold_must_lie_strictly_between_0_and_1(
    monkeypatch: pytest.MonkeyPatch, threshold: str
) -> None:
    monkeypatch.setenv("APP_DECISION_THRESHOLD", threshold)

    with pytest.raises(ConfigError, match=r"APP_DECISION_THRESHOLD: Input should be"):
        load_settings()


class SettingsWithAKey(Settings):
    """The service as it would be with a setting it cannot start without."""

    api_key: str = Field(description="Key callers must send.")


def settings_error(settings_class: type[BaseSettings]) -> str:
    """The one line start-up would stop with, reading ``settings_class``."""
    with pytest.raises(ValidationError) as caught:
        settings_class()
    return config_error(caught.value, settings_class).message


def test_missing_required_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_API_KEY", raising=False)

    assert settings_error(SettingsWithAKey) == (
        "missing setting APP_API_KEY: required, see .env.example"
    )


def test_every_problem_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_API_KEY", raising=False)
    monkeypatch.setenv("APP_MAX_BATCH_SIZE", "lots")

    message = settings_error(SettingsWithAKey)

    assert message.startswith("invalid setting APP_MAX_BATCH_SIZE: Input should be")
    assert message.endswith("; missing setting APP_API_KEY: required, see .env.example")


def test_every_setting_says_what_it_means() -> None:
    undescribed = [
        name
        for settings_class in SETTINGS_CLASSES
        for name, field in settings_class.model_fields.items()
        if not field.description
    ]

    assert undescribed == []


def test_env_example_is_generated_from_the_settings() -> None:
    assert ENV_EXAMPLE.read_text() == env_example(), "run `make env-example` to update it"


def documented_defaults() -> dict[str, str]:
    """VARIABLE=value of each commented-out line of .env.example."""
    pairs = re.findall(r"^# ([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    return dict(pairs)


def test_env_example_shows_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = documented_defaults()
    for variable in documented:
        monkeypatch.delenv(variable, raising=False)
    defaults = (load_server_settings(), load_settings())

    for variable, value in documented.items():
        if value:  # an empty value stands for unset
            monkeypatch.setenv(variable, value)

    assert (load_server_settings(), load_settings()) == defaults


def test_env_example_covers_every_setting() -> None:
    expected = {
        f"{settings_class.model_config.get('env_prefix', '')}{name}".upper()
        for settings_class in SETTINGS_CLASSES
        for name in settings_class.model_fields
    }

    assert expected <= set(documented_defaults())


def test_readme_documents_the_same_variables_as_env_example() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    in_readme = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, re.MULTILINE)

    assert sorted(in_readme) == sorted(documented_defaults())


def test_cors_origins_are_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_CORS_ORIGINS", "https://a.example, http://localhost:3000")

    assert Settings().cors_origins == ("https://a.example", "http://localhost:3000")


def test_an_origin_with_a_path_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_CORS_ORIGINS", "https://a.example/app")

    with pytest.raises(ConfigError, match=r"APP_CORS_ORIGINS: .*is not an origin"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url", "not a database URL"),
        ("nosuchdb://user:s3cret-pass@db/predictions", "a database SQLAlchemy does not know"),
        ("mysql://user:s3cret-pass@db/predictions", "the driver of mysql is not installed"),
    ],
)
def test_an_unusable_database_url_is_refused_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", url)

    with pytest.raises(
        ConfigError, match=rf"^invalid setting APP_DATABASE_URL: .*{problem}"
    ) as info:
        load_settings()

    assert "s3cret" not in str(info.value)


def test_a_database_url_whose_driver_is_installed_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://user:password@db:5432/predictions"
    monkeypatch.setenv("APP_DATABASE_URL", url)

    assert load_settings().database_url == url


@pytest.mark.parametrize(
    "variable", ["APP_MODEL_VERSION", "APP_DECISION_THRESHOLD", "APP_LOG_PAYLOADS", "APP_MODEL_DIR"]
)
def test_an_empty_setting_counts_as_unset(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """As `.env.example`'s lines give when uncommented without a value."""
    monkeypatch.delenv(variable, raising=False)
    unset = load_settings()
    monkeypatch.setenv(variable, "")

    assert load_settings() == unset


def test_an_empty_host_is_refused_rather_than_listening_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "")

    with pytest.raises(ConfigError, match=r"^invalid setting HOST: String should have at least"):
        load_server_settings()


def test_messages_say_what_a_validator_said_without_pydantics_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_DRIFT_PSI_WARNING", "0.5")
    monkeypatch.setenv("APP_DRIFT_PSI_PAGE", "0.2")
    monkeypatch.setenv("WEB_CONCURRENCY", "2.0")

    with pytest.raises(ConfigError) as settings_error:
        load_settings()
    with pytest.raises(ConfigError) as server_error:
        load_server_settings()

    assert settings_error.value.message.startswith("invalid settings: APP_DRIFT_PSI_PAGE (0.2)")
    assert server_error.value.message == (
        "invalid setting WEB_CONCURRENCY: '2.0' is not a whole number of workers, such as 2"
    )
    assert "Value error" not in settings_error.value.message + server_error.value.message
