"""Shared fixtures: service detection (PostgreSQL, Redis) and environment helpers.

A test that needs a service it cannot reach is skipped, unless
``VIDEOGEN_REQUIRE_SERVICES=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import override_settings

from common import conf

REQUIRE_SERVICES = os.environ.get("VIDEOGEN_REQUIRE_SERVICES") == "1"
# Without REDIS_URL, tests use this dedicated database index (never 0, the one applications default to).
# Tests delete only the keys they wrote; none flushes a database (tests/test_test_environment.py checks).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_test_url() -> str:
    """The Redis URL tests use: ``REDIS_URL``, else :data:`DEFAULT_REDIS_URL`."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def require_service(reason: str) -> None:
    """Skip the current test for ``reason``, or fail it when services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason} (VIDEOGEN_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _postgres_marker(request: pytest.FixtureRequest) -> None:
    """Tests marked ``postgres`` need the default database to be PostgreSQL."""
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        require_service("the default database is not PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture(autouse=True)
def _fresh_stage_medians() -> None:
    """Each test starts with no cached stage medians: its history is the database's, rolled back between tests."""
    from common.selectors.estimates import stage_medians_forget

    stage_medians_forget()


@pytest.fixture
def redis_url() -> str:
    """URL of a reachable Redis server (``REDIS_URL`` or the local one)."""
    url = redis_test_url()
    parts = urlsplit(url)
    if not port_open(parts.hostname or "127.0.0.1", parts.port or 6379):
        require_service(f"Redis is not reachable at {parts.hostname}:{parts.port or 6379}")
    return url


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clear the parsed-environment cache before and after a test that changes variables."""
    monkeypatch.setenv("VIDEOGEN_ENV_FILE", os.devnull)
    conf.reset_settings_cache()
    yield
    conf.reset_settings_cache()


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """``(TEMP_DIR, CACHE_DIR)``: two empty directories under tmp_path, set in the app settings."""
    temp_root, cache_root = tmp_path / "temp", tmp_path / "cache"
    temp_root.mkdir()
    cache_root.mkdir()
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": temp_root, "CACHE_DIR": cache_root}):
        yield temp_root, cache_root
