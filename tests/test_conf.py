"""Tests for common.conf: environment parsing, validation, secrets, .env loading, app settings."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from common import conf
from common.conf import (
    DEFAULTS,
    REQUIRED_OUTSIDE_DEVELOPMENT,
    SECRET_VARIABLES,
    ConfigProblem,
    Environment,
    EnvSettings,
    Secret,
    app_settings,
    get_env_problems,
    get_settings,
    load_env_settings,
    parse_database_url,
    read_environment,
)
from common.errors import ConfigError
from tests.envtools import CONF_VARIABLES, PRODUCTION_ENV, SECRET_VALUES, fake_jwt, use_environment


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    """Each test parses its own environment; the next test starts from the real one again."""
    conf.reset_settings_cache()
    yield
    conf.reset_settings_cache()


def problems_of(environ: dict[str, str]) -> list[ConfigProblem]:
    return load_env_settings(environ, strict=False)[1]


def only_problem(environ: dict[str, str]) -> ConfigProblem:
    problems = problems_of(environ)
    assert len(problems) == 1, problems
    return problems[0]


def production(**overrides: str | None) -> dict[str, str]:
    env = dict(PRODUCTION_ENV)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def assert_no_secret(text: str) -> None:
    for secret in SECRET_VALUES:
        assert secret not in text


# --------------------------------------------------------------------------- development defaults


def test_development_needs_nothing() -> None:
    env, problems = load_env_settings({}, strict=False)
    assert problems == []
    assert env.environment is Environment.DEVELOPMENT
    assert env.debug is True
    assert env.log_level == "INFO"
    assert env.is_production is False
    assert env.uses_postgres is False
    assert env.uses_redis is False
    assert env.uses_supabase is False
    assert env.database_url.reveal() == f"sqlite:///{conf.DEFAULT_SQLITE_PATH}"
    assert env.django_secret_key.reveal() == conf.DEVELOPMENT_SECRET_KEY
    assert "testserver" in env.allowed_hosts
    assert env.openai_api_key is None
    assert env.log_file is None


def test_settings_are_frozen() -> None:
    env, _ = load_env_settings({})
    with pytest.raises(AttributeError):
        env.debug = False  # type: ignore[misc]


def test_blank_values_count_as_unset() -> None:
    env, problems = load_env_settings({"REDIS_URL": "   ", "LOG_LEVEL": "", "DEBUG": " "}, strict=False)
    assert problems == []
    assert env.redis_url is None
    assert env.log_level == "INFO"


def test_values_are_stripped() -> None:
    env, _ = load_env_settings({"LOG_LEVEL": "  warning \n", "OPENAI_API_KEY": " " + PRODUCTION_ENV["OPENAI_API_KEY"]})
    assert env.log_level == "WARNING"
    assert env.openai_api_key is not None
    assert env.openai_api_key.reveal() == PRODUCTION_ENV["OPENAI_API_KEY"]


# --------------------------------------------------------------------------- production


def test_complete_production_environment() -> None:
    env, problems = load_env_settings(PRODUCTION_ENV, strict=False)
    assert problems == []
    assert env.environment is Environment.PRODUCTION
    assert env.is_production
    assert env.debug is False  # off by default outside development
    assert env.uses_postgres
    assert env.uses_redis
    assert env.uses_supabase
    assert env.allowed_hosts == ("videogen.example.com", "api.videogen.example.com")
    assert env.supabase_url == "https://abcdefghijklmnop.supabase.co"  # trailing slash dropped
    assert env.supabase_service_key == Secret(PRODUCTION_ENV["SUPABASE_SERVICE_KEY"])


def test_production_with_nothing_set_is_one_error_naming_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_env_settings({"ENVIRONMENT": "production"})
    error = info.value
    assert error.problems == [
        "missing required environment variables: " + ", ".join(REQUIRED_OUTSIDE_DEVELOPMENT),
    ]
    for name in REQUIRED_OUTSIDE_DEVELOPMENT:
        assert name in error.message
    assert error.code == "CONFIG_ERROR"
    assert error.details == {"problems": error.problems}
    assert error.message.startswith("Invalid configuration:\n  - missing required environment variables: ")


def test_staging_is_as_strict_as_production() -> None:
    problems = problems_of({"ENVIRONMENT": "staging"})
    assert [p.variable for p in problems] == list(REQUIRED_OUTSIDE_DEVELOPMENT)
    assert all(p.missing and p.message == "is required when ENVIRONMENT=staging" for p in problems)


def test_one_missing_variable_is_named_alone() -> None:
    problem = only_problem(production(OPENAI_API_KEY=None))
    assert problem == ConfigProblem("OPENAI_API_KEY", "is required when ENVIRONMENT=production", missing=True)


def test_short_jwt_secret_names_exactly_that_problem() -> None:
    short = "too-short-secret-0123456789"
    with pytest.raises(ConfigError) as info:
        load_env_settings(production(JWT_SECRET_KEY=short))
    assert info.value.problems == ["JWT_SECRET_KEY: must be at least 32 characters long (value not shown)"]
    assert short not in str(info.value)
    assert short not in repr(info.value.to_dict())


def test_redis_http_url_names_exactly_that_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load_env_settings(production(REDIS_URL="http://x"))
    assert info.value.problems == ["REDIS_URL: has scheme 'http'; expected redis://, rediss:// or unix://"]


def test_every_problem_reported_at_once_without_secret_values() -> None:
    bad = {
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "verbose",
        "DEBUG": "perhaps",
        "DJANGO_SECRET_KEY": "short-django-secret-value",
        "ALLOWED_HOSTS": " , ",
        "DATABASE_URL": "sqlite:///prod.db",
        "REDIS_URL": "http://cache.example.com",
        "SUPABASE_URL": "http://abc.supabase.co",
        "SUPABASE_SERVICE_KEY": "service-key-secret-but-wrong-shape",
        "SUPABASE_ANON_KEY": "anon-key-secret-but-wrong-shape",
        "OPENAI_API_KEY": "openai-secret-wrong-shape-123456789",
        "REPLICATE_API_TOKEN": "replicate-secret-wrong-shape-12345",
        "JWT_SECRET_KEY": "jwt-short-secret",
    }
    with pytest.raises(ConfigError) as info:
        load_env_settings(bad)
    error = info.value
    named = [line.split(":", 1)[0] for line in error.problems]
    assert named == [
        "LOG_LEVEL",
        "DEBUG",
        "DJANGO_SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_KEY",
        "SUPABASE_ANON_KEY",
        "OPENAI_API_KEY",
        "REPLICATE_API_TOKEN",
        "JWT_SECRET_KEY",
    ]
    shown = str(error) + repr(error) + repr(error.to_dict())
    for name in ("DJANGO_SECRET_KEY", "SUPABASE_SERVICE_KEY", "SUPABASE_ANON_KEY", "OPENAI_API_KEY"):
        assert bad[name] not in shown
    for name in ("REPLICATE_API_TOKEN", "JWT_SECRET_KEY"):
        assert bad[name] not in shown


def test_missing_and_invalid_together() -> None:
    with pytest.raises(ConfigError) as info:
        load_env_settings(production(SUPABASE_URL=None, REDIS_URL=None, JWT_SECRET_KEY="short-secret-value"))
    assert info.value.problems == [
        "missing required environment variables: REDIS_URL, SUPABASE_URL",
        "JWT_SECRET_KEY: must be at least 32 characters long (value not shown)",
    ]


# --------------------------------------------------------------------------- enums


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("development", Environment.DEVELOPMENT),
        ("DEVELOPMENT", Environment.DEVELOPMENT),
        ("Staging", Environment.STAGING),
        ("PRODUCTION", Environment.PRODUCTION),
        (" production ", Environment.PRODUCTION),
    ],
)
def test_environment_is_case_insensitive(raw: str, expected: Environment) -> None:
    env, _ = load_env_settings({**PRODUCTION_ENV, "ENVIRONMENT": raw}, strict=False)
    assert env.environment is expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("debug", "DEBUG"), ("Info", "INFO"), ("WARNING", "WARNING"), ("error", "ERROR")]
)
def test_log_level_is_case_insensitive(raw: str, expected: str) -> None:
    assert load_env_settings({"LOG_LEVEL": raw})[0].log_level == expected


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("ENVIRONMENT", "prod", "must be one of development, staging, production (case-insensitive), got 'prod'"),
        ("LOG_LEVEL", "TRACE", "must be one of DEBUG, INFO, WARNING, ERROR (case-insensitive), got 'TRACE'"),
        ("LOG_LEVEL", "CRITICAL", "must be one of DEBUG, INFO, WARNING, ERROR (case-insensitive), got 'CRITICAL'"),
    ],
)
def test_bad_enum_values(name: str, raw: str, message: str) -> None:
    assert only_problem({name: raw}) == ConfigProblem(name, message)


def test_unknown_environment_falls_back_to_development_but_is_reported() -> None:
    env, problems = load_env_settings({"ENVIRONMENT": "qa"}, strict=False)
    assert env.environment is Environment.DEVELOPMENT
    assert [p.variable for p in problems] == ["ENVIRONMENT"]


# --------------------------------------------------------------------------- each variable


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("YES", True), ("on", True), ("false", False), ("0", False), ("No", False)],
)
def test_debug_values(raw: str, expected: bool) -> None:
    assert load_env_settings({"DEBUG": raw})[0].debug is expected
    assert load_env_settings({**PRODUCTION_ENV, "DEBUG": raw})[0].debug is expected


def test_debug_bad_value() -> None:
    assert only_problem({"DEBUG": "sometimes"}) == ConfigProblem("DEBUG", "must be true or false, got 'sometimes'")


@pytest.mark.parametrize(
    "value",
    [
        "short-but-production-django-key",
        "django-insecure-" + "x" * 60,
    ],
)
def test_django_secret_key_strict_outside_development(value: str) -> None:
    problem = only_problem(production(DJANGO_SECRET_KEY=value))
    assert problem.variable == "DJANGO_SECRET_KEY"
    assert value not in str(problem)
    # Development accepts any value as given.
    assert load_env_settings({"DJANGO_SECRET_KEY": value})[0].django_secret_key.reveal() == value


def test_allowed_hosts() -> None:
    env, _ = load_env_settings({"ALLOWED_HOSTS": "a.example.com,b.example.com , ,c"})
    assert env.allowed_hosts == ("a.example.com", "b.example.com", "c")
    problem = only_problem({"ALLOWED_HOSTS": ",,"})
    assert problem == ConfigProblem("ALLOWED_HOSTS", "must list at least one host name, separated by commas")


@pytest.mark.parametrize(
    "url",
    [
        "postgres://postgres@127.0.0.1:5432/test",
        "postgresql://u:p%40ss@db.example.com/videogen?sslmode=require",
        "sqlite:///relative.sqlite3",
        "sqlite:////tmp/absolute.sqlite3",
        "sqlite://:memory:",
    ],
)
def test_database_url_good_in_development(url: str) -> None:
    env, problems = load_env_settings({"DATABASE_URL": url}, strict=False)
    assert problems == []
    assert env.database_url.reveal() == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:p@h/db", "has scheme 'mysql'; expected postgres://, postgresql:// or sqlite://"),
        ("postgres://u@host:5432/", "names no database (expected postgres://user@host:5432/dbname)"),
        ("postgres:///videogen", "names no host (expected postgres://user@host:5432/dbname)"),
        ("postgres://u@host:port/db", "has a port that is not a number"),
        ("db.example.com/videogen", "has scheme ''; expected postgres://, postgresql:// or sqlite://"),
        ("sqlite:relative.db", "expected sqlite:///relative/path.sqlite3 or sqlite:////absolute/path.sqlite3"),
    ],
)
def test_database_url_bad(url: str, message: str) -> None:
    assert only_problem({"DATABASE_URL": url}) == ConfigProblem("DATABASE_URL", message)


def test_database_url_must_be_postgres_outside_development() -> None:
    problem = only_problem(production(DATABASE_URL="sqlite:///prod.sqlite3"))
    assert problem == ConfigProblem("DATABASE_URL", "must be a postgres:// or postgresql:// URL outside development")


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/2", "rediss://:pw@cache.example.com:6380/0", "unix:///var/run/redis.sock", "REDIS://h/0"],
)
def test_redis_url_good(url: str) -> None:
    env, problems = load_env_settings(production(REDIS_URL=url), strict=False)
    assert problems == []
    assert env.redis_url is not None
    assert env.redis_url.reveal() == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://x", "has scheme 'http'; expected redis://, rediss:// or unix://"),
        ("127.0.0.1:6379", "has scheme 'none'; expected redis://, rediss:// or unix://"),
        ("localhost", "has scheme 'none'; expected redis://, rediss:// or unix://"),
        ("redis://", "names no host (expected redis://host:6379/0)"),
        ("unix://", "names no socket path (expected unix:///path/to/redis.sock)"),
        ("redis://host:port/0", "has a port that is not a number"),
    ],
)
def test_redis_url_bad(url: str, message: str) -> None:
    assert only_problem({"REDIS_URL": url}) == ConfigProblem("REDIS_URL", message)


def test_supabase_url() -> None:
    assert load_env_settings({"SUPABASE_URL": "https://x.supabase.co"})[0].supabase_url == "https://x.supabase.co"
    # Local Supabase (supabase start) over http is fine in development only.
    assert load_env_settings({"SUPABASE_URL": "http://127.0.0.1:54321"})[0].supabase_url == "http://127.0.0.1:54321"
    expected = "has scheme 'http'; expected https:// (http:// only for localhost in development)"
    assert only_problem(production(SUPABASE_URL="http://127.0.0.1:54321")) == ConfigProblem("SUPABASE_URL", expected)
    assert only_problem({"SUPABASE_URL": "http://x.supabase.co"}) == ConfigProblem("SUPABASE_URL", expected)
    assert only_problem({"SUPABASE_URL": "https://"}) == ConfigProblem(
        "SUPABASE_URL", "names no host (expected https://<project>.supabase.co)"
    )
    assert only_problem({"SUPABASE_URL": "x.supabase.co"}).message.startswith("has scheme 'none'")


KEY_CASES = [
    # (variable, good values, bad values, expectation in the message)
    (
        "SUPABASE_SERVICE_KEY",
        [fake_jwt(), "sb_secret_abcdef123456"],
        ["sb_publishable_abc123456", "not-a-key-at-all", "a.b.c", "e30.e30.e30", "!!!.e30.sig", fake_jwt() + ".x"],
        "must be a JWT or an 'sb_secret_...' key (value not shown)",
    ),
    (
        "SUPABASE_ANON_KEY",
        [fake_jwt("anon"), "sb_publishable_abcdef123456"],
        ["sb_secret_abcdef123456", "anon", "bm90LWpzb24.e30.sig"],
        "must be a JWT or an 'sb_publishable_...' key (value not shown)",
    ),
    (
        "OPENAI_API_KEY",
        ["sk-" + "a" * 48, "sk-proj-" + "Ab_-9" * 8],
        ["pk-" + "a" * 48, "sk-short", "sk-" + "a" * 20 + "!"],
        "must look like 'sk-...' (value not shown)",
    ),
    (
        "REPLICATE_API_TOKEN",
        ["r8_" + "A1b2" * 10],
        ["r8_short", "r9_" + "a" * 30, "r8_" + "a" * 20 + "-"],
        "must look like 'r8_...' (value not shown)",
    ),
    (
        "JWT_SECRET_KEY",
        ["x" * 32, "a long passphrase with spaces in it!"],
        ["x" * 31, "short"],
        "must be at least 32 characters long (value not shown)",
    ),
]


@pytest.mark.parametrize(("name", "good", "bad", "message"), KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_key_formats(name: str, good: list[str], bad: list[str], message: str) -> None:
    for value in good:
        env, problems = load_env_settings(production(**{name: value}), strict=False)
        assert problems == [], (value, problems)
        secret = getattr(env, name.lower())
        assert isinstance(secret, Secret)
        assert secret.reveal() == value
    for value in bad:
        problem = only_problem(production(**{name: value}))
        assert problem == ConfigProblem(name, message), value
        assert value not in str(problem)
        # Development checks formats too: a wrong key is wrong everywhere.
        assert only_problem({name: value}).variable == name


def test_log_file() -> None:
    assert load_env_settings({"LOG_FILE": "/tmp/videogen.log"})[0].log_file == "/tmp/videogen.log"


# --------------------------------------------------------------------------- secrets never shown


def test_repr_and_str_mask_every_secret() -> None:
    env, _ = load_env_settings(PRODUCTION_ENV)
    for text in (repr(env), str(env)):
        assert_no_secret(text)
        assert "'**********'" in text
        assert "postgresql://videogen:***@db.example.com:6543/postgres?sslmode=require" in text
        assert "rediss://default:***@cache.example.com:6380/0" in text
        assert "environment='production'" in text
        assert text.startswith("EnvSettings(")


def test_secret_wrapper() -> None:
    secret = Secret("hunter2-hunter2")
    assert repr(secret) == str(secret) == "Secret('**********')"
    assert f"{secret}" == "Secret('**********')"
    assert secret.reveal() == "hunter2-hunter2"
    assert len(secret) == 15
    assert secret == Secret("hunter2-hunter2")
    assert secret != Secret("other")
    assert secret != "hunter2-hunter2"
    assert len({secret, Secret("hunter2-hunter2")}) == 1


def test_describe_never_shows_secrets() -> None:
    env, _ = load_env_settings(PRODUCTION_ENV)
    lines = env.describe()
    text = "\n".join(lines)
    assert_no_secret(text)
    assert lines == [
        "environment: production (debug=off, log level INFO)",
        "database:    PostgreSQL videogen@db.example.com:6543/postgres",
        "cache:       Redis at rediss://default:***@cache.example.com:6380/0",
        "storage:     Supabase Storage at https://abcdefghijklmnop.supabase.co",
        "API keys:    OPENAI_API_KEY, REPLICATE_API_TOKEN, JWT_SECRET_KEY",
    ]


def test_describe_development() -> None:
    env, _ = load_env_settings(
        {"DATABASE_URL": "postgres://db.local/videogen", "REDIS_URL": "redis://127.0.0.1:6379/2"}
    )
    assert env.describe() == [
        "environment: development (debug=on, log level INFO)",
        "database:    PostgreSQL @db.local:5432/videogen",
        "cache:       Redis at redis://127.0.0.1:6379/2",
        "storage:     local files",
        "API keys:    none configured",
    ]
    default, _ = load_env_settings({})
    assert default.describe()[1] == f"database:    SQLite at {conf.DEFAULT_SQLITE_PATH}"
    assert default.describe()[2] == "cache:       local memory"


def test_secret_values_for_redaction() -> None:
    env, _ = load_env_settings(PRODUCTION_ENV)
    assert sorted(env.secret_values()) == sorted(SECRET_VALUES)
    # Short values (and URLs without passwords) are not worth redacting: they would mangle ordinary text.
    dev, _ = load_env_settings(
        {"DATABASE_URL": "postgres://u:short@h/db", "REDIS_URL": "redis://:tiny@h/0", "JWT_SECRET_KEY": "j" * 32}
    )
    assert dev.secret_values() == [conf.DEVELOPMENT_SECRET_KEY, "j" * 32]


def test_secret_values_decode_percent_encoded_passwords() -> None:
    env, _ = load_env_settings({"DATABASE_URL": "postgres://u:pa%40ss-word-1@h/db"})
    assert "pa@ss-word-1" in env.secret_values()


# --------------------------------------------------------------------------- the process settings


def test_get_settings_parses_once_and_reset_reparses(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"LOG_LEVEL": "debug"})
    first = get_settings()
    assert first.log_level == "DEBUG"
    monkeypatch.setenv("LOG_LEVEL", "error")
    assert get_settings() is first
    conf.reset_settings_cache()
    assert get_settings().log_level == "ERROR"


def test_get_settings_raises_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"ENVIRONMENT": "production", "JWT_SECRET_KEY": "short-secret-abc"})
    with pytest.raises(ConfigError) as info:
        get_settings()
    assert "missing required environment variables: DJANGO_SECRET_KEY" in info.value.message
    assert "short-secret-abc" not in info.value.message
    assert [p.variable for p in get_env_problems()][-1] == "JWT_SECRET_KEY"


def test_lazy_settings_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"LOG_LEVEL": "warning"})
    assert conf.settings.log_level == "WARNING"
    assert repr(conf.settings).startswith("EnvSettings(")
    use_environment(monkeypatch, {"ENVIRONMENT": "production"})
    assert repr(conf.settings) == "<EnvSettings: invalid configuration>"
    with pytest.raises(ConfigError):
        conf.settings.debug  # noqa: B018


def test_env_file_is_loaded_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text(
        "\n".join(
            [
                "# a comment",
                "LOG_LEVEL=error",
                "OPENAI_API_KEY=sk-FromDotEnvFile0123456789abcdef",
                'SUPABASE_URL="https://fromfile.supabase.co"',
                "export REPLICATE_API_TOKEN=r8_FromDotEnvFile0123456789ab",
                "EMPTY_ONE",
            ]
        )
    )
    use_environment(monkeypatch, {"LOG_LEVEL": "debug"})
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", str(env_file))
    env = get_settings()
    assert env.log_level == "DEBUG"  # the real environment wins
    assert env.openai_api_key == Secret("sk-FromDotEnvFile0123456789abcdef")
    assert env.supabase_url == "https://fromfile.supabase.co"
    assert env.replicate_api_token == Secret("r8_FromDotEnvFile0123456789ab")
    merged = read_environment()
    assert "EMPTY_ONE" not in merged  # a bare name without a value is skipped


def test_env_file_default_is_dot_env_in_the_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=warning\n")
    use_environment(monkeypatch)
    monkeypatch.delenv("VIDEOGEN_ENV_FILE")
    monkeypatch.chdir(tmp_path)
    assert read_environment()["LOG_LEVEL"] == "warning"
    assert get_settings().log_level == "WARNING"


def test_explicit_env_file_and_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_environment(monkeypatch)
    explicit = tmp_path / "x.env"
    explicit.write_text("ENVIRONMENT=staging\n")
    assert read_environment(explicit)["ENVIRONMENT"] == "staging"
    assert "ENVIRONMENT" not in read_environment(tmp_path / "missing.env")


def test_env_file_problems_reported_like_environment_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ENVIRONMENT=production\nREDIS_URL=http://x\n")
    use_environment(monkeypatch)
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", str(env_file))
    problems = get_env_problems()
    assert [p.variable for p in problems if not p.missing] == ["REDIS_URL"]
    assert len([p for p in problems if p.missing]) == len(REQUIRED_OUTSIDE_DEVELOPMENT) - 1


# --------------------------------------------------------------------------- parse_database_url


def test_parse_database_url_postgres() -> None:
    assert parse_database_url(
        "postgresql://us%65r:p%40ss@db.example.com:6543/my%20db?sslmode=require&connect_timeout=5"
    ) == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "my db",
        "USER": "user",
        "PASSWORD": "p@ss",
        "HOST": "db.example.com",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require", "connect_timeout": "5"},
    }
    minimal = parse_database_url("postgres://localhost/videogen")
    assert minimal["USER"] == minimal["PASSWORD"] == minimal["PORT"] == ""
    assert minimal["OPTIONS"] == {}


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:///var/db.sqlite3", "var/db.sqlite3"),
        ("sqlite:////abs/db.sqlite3", "/abs/db.sqlite3"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLITE:///x.db", "x.db"),
    ],
)
def test_parse_database_url_sqlite(url: str, name: str) -> None:
    assert parse_database_url(url) == {"ENGINE": "django.db.backends.sqlite3", "NAME": name}


@pytest.mark.parametrize("url", ["mysql://h/db", "postgres://h/", "postgres:///db", "postgres://h:99999999/db", ""])
def test_parse_database_url_errors(url: str) -> None:
    with pytest.raises(ValueError):
        parse_database_url(url)


# --------------------------------------------------------------------------- app settings


def test_app_settings_defaults() -> None:
    assert Decimal("20.00") == app_settings.DEFAULT_JOB_BUDGET
    assert isinstance(app_settings.DEFAULT_JOB_BUDGET, Decimal)
    assert DEFAULTS["TEMP_DIR"] == app_settings.TEMP_DIR
    assert set(app_settings) == set(DEFAULTS)


def test_app_settings_follow_override_settings() -> None:
    with override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGET": Decimal("5.50")}):
        assert Decimal("5.50") == app_settings.DEFAULT_JOB_BUDGET
        assert DEFAULTS["TEMP_DIR"] == app_settings.TEMP_DIR  # untouched keys keep their defaults
        with override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGET": Decimal("1")}):
            assert Decimal("1") == app_settings.DEFAULT_JOB_BUDGET
        assert Decimal("5.50") == app_settings.DEFAULT_JOB_BUDGET
    assert Decimal("20.00") == app_settings.DEFAULT_JOB_BUDGET


def test_app_settings_read_at_call_time(settings: object) -> None:
    # pytest-django's ``settings`` fixture also sends setting_changed.
    settings.VIDEOGEN_COMMON = {"TEMP_MAX_AGE_HOURS": 1}  # type: ignore[attr-defined]
    assert app_settings.TEMP_MAX_AGE_HOURS == 1


def test_app_settings_unknown_keys_raise() -> None:
    with override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGTE": Decimal("1"), "ZZZ": 1}):
        assert app_settings.unknown_keys() == ["DEFAULT_JOB_BUDGTE", "ZZZ"]
        with pytest.raises(ImproperlyConfigured, match="VIDEOGEN_COMMON has unknown keys: DEFAULT_JOB_BUDGTE, ZZZ"):
            app_settings.DEFAULT_JOB_BUDGET  # noqa: B018
    assert Decimal("20.00") == app_settings.DEFAULT_JOB_BUDGET


def test_app_settings_invalid_attribute() -> None:
    with pytest.raises(AttributeError, match="Invalid VIDEOGEN_COMMON setting: 'NOT_A_KNOB'"):
        app_settings.NOT_A_KNOB  # noqa: B018
    with pytest.raises(AttributeError):
        app_settings._private  # noqa: B018


def test_app_settings_none_is_empty() -> None:
    with override_settings(VIDEOGEN_COMMON=None):
        assert app_settings.user_settings() == {}
        assert Decimal("20.00") == app_settings.DEFAULT_JOB_BUDGET


def test_other_setting_changes_keep_the_cache() -> None:
    app_settings.DEFAULT_JOB_BUDGET  # noqa: B018 - fill the cache
    cached = app_settings._merged
    with override_settings(DEBUG=True):
        assert app_settings._merged is cached


def test_env_settings_default_construction() -> None:
    assert EnvSettings().environment is Environment.DEVELOPMENT
    assert str(ConfigProblem("X", "is wrong")) == "X: is wrong"


# --------------------------------------------------------------------------- .env.example


class _RecordingEnviron(Mapping[str, str]):
    """An environment mapping that remembers every name looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


