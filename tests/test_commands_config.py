"""Tests for ``manage.py describe_config``: the configuration in effect, never a secret."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from common import conf, env
from tests.envtools import PRODUCTION_ENV, SECRET_VALUES, subprocess_env, use_environment

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    env.reset_settings_cache()
    yield
    env.reset_settings_cache()


def describe() -> list[str]:
    out = io.StringIO()
    call_command("describe_config", stdout=out, no_color=True)
    return out.getvalue().splitlines()


def test_development_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch)
    lines = describe()
    assert lines[0] == "videogen configuration"
    assert lines[1:] == [
        "  environment: development (debug=on, log level INFO)",
        f"  database:    SQLite at {env.DEFAULT_SQLITE_PATH}",
        "  cache:       local memory",
        "  storage:     local files",
        "  API keys:    none configured",
        "  tokens:      none configured: bearer tokens are refused (set SUPABASE_URL or JWT_SECRET_KEY)",
        "  budget:      $20.00 per job by default",
        f"  temp files:  {conf.DEFAULTS['TEMP_DIR']}",
    ]


def test_production_never_prints_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, PRODUCTION_ENV)
    text = "\n".join(describe())
    for secret in SECRET_VALUES:
        assert secret not in text
    assert "environment: production (debug=off, log level INFO)" in text
    assert "PostgreSQL videogen@db.example.com:6543/postgres" in text
    assert "Redis at rediss://default:***@cache.example.com:6380/0" in text
    assert "API keys:    OPENAI_API_KEY, REPLICATE_API_TOKEN, JWT_SECRET_KEY" in text


def test_app_settings_follow_override_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_environment(monkeypatch)
    with override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGET": Decimal("7.50"), "TEMP_DIR": tmp_path}):
        lines = describe()
    assert "  budget:      $7.50 per job by default" in lines
    assert f"  temp files:  {tmp_path}" in lines


def test_invalid_environment_is_a_command_error(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {**PRODUCTION_ENV, "JWT_SECRET_KEY": "short-jwt-secret-1"})
    with pytest.raises(CommandError) as info:
        describe()
    assert str(info.value) == (
        "Invalid configuration:\n  - JWT_SECRET_KEY: must be at least 32 characters long (value not shown)"
    )
    assert info.value.__cause__ is None  # "from None": no chained traceback for the user


def test_in_a_real_process_without_traceback_or_secret() -> None:
    ok = subprocess.run(
        [sys.executable, "manage.py", "describe_config"],
        cwd=ROOT,
        env=subprocess_env(PRODUCTION_ENV),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "videogen configuration" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "manage.py", "describe_config"],
        cwd=ROOT,
        env=subprocess_env({"ENVIRONMENT": "production", "OPENAI_API_KEY": "sk-wrong!"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Like every command, it runs the system checks first, which report the same problems.
    assert bad.returncode == 1
    assert bad.stderr.startswith("SystemCheckError: System check identified some issues:")
    assert "(common.E001) Missing required environment variables: DJANGO_SECRET_KEY" in bad.stderr
    assert "(common.E002) OPENAI_API_KEY must look like 'sk-...' (value not shown)." in bad.stderr
    assert "Traceback" not in bad.stderr
    for result in (ok, bad):
        for secret in (*SECRET_VALUES, "sk-wrong!"):
            assert secret not in result.stdout + result.stderr


def test_url_credentials_in_any_form_are_masked_in_a_real_process() -> None:
    """Before: REDIS_URL=...?password=S3cret was printed verbatim."""
    result = subprocess.run(
        [sys.executable, "manage.py", "describe_config"],
        cwd=ROOT,
        env=subprocess_env(
            {
                "REDIS_URL": "redis://127.0.0.1:6379/13?password=S3cret",
                "DATABASE_URL": "postgres://videogen@127.0.0.1:5432/videogen?password=Db-Query-Secret",
                "SUPABASE_URL": "http://127.0.0.1:54321?apikey=Supabase-Query-Secret",
                "SUPABASE_SERVICE_KEY": "sb_secret_ServiceKeyValue0123",
            }
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for secret in ("S3cret", "Db-Query-Secret", "Supabase-Query-Secret", "sb_secret_ServiceKeyValue0123"):
        assert secret not in output
    assert "  cache:       Redis at redis://127.0.0.1:6379/13?password=***" in result.stdout
    assert "  storage:     Supabase Storage at http://127.0.0.1:54321?apikey=***" in result.stdout
