"""Supabase Auth signing keys: the project's JWKS, fetched over HTTP and cached in the process.

Supabase publishes the public halves of a project's asymmetric JWT signing keys
at ``<SUPABASE_URL>/auth/v1/.well-known/jwks.json`` (served with a ten-minute
``Cache-Control``); a token's ``kid`` header names the key that signed it.

Why a small cache of our own rather than PyJWT's ``PyJWKClient``: the keys are
still PyJWT's (``PyJWK``), but ``PyJWKClient`` holds one lock around every
lookup *and* the network fetch, so while Supabase is slow a request whose key is
cached waits behind another request's fetch; it drops the whole set when its
lifespan ends and the refetch fails (cached keys stop working during an outage);
and a failed fetch does not start its cooldown, so while the endpoint is down
every unknown ``kid`` tries again and waits for the timeout. :class:`JWKSCache`
keeps these rules instead:

* a cached key is served without a lock or any I/O;
* keys older than ``API_JWKS_CACHE_SECONDS`` are refreshed by the first request
  that sees them stale (the others carry on with the cached keys); a failed
  refresh keeps the old keys;
* an unknown ``kid`` triggers at most one fetch, and fetches (successful or
  not) are at least ``API_JWKS_MIN_REFRESH_SECONDS`` apart, so a flood of
  random ``kid`` s cannot make the process hammer Supabase;
* every fetch is bounded by ``API_JWKS_TIMEOUT`` seconds in total (connect,
  headers and body), never follows a redirect and reads at most 64 KiB.

Only keys usable for signatures with an asymmetric algorithm (ES256, RS256,
EdDSA) are kept: a symmetric (``oct``) key, a private key, a short RSA key or a
key for another use is skipped, so the JWKS can never hand out an HMAC secret.
The cache lives per process (each worker fetches once per period). ``bench/auth.py`` prints what it
buys: a request verified from the cache against one that fetches the JWKS first.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from common.conf import app_settings
from common.log import get_logger

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "JWKSCache",
    "JWKSError",
    "KeySet",
    "SigningKeysUnavailable",
    "UnknownSigningKey",
    "fetch_jwks",
    "get_jwks_cache",
    "parse_jwks",
    "reset_jwks_caches",
]

logger = get_logger(__name__)

# The algorithms of Supabase's asymmetric signing keys (ECC P-256, RSA; Ed25519 where offered).
ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "RS256", "EdDSA"})
_KEY_TYPES = frozenset({"EC", "RSA", "OKP"})
# A project's JWKS holds a handful of keys (well under 4 KiB); anything far larger is refused.
MAX_JWKS_BYTES = 64 * 1024
MAX_KID_LENGTH = 256
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class JWKSError(Exception):
    """A signing key could not be provided; the message is for the log, never for the client."""


class SigningKeysUnavailable(JWKSError):
    """The JWKS could not be fetched or parsed (down, slow, not JSON...) and the key is not cached."""


class UnknownSigningKey(JWKSError):
    """The JWKS was fetched, but it has no usable key with this ``kid``."""


@dataclass(frozen=True)
class KeySet:
    """The usable signing keys of one JWKS document, by ``kid``, and how many entries were skipped."""

    keys: Mapping[str, PyJWK]
    skipped: int = 0

    @property
    def algorithms(self) -> list[str]:
        """The distinct algorithms of the keys, sorted."""
        return sorted({key.algorithm_name for key in self.keys.values()})


def parse_jwks(document: object) -> KeySet:
    """The usable asymmetric signing keys of a JWKS document (``{"keys": [...]}``).

    Raises:
        SigningKeysUnavailable: the document is not a JSON object with a ``keys`` list.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise SigningKeysUnavailable('the JWKS is not a JSON object with a "keys" list')
    keys: dict[str, PyJWK] = {}
    skipped = 0
    for entry in document["keys"]:
        key = _usable_key(entry)
        if key is None or key.key_id in keys:
            skipped += 1  # a duplicate kid keeps its first key: a token never gets to choose between two
            continue
        keys[str(key.key_id)] = key
    return KeySet(keys=keys, skipped=skipped)


def _usable_key(entry: object) -> PyJWK | None:
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        return None
    if entry.get("kty") not in _KEY_TYPES or any(member in entry for member in _PRIVATE_MEMBERS):
        return None
    if entry.get("use", "sig") != "sig":
        return None
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    try:
        key = PyJWK(entry)
    except (PyJWKError, PyJWTError, ValueError, TypeError):
        return None
    if key.algorithm_name not in ASYMMETRIC_ALGORITHMS or key.Algorithm.check_key_length(key.key):
        return None  # check_key_length names a too-short RSA key
    return key