@pytest.mark.parametrize("environ", [{}, PRODUCTION_ENV], ids=["development", "production"])
def test_env_tools_clear_every_variable_conf_reads(environ: dict[str, str]) -> None:
    # tests.envtools keeps its own list on purpose (conf has no list of every variable it reads);
    # this catches a new variable that the test helpers would not clear from a developer's shell.
    recording = _RecordingEnviron(dict(environ))
    load_env_settings(recording, strict=False)
    assert recording.read
    assert recording.read <= set(CONF_VARIABLES)
    assert set(REQUIRED_OUTSIDE_DEVELOPMENT) | SECRET_VARIABLES <= set(CONF_VARIABLES)


def test_env_example_documents_every_variable_and_loads_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    text = example.read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert set(CONF_VARIABLES) <= documented
    assert {"VIDEOGEN_ENV_FILE", "VIDEOGEN_TEST_DB_NAME"} <= documented
    for name in REQUIRED_OUTSIDE_DEVELOPMENT:
        block = text.split(f"{name}=")[0].rsplit("\n\n", 1)[-1]
        assert "Required outside development" in block, name
    # Copied as is to .env, it is a valid development configuration.
    use_environment(monkeypatch)
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", str(example))
    assert get_env_problems() == []
    assert get_settings().environment is Environment.DEVELOPMENT


