"""The environment (and ``.env``), parsed once by a table: one row per variable, every problem at once.

:data:`VARIABLES` is the table: each :class:`Variable` names its parser (:mod:`common.env_values`),
whether it is required outside development, whether its value (or its URL's credentials) is a
secret, and the format and default the README documents. :func:`load_env_settings` reads every
row and returns :class:`EnvSettings` with the problems; :func:`get_settings` (strict) raises one
:class:`~common.errors.ConfigError` listing them all. No secret value is ever echoed.

``videogen/settings.py`` calls :func:`load_env_settings` with ``strict=False`` so Django can still
boot and ``manage.py check`` can report the problems (``common.E001``/``E002``); application code
calls :func:`get_settings`. ``common.conf`` re-exports the public names, as the seeds and
pipeline modules import them from there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from common.env_values import (
    Parser,
    boolean,
    choice,
    database_url,
    django_secret_key,
    host_list,
    jwt_secret_key,
    log_file,
    number,
    openai_api_key,
    parse_database_url,
    redis_url,
    replicate_api_token,
    supabase_anon_key,
    supabase_service_key,
    supabase_url,
    whole_number,
)
from common.errors import ConfigError
from common.masking import MIN_REDACTED_LENGTH, Secret, mask_url, url_secrets

__all__ = [
    "VARIABLES",
    "ConfigProblem",
    "EnvSettings",
    "Environment",
    "Secret",
    "Variable",
    "get_env_problems",
    "get_secret_values",
    "get_settings",
    "load_env_settings",
    "mask_url",
    "parse_database_url",
    "read_environment",
    "reset_settings_cache",
    "settings",
]


class Environment(StrEnum):
    """Deployment environment."""

    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Only ever used in development, where it is embedded on purpose.
DEVELOPMENT_SECRET_KEY = "django-insecure-videogen-development-only-key-do-not-deploy"  # noqa: S105
DEFAULT_SQLITE_PATH = Path(__file__).resolve().parent.parent / "var" / "db.sqlite3"


@dataclass(frozen=True)
class Variable:
    """One environment variable: how it is parsed, what it demands, and how the README documents it.

    ``parse`` gets the stripped, non-empty value and whether the environment is strict (outside
    development); it returns the :class:`EnvSettings` field's value (named ``name.lower()``) or raises
    ``ValueError`` saying what is wrong. ``when_unset`` gives the value for an unset variable from the
    same flag (otherwise the field's default stands). ``secret``: the whole value is a secret;
    ``url``: it is a URL whose credentials are. ``format``, ``default`` and ``required_note`` are the
    README table's cells (a test keeps the two in step).
    """

    name: str
    parse: Parser
    format: str
    default: str
    required: bool = False
    secret: bool = False
    url: bool = False
    when_unset: Callable[[bool], Any] | None = None
    required_note: str = ""

    @property
    def field(self) -> str:
        """The :class:`EnvSettings` field this variable fills."""
        return self.name.lower()


# Order = the order problems are reported in. ENVIRONMENT comes first: it decides what the others demand.
VARIABLES: tuple[Variable, ...] = (
    Variable(
        "ENVIRONMENT",
        choice([e.value for e in Environment], upper=False, enum=Environment),
        "`development` \\| `staging` \\| `production` (case-insensitive)",
        "`development`",
    ),
    Variable(
        "LOG_LEVEL",
        choice(LOG_LEVELS, upper=True),
        "`DEBUG` \\| `INFO` \\| `WARNING` \\| `ERROR` (case-insensitive)",
        "`INFO`",
    ),
    Variable(
        "DEBUG",
        boolean,
        "`true`/`false` (`1/0`, `yes/no`, `on/off`)",
        "`true` (`false` elsewhere; `common.W001` if on)",
        when_unset=lambda strict: not strict,
    ),
    Variable(
        "DJANGO_SECRET_KEY",
        django_secret_key,
        "≥ 50 characters, not `django-insecure-…`",
        "an embedded development key",
        required=True,
        secret=True,
    ),
    Variable(
        "ALLOWED_HOSTS",
        host_list,
        "comma-separated host names",
        "`localhost,127.0.0.1,[::1],testserver`",
        required=True,
    ),
    Variable(
        "DATABASE_URL",
        database_url,
        "`postgres://` / `postgresql://user:pass@host:5432/db?opt=…`, or `sqlite:///path`",
        "`sqlite:///var/db.sqlite3`",
        required=True,
        url=True,
        required_note="PostgreSQL",
    ),
    Variable(
        "REDIS_URL",
        redis_url,
        "`redis://`, `rediss://` or `unix://`",
        "local-memory cache",
        required=True,
        url=True,
    ),
    Variable(
        "SUPABASE_URL",
        supabase_url,
        "`https://<project>.supabase.co` (`http://localhost` in development)",
        "local file storage",
        required=True,
        url=True,
    ),
    Variable(
        "SUPABASE_SERVICE_KEY", supabase_service_key, "a JWT or `sb_secret_…`", "none", required=True, secret=True
    ),
    Variable("SUPABASE_ANON_KEY", supabase_anon_key, "a JWT or `sb_publishable_…`", "none", required=True, secret=True),
    Variable("OPENAI_API_KEY", openai_api_key, "`sk-…`", "none", required=True, secret=True),
    Variable("REPLICATE_API_TOKEN", replicate_api_token, "`r8_…`", "none", required=True, secret=True),
    # Not required: SUPABASE_URL gives the project's JWKS; the secret only verifies legacy HS256 tokens.
    Variable(
        "JWT_SECRET_KEY",
        jwt_secret_key,
        "≥ 32 characters: Supabase's legacy JWT secret (verifies HS256 tokens)",
        "none",
        secret=True,
        required_note="`SUPABASE_URL`'s JWKS verifies signing-key tokens",
    ),
    Variable("LOG_FILE", log_file, "path; JSON lines, rotated at 100 MB, 5 files kept", "console only"),
    Variable(
        "DATABASE_POOL_SIZE",
        whole_number(1, 1000, "connections"),
        # The README's en dash (RUF001); the sizing rule is the README's, in its threads section.
        "connections a process may open, 1–1000 (PostgreSQL); at least its threads that use the database + 2"  # noqa: RUF001
        " (see *Threads and database connections*)",
        "`10`",
    ),
    Variable(
        "DATABASE_POOL_TIMEOUT",
        number(600, "seconds"),
        "seconds a thread waits for a free pooled connection, above 0, at most 600",
        "`5`",
    ),
)

REQUIRED_OUTSIDE_DEVELOPMENT = tuple(v.name for v in VARIABLES if v.required)
SECRET_VARIABLES = frozenset(v.name for v in VARIABLES if v.secret)
_URL_VARIABLES = tuple(v.name for v in VARIABLES if v.url)
_URL_FIELDS = tuple(v.field for v in VARIABLES if v.url)


@dataclass(frozen=True)
class ConfigProblem:
    """One configuration problem: the variable and what is wrong (never its value)."""

    variable: str
    message: str
    missing: bool = False

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


@dataclass(frozen=True)
class EnvSettings:
    """The process configuration, parsed and validated once."""

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    debug: bool = True
    django_secret_key: Secret = field(default_factory=lambda: Secret(DEVELOPMENT_SECRET_KEY))
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]", "testserver")
    database_url: Secret = field(default_factory=lambda: Secret(f"sqlite:///{DEFAULT_SQLITE_PATH}"))
    redis_url: Secret | None = None
    supabase_url: str | None = None
    supabase_service_key: Secret | None = None
    supabase_anon_key: Secret | None = None
    openai_api_key: Secret | None = None
    replicate_api_token: Secret | None = None
    jwt_secret_key: Secret | None = None
    log_file: str | None = None
    database_pool_size: int = 10
    database_pool_timeout: float = 5.0

    @property
    def is_production(self) -> bool:
        """True in staging and production, where every variable is required."""
        return self.environment is not Environment.DEVELOPMENT

    @property
    def uses_postgres(self) -> bool:
        """True when ``DATABASE_URL`` points at PostgreSQL."""
        return self.database_url.reveal().split(":", 1)[0] in ("postgres", "postgresql")

    @property
    def uses_redis(self) -> bool:
        """True when ``REDIS_URL`` is set (django-redis cache instead of local memory)."""
        return self.redis_url is not None

    @property
    def uses_supabase(self) -> bool:
        """True when Supabase Storage is configured (URL and service key)."""
        return self.supabase_url is not None and self.supabase_service_key is not None

    def secret_values(self) -> list[str]:
        """Every configured secret value (for log redaction); short values are skipped."""
        values = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _URL_FIELDS:
                values.extend(sorted(url_secrets(value.reveal() if isinstance(value, Secret) else value)))
            elif isinstance(value, Secret) and len(value) >= MIN_REDACTED_LENGTH:
                values.append(value.reveal())
        return values

    def describe(self) -> list[str]:
        """Human-readable lines describing the configuration in effect (no secrets)."""
        db = parse_database_url(self.database_url.reveal())
        if db["ENGINE"].endswith("sqlite3"):
            database = f"SQLite at {db['NAME']}"
        else:
            database = f"PostgreSQL {db['USER'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        cache = "local memory" if self.redis_url is None else f"Redis at {mask_url(self.redis_url.reveal())}"
        storage = f"Supabase Storage at {mask_url(self.supabase_url or '')}" if self.uses_supabase else "local files"
        if not self.uses_supabase and (self.supabase_url or self.supabase_service_key):
            storage = "Supabase Storage, refusing every call: set both SUPABASE_URL and SUPABASE_SERVICE_KEY"
        keys = [
            name.upper()
            for name in ("openai_api_key", "replicate_api_token", "jwt_secret_key")
            if getattr(self, name) is not None
        ]
        debug = "on" if self.debug else "off"
        return [
            f"environment: {self.environment.value} (debug={debug}, log level {self.log_level})",
            f"database:    {database}",
            f"cache:       {cache}",
            f"storage:     {storage}",
            f"API keys:    {', '.join(keys) if keys else 'none configured'}",
        ]

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _URL_FIELDS and value is not None:
                shown = repr(mask_url(value.reveal() if isinstance(value, Secret) else value))
            elif isinstance(value, Secret):
                shown = "'**********'"
            elif isinstance(value, Enum):
                shown = repr(value.value)
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"EnvSettings({', '.join(parts)})"

    __str__ = __repr__


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Reads values from one environment mapping and collects the problems found."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[ConfigProblem] = []
        self.refused: set[str] = set()

    def raw(self, name: str) -> str | None:
        """The stripped value of ``name``; ``None`` when unset, blank, or refused for a NUL (reported once)."""
        value = self.environ.get(name)
        if value is None:
            return None
        if "\x00" in value:
            # Only a .env file can carry one; no path, URL or key may (os.mkdir would raise ValueError).
            if name not in self.refused:
                self.refused.add(name)
                self.problems.append(ConfigProblem(name, "contains a NUL character"))
            return None
        return value.strip() or None

    def report_missing(self, environment: Environment) -> None:
        """Report, together, every required variable that is not set (one set but refused is not missing)."""
        missing = [v.name for v in VARIABLES if v.required and self.raw(v.name) is None and v.name not in self.refused]
        message = f"is required when ENVIRONMENT={environment.value}"
        self.problems.extend(ConfigProblem(name, message, missing=True) for name in missing)


def _parse(environ: Mapping[str, str]) -> tuple[EnvSettings, list[ConfigProblem]]:
    """Read every row of :data:`VARIABLES`; a value with a problem keeps the field's default."""
    reader = _Reader(environ)
    values: dict[str, Any] = {}
    missing_reported = False
    for var in VARIABLES:
        environment = values.get("environment", Environment.DEVELOPMENT)
        strict = environment is not Environment.DEVELOPMENT
        if strict and var.required and not missing_reported:
            # Before the first required variable, so one message can name every missing one.
            reader.report_missing(environment)
            missing_reported = True
        raw = reader.raw(var.name)
        if raw is None:
            if var.when_unset is not None:
                values[var.field] = var.when_unset(strict)
            continue
        try:
            values[var.field] = var.parse(raw, strict)
        except ValueError as exc:
            reader.problems.append(ConfigProblem(var.name, str(exc)))
    return EnvSettings(**values), reader.problems


# --------------------------------------------------------------------------- loading


def read_environment(env_file: str | Path | None = None) -> dict[str, str]:
    """Return the process environment merged over the ``.env`` file (the environment wins).

    The file is ``env_file``, else ``$VIDEOGEN_ENV_FILE``, else ``.env`` in the
    current directory; a missing file is simply skipped, and so is one that cannot
    be read as UTF-8 text (:func:`load_env_settings` reports that as a problem).
    """
    return _read_environment(env_file)[0]


def _read_environment(env_file: str | Path | None = None) -> tuple[dict[str, str], list[ConfigProblem]]:
    """The merged environment, and the problem with the ``.env`` file if it could not be read."""
    named = os.environ.get("VIDEOGEN_ENV_FILE")
    path = Path(env_file or named or ".env")
    merged: dict[str, str] = {}
    problems = []
    if path.is_file():
        try:
            merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        except (OSError, UnicodeDecodeError) as exc:
            reason = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"cannot be read ({exc.strerror})"
            variable = "VIDEOGEN_ENV_FILE" if named and not env_file else ".env file"
            problems.append(ConfigProblem(variable, f"names {path}, which {reason}; it was not read"))
    elif named and not env_file and not path.exists():
        # A misspelled name would otherwise run on the defaults without a word (os.devnull: read nothing).
        problems.append(ConfigProblem("VIDEOGEN_ENV_FILE", f"names {path}, which does not exist; nothing was read"))
    merged.update(os.environ)
    return merged, problems


def load_env_settings(
    environ: Mapping[str, str] | None = None, *, strict: bool = True
) -> tuple[EnvSettings, list[ConfigProblem]]:
    """Parse ``environ`` (default: :func:`read_environment`) into settings and problems.

    With ``strict=True`` any problem raises one :class:`ConfigError` listing them
    all; with ``strict=False`` the problems are returned beside settings that
    fall back to the embedded defaults, so Django can boot and report them.
    """
    file_problems: list[ConfigProblem] = []
    if environ is None:
        environ, file_problems = _read_environment()
    settings_obj, problems = _parse(environ)
    problems = file_problems + problems
    if problems and strict:
        raise _config_error(problems)
    return settings_obj, problems


def _config_error(problems: list[ConfigProblem]) -> ConfigError:
    missing = [p.variable for p in problems if p.missing]
    lines = []
    if missing:
        lines.append(f"missing required environment variables: {', '.join(missing)}")
    lines.extend(str(p) for p in problems if not p.missing)
    return ConfigError(problems=lines)


@lru_cache(maxsize=1)
def _cached() -> tuple[EnvSettings, list[ConfigProblem]]:
    return load_env_settings(strict=False)


def get_settings() -> EnvSettings:
    """Return the process settings, parsed once.

    Raises:
        ConfigError: listing every problem when the environment is invalid.
    """
    settings_obj, problems = _cached()
    if problems:
        raise _config_error(problems)
    return settings_obj


def get_env_problems() -> list[ConfigProblem]:
    """Return the problems found in the environment (empty when it is valid)."""
    return list(_cached()[1])


@lru_cache(maxsize=1)
def _cached_secret_values() -> tuple[str, ...]:
    environ = read_environment()
    values = set(_cached()[0].secret_values())
    # Also the raw values of secret variables that failed validation: a real key in a format
    # this module does not know yet is still a secret.
    for name in SECRET_VARIABLES:
        raw = (environ.get(name) or "").strip()
        if len(raw) >= MIN_REDACTED_LENGTH:
            values.add(raw)
    for name in _URL_VARIABLES:
        values |= url_secrets(environ.get(name))
    # Longest first, so a secret that contains another is replaced whole.
    return tuple(sorted(values, key=len, reverse=True))


def get_secret_values() -> tuple[str, ...]:
    """Every secret value of the environment, valid or not, longest first (for log redaction)."""
    return _cached_secret_values()


def reset_settings_cache() -> None:
    """Forget the parsed environment so the next call reads it again (tests)."""
    _cached.cache_clear()
    _cached_secret_values.cache_clear()


class _LazySettings:
    """Proxy to :func:`get_settings`, so ``from common.env import settings`` parses nothing at import."""

    def __getattr__(self, name: str) -> Any:
        return getattr(get_settings(), name)

    def __repr__(self) -> str:
        try:
            return repr(get_settings())
        except ConfigError:
            return "<EnvSettings: invalid configuration>"


settings = _LazySettings()
