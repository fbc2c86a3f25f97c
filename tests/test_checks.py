"""Tests for common.checks: ``manage.py check`` reports the environment's problems as system check errors."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.checks import Error, Warning, run_checks
from django.test import override_settings

from common import checks, env
from common.env import REQUIRED_OUTSIDE_DEVELOPMENT
from tests.envtools import PRODUCTION_ENV, SECRET_VALUES, subprocess_env, use_environment

ROOT = Path(__file__).resolve().parent.parent
CHECK_LINE = re.compile(r"\((common\.[EW]\d{3})\) (.*)")


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    env.reset_settings_cache()
    yield
    env.reset_settings_cache()


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py <args>`` in a child process with exactly the configuration ``env``."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def common_messages(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    return CHECK_LINE.findall(result.stdout + result.stderr)


def assert_no_secret(result: subprocess.CompletedProcess[str], *extra: str) -> None:
    output = result.stdout + result.stderr
    for secret in (*SECRET_VALUES, *extra):
        assert secret not in output


@pytest.mark.parametrize("command", [("check",), ("check", "--deploy")], ids=["check", "check-deploy"])
def test_production_with_nothing_set_fails_with_one_message_naming_every_variable(command: tuple[str, ...]) -> None:
    result = manage(*command, env={"ENVIRONMENT": "production"})
    assert result.returncode != 0
    messages = common_messages(result)
    assert messages == [
        ("common.E001", "Missing required environment variables: " + ", ".join(REQUIRED_OUTSIDE_DEVELOPMENT) + "."),
    ]
    assert "Traceback" not in result.stderr
    assert "HINT: Set them in the environment or in .env; see .env.example." in result.stderr


@pytest.mark.parametrize("command", [("check",), ("check", "--deploy")], ids=["check", "check-deploy"])
def test_short_jwt_secret_names_exactly_that_problem(command: tuple[str, ...]) -> None:
    short = "short-jwt-secret-value-1234"
    result = manage(*command, env={**PRODUCTION_ENV, "JWT_SECRET_KEY": short})
    assert result.returncode != 0
    assert common_messages(result) == [
        ("common.E002", "JWT_SECRET_KEY must be at least 32 characters long (value not shown)."),
    ]
    assert_no_secret(result, short)


def test_redis_http_url_names_exactly_that_problem() -> None:
    result = manage("check", env={**PRODUCTION_ENV, "REDIS_URL": "http://x"})
    assert result.returncode != 0
    assert common_messages(result) == [
        ("common.E002", "REDIS_URL has scheme 'http'; expected redis://, rediss:// or unix://."),
    ]
    assert_no_secret(result)


def test_every_bad_value_is_one_e002_and_nothing_secret_is_printed() -> None:
    bad = {
        "DJANGO_SECRET_KEY": "short-django-secret-printed-never",
        "SUPABASE_SERVICE_KEY": "service-secret-printed-never",
        "OPENAI_API_KEY": "openai-secret-printed-never-0123456789",
        "REPLICATE_API_TOKEN": "replicate-secret-printed-never",
        "JWT_SECRET_KEY": "jwt-secret-printed-never",
        "REDIS_URL": "http://:redis-secret-printed-never@cache:6379",
    }
    result = manage("check", "--deploy", env={**PRODUCTION_ENV, **bad, "LOG_LEVEL": "loud"})
    assert result.returncode != 0
    messages = common_messages(result)
    assert [check_id for check_id, _ in messages] == ["common.E002"] * 7
    named = sorted(text.split(" ", 1)[0] for _, text in messages)  # Django sorts messages by text
    assert named == sorted(
        [
            "LOG_LEVEL",
            "DJANGO_SECRET_KEY",
            "REDIS_URL",
            "SUPABASE_SERVICE_KEY",
            "OPENAI_API_KEY",
            "REPLICATE_API_TOKEN",
            "JWT_SECRET_KEY",
        ]
    )
    assert_no_secret(result, *bad.values(), "redis-secret-printed-never")


def test_missing_and_invalid_together() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in ("OPENAI_API_KEY", "SUPABASE_URL")}
    result = manage("check", env={**env, "JWT_SECRET_KEY": "short"})
    assert common_messages(result) == [
        ("common.E001", "Missing required environment variables: SUPABASE_URL, OPENAI_API_KEY."),
        ("common.E002", "JWT_SECRET_KEY must be at least 32 characters long (value not shown)."),
    ]
    assert result.returncode != 0
    assert_no_secret(result)


def test_valid_production_passes_check_and_prints_no_secret() -> None:
    result = manage("check", "--deploy", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert common_messages(result) == []
    assert_no_secret(result)


def test_development_with_nothing_set_passes() -> None:
    result = manage("check", env={})
    assert result.returncode == 0, result.stderr
    # Only the warning that no access token can be verified (no SUPABASE_URL, no JWT_SECRET_KEY).
    assert [code for code, _ in common_messages(result)] == ["common.W010"]
    assert "System check identified 1 issue (0 silenced)" in result.stderr


def test_debug_in_production_is_a_warning_not_an_error() -> None:
    result = manage("check", env={**PRODUCTION_ENV, "DEBUG": "true"})
    assert result.returncode == 0, result.stderr
    assert common_messages(result) == [("common.W001", "DEBUG is on with ENVIRONMENT=production.")]


# --------------------------------------------------------------------------- direct calls


def test_check_environment_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"ENVIRONMENT": "staging", "REDIS_URL": "http://x"})
    messages = checks.check_environment()
    assert [m.id for m in messages] == ["common.E001", "common.E002"]
    assert all(isinstance(m, Error) for m in messages)
    assert messages[0].msg.startswith("Missing required environment variables: DJANGO_SECRET_KEY, ALLOWED_HOSTS, ")
    assert "REDIS_URL" not in messages[0].msg
    assert messages[1].msg == "REDIS_URL has scheme 'http'; expected redis://, rediss:// or unix://."
    assert messages[1].hint is None


def test_check_environment_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, PRODUCTION_ENV)
    assert checks.check_environment() == []
    use_environment(monkeypatch, {})
    assert checks.check_environment() == []  # debug is expected in development


def test_check_environment_warns_about_debug_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {**PRODUCTION_ENV, "ENVIRONMENT": "staging", "DEBUG": "1"})
    [message] = checks.check_environment()
    assert isinstance(message, Warning)
    assert message.id == checks.W001_DEBUG_OUTSIDE_DEVELOPMENT
    assert message.msg == "DEBUG is on with ENVIRONMENT=staging."
    assert message.hint == "Set DEBUG=false outside development."


def test_check_app_settings_unknown_keys() -> None:
    assert checks.check_app_settings() == []
    with override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGTE": 1}):
        [message] = checks.check_app_settings()
    assert message.id == checks.E003_UNKNOWN_APP_SETTING
    assert message.msg == "VIDEOGEN_COMMON has unknown keys: DEFAULT_JOB_BUDGTE."
    assert "DEFAULT_JOB_BUDGET" in (message.hint or "")


def test_checks_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"ENVIRONMENT": "production"})
    ids = [m.id for m in run_checks(include_deployment_checks=True)]
    assert "common.E001" in ids
    with override_settings(VIDEOGEN_COMMON={"NOPE": 1}):
        assert "common.E003" in [m.id for m in run_checks()]


# --------------------------------------------------------------------------- values that used to crash or pass silently


def test_values_that_crashed_check_are_e002_lines_all_at_once() -> None:
    """Before: ValueError (IPv6), FileNotFoundError (SQLite folder) tracebacks from settings.py."""
    result = manage(
        "check",
        env={
            "REDIS_URL": "redis://:pw@[::1:6379/0",
            "SUPABASE_URL": "https://[bad",
            "DATABASE_URL": "sqlite:////proc/x/db.sqlite3",
            "LOG_LEVEL": "loud",
        },
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    messages = sorted(common_messages(result))
    assert [check_id for check_id, _ in messages] == ["common.E002"] * 4
    texts = [text for _, text in messages]
    assert texts[0].startswith("DATABASE_URL names an SQLite file whose folder cannot be created (/proc/x: ")
    assert texts[1:] == [
        "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR (case-insensitive), got 'loud'.",
        "REDIS_URL is not a valid URL (an IPv6 host goes in balanced [brackets]).",
        "SUPABASE_URL is not a valid URL (an IPv6 host goes in balanced [brackets]).",
    ]


def test_an_env_file_that_is_not_text_is_an_e002_line() -> None:
    result = manage("check", env={"VIDEOGEN_ENV_FILE": "/bin/true", "REDIS_URL": "http://x"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert sorted(common_messages(result)) == [
        ("common.E002", "REDIS_URL has scheme 'http'; expected redis://, rediss:// or unix://."),
        ("common.E002", "VIDEOGEN_ENV_FILE names /bin/true, which is not UTF-8 text; it was not read."),
    ]


def test_values_that_were_silently_accepted_are_e002_lines() -> None:
    """Before: REDIS_URL .../abc used DB 0, DATABASE_URL port 0 was shown and used as 5432, 99999 was 'not a number'."""
    result = manage(
        "check",
        env={
            "REDIS_URL": "redis://127.0.0.1:6379/abc",
            "DATABASE_URL": "postgres://videogen:Db-Pa55word-Secret@127.0.0.1:0/db",
            "SUPABASE_URL": "https://abc.supabase.co:99999",
        },
    )
    assert result.returncode != 0
    assert sorted(common_messages(result)) == [
        ("common.E002", "DATABASE_URL has port 0; expected a port from 1 to 65535."),
        ("common.E002", "REDIS_URL has a database number that is not a whole number (expected redis://host:6379/0)."),
        ("common.E002", "SUPABASE_URL has port 99999; expected a port from 1 to 65535."),
    ]
    assert_no_secret(result)


def test_check_messages_never_show_url_credentials() -> None:
    result = manage(
        "check",
        env={
            **PRODUCTION_ENV,
            "REDIS_URL": "http://cache:6379/0?password=Query-Redis-Secret",
            "DATABASE_URL": "postgres://u:Userinfo-Db-Secret@[::1/db?token=Query-Db-Secret",
        },
    )
    assert [check_id for check_id, _ in common_messages(result)] == ["common.E002", "common.E002"]
    assert_no_secret(result, "Query-Redis-Secret", "Userinfo-Db-Secret", "Query-Db-Secret")


def test_nul_in_env_file_and_unusable_log_file_are_e002_lines(tmp_path: Path) -> None:
    env_file = tmp_path / "nul.env"
    env_file.write_bytes(b"DATABASE_URL=sqlite:///tmp/a\x00b/db.sqlite3\n")
    result = manage("check", env={"VIDEOGEN_ENV_FILE": str(env_file), "LOG_FILE": "/proc/x/videogen.log"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert sorted(common_messages(result)) == [
        ("common.E002", "DATABASE_URL contains a NUL character."),
        ("common.E002", "LOG_FILE is in a folder that does not exist (/proc/x)."),
    ]
