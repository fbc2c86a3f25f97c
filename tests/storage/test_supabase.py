"""SupabaseStorage over real HTTP against the stand-in server: retries, error translation, options, the client."""

from __future__ import annotations

import socket
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from common import errors
from common.storage import client as client_module
from common.storage import facade
from common.storage.supabase import SupabaseStorage
from tests.storage import samples
from tests.storage.conftest import SERVICE_KEY, supabase_storages
from tests.storage.fake_supabase import FakeSupabase, Fault

pytestmark = pytest.mark.django_db


@pytest.fixture
def remote(fake_supabase: FakeSupabase):
    with override_settings(STORAGES=supabase_storages(fake_supabase.url)):
        yield fake_supabase


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class TestRetries:
    """Network errors, 5xx and 429 are retried with backoff; other 4xx are not."""

    @pytest.mark.parametrize(
        "fault",
        [
            Fault("status", status=500),
            Fault("status", status=503, http_status=503),
            Fault("status", status=500, http_status=400),  # 500 reported inside an HTTP 400, Supabase-style
            Fault("status", status=429, http_status=429),
            Fault("drop"),
        ],
        ids=["500", "503", "500-in-400", "429", "dropped-connection"],
    )
    def test_transient_failures_are_retried(self, remote: FakeSupabase, fake_sleep: list[float], fault: Fault) -> None:
        remote.inject(fault, fault)
        facade.upload_file("audio-uploads", "retry.mp3", samples.MP3)
        assert remote.count("POST", "/object/audio-uploads/retry.mp3") == 3
        assert len(fake_sleep) == 2
        assert fake_sleep[1] > fake_sleep[0]  # exponential backoff
        assert facade.download_file("audio-uploads", "retry.mp3") == samples.MP3

    def test_gives_up_after_three_attempts(self, remote: FakeSupabase, fake_sleep: list[float]) -> None:
        remote.inject(*[Fault("status", status=502)] * 3)
        with pytest.raises(errors.ServiceUnavailableError) as caught:
            facade.download_file("audio-uploads", "x.mp3")
        assert caught.value.retryable
        assert caught.value.details["bucket"] == "audio-uploads"
        assert remote.count("GET") == 3
        assert len(fake_sleep) == 2

    def test_retry_after_is_respected(self, remote: FakeSupabase, fake_sleep: list[float]) -> None:
        remote.inject(Fault("status", status=429, http_status=429, retry_after="7"))
        facade.upload_file("audio-uploads", "slow.mp3", samples.MP3)
        assert fake_sleep == [7.0]

    @pytest.mark.parametrize(
        ("status", "code"),
        [(403, "PERMISSION_DENIED"), (401, "PERMISSION_DENIED"), (400, "STORAGE_ERROR"), (422, "STORAGE_ERROR")],
    )
    def test_client_errors_are_not_retried(
        self, remote: FakeSupabase, fake_sleep: list[float], status: int, code: str
    ) -> None:
        remote.inject(Fault("status", status=status))
        with pytest.raises(errors.StorageError) as caught:
            facade.upload_file("audio-uploads", "denied.mp3", samples.MP3)
        assert caught.value.code == code
        assert remote.count("POST", "/object/audio-uploads/") == 1
        assert fake_sleep == []

    def test_not_found_is_not_retried(self, remote: FakeSupabase, fake_sleep: list[float]) -> None:
        with pytest.raises(errors.StorageError) as caught:
            facade.download_file("audio-uploads", "missing.mp3")
        assert caught.value.code == "NOT_FOUND"
        assert remote.count("GET") == 1
        assert fake_sleep == []

    def test_server_down(self, fake_sleep: list[float]) -> None:
        with (
            override_settings(STORAGES=supabase_storages(f"http://127.0.0.1:{closed_port()}")),
            pytest.raises(errors.ServiceUnavailableError) as caught,
        ):
            facade.download_file("video-clips", "a.mp4")
        assert "unreachable" in caught.value.message
        assert len(fake_sleep) == 2

    async def test_async_retries(self, remote: FakeSupabase, fake_sleep: list[float]) -> None:
        remote.inject(Fault("drop"))
        await facade.aupload_file("video-clips", "a.mp4", samples.MP4)
        assert remote.count("POST", "/object/video-clips/a.mp4") == 2


class TestErrors:
    def test_wrong_key_is_permission_denied(self, fake_supabase: FakeSupabase) -> None:
        with (
            override_settings(STORAGES=supabase_storages(fake_supabase.url, key="wrong-key")),
            pytest.raises(errors.StorageError) as caught,
        ):
            facade.download_file("video-clips", "a.mp4")
        assert caught.value.code == "PERMISSION_DENIED"
        assert isinstance(caught.value.__cause__, PermissionError)

    def test_upsert_header_is_explicit(self, remote: FakeSupabase) -> None:
        facade.upload_file("video-clips", "a.mp4", samples.MP4)
        with pytest.raises(errors.StorageError) as caught:
            facade.upload_file("video-clips", "a.mp4", samples.MP4)
        assert caught.value.code == "ALREADY_EXISTS"
        assert isinstance(caught.value.__cause__, FileExistsError)
        facade.upload_file("video-clips", "a.mp4", samples.MP4 + b"2", upsert=True)
        assert remote.objects("video-clips")["a.mp4"].data == samples.MP4 + b"2"

    def test_content_type_and_cache_control_are_sent(self, remote: FakeSupabase) -> None:
        facade.upload_file("audio-uploads", "song", samples.FLAC)
        stored = remote.objects("audio-uploads")["song"]
        assert stored.content_type == "audio/flac"
        assert stored.cache_control == "max-age=3600"

    def test_signed_url_points_at_the_server(self, remote: FakeSupabase) -> None:
        url = facade.upload_file("video-outputs", "job/final.mp4", samples.MP4, expires_in=120)
        assert url.startswith(f"{remote.url}/storage/v1/object/sign/video-outputs/job/final.mp4?token=")

    def test_non_positive_expiry_refused(self, remote: FakeSupabase) -> None:
        with pytest.raises(errors.ValidationError):
            facade.get_signed_url("video-outputs", "a.mp4", expires_in=0)
        assert remote.count() == 0


