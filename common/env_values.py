"""How each environment value is read: one parser a kind of value, used by the table in :mod:`common.env`.

A parser takes the stripped, non-empty text and ``strict`` (True outside development) and returns
the value to keep, or raises ``ValueError`` whose message says what is wrong. A message never
contains a secret's value, and never a URL (it may hold a password).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from common.masking import Secret, url_pieces

__all__ = [
    "Parser",
    "boolean",
    "choice",
    "database_url",
    "django_secret_key",
    "host_list",
    "jwt_or",
    "jwt_secret_key",
    "key",
    "log_file",
    "looks_like_jwt",
    "number",
    "openai_api_key",
    "parse_database_url",
    "redis_url",
    "replicate_api_token",
    "shaped",
    "supabase_anon_key",
    "supabase_service_key",
    "supabase_url",
    "whole_number",
]

Parser = Callable[[str, bool], Any]
E = TypeVar("E", bound=StrEnum)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_JWT_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
_INVALID_URL = "is not a valid URL (an IPv6 host goes in balanced [brackets])"


# --------------------------------------------------------------------------- plain values


def choice(options: Iterable[str], *, upper: bool, enum: type[E] | None = None) -> Parser:
    """A case-insensitive choice among ``options`` (given in their canonical case); ``enum`` wraps the result."""
    allowed = tuple(options)

    def parse(value: str, strict: bool) -> Any:
        normalised = value.upper() if upper else value.lower()
        if normalised not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)} (case-insensitive), got {value!r}")
        return enum(normalised) if enum is not None else normalised

    return parse


def boolean(value: str, strict: bool) -> bool:
    """``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off`` (case-insensitive)."""
    if value.lower() not in _TRUE | _FALSE:
        raise ValueError(f"must be true or false, got {value!r}")
    return value.lower() in _TRUE


def host_list(value: str, strict: bool) -> tuple[str, ...]:
    """Comma-separated host names; at least one."""
    hosts = tuple(h.strip() for h in value.split(",") if h.strip())
    if not hosts:
        raise ValueError("must list at least one host name, separated by commas")
    return hosts


def whole_number(low: int, high: int, what: str) -> Parser:
    """A whole number from ``low`` to ``high`` (ASCII digits only)."""

    def parse(value: str, strict: bool) -> int:
        digits = value.lstrip("0") or "0"
        # Thousands of digits would make int() raise; no such number is in range anyway.
        if value.isascii() and value.isdigit() and len(digits) <= len(str(high)) and low <= int(digits) <= high:
            return int(digits)
        raise ValueError(f"must be a whole number of {what} from {low} to {high}, got {value!r}")

    return parse


def number(high: float, what: str) -> Parser:
    """A number above 0 and at most ``high`` (NaN and infinities refused)."""

    def parse(value: str, strict: bool) -> float:
        try:
            parsed = float(value)
        except ValueError:
            parsed = float("nan")
        if 0 < parsed <= high:
            return parsed
        raise ValueError(f"must be a number of {what} above 0 and at most {high:g}, got {value!r}")

    return parse


def log_file(value: str, strict: bool) -> str:
    """A file the log handler can open at its first record (refused: a folder, a missing or read-only folder)."""
    target = Path(value)
    if target.is_dir():
        raise ValueError(f"names a folder ({target}); expected a file path")
    if not target.parent.is_dir():
        raise ValueError(f"is in a folder that does not exist ({target.parent})")
    if not os.access(target if target.exists() else target.parent, os.W_OK):
        raise ValueError(f"cannot be written ({target})")
    return value


# --------------------------------------------------------------------------- secrets


def key(valid: Callable[[str], bool], expectation: str) -> Parser:
    """A secret key whose shape ``valid`` accepts; the message describes the shape only, never the value."""

    def parse(value: str, strict: bool) -> Secret:
        if not valid(value):
            raise ValueError(f"{expectation} (value not shown)")
        return Secret(value)

    return parse


def shaped(pattern: str) -> Callable[[str], bool]:
    """A shape check: the value matches the regular expression ``pattern`` from its start."""
    compiled = re.compile(pattern)
    return lambda value: compiled.match(value) is not None


def looks_like_jwt(value: str) -> bool:
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


def jwt_or(prefix: str) -> Callable[[str], bool]:
    """A shape check: a JWT, or a key starting with ``prefix`` (Supabase's newer API keys)."""
    return lambda value: looks_like_jwt(value) or value.startswith(prefix)


# The API keys: the messages describe the expected shape only.
supabase_service_key = key(jwt_or("sb_secret_"), "must be a JWT or an 'sb_secret_...' key")
supabase_anon_key = key(jwt_or("sb_publishable_"), "must be a JWT or an 'sb_publishable_...' key")
openai_api_key = key(shaped(r"^sk-[A-Za-z0-9_-]{20,}$"), "must look like 'sk-...'")
replicate_api_token = key(shaped(r"^r8_[A-Za-z0-9]{20,}$"), "must look like 'r8_...'")
jwt_secret_key = key(lambda value: len(value) >= 32, "must be at least 32 characters long")


def django_secret_key(value: str, strict: bool) -> Secret:
    """Any value in development; outside it at least 50 characters and not a ``django-insecure`` key."""
    if strict and (len(value) < 50 or value.startswith("django-insecure")):
        raise ValueError("must be at least 50 characters and not a 'django-insecure' key outside development")
    return Secret(value)


# --------------------------------------------------------------------------- URLs


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


def _split(url: str) -> SplitResult:
    """``urlsplit`` that also checks the port; raises ``ValueError`` with a message safe to show."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port urlsplit cannot read
    except ValueError:
        problem = _port_problem(url_pieces(url)[1])
        raise ValueError(problem or _INVALID_URL) from None
    problem = _port_problem(parts.netloc)
    if problem:
        raise ValueError(problem)
    return parts


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


def database_url(value: str, strict: bool) -> Secret:
    """PostgreSQL, or SQLite in development only (whose folder is created, as ``videogen/settings.py`` would)."""
    db = parse_database_url(value)
    if db["ENGINE"].endswith("sqlite3"):
        if strict:
            raise ValueError("must be a postgres:// or postgresql:// URL outside development")
        if db["NAME"] != ":memory:":
            folder = Path(db["NAME"]).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except (OSError, ValueError) as exc:
                reason = (exc.strerror if isinstance(exc, OSError) else None) or exc
                raise ValueError(f"names an SQLite file whose folder cannot be created ({folder}: {reason})") from None
    return Secret(value)


def redis_url(value: str, strict: bool) -> Secret:
    """``redis://``, ``rediss://`` or ``unix://`` with a host (or socket path) and a whole database number."""
    parts = _split(value)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"has scheme {scheme or 'none'!r}; expected redis://, rediss:// or unix://")
    if scheme != "unix" and not parts.hostname:
        raise ValueError("names no host (expected redis://host:6379/0)")
    if scheme == "unix" and not parts.path:
        raise ValueError("names no socket path (expected unix:///path/to/redis.sock)")
    # redis-py reads the database from the path (redis://) or ?db=, and silently uses 0 for "/abc".
    databases = [db for name, db in parse_qsl(parts.query) if name == "db"]
    if scheme != "unix" and parts.path.strip("/"):
        databases.append(parts.path.strip("/"))
    if any(not re.fullmatch(r"[0-9]+", db) for db in databases):
        raise ValueError("has a database number that is not a whole number (expected redis://host:6379/0)")
    return Secret(value)


def supabase_url(value: str, strict: bool) -> str:
    """``https://<project>.supabase.co`` (``http://`` for a loopback host in development); trailing ``/`` dropped."""
    parts = _split(value)
    scheme = parts.scheme.lower()
    local_http = scheme == "http" and parts.hostname in _LOOPBACK_HOSTS and not strict
    if scheme != "https" and not local_http:
        raise ValueError(
            f"has scheme {scheme or 'none'!r}; expected https:// (http:// only for localhost in development)"
        )
    if not parts.hostname:
        raise ValueError("names no host (expected https://<project>.supabase.co)")
    return value.rstrip("/")
