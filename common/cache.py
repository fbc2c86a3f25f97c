"""Cache helpers over Django's cache (django-redis when ``REDIS_URL`` is set, local memory otherwise).

Keys are exactly ``videogen:cache:<key>`` in Redis (see :mod:`common.cache_keys`).
A cache is an optimisation, so when Redis is down no helper raises into the
pipeline or hangs: it logs a warning and answers a miss (``None``/``default``)
or ``False`` within ``VIDEOGEN_COMMON["CACHE_SOCKET_TIMEOUT"]`` seconds.

Values are JSON (:class:`JSONEncoder`: Decimal as a string, UUID, datetime,
Pydantic models, ...), never pickles: whoever can write to Redis must not be
able to run code in every worker. Redis holds the JSON text (django-redis'
``SERIALIZER`` is :class:`JSONSerializer`, so Django's own cache API, DRF's
throttle included, never unpickles either), and every backend gives back the
same JSON form. A value that does not decode (garbage, an old pickle, a forged
value) is a miss with a warning.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, cast
from uuid import UUID

from asgiref.sync import sync_to_async
from django.core.cache import caches
from django_redis.client import DefaultClient
from django_redis.exceptions import CompressorError, ConnectionInterrupted
from django_redis.pool import ConnectionFactory as _RedisConnectionFactory
from django_redis.serializers.base import BaseSerializer
from pydantic import BaseModel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from common.conf import app_settings
from common.errors import ServiceUnavailableError, ValidationError
from common.log import get_logger

__all__ = [
    "CACHE_ALIAS",
    "ConnectionFactory",
    "JSONClient",
    "JSONEncoder",
    "JSONSerializer",
    "UnreadableCacheValue",
    "adelete",
    "aget",
    "aget_json",
    "aget_many",
    "ahealth_check",
    "aset",
    "aset_json",
    "delete",
    "dumps_json",
    "get",
    "get_json",
    "get_many",
    "health_check",
    "ping",
    "set",
    "set_json",
]

logger = get_logger("common.cache")
CACHE_ALIAS = "default"
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# What a broken cache connection raises (django-redis wraps redis errors in ConnectionInterrupted).
_CACHE_ERRORS: tuple[type[BaseException], ...] = (ConnectionInterrupted, RedisError, OSError)
_WARN_EVERY_SECONDS = 30.0
_warn_lock = threading.Lock()
_last_warning = 0.0
_MISSING = object()
# Redis keeps any expiry up to about 292 million years; ten years is far beyond any cache entry and far
# below every backend's limit (a larger or non-finite value is a caller's bug, refused before writing).
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600


class ConnectionFactory(_RedisConnectionFactory):
    """django-redis connection factory: socket timeouts from ``CACHE_SOCKET_TIMEOUT``, no client-side retries.

    ``OPTIONS["SOCKET_TIMEOUT"]``/``["SOCKET_CONNECT_TIMEOUT"]`` still win when set.
    Pools are keyed by URL *and* timeout, so changing the knob takes effect.
    """

    def make_connection_params(self, url: str) -> dict[str, Any]:
        """Add the timeouts and a no-retry policy to django-redis' parameters."""
        params = super().make_connection_params(url)
        timeout = float(app_settings.CACHE_SOCKET_TIMEOUT)
        params.setdefault("socket_timeout", timeout)
        params.setdefault("socket_connect_timeout", timeout)
        # Pooled redis-py connections already default to no retries, but "?retry_on_timeout=true" in
        # REDIS_URL would add one (a second full timeout); an explicit policy keeps a down cache at one wait.
        params["retry"] = Retry(NoBackoff(), 0)
        return params

    def get_or_create_connection_pool(self, params: dict[str, Any]) -> Any:
        """Return the cached pool for this URL and these timeouts."""
        key = f"{params['url']}|{params.get('socket_timeout')}|{params.get('socket_connect_timeout')}"
        if key not in self._pools:
            self._pools[key] = self.get_connection_pool(params)
        return self._pools[key]


class JSONEncoder(json.JSONEncoder):
    """JSON for cached values: Decimal as a string, UUID, datetime/date/time (ISO 8601), Pydantic models, enums."""

    def default(self, o: Any) -> Any:
        """Return a JSON-friendly form of ``o``."""
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, UUID):
            return str(o)
        if isinstance(o, (dt.datetime, dt.date, dt.time)):
            return o.isoformat()
        if isinstance(o, dt.timedelta):
            return o.total_seconds()
        if isinstance(o, BaseModel):
            return o.model_dump(mode="json")
        if isinstance(o, Enum):
            return o.value
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, (builtins.set, frozenset, tuple)):
            return list(o)
        return super().default(o)


