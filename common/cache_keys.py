"""The cache's settings-time pieces: the key function and the ``CACHES`` setting.

Keys are exactly ``videogen:cache:<key>`` (no version segment). Kept apart from
:mod:`common.cache` so Django can import it while reading ``CACHES`` without
loading anything else.
"""

from __future__ import annotations

from typing import Any

KEY_PREFIX = "videogen:cache"


def make_key(key: str, key_prefix: str, version: int | str | None) -> str:
    """Return ``<key_prefix>:<key>``; the version is ignored so other tools see stable names."""
    return f"{key_prefix}:{key}" if key_prefix else str(key)


def cache_settings(redis_url: str | None, *, location: str = "videogen") -> dict[str, Any]:
    """Return the ``CACHES`` setting: django-redis at ``redis_url``, else the local-memory cache.

    The Redis cache stores JSON (:class:`common.cache.JSONSerializer`), never pickles: whoever can write to
    Redis must not be able to run code in the workers. ``location`` names the local-memory cache.
    """
    if redis_url is None:
        return {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": location,
                "KEY_FUNCTION": "common.cache_keys.make_key",
                "KEY_PREFIX": KEY_PREFIX,
            }
        }
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            # Keys are exactly "videogen:cache:<key>" in Redis.
            "KEY_FUNCTION": "common.cache_keys.make_key",
            "KEY_PREFIX": KEY_PREFIX,
            "OPTIONS": {
                # JSON with the project's encoder, not django-redis' default pickle; a value that does not
                # decode is a miss with a warning, for Django's cache API as for common.cache (see there).
                "CLIENT_CLASS": "common.cache.JSONClient",
                "SERIALIZER": "common.cache.JSONSerializer",
                # A down Redis must answer fast, not hang the pipeline: the factory applies
                # VIDEOGEN_COMMON["CACHE_SOCKET_TIMEOUT"] (0.5 s) as connect/read timeout, without retries.
                "CONNECTION_FACTORY": "common.cache.ConnectionFactory",
            },
        }
    }
