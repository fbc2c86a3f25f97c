"""Typed pipeline settings: the environment (and ``.env``) parsed once, plus the app's own knobs.

Two layers live here:

* :func:`get_settings` returns :class:`EnvSettings`, a frozen object built from
  the process environment and an optional ``.env`` file (a variable already set
  in the environment wins). Every problem is collected and reported at once in
  one :class:`~common.errors.ConfigError`; no secret value is ever echoed.
* :data:`app_settings` exposes the ``VIDEOGEN_COMMON`` dict from Django's
  settings merged over :data:`DEFAULTS`, read at call time so that
  ``override_settings`` works (the DRF ``api_settings`` pattern).

``videogen/settings.py`` calls :func:`load_env_settings` with ``strict=False`` so
Django can still boot and ``manage.py check`` can report the problems as system
check errors; application code calls :func:`get_settings`, which is strict.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import Enum, StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from django.core.signals import setting_changed
from dotenv import dotenv_values

from common.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "ConfigProblem",
    "EnvSettings",
    "Environment",
    "Secret",
    "app_settings",
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

# Variables every staging/production deployment must set. Order = report order.
REQUIRED_OUTSIDE_DEVELOPMENT = (
    "DJANGO_SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "SUPABASE_ANON_KEY",
    "OPENAI_API_KEY",
    "REPLICATE_API_TOKEN",
    # Not JWT_SECRET_KEY: SUPABASE_URL gives the project's JWKS; the secret only verifies legacy HS256 tokens.
)

SECRET_VARIABLES = frozenset(
    {
        "DJANGO_SECRET_KEY",
        "SUPABASE_SERVICE_KEY",
        "SUPABASE_ANON_KEY",
        "OPENAI_API_KEY",
        "REPLICATE_API_TOKEN",
        "JWT_SECRET_KEY",
    }
)

# Only ever used in development, where it is embedded on purpose.
DEVELOPMENT_SECRET_KEY = "django-insecure-videogen-development-only-key-do-not-deploy"  # noqa: S105
DEFAULT_SQLITE_PATH = Path(__file__).resolve().parent.parent / "var" / "db.sqlite3"


class Secret:
    """A string that never shows its value in ``repr``/``str``; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)


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
                values.extend(sorted(_url_secrets(value.reveal() if isinstance(value, Secret) else value)))
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


# Shorter values are not redacted: replacing every "abc" in the logs would hide more than it protects.
MIN_REDACTED_LENGTH = 8


# Settings that hold URLs: shown with their credentials masked, and those credentials redacted from logs.
_URL_FIELDS = ("database_url", "redis_url", "supabase_url")
_URL_VARIABLES = ("DATABASE_URL", "REDIS_URL", "SUPABASE_URL")

# Query parameters that carry a credential (?password=, ?token=, ?key=, ?access_token=, ?X-Amz-Signature=, ...):
# long words match with any prefix (sslpassword, access_token), short ones alone or after "_"/"-" (api_key,
# x-api-key), so sortkey, keyword, monkey or token_type stay visible. common.log redacts the same names.
CREDENTIAL_PARAM_NAMES = (
    r"[a-z0-9_.-]*(?:password|passwd|secret|token|signature|credential)s?"
    r"|(?:[a-z0-9_.-]*[_-])?(?:key|apikey|sig|pwd|pass|auth)s?"
)
_CREDENTIAL_PARAM = re.compile(rf"(?:{CREDENTIAL_PARAM_NAMES})", re.IGNORECASE)
_MASK = "***"


def _url_pieces(url: str) -> tuple[str, str, str, str]:
    """Split ``url`` into (before the netloc, netloc, path, rest from ``?``/``#``); never raises.

    A hand-rolled split, not ``urlsplit``: it must work on URLs ``urlsplit`` refuses (an unbalanced IPv6
    bracket), since a broken URL can still carry a password that must not be shown.
    """
    head, sep, tail = url.partition("://")
    if not sep:
        head, tail = "", url
    else:
        head += sep
    end = min((i for i in (tail.find("/"), tail.find("?"), tail.find("#")) if i >= 0), default=len(tail))
    netloc, after = tail[:end], tail[end:]
    cut = min((i for i in (after.find("?"), after.find("#")) if i >= 0), default=len(after))
    return head, netloc, after[:cut], after[cut:]


