"""The configured Supabase clients, created lazily on first use and shared by all threads.

* :func:`get_storage_api` — the Storage REST client (:class:`common.storage.rest.StorageAPI`) the
  bucket backends use, built from ``SUPABASE_URL`` and ``SUPABASE_SERVICE_KEY``.
* :func:`get_supabase_client` — a ``supabase.Client`` for modules that need Supabase beyond storage.

Both refuse with ``ConfigError`` when the environment does not configure Supabase validly (every
problem named, e.g. a malformed ``SUPABASE_SERVICE_KEY``), and storage refuses a key that is not
the service role's (an anon or publishable key) before sending anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from typing import Any

import httpx

from common.conf import app_settings
from common.env import get_settings
from common.errors import ConfigError

__all__ = [
    "check_service_key",
    "get_storage_api",
    "get_supabase_client",
    "key_role",
    "make_supabase_client",
    "reset_supabase_client",
]

_lock = threading.Lock()
_client: Any = None
_api: Any = None


def key_role(key: str) -> str | None:
    """Return the role a Supabase key says it acts as, or None when it does not say.

    A JWT's ``role`` claim; ``service_role`` for an ``sb_secret_`` key, ``anon`` for an ``sb_publishable_`` one.

    Nothing is verified here (the server does that); this only reads what the key claims.
    """
    if key.startswith("sb_secret_"):
        return "service_role"
    if key.startswith("sb_publishable_"):
        return "anon"
    segments = key.split(".")
    if len(segments) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(segments[1] + "=" * (-len(segments[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    role = payload.get("role") if isinstance(payload, dict) else None
    return str(role) if isinstance(role, str) else None


def check_service_key(key: str, *, source: str = "SUPABASE_SERVICE_KEY") -> None:
    """Refuse a key that says it is not the service role's (``STORAGE_KEY_NOT_SERVICE_ROLE``).

    Raises:
        ConfigError: for an anon/authenticated JWT or a publishable key.
    """
    role = key_role(key)
    if role is not None and role != "service_role":
        raise ConfigError(
            f"{source} is a key of the {role!r} role; storage needs the service-role key "
            "(row-level security would hide the buckets and refuse writes).",
            code="STORAGE_KEY_NOT_SERVICE_ROLE",
            details={"role": role, "source": source},
        )


def _configured() -> tuple[str, str]:
    """``(SUPABASE_URL, SUPABASE_SERVICE_KEY)`` from the environment, or ``ConfigError`` naming every problem."""
    env = get_settings()  # raises ConfigError listing every problem, e.g. a malformed SUPABASE_SERVICE_KEY
    if env.supabase_url is None or env.supabase_service_key is None:
        missing = [
            name
            for name, value in (("SUPABASE_URL", env.supabase_url), ("SUPABASE_SERVICE_KEY", env.supabase_service_key))
            if value is None
        ]
        raise ConfigError(
            f"Supabase Storage is selected but not configured: set {' and '.join(missing)}.",
            details={"missing": missing},
        )
    return env.supabase_url, env.supabase_service_key.reveal()


def get_storage_api() -> Any:
    """Return the process-wide Storage REST client for ``SUPABASE_URL`` with ``SUPABASE_SERVICE_KEY``.

    Raises:
        ConfigError: when Supabase is not configured (validly), or the key is not the service role's.
    """
    global _api
    api = _api
    if api is not None:
        return api
    with _lock:
        if _api is None:
            from common.storage.rest import StorageAPI

            url, key = _configured()
            check_service_key(key)
            _api = StorageAPI(url, key)
        return _api


def make_supabase_client(url: str, key: str, *, timeout: float | None = None) -> Any:
    """Return a new ``supabase.Client`` for ``url`` and ``key`` with an HTTP timeout (default STORAGE_TIMEOUT).

    Raises:
        ConfigError: when the URL is not an http(s) URL or the key is empty.
    """
    from supabase import SupabaseException, create_client
    from supabase.lib.client_options import SyncClientOptions

    seconds = float(app_settings.STORAGE_TIMEOUT if timeout is None else timeout)
    # One httpx client with an explicit timeout (storage3's own timeout argument is deprecated).
    http = httpx.Client(timeout=httpx.Timeout(seconds), follow_redirects=True)
    try:
        return create_client(url, key, options=SyncClientOptions(httpx_client=http))
    except SupabaseException as exc:
        http.close()
        raise ConfigError(f"Cannot create the Supabase client: {exc}", code="CONFIG_ERROR") from exc


def get_supabase_client() -> Any:
    """Return the process-wide Supabase client built from ``SUPABASE_URL`` and ``SUPABASE_SERVICE_KEY``.

    The service key bypasses row-level security; use it only on the server.

    Raises:
        ConfigError: when Supabase is not configured.
    """
    global _client
    client = _client
    if client is not None:
        return client
    with _lock:
        if _client is None:
            url, key = _configured()
            _client = make_supabase_client(url, key)
        return _client


def reset_supabase_client() -> None:
    """Forget the shared clients so the next call builds new ones (tests, settings changes)."""
    global _client, _api
    with _lock:
        _client = None
        if _api is not None:
            _api.close()
        _api = None
