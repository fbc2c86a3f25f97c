"""The configured Supabase client, created lazily on first use and shared by all threads."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from common.conf import app_settings, get_settings
from common.errors import ConfigError

__all__ = ["get_supabase_client", "make_supabase_client", "reset_supabase_client"]

_lock = threading.Lock()
_client: Any = None


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
            env = get_settings()
            if not env.uses_supabase or env.supabase_url is None or env.supabase_service_key is None:
                raise ConfigError(
                    "Supabase is not configured: set SUPABASE_URL and SUPABASE_SERVICE_KEY.",
                    details={"missing": ["SUPABASE_URL", "SUPABASE_SERVICE_KEY"]},
                )
            _client = make_supabase_client(env.supabase_url, env.supabase_service_key.reveal())
        return _client


def reset_supabase_client() -> None:
    """Forget the shared client so the next call builds a new one (tests, settings changes)."""
    global _client
    with _lock:
        _client = None
