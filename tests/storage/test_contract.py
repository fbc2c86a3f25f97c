"""One contract, two backends: every test here runs on local files and on (a stand-in for) Supabase Storage."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from common import errors
from common.storage import facade
from common.storage.buckets import BUCKETS, MB
from tests.storage import samples
from tests.storage.conftest import Backend

pytestmark = pytest.mark.django_db

BAD_PATHS = [
    "",
    "   ",
    "/abs/olute.mp3",
    "a/../b.mp3",
    "../b.mp3",
    "a/./b.mp3",
    "a\\b.mp3",
    "a\x00b.mp3",
    "a\nb.mp3",
    "a\x7fb.mp3",
    "a//b.mp3",
    "folder/",
    "x" * 1025,
    "a\udc80.mp3",  # a lone surrogate: not encodable as UTF-8
]


class TestStorageContract:
    """The same assertions against LocalBucketStorage and SupabaseStorage."""

    def test_upload_download_round_trip(self, backend: Backend) -> None:
        url = facade.upload_file("audio-uploads", "user-1/job-1/song.mp3", samples.MP3)
        assert url
        assert facade.download_file("audio-uploads", "user-1/job-1/song.mp3") == samples.MP3
        assert facade.exists("audio-uploads", "user-1/job-1/song.mp3")
        status, body, content_type = backend.fetch(url)
        assert (status, body) == (200, samples.MP3)
        assert content_type.startswith("audio/mpeg")

    def test_each_bucket_accepts_its_types(self, backend: Backend) -> None:
        cases = [
            ("audio-uploads", "a.wav", samples.WAV, "audio/wav"),
            ("audio-uploads", "a.flac", samples.FLAC, "audio/flac"),
            ("reference-images", "r.png", samples.PNG, "image/png"),
            ("reference-images", "r.jpg", samples.JPEG, "image/jpeg"),
            ("reference-images", "r.webp", samples.WEBP, "image/webp"),
            ("video-clips", "c.mp4", samples.MP4, "video/mp4"),
            ("video-outputs", "o.webm", samples.WEBM, "video/webm"),
        ]
        for bucket, path, data, expected_type in cases:
            url = facade.upload_file(bucket, path, data)
            status, body, content_type = backend.fetch(url)
            assert (status, body) == (200, data), (bucket, path)
            assert content_type.split(";")[0] == expected_type, (bucket, path)

    def test_content_type_is_detected_from_content_not_name(self, backend: Backend) -> None:
        url = facade.upload_file("reference-images", "misnamed.bin", samples.PNG)
        assert backend.fetch(url)[2].startswith("image/png")

    def test_explicit_content_type_is_sent(self, backend: Backend) -> None:
        url = facade.upload_file("audio-uploads", "raw.mp3", samples.MP3, content_type="audio/mp3")
        assert backend.fetch(url)[2].startswith("audio/mpeg")

    def test_existing_object_needs_upsert(self, backend: Backend) -> None:
        facade.upload_file("video-clips", "job/clip_0.mp4", samples.MP4)
        with pytest.raises(errors.StorageError) as caught:
            facade.upload_file("video-clips", "job/clip_0.mp4", samples.MP4 + b"v2")
        assert caught.value.code == "ALREADY_EXISTS"
        assert facade.download_file("video-clips", "job/clip_0.mp4") == samples.MP4
        facade.upload_file("video-clips", "job/clip_0.mp4", samples.MP4 + b"v2", upsert=True)
        assert facade.download_file("video-clips", "job/clip_0.mp4") == samples.MP4 + b"v2"

    def test_missing_object(self, backend: Backend) -> None:
        with pytest.raises(errors.StorageError) as caught:
            facade.download_file("video-outputs", "nope/final.mp4")
        assert caught.value.code == "NOT_FOUND"
        assert caught.value.details["bucket"] == "video-outputs"
        assert isinstance(caught.value.__cause__, FileNotFoundError)
        assert not facade.exists("video-outputs", "nope/final.mp4")
        with pytest.raises(FileNotFoundError):
            storages["video-outputs"].open("nope/final.mp4")
        with pytest.raises(errors.StorageError) as signing:
            facade.get_signed_url("video-outputs", "nope/final.mp4")
        assert signing.value.code == "NOT_FOUND"

    def test_delete(self, backend: Backend) -> None:
        facade.upload_file("video-clips", "job/clip_1.mp4", samples.MP4)
        facade.delete_file("video-clips", "job/clip_1.mp4")
        assert not facade.exists("video-clips", "job/clip_1.mp4")
        facade.delete_file("video-clips", "job/clip_1.mp4")  # deleting again is not an error
        with pytest.raises(errors.StorageError):
            facade.download_file("video-clips", "job/clip_1.mp4")

    def test_list_files(self, backend: Backend) -> None:
        for path in ("job/a.mp4", "job/b.mp4", "job/sub/c.mp4", "other/d.mp4"):
            facade.upload_file("video-clips", path, samples.MP4)
        assert facade.list_files("video-clips", "job") == ["job/a.mp4", "job/b.mp4"]
        assert facade.list_files("video-clips", "job/") == ["job/a.mp4", "job/b.mp4"]
        assert facade.list_files("video-clips", "job/sub") == ["job/sub/c.mp4"]
        assert facade.list_files("video-clips") == []
        assert facade.list_files("video-clips", "empty") == []
        assert storages["video-clips"].listdir("job") == (["sub"], ["a.mp4", "b.mp4"])

    def test_signed_url_expires(self, backend: Backend) -> None:
        facade.upload_file("video-outputs", "job/final.mp4", samples.MP4)
        url = facade.get_signed_url("video-outputs", "job/final.mp4", expires_in=60)
        assert backend.fetch(url)[0] == 200
        backend.advance(61)
        status, body, _ = backend.fetch(url)
        assert status == 403
        assert samples.MP4 not in body

    @pytest.mark.parametrize("expires_in", [0, -1, 0.5, "60", True, float("nan")])
    def test_bad_expiry_refused_before_anything_is_stored(self, backend: Backend, expires_in: object) -> None:
        before = backend.sent()
        with pytest.raises(errors.ValidationError, match="expires_in"):
            facade.upload_file("video-outputs", "job/final.mp4", samples.MP4, expires_in=expires_in)  # type: ignore[arg-type]
        assert backend.sent() == before
        assert not facade.exists("video-outputs", "job/final.mp4")
        facade.upload_file("video-outputs", "job/final.mp4", samples.MP4)  # not ALREADY_EXISTS: nothing was stored
        for call in (
            lambda: facade.get_signed_url("video-outputs", "job/final.mp4", expires_in=expires_in),  # type: ignore[arg-type]
            lambda: storages["video-outputs"].url("job/final.mp4", expire=expires_in),  # type: ignore[call-arg]
        ):
            with pytest.raises(errors.ValidationError, match="expires_in"):
                call()

    def test_signed_url_does_not_serve_another_object(self, backend: Backend) -> None:
        facade.upload_file("video-outputs", "job/a.mp4", samples.MP4)
        facade.upload_file("video-outputs", "job/b.mp4", samples.MP4 + b"secret")
        url = facade.get_signed_url("video-outputs", "job/a.mp4")
        status, body, _ = backend.fetch(url.replace("job/a.mp4", "job/b.mp4"))
        assert status == 403
        assert b"secret" not in body

    def test_oversized_upload_refused_before_sending(self, backend: Backend) -> None:
        before = backend.sent()
        too_big = samples.MP3 + bytes(10 * MB)
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("audio-uploads", "big.mp3", too_big)
        assert caught.value.code == "FILE_TOO_LARGE"
        assert caught.value.details["max_size"] == BUCKETS["audio-uploads"].max_size
        assert backend.sent() == before

    def test_exactly_the_limit_is_accepted(self, backend: Backend) -> None:
        data = samples.MP3 + bytes(10 * MB - len(samples.MP3))
        facade.upload_file("audio-uploads", "limit.mp3", data)
        assert len(facade.download_file("audio-uploads", "limit.mp3")) == 10 * MB

    @pytest.mark.parametrize(
        ("bucket", "data", "content_type"),
        [
            ("audio-uploads", samples.PNG, None),  # an image in the audio bucket
            ("audio-uploads", samples.PNG, "audio/mpeg"),  # declared audio, but the bytes are PNG
            ("audio-uploads", samples.OGG, None),  # audio, but not MP3/WAV/FLAC
            ("audio-uploads", b"just some text", "text/plain"),
            ("reference-images", samples.MP4, None),
            ("video-clips", samples.JPEG, None),
            ("video-outputs", b"\x00\x01\x02", None),  # unknown bytes, no extension
        ],
    )
    def test_wrong_type_refused_before_sending(
        self, backend: Backend, bucket: str, data: bytes, content_type: str | None
    ) -> None:
        before = backend.sent()
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file(bucket, "file", data, content_type)
        assert caught.value.code == "INVALID_CONTENT_TYPE"
        assert bucket in caught.value.message
        assert backend.sent() == before

    @pytest.mark.parametrize("path", BAD_PATHS)
    def test_bad_paths_refused_before_sending(self, backend: Backend, path: str) -> None:
        before = backend.sent()
        for call in (
            lambda: facade.upload_file("audio-uploads", path, samples.MP3),
            lambda: facade.download_file("audio-uploads", path),
            lambda: facade.get_signed_url("audio-uploads", path),
            lambda: facade.delete_file("audio-uploads", path),
            lambda: facade.exists("audio-uploads", path),
        ):
            with pytest.raises(errors.ValidationError) as caught:
                call()
            assert caught.value.code == "INVALID_PATH"
        assert backend.sent() == before

    def test_unknown_bucket(self, backend: Backend) -> None:
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("public", "a.mp3", samples.MP3)
        assert caught.value.code == "INVALID_BUCKET"
        with pytest.raises(errors.ValidationError) as unhashable:
            facade.download_file(["audio-uploads"], "a.mp3")  # type: ignore[arg-type]
        assert unhashable.value.code == "INVALID_BUCKET"

    @pytest.mark.parametrize(
        ("file_data", "content_type", "code"),
        [
            (None, None, "VALIDATION_ERROR"),
            (42, None, "VALIDATION_ERROR"),
            (samples.MP3, 42, "INVALID_CONTENT_TYPE"),
        ],
    )
    def test_bad_arguments_refused_before_sending(
        self, backend: Backend, file_data: object, content_type: object, code: str
    ) -> None:
        before = backend.sent()
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("audio-uploads", "a.mp3", file_data, content_type)  # type: ignore[arg-type]
        assert caught.value.code == code
        assert backend.sent() == before

    def test_django_storage_api(self, backend: Backend) -> None:
        storage = storages["video-clips"]
        name = storage.save("job/clip_9.mp4", ContentFile(samples.MP4))
        assert name == "job/clip_9.mp4"
        assert storage.exists(name)
        assert storage.size(name) == len(samples.MP4)
        with storage.open(name) as fh:
            assert fh.read() == samples.MP4
        status, body, _ = backend.fetch(storage.url(name))
        assert (status, body) == (200, samples.MP4)
        storage.delete(name)
        assert not storage.exists(name)

    def test_django_save_enforces_bucket_rules(self, backend: Backend) -> None:
        with pytest.raises(errors.ValidationError):
            storages["audio-uploads"].save("x.mp3", ContentFile(samples.PNG))

    async def test_async_twins(self, backend: Backend) -> None:
        url = await facade.aupload_file("reference-images", "job/ref.png", samples.PNG)
        assert url
        assert await facade.adownload_file("reference-images", "job/ref.png") == samples.PNG
        assert await facade.aexists("reference-images", "job/ref.png")
        assert await facade.alist_files("reference-images", "job") == ["job/ref.png"]
        assert await facade.aget_signed_url("reference-images", "job/ref.png", expires_in=10)
        await facade.adelete_file("reference-images", "job/ref.png")
        assert not await facade.aexists("reference-images", "job/ref.png")
        with pytest.raises(errors.StorageError):
            await facade.adownload_file("reference-images", "job/ref.png")