def fetch_jwks(url: str, *, timeout: float) -> KeySet:
    """Fetch and parse the JWKS at ``url`` within ``timeout`` seconds in total.

    Raises:
        SigningKeysUnavailable: unreachable, slow, not 200, too large, not JSON, not a JWKS.
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SigningKeysUnavailable(f"the JWKS URL {url!r} is not an http(s) URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.connect()
        _remaining(connection, deadline)
        connection.request("GET", path, headers={"Accept": "application/json", "User-Agent": "videogen-common"})
        _remaining(connection, deadline)
        response = connection.getresponse()
        if response.status != 200:
            raise SigningKeysUnavailable(f"the JWKS endpoint answered HTTP {response.status}")
        body = bytearray()
        while True:
            _remaining(connection, deadline)  # a server dripping bytes cannot stretch the fetch
            chunk = response.read1(8192)
            if not chunk:
                break
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise SigningKeysUnavailable(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, bad status line, TLS
        raise SigningKeysUnavailable(f"the JWKS endpoint could not be read: {type(exc).__name__}: {exc}") from exc
    finally:
        connection.close()
    try:
        document = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SigningKeysUnavailable("the JWKS endpoint did not answer JSON") from exc
    return parse_jwks(document)


def _remaining(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Give the socket only the time left before ``deadline``; raise once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the JWKS fetch took longer than its timeout")
    if connection.sock is not None:
        connection.sock.settimeout(left)


class JWKSCache:
    """The signing keys of one JWKS URL, cached for the process (see the module docstring for the rules)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: Mapping[str, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch (monotonic)
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._last_error: str | None = None
        self._lock = threading.Lock()
        self.fetch_count = 0

    def get_key(self, kid: str) -> PyJWK:
        """The key named ``kid``.

        Raises:
            UnknownSigningKey: the (fresh) JWKS has no such key.
            SigningKeysUnavailable: the key is not cached and the JWKS cannot be fetched now.
        """
        key = self._keys.get(kid)
        if key is not None:
            if self._stale() and self._lock.acquire(blocking=False):
                # One request refreshes (bounded by the timeout); the others go on with the cached keys.
                try:
                    if self._stale() and self._may_fetch():
                        with contextlib.suppress(SigningKeysUnavailable):  # logged; the cached keys stay in use
                            self._refresh()
                finally:
                    self._lock.release()
                key = self._keys.get(kid)  # a refresh may have dropped a revoked key
            if key is not None:
                return key
            raise self._refusal(kid)
        if not self._may_fetch() and not self._lock.locked():
            raise self._refusal(kid)  # rate-limited, and no fetch in progress that could bring the key
        # Wait for a fetch in progress (it ends within its timeout), then look again before fetching.
        if not self._lock.acquire(timeout=self._timeout() + 1.0):
            raise SigningKeysUnavailable(f"the JWKS at {self.url} is still being fetched")
        try:
            key = self._keys.get(kid)
            if key is None and self._may_fetch():
                with contextlib.suppress(SigningKeysUnavailable):  # logged; refused below with the fetch error
                    self._refresh()
                key = self._keys.get(kid)
        finally:
            self._lock.release()
        if key is None:
            raise self._refusal(kid)
        return key

    def refresh(self) -> KeySet:
        """Fetch the JWKS now (ignoring the rate limit) and cache it.

        Raises:
            SigningKeysUnavailable: the fetch failed; the cached keys are kept.
        """
        with self._lock:
            return self._refresh()

    @property
    def keys(self) -> Mapping[str, PyJWK]:
        """The cached keys by ``kid`` (empty before the first successful fetch)."""
        return self._keys

    # ------------------------------------------------------------------ internals

    def _refresh(self) -> KeySet:
        """Fetch and swap in the new keys; the caller holds the lock."""
        self._attempted_at = time.monotonic()
        self.fetch_count += 1
        try:
            keyset = fetch_jwks(self.url, timeout=self._timeout())
        except SigningKeysUnavailable as exc:
            self._last_error = str(exc)
            logger.warning(
                "JWKS fetch failed; %d cached signing key(s) stay in use: %s",
                len(self._keys),
                exc,
                extra={"jwks_url": self.url},
            )
            raise
        self._keys = dict(keyset.keys)
        self._fetched_at = time.monotonic()
        self._last_error = None
        log = logger.warning if not keyset.keys else logger.info
        log(
            "JWKS fetched: %d signing key(s) (%s), %d entr%s skipped",
            len(keyset.keys),
            ", ".join(keyset.algorithms) or "none usable",
            keyset.skipped,
            "y" if keyset.skipped == 1 else "ies",
            extra={"jwks_url": self.url},
        )
        return keyset

    def _stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or time.monotonic() - fetched >= float(app_settings.API_JWKS_CACHE_SECONDS)

    def _may_fetch(self) -> bool:
        attempted = self._attempted_at
        return attempted is None or time.monotonic() - attempted >= float(app_settings.API_JWKS_MIN_REFRESH_SECONDS)

    def _refusal(self, kid: str) -> JWKSError:
        if self._last_error is not None:
            return SigningKeysUnavailable(f"kid {kid!r} is not cached and the JWKS is unavailable: {self._last_error}")
        return UnknownSigningKey(f"kid {kid!r} is not in the JWKS at {self.url}")

    def _timeout(self) -> float:
        return float(app_settings.API_JWKS_TIMEOUT)


_caches: dict[str, JWKSCache] = {}
_caches_lock = threading.Lock()


def get_jwks_cache(url: str) -> JWKSCache:
    """The process-wide cache of ``url`` (created on first use)."""
    cache = _caches.get(url)
    if cache is None:
        with _caches_lock:
            cache = _caches.setdefault(url, JWKSCache(url))
    return cache


def reset_jwks_caches() -> None:
    """Forget every cached JWKS (tests)."""
    with _caches_lock:
        _caches.clear()