def dumps_json(obj: Any) -> str:
    """Serialise ``obj`` with :class:`JSONEncoder`.

    Raises:
        ValidationError: when ``obj`` cannot be represented as JSON (NaN, an unknown type, too deep).
    """
    try:
        return json.dumps(obj, cls=JSONEncoder, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise ValidationError(
            "The value cannot be stored as JSON: it is nested too deeply.", code="INVALID_CACHE_VALUE"
        ) from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"The value cannot be stored as JSON: {exc}", code="INVALID_CACHE_VALUE") from exc


class UnreadableCacheValue(ValueError):
    """A cached value that is not the JSON this module writes (garbage, an old pickle, a forged value)."""


def loads_json(data: bytes | str) -> Any:
    """Decode cached JSON (UTF-8 bytes or text).

    Raises:
        UnreadableCacheValue: when ``data`` is not UTF-8 JSON (or is nested too deeply to decode).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UnreadableCacheValue(f"{type(exc).__name__}: {exc}"[:200]) from None


class JSONSerializer(BaseSerializer):
    """django-redis serializer: JSON with :class:`JSONEncoder` (set as ``OPTIONS["SERIALIZER"]``).

    Unlike django-redis' default ``PickleSerializer`` it cannot run code while loading. Values are
    UTF-8 JSON text in Redis, readable by any tool.
    """

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` (text already encoded by :func:`set` is written as is)."""
        if type(value) is _JSONText:
            return value.encode("utf-8")
        return dumps_json(value).encode("utf-8")

    def loads(self, value: bytes) -> Any:
        """Decode ``value``; raises :class:`UnreadableCacheValue` for anything that is not JSON."""
        return loads_json(value)


class JSONClient(DefaultClient):
    """django-redis client whose ``get``/``get_many`` answer a miss (with a warning) for an unreadable value.

    Set as ``OPTIONS["CLIENT_CLASS"]``, so Django's own cache API (DRF's throttle) behaves like
    :func:`get`: a forged or stale value is skipped and will be overwritten, instead of raising.
    """

    def get(self, key: Any, default: Any = None, version: int | None = None, client: Any = None) -> Any:
        """Return the decoded value, or ``default`` when it is missing or unreadable."""
        try:
            return super().get(key, default=default, version=version, client=client)
        except UnreadableCacheValue as exc:
            _unreadable("get", str(key), exc)
            return default

    def get_text(self, key: Any, version: int | None = None) -> bytes | None:
        """The stored bytes under ``key`` (decompressed, not decoded), or None; redis-py errors propagate."""
        value = self.get_client(write=False).get(self.make_key(key, version=version))
        if value is not None:
            with suppress(CompressorError):  # django-redis leaves short values uncompressed
                value = self._compressor.decompress(value)
        return cast("bytes | None", value)

    def get_many(self, keys: Any, version: int | None = None, client: Any = None) -> dict[Any, Any]:
        """Return the present, readable values; an unreadable one is left out (with a warning)."""
        try:
            return super().get_many(keys, version=version, client=client)
        except UnreadableCacheValue:
            # One bad value fails the whole batch: read the keys one by one to keep the others.
            found = {}
            for key in keys:
                value = self.get(key, _MISSING, version=version, client=client)
                if value is not _MISSING:
                    found[key] = value
            return found


class _JSONText(str):
    """JSON text :func:`set` encoded once: the Redis serializer writes it as is, local memory keeps it as text."""

    __slots__ = ()


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or any(ord(c) < 33 or ord(c) == 127 for c in key):
        raise ValidationError(
            f"Invalid cache key {key!r}: use a non-empty string without spaces or control characters.",
            code="INVALID_CACHE_KEY",
        )
    return key


def _check_ttl(ttl: float | dt.timedelta | None, name: str) -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, dt.timedelta) else ttl
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not 0 < seconds <= MAX_TTL_SECONDS
    ):
        raise ValidationError(
            f"{name} must be a finite number of seconds above 0 and at most {MAX_TTL_SECONDS} (ten years), "
            f"or None for no expiry; got {ttl!r}."
        )
    return seconds


