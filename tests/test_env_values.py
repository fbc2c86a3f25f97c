"""Tests for common.env_values: what each variable accepts, and what each refusal says (never the value).

The values go through :func:`common.env.load_env_settings`, as a deployment's would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.env import ConfigProblem, Environment, Secret, load_env_settings, parse_database_url
from tests.envtools import PRODUCTION_ENV, fake_jwt, only_problem, problems_of, production

pytestmark = pytest.mark.usefixtures("env_settings")


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


def test_log_file_that_cannot_be_written_is_a_problem(tmp_path: Path) -> None:
    """Before: accepted, then every record failed with "--- Logging error ---" on stderr."""
    assert only_problem({"LOG_FILE": str(tmp_path)}) == ConfigProblem(
        "LOG_FILE", f"names a folder ({tmp_path}); expected a file path"
    )
    assert only_problem({"LOG_FILE": "/proc/x/videogen.log"}) == ConfigProblem(
        "LOG_FILE", "is in a folder that does not exist (/proc/x)"
    )
    assert load_env_settings({"LOG_FILE": str(tmp_path / "videogen.log")})[0].log_file == str(tmp_path / "videogen.log")


@pytest.mark.parametrize(("value", "size"), [("9" * 5000, None), ("0" * 5000 + "7", 7), ("0010", 10)])
def test_a_pool_size_of_thousands_of_digits_is_a_problem_not_a_crash(value: str, size: int | None) -> None:
    """Before: int() raised "Exceeds the limit (4300 digits)" out of load_env_settings."""
    env, problems = load_env_settings({"DATABASE_POOL_SIZE": value}, strict=False)
    if size is None:
        assert [p.message[:58] for p in problems] == ["must be a whole number of connections from 1 to 1000, got "]
    else:
        assert (problems, env.database_pool_size) == ([], size)
