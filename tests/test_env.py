"""Tests for common.env: the table of variables, development and production, every problem at once, .env files.

What each kind of value accepts and refuses is in tests/test_env_values.py; secrets in tests/test_masking.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from common.env import (
    DEFAULT_SQLITE_PATH,
    DEVELOPMENT_SECRET_KEY,
    REQUIRED_OUTSIDE_DEVELOPMENT,
    VARIABLES,
    ConfigProblem,
    Environment,
    Secret,
    Variable,
    get_env_problems,
    get_secret_values,
    get_settings,
    load_env_settings,
    read_environment,
    reset_settings_cache,
)
from common.env import settings as lazy_settings
from common.errors import ConfigError
from tests.envtools import (
    CONF_VARIABLES,
    PRODUCTION_ENV,
    only_problem,
    problems_of,
    production,
    use_environment,
)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("env_settings")  # each test parses its own environment


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
    assert env.database_url.reveal() == f"sqlite:///{DEFAULT_SQLITE_PATH}"
    assert env.django_secret_key.reveal() == DEVELOPMENT_SECRET_KEY
    assert "testserver" in env.allowed_hosts
    assert env.openai_api_key is None
    assert env.log_file is None


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
    assert default.describe()[1] == f"database:    SQLite at {DEFAULT_SQLITE_PATH}"
    assert default.describe()[2] == "cache:       local memory"


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


# --------------------------------------------------------------------------- the process settings


def test_get_settings_parses_once_and_reset_reparses(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"LOG_LEVEL": "debug"})
    first = get_settings()
    assert first.log_level == "DEBUG"
    monkeypatch.setenv("LOG_LEVEL", "error")
    assert get_settings() is first
    reset_settings_cache()
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
    assert lazy_settings.log_level == "WARNING"
    assert repr(lazy_settings).startswith("EnvSettings(")
    use_environment(monkeypatch, {"ENVIRONMENT": "production"})
    assert repr(lazy_settings) == "<EnvSettings: invalid configuration>"
    with pytest.raises(ConfigError):
        lazy_settings.debug  # noqa: B018


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


def test_a_misspelled_env_file_is_a_problem_not_a_silent_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_environment(monkeypatch)
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", str(tmp_path / "prod.evn"))
    reset_settings_cache()
    problems = get_env_problems()
    assert [(p.variable, p.message) for p in problems] == [
        ("VIDEOGEN_ENV_FILE", f"names {tmp_path / 'prod.evn'}, which does not exist; nothing was read")
    ]
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", os.devnull)  # the documented way to read no file
    reset_settings_cache()
    assert get_env_problems() == []


def test_env_file_problems_reported_like_environment_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ENVIRONMENT=production\nREDIS_URL=http://x\n")
    use_environment(monkeypatch)
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", str(env_file))
    problems = get_env_problems()
    assert [p.variable for p in problems if not p.missing] == ["REDIS_URL"]
    assert len([p for p in problems if p.missing]) == len(REQUIRED_OUTSIDE_DEVELOPMENT) - 1


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
def test_the_loader_reads_exactly_the_variables_of_the_table(environ: dict[str, str]) -> None:
    # A variable read outside the table would escape the README check below, the secret redaction
    # and the test helpers that clear the table's variables from a developer's shell.
    recording = _RecordingEnviron(dict(environ))
    load_env_settings(recording, strict=False)
    assert recording.read == {variable.name for variable in VARIABLES}


def readme_environment_table() -> dict[str, list[str]]:
    """The README's environment-variable table: variable -> [format, default, required] cells."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    header = "| Variable | Format | Default (development) | Required outside development |"
    assert text.count(header) == 1
    rows: dict[str, list[str]] = {}
    for line in text.split(header, 1)[1].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 4, line
        name = cells[0].strip("`")
        assert name not in rows, f"{name} is listed twice"
        rows[name] = cells[1:]
    return rows


def test_the_readme_table_documents_every_row_of_the_env_table() -> None:
    documented = readme_environment_table()
    assert set(documented) == {variable.name for variable in VARIABLES}
    for variable in VARIABLES:
        required = "yes" if variable.required else "no"
        if variable.required_note:
            required += f" ({variable.required_note})"
        assert documented[variable.name] == [variable.format, variable.default, required], variable.name


@pytest.mark.parametrize("variable", [v for v in VARIABLES if v.secret], ids=lambda v: v.name)
def test_an_invalid_secret_is_never_shown_and_still_redacted(
    variable: Variable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wrong for every secret row: not a JWT or a known key shape, under 32 and under 50 characters.
    name = variable.name
    bad = "not-a-valid-secret-shape-123"
    problem = only_problem(production(**{name: bad}))
    assert problem.variable == name
    assert bad not in str(problem)
    use_environment(monkeypatch, production(**{name: bad}))
    with pytest.raises(ConfigError) as info:
        get_settings()
    assert bad not in str(info.value) + repr(info.value.to_dict())
    assert bad in get_secret_values()


def test_problems_come_in_table_order_with_the_missing_ones_before_the_first_required_variable() -> None:
    problems = problems_of(production(LOG_LEVEL="verbose", REDIS_URL=None, DJANGO_SECRET_KEY="short", DEBUG="x"))
    assert [(p.variable, p.missing) for p in problems] == [
        ("LOG_LEVEL", False),
        ("DEBUG", False),
        ("REDIS_URL", True),
        ("DJANGO_SECRET_KEY", False),
    ]


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