def test_get_secret_values_covers_invalid_values_longest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(
        monkeypatch,
        {
            "OPENAI_API_KEY": "unknown-shape-key-1234",  # invalid, still a secret
            "JWT_SECRET_KEY": "unknown-shape-key-1234-and-longer-than-32",  # contains the other one
            "REDIS_URL": "ftp://:redis-password-1@h",  # invalid scheme, password still redacted
            "DATABASE_URL": "mysql://u:db-password-1@h/x",
            "REPLICATE_API_TOKEN": "short",
        },
    )
    assert [p.variable for p in get_env_problems()] == [
        "DATABASE_URL",
        "REDIS_URL",
        "OPENAI_API_KEY",
        "REPLICATE_API_TOKEN",
    ]
    values = conf.get_secret_values()
    assert values.index("unknown-shape-key-1234-and-longer-than-32") < values.index("unknown-shape-key-1234")
    assert set(values) == {
        "unknown-shape-key-1234-and-longer-than-32",
        "unknown-shape-key-1234",
        "redis-password-1",
        "db-password-1",
        conf.DEVELOPMENT_SECRET_KEY,
    }
    assert [len(v) for v in values] == sorted((len(v) for v in values), reverse=True)
    monkeypatch.setenv("OPENAI_API_KEY", "changed-but-cached")
    assert "changed-but-cached" not in conf.get_secret_values()
    conf.reset_settings_cache()
    assert "changed-but-cached" in conf.get_secret_values()


