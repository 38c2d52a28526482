"""Settings: defaults, 'never', the env file, and refusals that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtrail.config import load_settings
from jobtrail.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.main_url is None and settings.uses_embedded
    assert settings.result_expires_s == 86_400
    assert settings.state_dir == tmp_path / "xdg-state" / "jobtrail"
    assert settings.solver_hard_time_limit_s < settings.visibility_timeout_s


@pytest.mark.parametrize("field", ["task_sent_event", "worker_task_events"])
@pytest.mark.parametrize(("value", "expected"), [(None, True), ("false", False), ("true", True),
                                                 ("1", True)])
def test_task_events_are_on_unless_switched_off(field: str, value: str | None, expected: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if value is not None:
        monkeypatch.setenv(f"JOBTRAIL_{field.upper()}", value)
    assert getattr(load_settings(), field) is expected


@pytest.mark.parametrize("value", ["0", "never", "NEVER"])
def test_result_expires_zero_or_never_keeps_forever(value: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBTRAIL_RESULT_EXPIRES_S", value)
    assert load_settings().result_expires_s == 0


def test_env_file_is_loaded_and_env_wins(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env.reproduction"
    env.write_text("JOBTRAIL_MAIN_URL=redis://127.0.0.1:7000/10\n"
                   "JOBTRAIL_RESULT_EXPIRES_S=60\n# a comment\n")
    monkeypatch.setenv("JOBTRAIL_RESULT_EXPIRES_S", "120")

    settings = load_settings(env)

    assert settings.main_url == "redis://127.0.0.1:7000/10"
    assert settings.result_expires_s == 120


def test_env_file_from_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "x.env"
    env.write_text("JOBTRAIL_QUEUE=math\n")
    monkeypatch.setenv("JOBTRAIL_ENV_FILE", str(env))
    assert load_settings().queue == "math"


def test_unknown_key_in_env_file_is_refused(tmp_path: Path) -> None:
    env = tmp_path / "bad.env"
    env.write_text("JOBTRAIL_RESULT_EXPIRE_S=60\n")
    with pytest.raises(ConfigError, match="unknown setting JOBTRAIL_RESULT_EXPIRE_S"):
        load_settings(env)


def test_missing_env_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.env")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("RESULT_EXPIRES_S", "soon", "JOBTRAIL_RESULT_EXPIRES_S"),
    ("RESULT_EXPIRES_S", "-1", "JOBTRAIL_RESULT_EXPIRES_S: must be 0 or more"),
    ("MAIN_URL", "http://x", "JOBTRAIL_MAIN_URL"),
    ("SOLVER_TIME_LIMIT_S", "0", "JOBTRAIL_SOLVER_TIME_LIMIT_S: must be more than 0"),
    ("SOLVER_HARD_TIME_LIMIT_S", "4000", "must be below visibility_timeout_s"),
    ("SOLVER_HARD_TIME_LIMIT_S", "1", "must not be below solver_time_limit_s"),
])
def test_bad_values_are_refused_naming_the_setting(name: str, value: str, message: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"JOBTRAIL_{name}", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_batch_max_jobs_from_env_refused_below_1_and_capped_by_the_visibility_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().batch_max_jobs == 32
    monkeypatch.setenv("JOBTRAIL_BATCH_MAX_JOBS", "8")
    assert load_settings().batch_jobs() == 8
    # a whole batch's hard limit (jobs x 15 s + 5 s) must stay below a 60 s visibility timeout
    monkeypatch.setenv("JOBTRAIL_VISIBILITY_TIMEOUT_S", "60")
    assert load_settings().batch_jobs() == 3
    monkeypatch.setenv("JOBTRAIL_BATCH_MAX_JOBS", "0")
    with pytest.raises(ConfigError, match="BATCH_MAX_JOBS"):
        load_settings()
