"""Issue 11 items 1, 4, 5 and 8 against the stand-in server: names on the wire, missing buckets, keys, odd errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import storages
from django.test import override_settings

from common import errors
from common.storage import facade
from common.storage.supabase import SupabaseStorage
from tests.storage import samples
from tests.storage.conftest import supabase_storages
from tests.storage.fake_supabase import FakeSupabase

pytestmark = pytest.mark.django_db


def jwt_with(claims: dict[str, Any]) -> str:
    """An (unsigned-looking) JWT carrying ``claims``: enough for the client's own role check."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def remote(fake_supabase: FakeSupabase):
    with override_settings(STORAGES=supabase_storages(fake_supabase.url)):
        yield fake_supabase


def every_operation(tmp_path: Path) -> dict[str, Callable[[], object]]:
    """Each facade and Django-storage operation on an object of video-clips."""
    return {
        "upload": lambda: facade.upload_file("video-clips", "j/a.mp4", samples.MP4),
        "download": lambda: facade.download_file("video-clips", "j/a.mp4"),
        "download_to": lambda: facade.download_to(bucket="video-clips", path="j/a.mp4", destination=tmp_path / "x"),
        "exists": lambda: facade.exists("video-clips", "j/a.mp4"),
        "sign": lambda: facade.get_signed_url("video-clips", "j/a.mp4"),
        "delete": lambda: facade.delete_file("video-clips", "j/a.mp4"),
        "list": lambda: facade.list_files("video-clips", "j"),
        "delete_prefix": lambda: facade.delete_prefix(bucket="video-clips", prefix="j"),
        "storage.exists": lambda: storages["video-clips"].exists("j/a.mp4"),
        "storage.size": lambda: storages["video-clips"].size("j/a.mp4"),
    }


class TestNamesOnTheWire:
    """Item 1: a name reaches the server exactly as checked; '%' never leaves the process."""

    def test_escaped_segment_by_segment(self, remote: FakeSupabase) -> None:
        facade.upload_file("video-clips", "p/it's (a) b&c=d+e,f@g:h$i!j*.mp4", samples.MP4)
        assert remote.requests[0][1].endswith("/object/video-clips/p/it's%20(a)%20b&c=d+e,f@g:h$i!j*.mp4")
        assert list(remote.objects("video-clips")) == ["p/it's (a) b&c=d+e,f@g:h$i!j*.mp4"]

    @pytest.mark.parametrize("name", ["p/x%41.mp4", "p/song%20A.mp4", "p/a%2Fb.mp4", "p/%2e%2e/x.mp4", "p/bad%ff.mp4"])
    def test_percent_names_never_alias(self, remote: FakeSupabase, name: str) -> None:
        facade.upload_file("video-clips", "p/xA.mp4", samples.MP4)
        facade.upload_file("video-clips", "p/song A.mp4", samples.MP4)
        for call in (
            lambda: facade.upload_file("video-clips", name, samples.MP4 + b"2", upsert=True),
            lambda: facade.delete_file("video-clips", name),
            lambda: facade.download_file("video-clips", name),
        ):
            with pytest.raises(errors.ValidationError) as caught:
                call()
            assert caught.value.code == "INVALID_PATH"
        assert {k: v.data for k, v in remote.objects("video-clips").items()} == {
            "p/xA.mp4": samples.MP4,
            "p/song A.mp4": samples.MP4,
        }


class TestMissingBucket:
    """Item 4: a missing bucket is a configuration error naming the bucket, on every operation."""

    @pytest.mark.parametrize("legacy", [False, True], ids=["current-server", "older-server"])
    def test_every_operation(self, fake_supabase: FakeSupabase, tmp_path: Path, legacy: bool) -> None:
        fake_supabase.legacy_errors = legacy
        del fake_supabase.buckets["video-clips"]
        with override_settings(STORAGES=supabase_storages(fake_supabase.url)):
            for label, call in every_operation(tmp_path).items():
                with pytest.raises(errors.ConfigError) as caught:
                    call()
                assert caught.value.code == "BUCKET_NOT_FOUND", label
                assert "'video-clips'" in caught.value.message, label
                assert "Bucket not found" in caught.value.message, label

    def test_ping_fails(self, fake_supabase: FakeSupabase) -> None:
        del fake_supabase.buckets["video-clips"]
        storage = SupabaseStorage(bucket="no-such-bucket", url=fake_supabase.url, key=fake_supabase.key)
        with pytest.raises(errors.ConfigError, match="no-such-bucket"):
            storage.ping()


