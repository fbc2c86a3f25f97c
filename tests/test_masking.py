"""Tests for common.masking and the secrets of common.env: never shown, always redacted.

``Secret`` and ``mask_url`` directly; then every output of the settings (``repr``, ``describe``, problems)
and the values the logs redact (``get_secret_values``), valid or not.
"""

from __future__ import annotations

import pytest

from common.env import (
    DEVELOPMENT_SECRET_KEY,
    Secret,
    get_env_problems,
    get_secret_values,
    load_env_settings,
    reset_settings_cache,
)
from common.masking import mask_url
from tests.envtools import PRODUCTION_ENV, SECRET_VALUES, assert_no_secret, production, use_environment

pytestmark = pytest.mark.usefixtures("env_settings")


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


def test_secret_values_for_redaction() -> None:
    env, _ = load_env_settings(PRODUCTION_ENV)
    assert sorted(env.secret_values()) == sorted(SECRET_VALUES)
    # Short values (and URLs without passwords) are not worth redacting: they would mangle ordinary text.
    dev, _ = load_env_settings(
        {"DATABASE_URL": "postgres://u:short@h/db", "REDIS_URL": "redis://:tiny@h/0", "JWT_SECRET_KEY": "j" * 32}
    )
    assert dev.secret_values() == [DEVELOPMENT_SECRET_KEY, "j" * 32]


def test_secret_values_decode_percent_encoded_passwords() -> None:
    env, _ = load_env_settings({"DATABASE_URL": "postgres://u:pa%40ss-word-1@h/db"})
    assert "pa@ss-word-1" in env.secret_values()


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
    values = get_secret_values()
    assert values.index("unknown-shape-key-1234-and-longer-than-32") < values.index("unknown-shape-key-1234")
    assert set(values) == {
        "unknown-shape-key-1234-and-longer-than-32",
        "unknown-shape-key-1234",
        "redis-password-1",
        "db-password-1",
        DEVELOPMENT_SECRET_KEY,
    }
    assert [len(v) for v in values] == sorted((len(v) for v in values), reverse=True)
    monkeypatch.setenv("OPENAI_API_KEY", "changed-but-cached")
    assert "changed-but-cached" not in get_secret_values()
    reset_settings_cache()
    assert "changed-but-cached" in get_secret_values()


def test_secret_values_cover_the_percent_encoded_password_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # A log line may carry the URL as configured, where the password is still percent-encoded.
    use_environment(monkeypatch, {"DATABASE_URL": "postgres://u:p%40ss%22word-long@h/db"})
    assert {"p%40ss%22word-long", 'p@ss"word-long'} <= set(get_secret_values())
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
    assert mask_url(url) == shown
    assert credential not in mask_url(url)


def test_mask_url_keeps_ordinary_parameters_and_never_raises() -> None:
    plain = "redis://cache:6379/0?db=2&socket_timeout=5&keyword=x&monkey=y&token_type=z"
    assert mask_url(plain) == plain
    assert mask_url("redis://:pw@[::1:6379/0") == "redis://:***@[::1:6379/0"  # not a valid URL: still masked
    assert mask_url("") == ""


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
    values = get_secret_values()
    assert {"Query%2DSecret-1", "Query-Secret-1"} <= set(values)
    assert "t" not in values  # short values are left to the URL-shape redaction of the logs
    # An unparseable URL still yields its password (a crash here would turn all redaction off).
    use_environment(monkeypatch, {"REDIS_URL": "redis://:long-enough-pw@[::1:6379/0"})
    assert "long-enough-pw" in get_secret_values()