def test_secret_values_cover_the_percent_encoded_password_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # A log line may carry the URL as configured, where the password is still percent-encoded.
    use_environment(monkeypatch, {"DATABASE_URL": "postgres://u:p%40ss%22word-long@h/db"})
    assert {"p%40ss%22word-long", 'p@ss"word-long'} <= set(conf.get_secret_values())
    env, _ = load_env_settings({"DATABASE_URL": "postgres://u:p%40ss%22word-long@h/db"})
    assert {"p%40ss%22word-long", 'p@ss"word-long'} <= set(env.secret_values())


# --------------------------------------------------------------------------- URL credentials (every form masked)

# (URL, the credential it carries, the URL as shown)
CREDENTIAL_URLS = [
    ("redis://127.0.0.1:6379/13?password=S3cret", "S3cret", "redis://127.0.0.1:6379/13?password=***"),
    ("rediss://default:Pa55-w0rd@cache:6380/0", "Pa55-w0rd", "rediss://default:***@cache:6380/0"),
    ("redis://:p@ss@cache:6379/0", "p@ss", "redis://:***@cache:6379/0"),
    ("redis://cache:6379/0?db=2&token=tok-value-1", "tok-value-1", "redis://cache:6379/0?db=2&token=***"),
    ("redis://cache/0?key=k3y-value&x=1", "k3y-value", "redis://cache/0?key=***&x=1"),
    ("redis://cache/0?access_token=at-value", "at-value", "redis://cache/0?access_token=***"),
    ("redis://cache/0?API-Key=ak-value", "ak-value", "redis://cache/0?API-Key=***"),
    ("redis://cache/0?client_secret=cs-value", "cs-value", "redis://cache/0?client_secret=***"),
    ("redis://cache/0?sig=sig-value", "sig-value", "redis://cache/0?sig=***"),
    ("redis://cache/0?X-Amz-Signature=amz-value", "amz-value", "redis://cache/0?X-Amz-Signature=***"),
    ("redis://cache/0?sslpassword=ssl-value", "ssl-value", "redis://cache/0?sslpassword=***"),
    ("redis://u:pw1@cache/0?password=pw2#frag", "pw2", "redis://u:***@cache/0?password=***#frag"),
    ("unix:///run/redis.sock?db=1&password=sock-pw", "sock-pw", "unix:///run/redis.sock?db=1&password=***"),
]