_QUERY_PAIR = re.compile(r"(^|[&;])([^&;=]+)=([^&;]*)")


def _is_credential(match: re.Match[str]) -> bool:
    return _CREDENTIAL_PARAM.fullmatch(unquote(match[2])) is not None


def mask_url(url: str) -> str:
    """Return ``url`` with its password and credential query values replaced by ``***``.

    Masked: ``user:password@``, and ``?password=``, ``?token=``, ``?key=``, ``?access_token=``,
    ``?api_key=``, ``?secret=``, ``?sig=``... (see ``CREDENTIAL_PARAM_NAMES``). The user, host, path and
    other parameters stay. Never raises, even for a URL ``urlsplit`` refuses.
    """
    head, netloc, path, rest = _url_pieces(url)
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{_MASK}@{hostport}"
    if rest.startswith("?"):
        query, hash_, fragment = rest[1:].partition("#")
        query = _QUERY_PAIR.sub(lambda m: f"{m[1]}{m[2]}={_MASK}" if _is_credential(m) else m[0], query)
        rest = f"?{query}{hash_}{fragment}"
    return f"{head}{netloc}{path}{rest}"


def _url_secrets(url: str | None) -> set[str]:
    """The password and credential query values of ``url``, as written and decoded, when long enough to redact."""
    _, netloc, _, rest = _url_pieces((url or "").strip())
    userinfo, at, _ = netloc.rpartition("@")
    found = [userinfo.partition(":")[2]] if at and ":" in userinfo else []
    if rest.startswith("?"):
        found += [m[3] for m in _QUERY_PAIR.finditer(rest[1:].partition("#")[0]) if _is_credential(m)]
    return {form for value in found for form in (value, unquote(value)) if len(form) >= MIN_REDACTED_LENGTH}


def _port_problem(netloc: str) -> str | None:
    """What is wrong with the port of ``netloc`` (``None``: fine or absent).

    ``urlsplit`` says "not a number" for an out-of-range port and accepts 0; this says what is wrong.
    """
    hostport = netloc.rpartition("@")[2]
    port = hostport.rpartition("]")[2] if hostport.startswith("[") else hostport
    if ":" not in port:
        return None
    digits = port.rpartition(":")[2]
    if not digits:
        return None
    if not re.fullmatch(r"[0-9]+", digits):
        return "has a port that is not a number"
    if not 1 <= int(digits) <= 65535:
        return f"has port {int(digits)}; expected a port from 1 to 65535"
    return None


_INVALID_URL = "is not a valid URL (an IPv6 host goes in balanced [brackets])"


def _split(url: str) -> SplitResult:
    """``urlsplit`` that also checks the port; raises ``ValueError`` with a message safe to show."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port urlsplit cannot read
    except ValueError:
        problem = _port_problem(_url_pieces(url)[1])
        raise ValueError(problem or _INVALID_URL) from None
    problem = _port_problem(parts.netloc)
    if problem:
        raise ValueError(problem)
    return parts


# --------------------------------------------------------------------------- parsing

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_JWT_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_OPENAI_KEY = re.compile(r"^sk-[A-Za-z0-9_-]{20,}$")
_REPLICATE_TOKEN = re.compile(r"^r8_[A-Za-z0-9]{20,}$")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _looks_like_jwt(value: str) -> bool:
    """True when ``value`` has three base64url segments and a JSON header naming an ``alg``."""
    segments = value.split(".")
    if len(segments) != 3 or not all(_JWT_SEGMENT.match(s) for s in segments):
        return False
    try:
        padded = segments[0] + "=" * (-len(segments[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


class _Parser:
    """Collects values and problems while reading one environment mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[ConfigProblem] = []
        self.values: dict[str, Any] = {}
        self.refused: set[str] = set()

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None:
            return None
        if "\x00" in value:
            # Only a .env file can carry one; no path, URL or key may (os.mkdir would raise ValueError).
            if name not in self.refused:
                self.refused.add(name)
                self.problem(name, "contains a NUL character")
            return None
        value = value.strip()
        return value or None

    def problem(self, name: str, message: str, *, missing: bool = False) -> None:
        self.problems.append(ConfigProblem(name, message, missing=missing))

    def choice(self, name: str, options: tuple[str, ...], default: str, *, upper: bool) -> str:
        value = self.raw(name)
        if value is None:
            return default
        normalised = value.upper() if upper else value.lower()
        if normalised not in options:
            self.problem(name, f"must be one of {', '.join(options)} (case-insensitive), got {value!r}")
            return default
        return normalised


