"""The local backend and its signed-URL view: only an unexpired signature for exactly that bucket and path works."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from common.storage import facade, local
from common.storage.buckets import bucket_storages
from common.storage.local import LocalBucketStorage
from tests.storage import samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(tmp_path: Path):
    with override_settings(MEDIA_ROOT=tmp_path, STORAGES=bucket_storages(supabase=False)):
        yield tmp_path


@pytest.fixture
def stored(media: Path) -> str:
    facade.upload_file("video-outputs", "job-1/final.mp4", samples.MP4)
    facade.upload_file("video-outputs", "job-2/final.mp4", samples.MP4 + b"other job")
    facade.upload_file("video-clips", "job-1/final.mp4", samples.MP4 + b"clip")
    return facade.get_signed_url("video-outputs", "job-1/final.mp4", expires_in=300)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


class TestSignedDownloadView:
    def test_valid(self, client: Client, stored: str) -> None:
        assert stored.startswith("/storage/video-outputs/job-1/final.mp4?token=")
        response = client.get(stored)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == samples.MP4
        assert response["Content-Type"] == "video/mp4"
        assert response["X-Content-Type-Options"] == "nosniff"

    def test_files_land_in_the_bucket_folder(self, media: Path, stored: str) -> None:
        assert (media / "video-outputs" / "job-1" / "final.mp4").read_bytes() == samples.MP4

    def test_tampered(self, client: Client, stored: str) -> None:
        token = token_of(stored)
        forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        assert client.get(f"/storage/video-outputs/job-1/final.mp4?token={forged}").status_code == 403

    def test_forged_payload_signed_with_another_key(self, client: Client, stored: str) -> None:
        token = signing.dumps(
            {"b": "video-outputs", "p": "job-1/final.mp4", "e": 2**40}, key="not-the-secret", salt=local.SIGNED_URL_SALT
        )
        assert client.get(f"/storage/video-outputs/job-1/final.mp4?token={token}").status_code == 403

    def test_missing_token(self, client: Client, stored: str) -> None:
        assert client.get("/storage/video-outputs/job-1/final.mp4").status_code == 403
        assert client.get("/storage/video-outputs/job-1/final.mp4?token=").status_code == 403

    def test_expired(self, client: Client, stored: str, monkeypatch: pytest.MonkeyPatch) -> None:
        # The expiry the token carries (signing time + 300 s): reading the clock here instead could
        # already be a second later than the signing under load.
        expires = signing.loads(token_of(stored), salt=local.SIGNED_URL_SALT)["e"]
        monkeypatch.setattr(local, "_now", lambda: expires - 1)
        assert client.get(stored).status_code == 200
        monkeypatch.setattr(local, "_now", lambda: expires + 1)
        response = client.get(stored)
        assert response.status_code == 403
        assert samples.MP4 not in response.content

    def test_other_bucket(self, client: Client, stored: str) -> None:
        token = token_of(stored)
        assert client.get(f"/storage/video-clips/job-1/final.mp4?token={token}").status_code == 403

    def test_other_path(self, client: Client, stored: str) -> None:
        token = token_of(stored)
        assert client.get(f"/storage/video-outputs/job-2/final.mp4?token={token}").status_code == 403

    def test_traversal_in_url(self, client: Client, stored: str) -> None:
        token = local.make_signed_token("video-outputs", "../video-clips/job-1/final.mp4", 60)
        response = client.get(f"/storage/video-outputs/../video-clips/job-1/final.mp4?token={token}")
        assert response.status_code in (403, 404)

    def test_deleted_file_is_404(self, client: Client, stored: str) -> None:
        facade.delete_file("video-outputs", "job-1/final.mp4")
        assert client.get(stored).status_code == 404

    def test_unknown_bucket_is_404(self, client: Client, media: Path) -> None:
        token = local.make_signed_token("private", "a.mp4", 60)
        assert client.get(f"/storage/private/a.mp4?token={token}").status_code == 404

    def test_only_get(self, client: Client, stored: str) -> None:
        assert client.post(stored).status_code == 405

    def test_bucket_on_supabase_is_not_served_locally(self, client: Client, media: Path) -> None:
        token = local.make_signed_token("video-outputs", "a.mp4", 60)
        with override_settings(STORAGES=bucket_storages(supabase=True)):
            assert client.get(f"/storage/video-outputs/a.mp4?token={token}").status_code == 404


class TestLocalBackend:
    def test_unknown_option(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="unknown option"):
            LocalBucketStorage(bucket="video-clips", acl="public-read")

    def test_explicit_location(self, tmp_path: Path) -> None:
        storage = LocalBucketStorage(bucket="video-clips", location=str(tmp_path / "elsewhere"))
        storage.save_object("a.mp4", samples.MP4)
        assert (tmp_path / "elsewhere" / "video-clips" / "a.mp4").read_bytes() == samples.MP4

    def test_media_root_read_at_call_time(self, tmp_path: Path) -> None:
        storage = LocalBucketStorage(bucket="video-clips")
        with override_settings(MEDIA_ROOT=tmp_path / "one"):
            assert storage.location == str(tmp_path / "one" / "video-clips")
        with override_settings(MEDIA_ROOT=tmp_path / "two"):
            assert storage.location == str(tmp_path / "two" / "video-clips")

    def test_no_overwrite_without_upsert(self, tmp_path: Path) -> None:
        storage = LocalBucketStorage(bucket="video-clips", location=str(tmp_path))
        storage.save_object("a.mp4", samples.MP4)
        with pytest.raises(FileExistsError):
            storage.save_object("a.mp4", samples.MP4 + b"x")
        assert storage.read_object("a.mp4") == samples.MP4
        assert storage.list_objects() == ["a.mp4"]  # no temp files left behind

    def test_django_save_renames_when_overwrite_is_off(self, tmp_path: Path) -> None:
        from django.core.files.base import ContentFile

        storage = LocalBucketStorage(bucket="video-clips", location=str(tmp_path), file_overwrite=False)
        first = storage.save("a.mp4", ContentFile(samples.MP4))
        second = storage.save("a.mp4", ContentFile(samples.MP4))
        assert first == "a.mp4"
        assert second != "a.mp4"

    def test_ping_reports_unwritable_folder(self, tmp_path: Path) -> None:
        import os

        locked = tmp_path / "locked"
        locked.mkdir()
        os.chmod(locked, 0o500)
        try:
            if os.access(locked, os.W_OK):  # running as root: permissions are not enforced
                pytest.skip("file permissions are not enforced for this user")
            with pytest.raises(PermissionError):
                LocalBucketStorage(bucket="video-clips", location=str(locked)).ping()
        finally:
            os.chmod(locked, 0o700)

    def test_deconstruct(self) -> None:
        path, _, kwargs = LocalBucketStorage(bucket="video-clips").deconstruct()
        assert path == "common.storage.local.LocalBucketStorage"
        assert kwargs == {"bucket": "video-clips"}
