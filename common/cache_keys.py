"""The cache key function: keys are exactly ``videogen:cache:<key>`` (no version segment).

Kept apart from :mod:`common.cache` so Django can import it while reading
``CACHES`` without loading anything else.
"""

from __future__ import annotations


def make_key(key: str, key_prefix: str, version: int | str | None) -> str:
    """Return ``<key_prefix>:<key>``; the version is ignored so other tools see stable names."""
    return f"{key_prefix}:{key}" if key_prefix else str(key)