@pytest.mark.parametrize(("url", "credential", "shown"), CREDENTIAL_URLS)
def test_mask_url_hides_every_credential_form(url: str, credential: str, shown: str) -> None:
    assert conf.mask_url(url) == shown
    assert credential not in conf.mask_url(url)


def test_mask_url_keeps_ordinary_parameters_and_never_raises() -> None:
    plain = "redis://cache:6379/0?db=2&socket_timeout=5&keyword=x&monkey=y&token_type=z"
    assert conf.mask_url(plain) == plain
    assert conf.mask_url("redis://:pw@[::1:6379/0") == "redis://:***@[::1:6379/0"  # not a valid URL: still masked
    assert conf.mask_url("") == ""


@pytest.mark.parametrize(("url", "credential", "shown"), CREDENTIAL_URLS)
def test_url_credentials_never_appear_in_repr_or_describe(url: str, credential: str, shown: str) -> None:
    env, problems = load_env_settings({"REDIS_URL": url}, strict=False)
    assert problems == []
    text = repr(env) + str(env) + "\n".join(env.describe())
    assert credential not in text
    assert f"cache:       Redis at {shown}" in env.describe()


def test_database_and_supabase_url_credentials_never_appear() -> None:
    env, problems = load_env_settings(
        production(
            DATABASE_URL="postgresql://videogen@db.example.com:5432/postgres?password=Query-Db-Secret&sslmode=require",
            SUPABASE_URL="https://abc.supabase.co?apikey=Query-Supabase-Secret",
        ),
        strict=False,
    )
    assert problems == []
    text = repr(env) + "\n".join(env.describe())
    assert "Query-Db-Secret" not in text
    assert "Query-Supabase-Secret" not in text
    assert "storage:     Supabase Storage at https://abc.supabase.co?apikey=***" in env.describe()
    assert {"Query-Db-Secret", "Query-Supabase-Secret"} <= set(env.secret_values())


