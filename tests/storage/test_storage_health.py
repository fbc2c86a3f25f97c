"""The storage health check (issue 11 items 4-5, issue 16 item 7): buckets exist, are private, the key is the
service role's; one cheap probe per server, its result reused for a few seconds; nothing is ever written."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from common import health
from common.health import StorageCheck, run_checks
from tests.storage.conftest import supabase_storages
from tests.storage.fake_supabase import FakeSupabase
from tests.storage.test_supabase_errors import jwt_with

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(health._probe_cache, "clock", fake)
    return fake


@pytest.fixture
def remote(fake_supabase: FakeSupabase) -> Iterator[FakeSupabase]:
    with override_settings(STORAGES=supabase_storages(fake_supabase.url)):
        yield fake_supabase


def storage_result(**kwargs: object) -> health.CheckResult:
    return run_checks([StorageCheck(**kwargs)]).results[0]  # type: ignore[arg-type]


class TestWhatIsProved:
    def test_healthy(self, remote: FakeSupabase) -> None:
        result = storage_result()
        assert result.ok, result.message
        assert result.details["buckets"] == ["audio-uploads", "reference-images", "video-clips", "video-outputs"]
        assert result.details["server"] == remote.url
        assert remote.requests == [("GET", "/storage/v1/bucket")]  # one read for four buckets, nothing written

    def test_missing_bucket_is_named(self, remote: FakeSupabase, client: Client) -> None:
        del remote.buckets["video-outputs"]
        response = client.get("/health/ready")
        assert response.status_code == 503
        message = response.json()["checks"]["storage"]["message"]
        assert "bucket 'video-outputs' does not exist" in message
        assert "audio-uploads' does not exist" not in message

    def test_public_bucket(self, remote: FakeSupabase) -> None:
        remote.buckets["reference-images"].public = True
        result = storage_result()
        assert result.status == "error"
        assert "bucket 'reference-images' is public" in result.message

    def test_wrong_key(self, fake_supabase: FakeSupabase) -> None:
        with override_settings(STORAGES=supabase_storages(fake_supabase.url, key="wrong")):
            result = storage_result()
        assert result.status == "error"
        assert "invalid signature" in result.message
        assert "service-role" in result.message

    def test_anon_jwt_key(self, fake_supabase: FakeSupabase) -> None:
        with override_settings(STORAGES=supabase_storages(fake_supabase.url, key=jwt_with({"role": "anon"}))):
            result = storage_result()
        assert result.status == "error"
        assert "'anon' role" in result.message
        assert fake_supabase.count() == 0

    def test_opaque_anon_key_sees_no_bucket(self, fake_supabase: FakeSupabase) -> None:
        with override_settings(STORAGES=supabase_storages(fake_supabase.url, key=fake_supabase.anon_key)):
            result = storage_result()
        assert result.status == "error"
        assert "does not exist" in result.message
        assert "is it the service-role key?" in result.message

    def test_check_services_names_the_problem(self, remote: FakeSupabase) -> None:
        del remote.buckets["audio-uploads"]
        out = io.StringIO()
        with pytest.raises(CommandError, match="storage"):
            call_command("check_services", "--check", "storage", stdout=out)
        assert "bucket 'audio-uploads' does not exist" in out.getvalue()


class TestCache:
    def test_reused_within_the_ttl(self, remote: FakeSupabase, clock: Clock) -> None:
        assert storage_result().ok
        clock.now += 4.9
        second = storage_result()
        assert second.ok
        assert second.details["cached_age_s"] == pytest.approx(4.9)
        assert remote.count() == 1
        clock.now += 0.2
        assert storage_result().ok
        assert remote.count() == 2

    def test_failures_are_reused_too_and_recover(self, remote: FakeSupabase, clock: Clock) -> None:
        bucket = remote.buckets.pop("video-clips")
        assert "video-clips" in storage_result().message
        remote.buckets["video-clips"] = bucket
        cached = storage_result()
        assert cached.status == "error"
        assert "checked 0.0 s ago" in cached.message
        clock.now += 6
        assert storage_result().ok

    def test_ttl_zero_and_check_services_probe_every_time(self, remote: FakeSupabase) -> None:
        with override_settings(VIDEOGEN_COMMON={"HEALTH_STORAGE_CACHE_SECONDS": 0}):
            storage_result()
            storage_result()
        assert remote.count() == 2
        call_command("check_services", "--check", "storage", stdout=io.StringIO())
        call_command("check_services", "--check", "storage", stdout=io.StringIO())
        assert remote.count() == 4

    def test_one_refresh_at_a_time(self, remote: FakeSupabase, clock: Clock) -> None:
        assert storage_result().ok
        clock.now += 10  # expired
        remote.latency = 0.3  # a slow server: the other probes must not wait for it, nor pile onto it
        results: list[health.CheckResult] = []
        barrier = threading.Barrier(8)

        def probe() -> None:
            barrier.wait()
            results.append(storage_result())

        threads = [threading.Thread(target=probe) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.ok for r in results)
        assert remote.count() == 2

    def test_settings_change_is_a_new_key(self, fake_supabase: FakeSupabase, tmp_path) -> None:
        from common.storage.buckets import bucket_storages

        with override_settings(STORAGES=supabase_storages(fake_supabase.url)):
            assert storage_result().ok
        with override_settings(MEDIA_ROOT=tmp_path, STORAGES=bucket_storages(supabase=False)):
            result = storage_result()
        assert result.ok
        assert result.details["backend"] == "LocalBucketStorage"
