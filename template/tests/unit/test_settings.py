import pytest

from app.errors import ConfigError
from app.settings import load_server_settings, load_settings


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


@pytest.mark.parametrize("version", ["../etc", "a/b", ""])
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