def parse_database_url(url: str) -> dict[str, Any]:
    """Turn ``postgres://user:pass@host:port/db?opt=v`` or ``sqlite:///path`` into a DATABASES entry.

    Raises:
        ValueError: for an unsupported scheme, a malformed URL or port, or a URL without a database name
            (the message never contains the URL).
    """
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", url)
    scheme = match[1].lower() if match else ""
    if scheme == "sqlite":
        if "://" not in url:
            raise ValueError("expected sqlite:///relative/path.sqlite3 or sqlite:////absolute/path.sqlite3")
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs/path.db -> "/abs/path.db"
        path = url.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path
        if path in ("", ":memory:"):
            path = ":memory:"
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    if scheme in ("postgres", "postgresql"):
        parts = _split(url)
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ValueError("names no database (expected postgres://user@host:5432/dbname)")
        if not parts.hostname:
            raise ValueError("names no host (expected postgres://user@host:5432/dbname)")
        port = parts.port
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname,
            "PORT": str(port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
        }
    raise ValueError(f"has scheme {scheme!r}; expected postgres://, postgresql:// or sqlite://")


def _parse(environ: Mapping[str, str]) -> tuple[EnvSettings, list[ConfigProblem]]:
    p = _Parser(environ)
    values: dict[str, Any] = {}

    env_name = p.choice("ENVIRONMENT", tuple(e.value for e in Environment), "development", upper=False)
    environment = Environment(env_name)
    values["environment"] = environment
    strict = environment is not Environment.DEVELOPMENT
    values["log_level"] = p.choice("LOG_LEVEL", LOG_LEVELS, "INFO", upper=True)

    debug_raw = p.raw("DEBUG")
    if debug_raw is None:
        values["debug"] = not strict
    elif debug_raw.lower() in _TRUE | _FALSE:
        values["debug"] = debug_raw.lower() in _TRUE
    else:
        p.problem("DEBUG", f"must be true or false, got {debug_raw!r}")

    if strict:
        missing = [name for name in REQUIRED_OUTSIDE_DEVELOPMENT if p.raw(name) is None and name not in p.refused]
        if missing:
            for name in missing:
                p.problem(name, f"is required when ENVIRONMENT={environment.value}", missing=True)

    secret_key = p.raw("DJANGO_SECRET_KEY")
    if secret_key is not None:
        if strict and (len(secret_key) < 50 or secret_key.startswith("django-insecure")):
            p.problem(
                "DJANGO_SECRET_KEY",
                "must be at least 50 characters and not a 'django-insecure' key outside development",
            )
        else:
            values["django_secret_key"] = Secret(secret_key)

    hosts = p.raw("ALLOWED_HOSTS")
    if hosts is not None:
        parsed_hosts = tuple(h.strip() for h in hosts.split(",") if h.strip())
        if not parsed_hosts:
            p.problem("ALLOWED_HOSTS", "must list at least one host name, separated by commas")
        else:
            values["allowed_hosts"] = parsed_hosts

    database_url = p.raw("DATABASE_URL")
    if database_url is not None:
        try:
            db = parse_database_url(database_url)
        except ValueError as exc:
            p.problem("DATABASE_URL", str(exc))
        else:
            sqlite = db["ENGINE"].endswith("sqlite3")
            if strict and sqlite:
                p.problem("DATABASE_URL", "must be a postgres:// or postgresql:// URL outside development")
            elif sqlite and (folder_problem := _sqlite_folder_problem(db["NAME"])):
                p.problem("DATABASE_URL", folder_problem)
            else:
                values["database_url"] = Secret(database_url)

    redis_url = p.raw("REDIS_URL")
    if redis_url is not None:
        problem = _redis_url_problem(redis_url)
        if problem:
            p.problem("REDIS_URL", problem)
        else:
            values["redis_url"] = Secret(redis_url)

    supabase_url = p.raw("SUPABASE_URL")
    if supabase_url is not None:
        try:
            parts = _split(supabase_url)
        except ValueError as exc:
            p.problem("SUPABASE_URL", str(exc))
        else:
            scheme = parts.scheme.lower()
            local_http = scheme == "http" and parts.hostname in _LOOPBACK_HOSTS and not strict
            if scheme != "https" and not local_http:
                p.problem(
                    "SUPABASE_URL",
                    f"has scheme {scheme or 'none'!r}; expected https:// (http:// only for localhost in development)",
                )
            elif not parts.hostname:
                p.problem("SUPABASE_URL", "names no host (expected https://<project>.supabase.co)")
            else:
                values["supabase_url"] = supabase_url.rstrip("/")

    _check_key(
        p,
        values,
        "SUPABASE_SERVICE_KEY",
        lambda v: _looks_like_jwt(v) or v.startswith("sb_secret_"),
        "must be a JWT or an 'sb_secret_...' key",
    )
    _check_key(
        p,
        values,
        "SUPABASE_ANON_KEY",
        lambda v: _looks_like_jwt(v) or v.startswith("sb_publishable_"),
        "must be a JWT or an 'sb_publishable_...' key",
    )
    _check_key(p, values, "OPENAI_API_KEY", lambda v: bool(_OPENAI_KEY.match(v)), "must look like 'sk-...'")
    _check_key(p, values, "REPLICATE_API_TOKEN", lambda v: bool(_REPLICATE_TOKEN.match(v)), "must look like 'r8_...'")
    _check_key(
        p,
        values,
        "JWT_SECRET_KEY",
        lambda v: len(v) >= 32,
        "must be at least 32 characters long",
    )

    log_file = p.raw("LOG_FILE")
    if log_file is not None:
        problem = _log_file_problem(log_file)
        if problem:
            p.problem("LOG_FILE", problem)
        else:
            values["log_file"] = log_file

    _parse_pool(p, values)
    return EnvSettings(**values), p.problems