def _warn(operation: str, key: str | None, exc: BaseException) -> None:
    """Log that the cache is unavailable: a warning at most every 30 s, debug in between."""
    global _last_warning
    now = time.monotonic()
    with _warn_lock:
        loud = now - _last_warning >= _WARN_EVERY_SECONDS
        if loud:
            _last_warning = now
    extra = {"operation": operation, "cache_key": key, "error_type": type(exc).__name__, "error": str(exc)}
    if loud:
        logger.warning("Cache unavailable during %s; continuing without it: %s", operation, exc, extra=extra)
    else:
        logger.debug("Cache unavailable during %s: %s", operation, exc, extra=extra)


def _guard(operation: str, key: str | None, fallback: T, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except _CACHE_ERRORS as exc:
        _warn(operation, key, exc)
        return fallback


def _unreadable(operation: str, key: str, exc: BaseException) -> None:
    """Log a value that could not be read (never its content): a miss, but someone wrote it."""
    logger.warning(
        "Ignoring an unreadable cached value under %s (not JSON written by common.cache): %s",
        key,
        exc,
        extra={"operation": operation, "cache_key": key, "error_type": type(exc).__name__},
    )


def _decoded(value: Any) -> Any:
    """The value as the backend returned it, with text this module encoded decoded (local memory)."""
    return loads_json(value) if type(value) is _JSONText else value


def set(key: str, value: Any, ex: float | dt.timedelta | None = None) -> bool:
    """Store ``value`` (as JSON) under ``key`` for ``ex`` seconds (``None``: no expiry); False when the cache is down.

    ``get`` returns the JSON form: Decimal and UUID as strings, tuples as lists, models as dicts.

    Raises:
        ValidationError: for a bad key or ``ex``, or a value JSON cannot hold; nothing is written.
    """
    _check_key(key)
    return _store(key, dumps_json(value), _check_ttl(ex, "ex"))


def _store(key: str, text: str, timeout: float | None) -> bool:
    """Write JSON ``text`` as is (the serializer encodes it to UTF-8 without parsing it again)."""
    value = _JSONText(text)

    def run() -> bool:
        caches[CACHE_ALIAS].set(key, value, timeout=timeout)
        return True

    return _guard("set", key, False, run)


def get(key: str, default: Any = None) -> Any:
    """Return the value under ``key``, or ``default`` on a miss, an unreadable value or when the cache is down."""
    _check_key(key)

    def run() -> Any:
        try:
            value = caches[CACHE_ALIAS].get(key, _MISSING)
            return default if value is _MISSING else _decoded(value)
        except UnreadableCacheValue as exc:
            _unreadable("get", key, exc)
            return default

    return _guard("get", key, default, run)


def get_many(keys: Iterable[str]) -> dict[str, Any]:
    """Return ``{key: value}`` for the keys present and readable; ``{}`` when the cache is down.

    An unreadable value is left out (with a warning), the others are still returned.
    """
    wanted = [_check_key(key) for key in keys]
    if not wanted:
        return {}

    def run() -> dict[str, Any]:
        try:
            found = caches[CACHE_ALIAS].get_many(wanted)
        except UnreadableCacheValue:
            # Only without JSONClient (its get_many skips bad values): one bad value fails django-redis'
            # whole batch, so read the keys one by one to keep the others.
            return {key: value for key in wanted if (value := get(key, _MISSING)) is not _MISSING}
        return {key: _decoded(value) for key, value in found.items()}

    return _guard("get_many", None, {}, run)


def delete(key: str) -> bool:
    """Delete ``key``; True when the cache answered (whether or not the key existed)."""
    _check_key(key)

    def run() -> bool:
        caches[CACHE_ALIAS].delete(key)
        return True

    return _guard("delete", key, False, run)


def set_json(key: str, obj: Any, ttl: float | dt.timedelta | None = None) -> bool:
    """Store ``obj`` as JSON (Decimal as string, UUID, datetime, Pydantic models) for ``ttl`` seconds.

    Encoded once: Redis holds ``obj``'s JSON, as :func:`set` writes it, except that a value whose JSON is a
    string keeps the older form (its JSON inside a JSON string), which :func:`get_json` still reads.

    Raises:
        ValidationError: for a bad key or ``ttl``, or when ``obj`` is not JSON-serialisable (a bug in the
            caller, not an outage); nothing is written.
    """
    _check_key(key)
    timeout = _check_ttl(ttl, "ttl")
    text = dumps_json(obj)
    return _store(key, dumps_json(text) if text.startswith('"') else text, timeout)


def get_json(key: str, default: Any = None, *, model: type[M] | None = None) -> Any:
    """Return the JSON value under ``key`` (validated into ``model`` when given), else ``default``.

    Reads what :func:`set_json` (or :func:`set`) wrote, and the older form of ``set_json`` (the JSON inside
    a JSON string). A value that is not valid JSON (or not valid for ``model``) counts as a miss and is logged.
    """
    _check_key(key)

    def run() -> Any:
        backend = caches[CACHE_ALIAS]
        client = getattr(backend, "client", None)
        if isinstance(client, JSONClient):
            text: bytes | str | None = client.get_text(key)  # parsed once below, or by pydantic straight away
        else:
            stored = backend.get(key, _MISSING)
            if stored is not _MISSING and type(stored) is not _JSONText:  # another client: decoded already
                return _from_value(key, stored, default, model)
            text = None if stored is _MISSING else stored
        return default if text is None else _from_text(key, text, default, model)

    return _guard("get_json", key, default, run)


def _from_text(key: str, text: bytes | str, default: Any, model: type[M] | None) -> Any:
    """:func:`get_json` of the stored JSON ``text``: into ``model`` in one pass when it is not the older form."""
    head = text[:1]
    if head.isspace():
        head = text.lstrip()[:1]
    if model is not None and head not in (b'"', '"'):
        try:
            return model.model_validate_json(text)
        except ValueError as exc:  # pydantic's ValidationError (invalid JSON included)
            _unreadable("get_json", key, exc)
            return default
    try:
        value = loads_json(text)
    except UnreadableCacheValue as exc:
        _unreadable("get_json", key, exc)
        return default
    return _from_value(key, value, default, model)


def _from_value(key: str, value: Any, default: Any, model: type[M] | None) -> Any:
    """:func:`get_json` of a decoded value; a string is JSON text (the older form), decoded in turn."""
    try:
        if type(value) is str:
            return json.loads(value) if model is None else model.model_validate_json(value)
        return value if model is None else model.model_validate_json(json.dumps(value))
    except (TypeError, ValueError, RecursionError) as exc:
        _unreadable("get_json", key, exc)
        return default


def ping() -> None:
    """Write and read back a short-lived probe key.

    Raises:
        ServiceUnavailableError: when the cache does not answer or answers wrongly.
    """
    cache = caches[CACHE_ALIAS]
    probe = f"health:{time.time_ns()}"
    try:
        cache.set(probe, "ok", timeout=10)
        value = cache.get(probe)
        cache.delete(probe)
    except _CACHE_ERRORS as exc:
        raise ServiceUnavailableError(f"The cache is unreachable: {exc}", details={"service": "cache"}) from exc
    if value != "ok":
        raise ServiceUnavailableError("The cache did not return the value just written.", details={"service": "cache"})


def health_check() -> bool:
    """True when the cache stores and returns a value; False (with a warning) otherwise."""
    try:
        ping()
    except ServiceUnavailableError as exc:
        _warn("health_check", None, exc)
        return False
    return True


async def aset(key: str, value: Any, ex: float | dt.timedelta | None = None) -> bool:
    """Async twin of :func:`set`."""
    return await sync_to_async(set, thread_sensitive=False)(key, value, ex)


async def aget(key: str, default: Any = None) -> Any:
    """Async twin of :func:`get`."""
    return await sync_to_async(get, thread_sensitive=False)(key, default)


async def aget_many(keys: Iterable[str]) -> dict[str, Any]:
    """Async twin of :func:`get_many`."""
    return await sync_to_async(get_many, thread_sensitive=False)(list(keys))


async def adelete(key: str) -> bool:
    """Async twin of :func:`delete`."""
    return await sync_to_async(delete, thread_sensitive=False)(key)


async def aset_json(key: str, obj: Any, ttl: float | dt.timedelta | None = None) -> bool:
    """Async twin of :func:`set_json`."""
    return await sync_to_async(set_json, thread_sensitive=False)(key, obj, ttl)


async def aget_json(key: str, default: Any = None, *, model: type[M] | None = None) -> Any:
    """Async twin of :func:`get_json`."""
    return await sync_to_async(get_json, thread_sensitive=False)(key, default, model=model)


async def ahealth_check() -> bool:
    """Async twin of :func:`health_check`."""
    return await sync_to_async(health_check, thread_sensitive=False)()