class TestOptions:
    def test_unknown_option(self) -> None:
        with pytest.raises(ImproperlyConfigured, match=r"unknown option.*regoin"):
            SupabaseStorage(bucket="video-clips", regoin="eu")

    @pytest.mark.parametrize(
        "options",
        [
            {},
            {"bucket": ""},
            {"bucket": "a/b"},
            {"bucket": "x", "max_size": 0},
            {"bucket": "x", "max_size": "10"},
            {"bucket": "x", "allowed_content_types": "video/mp4"},
        ],
    )
    def test_invalid_options(self, options: dict) -> None:
        with pytest.raises(ImproperlyConfigured):
            SupabaseStorage(**options)

    def test_deconstruct(self) -> None:
        path, _, kwargs = SupabaseStorage(bucket="video-clips", max_size=5).deconstruct()
        assert path == "common.storage.supabase.SupabaseStorage"
        assert kwargs == {"bucket": "video-clips", "max_size": 5}

    def test_client_is_lazy_and_shared_across_threads(self, fake_supabase: FakeSupabase) -> None:
        storage = SupabaseStorage(bucket="video-clips", url=fake_supabase.url, key=SERVICE_KEY)
        assert storage._api is None
        assert fake_supabase.count() == 0
        seen: list[object] = []
        barrier = threading.Barrier(8)

        def grab() -> None:
            barrier.wait()
            seen.append(storage.api)

        threads = [threading.Thread(target=grab) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(c) for c in seen}) == 1

    def test_concurrent_uploads_share_one_client(self, fake_supabase: FakeSupabase) -> None:
        storage = SupabaseStorage(bucket="video-clips", url=fake_supabase.url, key=SERVICE_KEY)
        failures: list[BaseException] = []

        def upload(i: int) -> None:
            try:
                storage.save_object(f"t/{i}.mp4", samples.MP4, upsert=False)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert sorted(fake_supabase.objects("video-clips")) == sorted(f"t/{i}.mp4" for i in range(16))
        assert storage.list_objects("t") == sorted(f"t/{i}.mp4" for i in range(16))

    def test_listing_pages_through_large_folders(self, fake_supabase: FakeSupabase, monkeypatch) -> None:
        from common.storage import supabase as backend_module

        monkeypatch.setattr(backend_module, "_LIST_PAGE", 3)
        storage = SupabaseStorage(bucket="video-clips", url=fake_supabase.url, key=SERVICE_KEY)
        for i in range(7):
            storage.save_object(f"p/{i}.mp4", samples.MP4)
        before = fake_supabase.count("POST", "/object/list/")
        assert storage.list_objects("p") == [f"p/{i}.mp4" for i in range(7)]
        assert fake_supabase.count("POST", "/object/list/") - before == 3

    def test_open_for_writing_refused(self, fake_supabase: FakeSupabase) -> None:
        storage = SupabaseStorage(bucket="video-clips", url=fake_supabase.url, key=SERVICE_KEY)
        with pytest.raises(ValueError, match="reading only"):
            storage.open("a.mp4", "wb")


class TestSharedClient:
    def test_not_configured(self, env_settings, monkeypatch) -> None:
        monkeypatch.delenv("SUPABASE_URL", raising=False)
        monkeypatch.delenv("SUPABASE_SERVICE_KEY", raising=False)
        client_module.reset_supabase_client()
        with pytest.raises(errors.ConfigError, match="SUPABASE_URL"):
            client_module.get_supabase_client()

    def test_configured_from_settings(self, env_settings, monkeypatch, fake_supabase: FakeSupabase) -> None:
        monkeypatch.setenv("SUPABASE_URL", fake_supabase.url)
        monkeypatch.setenv("SUPABASE_SERVICE_KEY", "sb_secret_" + "x" * 30)
        client_module.reset_supabase_client()
        try:
            seen: list[object] = []
            threads = [threading.Thread(target=lambda: seen.append(client_module.get_storage_api())) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len({id(c) for c in seen}) == 1
            # A backend without url/key options uses this shared client.
            storage = SupabaseStorage(bucket="video-clips")
            assert storage.api is seen[0]
            assert client_module.get_supabase_client() is client_module.get_supabase_client()
        finally:
            client_module.reset_supabase_client()

    def test_invalid_url(self) -> None:
        with pytest.raises(errors.ConfigError):
            client_module.make_supabase_client("ftp://nowhere", "key")


class TestDjangoApiExtras:
    def test_modified_time(self, fake_supabase: FakeSupabase) -> None:
        import datetime as dt

        storage = SupabaseStorage(bucket="video-clips", url=fake_supabase.url, key=SERVICE_KEY)
        storage.save_object("m.mp4", samples.MP4)
        moment = storage.get_modified_time("m.mp4")
        assert moment.tzinfo is not None
        assert abs(dt.datetime.now(dt.UTC) - moment) < dt.timedelta(minutes=5)
        with override_settings(USE_TZ=False):
            assert storage.get_modified_time("m.mp4").tzinfo is None
        with pytest.raises(FileNotFoundError):
            storage.get_modified_time("missing.mp4")