def _redis_url_problem(url: str) -> str | None:
    """What is wrong with ``REDIS_URL`` (``None``: nothing); never includes the URL."""
    try:
        parts = _split(url)
    except ValueError as exc:
        return str(exc)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        return f"has scheme {scheme or 'none'!r}; expected redis://, rediss:// or unix://"
    if scheme != "unix" and not parts.hostname:
        return "names no host (expected redis://host:6379/0)"
    if scheme == "unix" and not parts.path:
        return "names no socket path (expected unix:///path/to/redis.sock)"
    # redis-py reads the database from the path (redis://) or ?db=, and silently uses 0 for "/abc".
    numbers = [value for name, value in parse_qsl(parts.query) if name == "db"]
    if scheme != "unix" and parts.path.strip("/"):
        numbers.append(parts.path.strip("/"))
    if any(not re.fullmatch(r"[0-9]+", number) for number in numbers):
        return "has a database number that is not a whole number (expected redis://host:6379/0)"
    return None


def _sqlite_folder_problem(name: str) -> str | None:
    """Create the folder of an SQLite file (as ``videogen/settings.py`` would next); say why when it cannot."""
    if name == ":memory:":
        return None
    folder = Path(name).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or exc
        return f"names an SQLite file whose folder cannot be created ({folder}: {reason})"
    return None


def _log_file_problem(path: str) -> str | None:
    """What would make every log record fail to reach ``LOG_FILE`` (the handler opens it at the first record)."""
    target = Path(path)
    if target.is_dir():
        return f"names a folder ({target}); expected a file path"
    if not target.parent.is_dir():
        return f"is in a folder that does not exist ({target.parent})"
    if not os.access(target if target.exists() else target.parent, os.W_OK):
        return f"cannot be written ({target})"
    return None


def _check_key(p: _Parser, values: dict[str, Any], name: str, valid: Any, expectation: str) -> None:
    raw = p.raw(name)
    if raw is None:
        return
    if valid(raw):
        values[name.lower()] = Secret(raw)
    else:
        # The message describes the expected shape only; the value is a secret and is never shown.
        p.problem(name, f"{expectation} (value not shown)")


