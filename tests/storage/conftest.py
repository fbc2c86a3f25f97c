"""Fixtures for the storage tests: a fake retry clock, the stand-in Supabase server, and both backends."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client, override_settings

from common import retry
from common.storage import local
from common.storage.buckets import BUCKETS, bucket_storages
from tests.storage.fake_supabase import FakeSupabase

SERVICE_KEY = "service-role-key-for-tests"


@pytest.fixture(autouse=True)
def fake_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the retry sleep with a recorder, so retries do not wait."""
    slept: list[float] = []
    monkeypatch.setattr(retry, "sleep", slept.append)

    async def record(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(retry, "async_sleep", record)
    return slept


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """No shared Storage client or cached health probe outlives a test (each test has its own server)."""
    from common import health
    from common.storage import client

    client.reset_supabase_client()
    health._probe_cache.clear()
    yield
    client.reset_supabase_client()
    health._probe_cache.clear()


@pytest.fixture
def small_chunks() -> Iterator[None]:
    """Resumable uploads above 64 KiB, in 64 KiB chunks, so the tests move little data."""
    with override_settings(VIDEOGEN_COMMON={"STORAGE_RESUMABLE_THRESHOLD": 64 * 1024, "STORAGE_CHUNK_SIZE": 64 * 1024}):
        yield


@pytest.fixture
def fake_supabase() -> Iterator[FakeSupabase]:
    """A running stand-in Supabase Storage server with the four buckets."""
    server = FakeSupabase(key=SERVICE_KEY, buckets=tuple(BUCKETS)).start()
    yield server
    server.stop()


def supabase_storages(url: str, key: str = SERVICE_KEY, **extra: Any) -> dict[str, Any]:
    """STORAGES with every bucket on SupabaseStorage pointed at ``url``."""
    storages = bucket_storages(supabase=True)
    for entry in storages.values():
        entry["OPTIONS"].update({"url": url, "key": key, "timeout": 5, **extra})
    return storages


@dataclass
class Backend:
    """One configured storage backend as the contract tests see it."""

    name: str
    sent: Callable[[], int]  # writes/requests so far: files on disk (local) or HTTP requests (Supabase)
    fetch: Callable[[str], tuple[int, bytes, str]]  # GET a signed URL -> (status, body, content type)
    advance: Callable[[float], None]  # move the clock that signed URLs expire by
    server: FakeSupabase | None = None  # the stand-in server (Supabase only)


@pytest.fixture(params=["local", "supabase"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """Every bucket on one backend: local files under a temporary MEDIA_ROOT, or the stand-in Supabase."""
    if request.param == "local":
        media = tmp_path / "media"
        offset = [0.0]
        real_now = local._now
        monkeypatch.setattr(local, "_now", lambda: real_now() + offset[0])
        client = Client()

        def fetch_local(url: str) -> tuple[int, bytes, str]:
            response = client.get(url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            return response.status_code, body, response.get("Content-Type", "")

        def files_written() -> int:
            return sum(len(files) for _, _, files in os.walk(media)) if media.exists() else 0

        def advance_local(seconds: float) -> None:
            offset[0] += seconds

        with override_settings(MEDIA_ROOT=media, STORAGES={**bucket_storages(supabase=False)}):
            yield Backend("local", files_written, fetch_local, advance_local)
    else:
        server: FakeSupabase = request.getfixturevalue("fake_supabase")

        def fetch_remote(url: str) -> tuple[int, bytes, str]:
            response = httpx.get(url)
            status = response.status_code
            if status == 400:  # Supabase's way: the real status is in the body
                status = int(response.json()["statusCode"])
                status = 403 if status == 400 else status
            return status, response.content, response.headers.get("content-type", "")

        def advance_remote(seconds: float) -> None:
            server.clock_offset += seconds

        with override_settings(STORAGES=supabase_storages(server.url)):
            yield Backend("supabase", lambda: server.count(), fetch_remote, advance_remote, server)
