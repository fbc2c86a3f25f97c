"""One contract, two backends: every test here runs on local files and on (a stand-in for) Supabase Storage."""

from __future__ import annotations

import io
import os
import random
import threading
from pathlib import Path

import pytest
from django.core.files.base import ContentFile, File
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
# Names the Supabase Storage server refuses (item 2 of issue 11), and the ones the project refuses on purpose
# (percent escapes would alias other names; '?' and ';' break signed links or paths on real servers).
SERVER_REFUSES = [
    "p/ü-ñ.mp4",
    "p/…/x.mp4",
    "p/a#b.mp4",
    "p/100%.mp4",
    "ünïcode/ファイル.png",
    "p/a~b.mp4",
    "p/a[1].mp4",
]
PROJECT_REFUSES = [
    "p/x%41.mp4",
    "p/song%20A.mp4",
    "p/a%2Fb.mp4",
    "p/%2e%2e/x.mp4",
    "p/bad%ff.mp4",
    "p/a?b.mp4",
    "p/a;b.mp4",
    "p/" + "z" * 256 + ".mp4",
]
# Accepted names with every special character the rule allows: both backends store, sign, list and delete them.
TRICKY_NAMES = [
    "p/song A.mp4",
    "p/song+A.mp4",
    "p/it's (final) take*2!.mp4",
    "p/a&b=c,d@e:f$g.mp4",
    "p/x-y_z.v2.mp4",
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

    @pytest.mark.parametrize("path", [*BAD_PATHS, *SERVER_REFUSES, *PROJECT_REFUSES])
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


class TestNamesContract:
    """Issue 11 items 1-2: both backends accept exactly the same names and address each object by its own name."""

    @pytest.mark.parametrize("name", TRICKY_NAMES)
    def test_tricky_names_round_trip(self, backend: Backend, name: str) -> None:
        url = facade.upload_file("video-clips", name, samples.MP4)
        assert backend.fetch(url)[:2] == (200, samples.MP4)
        assert facade.exists("video-clips", name)
        assert facade.download_file("video-clips", name) == samples.MP4
        assert facade.list_files("video-clips", "p") == [name]
        assert backend.fetch(facade.get_signed_url("video-clips", name, expires_in=60))[:2] == (200, samples.MP4)
        facade.delete_file("video-clips", name)
        assert not facade.exists("video-clips", name)
        assert facade.list_files("video-clips", "p") == []

    def test_similar_names_stay_distinct(self, backend: Backend) -> None:
        names = ["p/song A.mp4", "p/song+A.mp4", "p/songA.mp4", "p/song,A.mp4"]
        for i, name in enumerate(names):
            facade.upload_file("video-clips", name, samples.MP4 + bytes([i]))
        assert facade.list_files("video-clips", "p") == sorted(names)
        for i, name in enumerate(names):
            assert facade.download_file("video-clips", name) == samples.MP4 + bytes([i])
        facade.delete_file("video-clips", "p/song A.mp4")
        assert facade.list_files("video-clips", "p") == sorted(names[1:])


class TestContentContract:
    """Issue 11 item 3: for a bucket with allowed types, the content decides, whatever the caller declares."""

    @pytest.mark.parametrize(
        ("data", "declared"),
        [
            (b"<html>not audio</html>" * 20, "audio/mpeg"),
            (bytes(random.Random(7).getrandbits(8) for _ in range(4096)), "audio/mpeg"),
            (bytes(random.Random(7).getrandbits(8) for _ in range(4096)), None),
            (b"\xff\xfb\xf0\x00" + bytes(200), "audio/mpeg"),  # MPEG frame sync with an invalid bitrate index
            (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"<html>", "audio/mpeg"),  # an ID3 tag, then no audio
            (samples.PNG, "audio/mpeg"),
        ],
        ids=["html", "random", "random-undeclared", "bad-frame", "id3-then-html", "png"],
    )
    def test_unrecognised_audio_refused(self, backend: Backend, data: bytes, declared: str | None) -> None:
        before = backend.sent()
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("audio-uploads", "x/t.mp3", data, content_type=declared)
        assert caught.value.code == "INVALID_CONTENT_TYPE"
        assert "audio-uploads" in caught.value.message
        assert backend.sent() == before
        assert not facade.exists("audio-uploads", "x/t.mp3")

    def test_content_type_is_the_recognised_one(self, backend: Backend) -> None:
        url = facade.upload_file("audio-uploads", "x/t.bin", samples.FLAC, content_type="text/plain")
        assert backend.fetch(url)[2].startswith("audio/flac")

    @pytest.mark.parametrize(
        ("bucket", "data"),
        [("reference-images", b"GIF89a" + bytes(50)), ("video-clips", samples.MKV), ("video-outputs", samples.JSON)],
    )
    def test_other_buckets_refuse_unlisted_formats(self, backend: Backend, bucket: str, data: bytes) -> None:
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file(bucket, "x/f", data, content_type=BUCKETS[bucket].allowed_content_types[0])
        assert caught.value.code == "INVALID_CONTENT_TYPE"


class RaisingFile(io.RawIOBase):
    """A binary file object whose read() fails after ``good`` bytes (a dying disk or network share)."""

    def __init__(self, data: bytes, good: int) -> None:
        self._data, self._good, self._pos = data, good, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else len(self._data) + offset if whence == 2 else self._pos + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if self._pos + (size if size >= 0 else len(self._data)) > self._good:
            raise OSError(5, "Input/output error")
        chunk = self._data[self._pos : self._pos + size] if size >= 0 else self._data[self._pos :]
        self._pos += len(chunk)
        return chunk


class TestSourcesContract:
    """Issue 11 item 7 / issue 10 item 12: bytes, paths and any binary file object, read chunk by chunk."""

    def test_every_kind_of_source(self, backend: Backend, tmp_path: Path) -> None:
        data = samples.mp4_of(300_000)
        on_disk = tmp_path / "clip.mp4"
        on_disk.write_bytes(data)
        read_fd, write_fd = os.pipe()
        writer = threading.Thread(target=lambda: (os.write(write_fd, data), os.close(write_fd)))
        writer.start()
        with open(on_disk, "rb") as opened, open(read_fd, "rb", buffering=0) as pipe:
            sources = {
                "bytes": data,
                "bytearray": bytearray(data),
                "memoryview": memoryview(data),
                "str path": str(on_disk),
                "Path": on_disk,
                "open file": opened,
                "BytesIO": io.BytesIO(data),
                "Django File": File(open(on_disk, "rb"), name="clip.mp4"),  # noqa: SIM115
                "ContentFile": ContentFile(data, name="clip.mp4"),
                "pipe": pipe,
            }
            for label, source in sources.items():
                facade.upload_file("video-clips", f"src/{label.replace(' ', '-')}.mp4", source)
        writer.join()
        sources["Django File"].close()
        for label in sources:
            assert facade.download_file("video-clips", f"src/{label.replace(' ', '-')}.mp4") == data, label

    def test_file_object_is_read_from_its_start(self, backend: Backend) -> None:
        stream = io.BytesIO(samples.MP4)
        stream.seek(10)
        facade.upload_file("video-clips", "a.mp4", stream)
        assert facade.download_file("video-clips", "a.mp4") == samples.MP4

    @pytest.mark.parametrize("good", [0, 100, 200_000])
    def test_failing_read_is_a_pipeline_error(self, backend: Backend, good: int) -> None:
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("video-clips", "bad/read.mp4", RaisingFile(samples.mp4_of(300_000), good))
        assert caught.value.code == "UNREADABLE_FILE"
        assert "Input/output error" in caught.value.message
        assert caught.value.details["bucket"] == "video-clips"
        assert not facade.exists("video-clips", "bad/read.mp4")
        assert facade.list_files("video-clips", "bad", recursive=True) == []

    @pytest.mark.parametrize(
        ("path", "code"),
        [("a\x00b.mp4", "UNREADABLE_FILE"), ("/no/such/file.mp4", "NOT_FOUND"), (".", "UNREADABLE_FILE")],
    )
    def test_bad_source_path(self, backend: Backend, path: str, code: str) -> None:
        before = backend.sent()
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("video-clips", "a.mp4", path)
        assert caught.value.code == code
        assert backend.sent() == before

    def test_text_mode_file_refused(self, backend: Backend, tmp_path: Path) -> None:
        (tmp_path / "t.txt").write_text("text")
        with open(tmp_path / "t.txt") as handle, pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("video-clips", "a.mp4", handle)
        assert caught.value.code == "UNREADABLE_FILE"

    def test_declared_size_is_checked_before_reading(self, backend: Backend) -> None:
        class Huge(File):
            size = 11 * 1024 * 1024

            def read(self, *args: object) -> bytes:
                raise AssertionError("must not be read")

        before = backend.sent()
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("audio-uploads", "big.mp3", Huge(None, name="big.mp3"))
        assert caught.value.code == "FILE_TOO_LARGE"
        assert backend.sent() == before

    def test_above_the_resumable_threshold(self, backend: Backend, tmp_path: Path, small_chunks: None) -> None:
        data = samples.mp4_of(5 * 64 * 1024 + 123)
        (tmp_path / "big.mp4").write_bytes(data)
        url = facade.upload_file("video-outputs", "job/final.mp4", tmp_path / "big.mp4")
        assert backend.fetch(url)[:2] == (200, data)
        with pytest.raises(errors.StorageError) as caught:
            facade.upload_file("video-outputs", "job/final.mp4", data)
        assert caught.value.code == "ALREADY_EXISTS"
        facade.upload_file("video-outputs", "job/final.mp4", samples.mp4_of(400_000), upsert=True)
        assert facade.download_file("video-outputs", "job/final.mp4") == samples.mp4_of(400_000)


class TestStreamingDownloadContract:
    """Issue 11 item 7: open() streams, download_to writes as bytes arrive; both backends alike."""

    def test_open_reads_in_chunks(self, backend: Backend) -> None:
        data = samples.mp4_of(300_000)
        facade.upload_file("video-clips", "s/a.mp4", data)
        with storages["video-clips"].open("s/a.mp4") as handle:
            assert handle.size == len(data)
            pieces = list(handle.chunks(64 * 1024))
        assert len(pieces) >= 4
        assert b"".join(pieces) == data

    def test_download_to_path_and_file(self, backend: Backend, tmp_path: Path) -> None:
        data = samples.mp4_of(300_000)
        facade.upload_file("video-clips", "s/a.mp4", data)
        assert facade.download_to(bucket="video-clips", path="s/a.mp4", destination=tmp_path / "a.mp4") == len(data)
        assert (tmp_path / "a.mp4").read_bytes() == data
        sink = io.BytesIO()
        assert facade.download_to(bucket="video-clips", path="s/a.mp4", destination=sink) == len(data)
        assert sink.getvalue() == data

    def test_download_to_missing_leaves_nothing(self, backend: Backend, tmp_path: Path) -> None:
        with pytest.raises(errors.StorageError) as caught:
            facade.download_to(bucket="video-clips", path="s/none.mp4", destination=tmp_path / "none.mp4")
        assert caught.value.code == "NOT_FOUND"
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("destination", ["a\x00b", "/no/such/folder/x.mp4", 42])
    def test_download_to_bad_destination(self, backend: Backend, destination: object) -> None:
        facade.upload_file("video-clips", "s/a.mp4", samples.MP4)
        with pytest.raises(errors.ValidationError):
            facade.download_to(bucket="video-clips", path="s/a.mp4", destination=destination)  # type: ignore[arg-type]

    async def test_async_twins(self, backend: Backend, tmp_path: Path) -> None:
        await facade.aupload_file("video-clips", "j/a/b.mp4", samples.MP4)
        assert await facade.adownload_to(bucket="video-clips", path="j/a/b.mp4", destination=tmp_path / "b") > 0
        assert await facade.alist_files("video-clips", "j", recursive=True) == ["j/a/b.mp4"]
        assert await facade.adelete_prefix(bucket="video-clips", prefix="j") == ["j/a/b.mp4"]


class TestPrefixContract:
    """Issue 16 item 6: recursive listing and delete_prefix on both backends."""

    def test_recursive_listing_and_delete_prefix(self, backend: Backend) -> None:
        names = ["job1/a.mp4", "job1/sub/b.mp4", "job1/sub/deeper/c.mp4", "job10/d.mp4", "job2/e.mp4"]
        for name in names:
            facade.upload_file("video-clips", name, samples.MP4)
        assert facade.list_files("video-clips", "job1") == ["job1/a.mp4"]
        assert facade.list_files("video-clips", "job1", recursive=True) == names[:3]
        assert facade.list_files("video-clips", recursive=True) == sorted(names)
        assert facade.delete_prefix(bucket="video-clips", prefix="job1/") == names[:3]
        assert facade.list_files("video-clips", recursive=True) == ["job10/d.mp4", "job2/e.mp4"]
        assert storages["video-clips"].listdir("") == (["job10", "job2"], [])
        assert facade.delete_prefix(bucket="video-clips", prefix="job1") == []

    @pytest.mark.parametrize("prefix", ["", "/", None])
    def test_delete_prefix_refuses_the_whole_bucket(self, backend: Backend, prefix: object) -> None:
        facade.upload_file("video-clips", "keep/a.mp4", samples.MP4)
        with pytest.raises(errors.ValidationError) as caught:
            facade.delete_prefix(bucket="video-clips", prefix=prefix)  # type: ignore[arg-type]
        assert caught.value.code == "INVALID_PATH"
        assert facade.exists("video-clips", "keep/a.mp4")

    def test_delete_prefix_pages_past_a_thousand(self, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
        from common.storage import supabase

        monkeypatch.setattr(supabase, "_DELETE_BATCH", 3)
        monkeypatch.setattr(supabase, "_LIST_PAGE", 4)
        names = [f"many/{i:02d}.mp4" for i in range(10)] + [f"many/sub/{i}.mp4" for i in range(5)]
        for name in names:
            storages["video-clips"].save_object(name, samples.MP4)
        assert facade.delete_prefix(bucket="video-clips", prefix="many") == sorted(names)
        assert facade.list_files("video-clips", recursive=True) == []