def _parse_pool(p: _Parser, values: dict[str, Any]) -> None:
    """``DATABASE_POOL_SIZE`` (1-1000 connections a process) and ``DATABASE_POOL_TIMEOUT`` (seconds, 0-600)."""
    size = p.raw("DATABASE_POOL_SIZE")
    if size is not None:
        if size.isascii() and size.isdigit() and 1 <= int(size) <= 1000:
            values["database_pool_size"] = int(size)
        else:
            p.problem("DATABASE_POOL_SIZE", f"must be a whole number of connections from 1 to 1000, got {size!r}")
    wait = p.raw("DATABASE_POOL_TIMEOUT")
    if wait is not None:
        try:
            seconds = float(wait)
        except ValueError:
            seconds = float("nan")
        if 0 < seconds <= 600:
            values["database_pool_timeout"] = seconds
        else:
            p.problem("DATABASE_POOL_TIMEOUT", f"must be a number of seconds above 0 and at most 600, got {wait!r}")


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
        values |= _url_secrets(environ.get(name))
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
    """Proxy to :func:`get_settings`, so ``from common.conf import settings`` parses nothing at import."""

    def __getattr__(self, name: str) -> Any:
        return getattr(get_settings(), name)

    def __repr__(self) -> str:
        try:
            return repr(get_settings())
        except ConfigError:
            return "<EnvSettings: invalid configuration>"


settings = _LazySettings()


# --------------------------------------------------------------------------- app settings

DEFAULTS: dict[str, Any] = {
    # Money
    "DEFAULT_JOB_BUDGET": Decimal("20.00"),
    "BUDGET_WARNING_THRESHOLDS": (Decimal("0.80"),),
    "RESERVATION_TTL_SECONDS": 15 * 60,
    # PostgreSQL: run the enforced-charge statement as a prepared statement (bench/costs.py prints the gain).
    # Turn off behind a pooler that cannot keep prepared statements (pgbouncer < 1.21 in transaction mode).
    "COST_PREPARED_STATEMENTS": True,
    # Price table: api name -> {"unit": ..., "price": Decimal}; filled by the cost tracker's defaults.
    "API_PRICES": {},
    # Pipeline stages in order, and fallback durations (seconds) when there is no history.
    "PIPELINE_STAGES": (
        "audio_analysis",
        "scene_planning",
        "reference_generation",
        "prompt_generation",
        "video_generation",
        "composition",
    ),
    "DEFAULT_STAGE_SECONDS": 60,
    "ESTIMATE_HISTORY_JOBS": 50,
    # Workers (common.services.leases): a stage's lease, renewed by its heartbeat every third of it; a queued
    # job nothing has touched for JOB_QUEUED_STALE_SECONDS is reported (and requeued) by recover_jobs.
    "JOB_LEASE_SECONDS": 60,
    "JOB_QUEUED_STALE_SECONDS": 3600,
    # Local disk
    # Inside this checkout's var/ (beside the SQLite file), so two checkouts never clean each other's files
    "TEMP_DIR": DEFAULT_SQLITE_PATH.parent / "tmp",
    "CACHE_DIR": DEFAULT_SQLITE_PATH.parent / "cache",
    "CACHE_DIR_MAX_BYTES": 5 * 1024**3,
    "TEMP_MAX_AGE_HOURS": 24,
    "MEMORY_THRESHOLD_PERCENT": 85.0,
    "DISK_THRESHOLD_PERCENT": 90.0,
    # Resources (common.resources): sampling period, cleanup period, and how far below a threshold
    # a reading must drop before a new crossing is warned about again
    "RESOURCE_MONITOR_INTERVAL_SECONDS": 60.0,
    "TEMP_CLEANUP_INTERVAL_HOURS": 6.0,
    "RESOURCE_THRESHOLD_HYSTERESIS_PERCENT": 2.0,
    # Services
    "CACHE_SOCKET_TIMEOUT": 0.5,
    "HEALTH_CHECK_TIMEOUT": 3.0,
    "SIGNED_URL_EXPIRES_IN": 3600,
    # Storage (common.storage): HTTP timeout for Supabase, retries of transient failures
    "STORAGE_TIMEOUT": 20.0,
    "STORAGE_RETRY_ATTEMPTS": 3,
    "STORAGE_RETRY_BASE_DELAY": 0.5,
    # Uploads above this many bytes go through Supabase's resumable (TUS) endpoint in chunks of
    # STORAGE_CHUNK_SIZE bytes (Supabase wants exactly 6 MiB chunks); smaller ones are one request.
    "STORAGE_RESUMABLE_THRESHOLD": 6 * 1024 * 1024,
    "STORAGE_CHUNK_SIZE": 6 * 1024 * 1024,
    # manage.py cleanup_job_files: days a finished job's objects are kept, per bucket (None: forever),
    # and how old objects under a folder that is no job must be before they are removed as orphans.
    "STORAGE_RETENTION_DAYS": {"audio-uploads": 7, "reference-images": 7, "video-clips": 7, "video-outputs": 30},
    "STORAGE_ORPHAN_GRACE_HOURS": 24,
    # Database helpers (common.db): retries of lost connections
    "DB_RETRY_ATTEMPTS": 3,
    "DB_RETRY_BASE_DELAY": 0.5,
    # A wait for a pooled connection this long (seconds) or longer logs a WARNING; None turns it off
    "DB_POOL_WAIT_WARNING_SECONDS": 1.0,
    # Health (common.health): names of the checks whose failure makes /health/ready answer 503
    "HEALTH_CRITICAL_CHECKS": ("database", "storage"),
    # Seconds /health/ready reuses the storage check's last result (0: probe every time)
    "HEALTH_STORAGE_CACHE_SECONDS": 5.0,
    # REST API (common.api): bearer-token checks and per-user rate limit
    "API_JWT_LEEWAY_SECONDS": 10,
    "API_JWT_ISSUER": None,  # e.g. "https://<project>.supabase.co/auth/v1" to also require that "iss"
    # Supabase signing keys (common.api.jwks): None derives <SUPABASE_URL>/auth/v1/.well-known/jwks.json,
    # "" switches the JWKS off; keys are cached for CACHE_SECONDS, fetches are MIN_REFRESH_SECONDS apart
    "API_JWKS_URL": None,
    "API_JWKS_TIMEOUT": 2.0,
    "API_JWKS_CACHE_SECONDS": 600,
    "API_JWKS_MIN_REFRESH_SECONDS": 10,
    "API_THROTTLE_RATE": "600/min",  # per caller; None turns throttling off
}


