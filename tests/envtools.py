"""Environment helpers for the settings, checks and command tests (not fixtures: plain data and functions)."""

from __future__ import annotations

import base64
import json
import os

import pytest

from common import env
from common.env import ConfigProblem, load_env_settings

# Every variable common.env reads: the rows of its table (tests/test_env.py checks it reads no other).
CONF_VARIABLES = tuple(variable.name for variable in env.VARIABLES)


def b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def fake_jwt(role: str = "service_role") -> str:
    """A JWT-shaped string (header with ``alg``); the signature is not real."""
    return (
        f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url({'role': role, 'iss': 'supabase'})}.c2lnbmF0dXJlLW5vdC1yZWFs"
    )


# A complete, valid production environment. Every secret is a distinctive fake so tests can
# assert that none of them ever appears in output.
PRODUCTION_ENV: dict[str, str] = {
    "ENVIRONMENT": "production",
    "DJANGO_SECRET_KEY": "prod-django-secret-6f1c9a0b7e2d4c8a9b3f5e1d7c2a8b4f6e0d9c3b",
    "ALLOWED_HOSTS": "videogen.example.com, api.videogen.example.com",
    "DATABASE_URL": "postgresql://videogen:Db-Pa55word-Secret@db.example.com:6543/postgres?sslmode=require",
    "REDIS_URL": "rediss://default:Redis-Pa55word-Secret@cache.example.com:6380/0",
    "SUPABASE_URL": "https://abcdefghijklmnop.supabase.co/",
    "SUPABASE_SERVICE_KEY": fake_jwt("service_role"),
    "SUPABASE_ANON_KEY": "sb_publishable_AnonKeySecretValue123456",
    "OPENAI_API_KEY": "sk-proj-OpenAiSecretValue0123456789abcdef",
    "REPLICATE_API_TOKEN": "r8_ReplicateSecretValue0123456789ab",
    "JWT_SECRET_KEY": "jwt-secret-value-that-is-long-enough-0123456789",
}

SECRET_VALUES = (
    PRODUCTION_ENV["DJANGO_SECRET_KEY"],
    "Db-Pa55word-Secret",
    "Redis-Pa55word-Secret",
    PRODUCTION_ENV["SUPABASE_SERVICE_KEY"],
    PRODUCTION_ENV["SUPABASE_ANON_KEY"],
    PRODUCTION_ENV["OPENAI_API_KEY"],
    PRODUCTION_ENV["REPLICATE_API_TOKEN"],
    PRODUCTION_ENV["JWT_SECRET_KEY"],
)


def use_environment(monkeypatch: pytest.MonkeyPatch, values: dict[str, str] | None = None) -> None:
    """Replace every configuration variable of this process by ``values`` (no .env) and drop the parse cache."""
    for name in CONF_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", os.devnull)
    for name, value in (values or {}).items():
        monkeypatch.setenv(name, value)
    env.reset_settings_cache()


def subprocess_env(values: dict[str, str]) -> dict[str, str]:
    """The current environment without any configuration variable, plus ``values``, for a child process."""
    env = {k: v for k, v in os.environ.items() if k not in CONF_VARIABLES and k != "VIDEOGEN_TEST_DB_NAME"}
    env["VIDEOGEN_ENV_FILE"] = os.devnull
    env.update(values)
    return env


def production(**overrides: str | None) -> dict[str, str]:
    """:data:`PRODUCTION_ENV` with some variables replaced (a value) or removed (``None``)."""
    environ = dict(PRODUCTION_ENV)
    for name, value in overrides.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ


def problems_of(environ: dict[str, str]) -> list[ConfigProblem]:
    """The problems ``environ`` has (parsed leniently)."""
    return load_env_settings(environ, strict=False)[1]


def only_problem(environ: dict[str, str]) -> ConfigProblem:
    """The one problem ``environ`` has (fails the test when there are more or none)."""
    problems = problems_of(environ)
    assert len(problems) == 1, problems
    return problems[0]


def assert_no_secret(text: str) -> None:
    """Fail when ``text`` contains any secret of :data:`PRODUCTION_ENV`."""
    for secret in SECRET_VALUES:
        assert secret not in text