class TestKeys:
    """Item 5: a refused key is PERMISSION_DENIED on every operation, reads included, with the server's reason."""

    def test_wrong_key_everywhere(self, fake_supabase: FakeSupabase, tmp_path: Path) -> None:
        with override_settings(STORAGES=supabase_storages(fake_supabase.url, key="expired-or-wrong")):
            for label, call in every_operation(tmp_path).items():
                with pytest.raises((errors.StorageError, PermissionError)) as caught:
                    call()
                if isinstance(caught.value, errors.StorageError):
                    assert caught.value.code == "PERMISSION_DENIED", label
                assert "invalid signature" in str(caught.value), label
                assert "service-role" in str(caught.value), label

    @pytest.mark.parametrize(
        "key",
        [jwt_with({"role": "anon", "iss": "supabase"}), jwt_with({"role": "authenticated"}), "sb_publishable_abc123"],
        ids=["anon-jwt", "user-jwt", "publishable"],
    )
    def test_non_service_key_refused_before_sending(
        self, fake_supabase: FakeSupabase, tmp_path: Path, key: str
    ) -> None:
        with override_settings(STORAGES=supabase_storages(fake_supabase.url, key=key)):
            for label, call in every_operation(tmp_path).items():
                with pytest.raises(errors.ConfigError) as caught:
                    call()
                assert caught.value.code == "STORAGE_KEY_NOT_SERVICE_ROLE", label
        assert fake_supabase.count() == 0

    def test_service_role_jwt_accepted(self, fake_supabase: FakeSupabase) -> None:
        key = jwt_with({"role": "service_role"})
        fake_supabase.key = key
        with override_settings(STORAGES=supabase_storages(fake_supabase.url, key=key)):
            facade.upload_file("video-clips", "a.mp4", samples.MP4)

    def test_opaque_anon_key_cannot_write(self, fake_supabase: FakeSupabase) -> None:
        with (
            override_settings(STORAGES=supabase_storages(fake_supabase.url, key=fake_supabase.anon_key)),
            pytest.raises(errors.StorageError) as caught,
        ):
            facade.upload_file("video-clips", "a.mp4", samples.MP4)
        assert caught.value.code == "PERMISSION_DENIED"
        assert "row-level security" in caught.value.message


class TestUnexpectedErrors:
    """Item 8: whatever a client library raises leaves the facade as a PipelineError."""

    @pytest.mark.parametrize(
        "exc",
        [ValueError("bad"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), KeyError("x")],
        ids=["ValueError", "UnicodeDecodeError", "KeyError"],
    )
    def test_translated(self, remote: FakeSupabase, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
        def explode(*args: object, **kwargs: object) -> None:
            raise exc

        monkeypatch.setattr(SupabaseStorage, "signed_url", explode)
        monkeypatch.setattr(SupabaseStorage, "list_entries", explode)
        with pytest.raises(errors.StorageError) as caught:
            facade.upload_file("video-clips", "a.mp4", samples.MP4)
        assert caught.value.__cause__ is exc
        assert type(exc).__name__ in caught.value.message
        with pytest.raises(errors.StorageError):
            facade.list_files("video-clips")

    def test_body_that_is_not_json(self, remote: FakeSupabase, monkeypatch: pytest.MonkeyPatch) -> None:
        import httpx

        monkeypatch.setattr(httpx.Response, "json", lambda self: json.loads(b"<html>"))
        with pytest.raises(errors.StorageError, match="not JSON"):
            facade.list_files("video-clips")

    def test_non_json_error_from_a_gateway(self, remote: FakeSupabase) -> None:
        from tests.storage.fake_supabase import Fault

        remote.inject(Fault("status", status=401, http_status=401))
        with pytest.raises(errors.StorageError) as caught:
            facade.download_file("video-clips", "a.mp4")
        assert caught.value.code == "PERMISSION_DENIED"