def test_query_credentials_are_redacted_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(
        monkeypatch,
        {"REDIS_URL": "redis://127.0.0.1:6379/13?password=Query%2DSecret-1", "DATABASE_URL": "postgres://h/db?token=t"},
    )
    values = conf.get_secret_values()
    assert {"Query%2DSecret-1", "Query-Secret-1"} <= set(values)
    assert "t" not in values  # short values are left to the URL-shape redaction of the logs
    # An unparseable URL still yields its password (a crash here would turn all redaction off).
    use_environment(monkeypatch, {"REDIS_URL": "redis://:long-enough-pw@[::1:6379/0"})
    assert "long-enough-pw" in conf.get_secret_values()


# --------------------------------------------------------------------------- malformed URLs, ports, files


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REDIS_URL", "redis://:pw@[::1:6379/0", "is not a valid URL (an IPv6 host goes in balanced [brackets])"),
        ("SUPABASE_URL", "https://[bad", "is not a valid URL (an IPv6 host goes in balanced [brackets])"),
        ("SUPABASE_URL", "https://[bad]/x", "is not a valid URL (an IPv6 host goes in balanced [brackets])"),
        ("DATABASE_URL", "postgres://u:pw@[::1/db", "is not a valid URL (an IPv6 host goes in balanced [brackets])"),
        (
            "REDIS_URL",
            "redis://127.0.0.1:6379/abc",
            "has a database number that is not a whole number (expected redis://host:6379/0)",
        ),
        (
            "REDIS_URL",
            "redis://127.0.0.1:6379/-1",
            "has a database number that is not a whole number (expected redis://host:6379/0)",
        ),
        (
            "REDIS_URL",
            "unix:///run/redis.sock?db=x",
            "has a database number that is not a whole number (expected redis://host:6379/0)",
        ),
        ("REDIS_URL", "redis://127.0.0.1:0/0", "has port 0; expected a port from 1 to 65535"),
        ("REDIS_URL", "redis://127.0.0.1:65536/0", "has port 65536; expected a port from 1 to 65535"),
        ("REDIS_URL", "redis://127.0.0.1:+5/0", "has a port that is not a number"),
        ("DATABASE_URL", "postgres://u@127.0.0.1:0/db", "has port 0; expected a port from 1 to 65535"),
        ("DATABASE_URL", "postgres://u@127.0.0.1:99999/db", "has port 99999; expected a port from 1 to 65535"),
        ("DATABASE_URL", "postgres://u@127.0.0.1:\u0663/db", "has a port that is not a number"),
        ("SUPABASE_URL", "https://abc.supabase.co:0", "has port 0; expected a port from 1 to 65535"),
    ],
)
def test_malformed_urls_are_problems_not_crashes(name: str, value: str, message: str) -> None:
    assert only_problem({name: value}) == ConfigProblem(name, message)