class AppSettings:
    """The ``VIDEOGEN_COMMON`` namespace of Django settings over :data:`DEFAULTS`, read at call time.

    Unknown keys raise ``ImproperlyConfigured`` (DRF's habit), so a typo is
    never silently ignored. The merged dict is cached and dropped whenever
    ``VIDEOGEN_COMMON`` changes (``override_settings`` sends ``setting_changed``).
    """

    setting_name = "VIDEOGEN_COMMON"

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._merged: dict[str, Any] | None = None

    def user_settings(self) -> dict[str, Any]:
        """Return the raw ``VIDEOGEN_COMMON`` dict from Django settings."""
        from django.conf import settings as django_settings

        value = getattr(django_settings, self.setting_name, {})
        return dict(value or {})

    def unknown_keys(self) -> list[str]:
        """Return keys of ``VIDEOGEN_COMMON`` that are not known settings."""
        return sorted(set(self.user_settings()) - set(self.defaults))

    def _load(self) -> dict[str, Any]:
        if self._merged is None:
            from django.core.exceptions import ImproperlyConfigured

            unknown = self.unknown_keys()
            if unknown:
                raise ImproperlyConfigured(
                    f"{self.setting_name} has unknown keys: {', '.join(unknown)}. "
                    f"Known keys: {', '.join(sorted(self.defaults))}."
                )
            self._merged = {**self.defaults, **self.user_settings()}
        return self._merged

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Invalid {self.setting_name} setting: {name!r}")
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.defaults)

    def reload(self) -> None:
        """Drop the cached values (called on ``setting_changed``)."""
        self._merged = None


app_settings = AppSettings(DEFAULTS)


def _reload_app_settings(*, setting: str, **kwargs: Any) -> None:
    """Drop cached app settings when ``VIDEOGEN_COMMON`` changes (as DRF does for its settings)."""
    if setting == AppSettings.setting_name:
        app_settings.reload()


setting_changed.connect(_reload_app_settings, dispatch_uid="common.conf.app_settings")