@pytest.mark.parametrize(
    "url", ["redis://h:6379", "redis://h:6379/", "redis://h:6379/15", "redis://h/0?db=3", "unix:///s.sock?db=2"]
)
def test_redis_database_numbers_accepted(url: str) -> None:
    assert problems_of({"REDIS_URL": url}) == []


def test_parse_database_url_refuses_port_zero_and_bad_hosts() -> None:
    with pytest.raises(ValueError, match="has port 0"):
        parse_database_url("postgres://u@127.0.0.1:0/db")
    with pytest.raises(ValueError, match="is not a valid URL"):
        parse_database_url("postgres://u@[::1/db")
    assert parse_database_url("postgres://u@[::1]:6543/db")["HOST"] == "::1"


def test_sqlite_folder_that_cannot_be_created_is_a_problem(tmp_path: Path) -> None:
    problem = only_problem({"DATABASE_URL": "sqlite:////proc/x/db.sqlite3"})
    assert problem.variable == "DATABASE_URL"
    assert problem.message.startswith("names an SQLite file whose folder cannot be created (/proc/x: ")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert only_problem({"DATABASE_URL": f"sqlite:///{blocker}/db.sqlite3"}).variable == "DATABASE_URL"
    # A folder that can be created is created (what videogen/settings.py would do next anyway).
    assert problems_of({"DATABASE_URL": f"sqlite:///{tmp_path}/new/db.sqlite3"}) == []
    assert (tmp_path / "new").is_dir()


def test_env_file_that_is_not_text_is_a_problem_and_the_rest_is_still_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"LOG_LEVEL=debug\n\xd0\xff\xfe\x00binary")
    use_environment(monkeypatch, {"REDIS_URL": "http://x"})
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", str(binary))
    problems = get_env_problems()
    assert [p.variable for p in problems] == ["VIDEOGEN_ENV_FILE", "REDIS_URL"]
    assert problems[0].message == f"names {binary}, which is not UTF-8 text; it was not read"
    assert read_environment()["REDIS_URL"] == "http://x"
    assert "LOG_LEVEL" not in read_environment()
    with pytest.raises(ConfigError, match="VIDEOGEN_ENV_FILE: names"):
        get_settings()


def test_nul_in_an_env_file_value_is_a_problem_not_a_crash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "nul.env"
    env_file.write_bytes(
        b"ENVIRONMENT=production\nDATABASE_URL=sqlite:///tmp/a\x00b/db.sqlite3\nLOG_FILE=/tmp/x\x00y\n"
        b"JWT_SECRET_KEY=jwt-secret\x00-value-that-is-long-enough-0123456789\n"
    )
    use_environment(monkeypatch)
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", str(env_file))
    problems = get_env_problems()
    assert [(p.variable, p.message) for p in problems if not p.missing] == [
        ("DATABASE_URL", "contains a NUL character"),
        ("JWT_SECRET_KEY", "contains a NUL character"),
        ("LOG_FILE", "contains a NUL character"),
    ]
    missing = [p.variable for p in problems if p.missing]
    assert "DATABASE_URL" not in missing  # set, though unusable: reported once, as invalid
    assert "REDIS_URL" in missing


def test_log_file_that_cannot_be_written_is_a_problem(tmp_path: Path) -> None:
    """Before: accepted, then every record failed with "--- Logging error ---" on stderr."""
    assert only_problem({"LOG_FILE": str(tmp_path)}) == ConfigProblem(
        "LOG_FILE", f"names a folder ({tmp_path}); expected a file path"
    )
    assert only_problem({"LOG_FILE": "/proc/x/videogen.log"}) == ConfigProblem(
        "LOG_FILE", "is in a folder that does not exist (/proc/x)"
    )
    assert load_env_settings({"LOG_FILE": str(tmp_path / "videogen.log")})[0].log_file == str(tmp_path / "videogen.log")
