"""Big objects on Supabase Storage (issue 11 item 7): resumable TUS uploads and streamed, resumable downloads."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.test import override_settings

from common import errors
from common.storage import facade
from common.storage.supabase import SupabaseStorage
from tests.storage import samples
from tests.storage.conftest import SERVICE_KEY, supabase_storages
from tests.storage.fake_supabase import FakeSupabase, Fault

pytestmark = pytest.mark.django_db

CHUNK = 64 * 1024
SIZE = 5 * CHUNK + 1234
DATA = samples.mp4_of(SIZE)


@pytest.fixture
def remote(fake_supabase: FakeSupabase, small_chunks: None):
    with override_settings(
        STORAGES=supabase_storages(fake_supabase.url),
        VIDEOGEN_COMMON={"STORAGE_RESUMABLE_THRESHOLD": CHUNK, "STORAGE_CHUNK_SIZE": CHUNK},
    ):
        yield fake_supabase


class TestResumableUpload:
    def test_above_the_threshold_goes_through_tus(self, remote: FakeSupabase) -> None:
        facade.upload_file("video-outputs", "job/final.mp4", DATA)
        assert remote.count("POST", "/upload/resumable") == 1
        assert remote.count("PATCH") == math.ceil(SIZE / CHUNK)
        assert remote.count("POST", "/object/video-outputs/") == 0
        assert remote.patch_offsets == list(range(0, SIZE, CHUNK))
        stored = remote.objects("video-outputs")["job/final.mp4"]
        assert stored.data == DATA
        assert (stored.content_type, stored.cache_control) == ("video/mp4", "max-age=3600")

    def test_at_the_threshold_is_one_request(self, remote: FakeSupabase) -> None:
        facade.upload_file("video-outputs", "job/final.mp4", samples.mp4_of(CHUNK))
        assert remote.count("POST", "/upload/resumable") == 0
        assert remote.count("POST", "/object/video-outputs/job/final.mp4") == 1

    @pytest.mark.parametrize("after", [0, 1000, CHUNK - 1])
    def test_dropped_connection_resumes_from_the_server_offset(
        self, remote: FakeSupabase, fake_sleep: list[float], after: int
    ) -> None:
        remote.inject(Fault("drop_body", after=after, path_contains="/upload/resumable/"))
        # The drop hits the first PATCH: the server keeps its first `after` bytes.
        facade.upload_file("video-outputs", "job/final.mp4", DATA)
        assert remote.objects("video-outputs")["job/final.mp4"].data == DATA
        assert remote.count("HEAD", "/upload/resumable/") == 1
        assert remote.patch_offsets[:2] == [0, after]  # resumed where the server stopped, not from 0
        assert remote.count("POST", "/upload/resumable") == 1  # the same upload, not a new one
        assert len(fake_sleep) == 1

    def test_lost_acknowledgement_then_a_drop_midway(self, remote: FakeSupabase) -> None:
        # First PATCH: the server keeps the whole chunk but the answer is lost; second: it keeps 5 bytes.
        remote.inject(Fault("drop_body", after=CHUNK, path_contains="/upload/resumable/"))
        remote.inject(Fault("drop_body", after=5, path_contains="/upload/resumable/"))
        facade.upload_file("video-outputs", "job/final.mp4", DATA)
        assert remote.objects("video-outputs")["job/final.mp4"].data == DATA
        # Nothing is sent twice; after a mid-chunk resume the next PATCH ends on the chunk boundary again.
        assert remote.patch_offsets[:4] == [0, CHUNK, CHUNK + 5, 2 * CHUNK]

    @pytest.mark.parametrize(
        "fault",
        [Fault("status", status=503, http_status=503), Fault("drop"), Fault("status", status=429, http_status=429)],
        ids=["503", "drop", "429"],
    )
    def test_transient_failures_of_any_request_are_retried(self, remote: FakeSupabase, fault: Fault) -> None:
        fault.path_contains = "/upload/resumable"
        remote.inject(fault)  # the creation
        remote.inject(Fault(fault.kind, fault.status, fault.http_status, path_contains="/upload/resumable/"))
        facade.upload_file("video-outputs", "job/final.mp4", DATA)
        assert remote.objects("video-outputs")["job/final.mp4"].data == DATA

    def test_gives_up_after_the_retry_attempts(self, remote: FakeSupabase) -> None:
        remote.inject(*[Fault("drop_body", after=10, path_contains="/upload/resumable/") for _ in range(5)])
        with pytest.raises(errors.ServiceUnavailableError):
            facade.upload_file("video-outputs", "job/final.mp4", DATA)
        assert "job/final.mp4" not in remote.objects("video-outputs")

    def test_existing_object_needs_upsert(self, remote: FakeSupabase) -> None:
        facade.upload_file("video-outputs", "job/final.mp4", DATA)
        with pytest.raises(errors.StorageError) as caught:
            facade.upload_file("video-outputs", "job/final.mp4", DATA[:-1] + b"!")
        assert caught.value.code == "ALREADY_EXISTS"
        assert remote.count("PATCH") == math.ceil(SIZE / CHUNK)  # refused at creation, nothing sent
        facade.upload_file("video-outputs", "job/final.mp4", DATA[:-1] + b"!", upsert=True)
        assert remote.objects("video-outputs")["job/final.mp4"].data == DATA[:-1] + b"!"

    def test_missing_bucket(self, remote: FakeSupabase) -> None:
        del remote.buckets["video-outputs"]
        with pytest.raises(errors.ConfigError) as caught:
            facade.upload_file("video-outputs", "job/final.mp4", DATA)
        assert caught.value.code == "BUCKET_NOT_FOUND"
        assert "video-outputs" in caught.value.message

    def test_server_size_limit(self, remote: FakeSupabase) -> None:
        remote.buckets["video-outputs"].file_size_limit = SIZE - 1
        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("video-outputs", "job/final.mp4", DATA)
        assert caught.value.code == "FILE_TOO_LARGE"

    def test_wrong_key(self, fake_supabase: FakeSupabase, small_chunks: None) -> None:
        storage = SupabaseStorage(bucket="video-outputs", url=fake_supabase.url, key="wrong")
        with pytest.raises(PermissionError, match="invalid signature"):
            storage.save_object("job/final.mp4", DATA)

    def test_read_failure_midway_creates_no_object(self, remote: FakeSupabase) -> None:
        from tests.storage.test_contract import RaisingFile

        with pytest.raises(errors.ValidationError) as caught:
            facade.upload_file("video-outputs", "job/final.mp4", RaisingFile(DATA, good=3 * CHUNK))
        assert caught.value.code == "UNREADABLE_FILE"
        assert "job/final.mp4" not in remote.objects("video-outputs")

    def test_location_on_an_internal_host_is_rebased(self, remote: FakeSupabase) -> None:
        remote.location_host = "storage.internal:5000"
        facade.upload_file("video-outputs", "job/final.mp4", DATA)
        assert remote.objects("video-outputs")["job/final.mp4"].data == DATA

    def test_from_a_file_and_a_pipe(self, remote: FakeSupabase, tmp_path: Path) -> None:
        (tmp_path / "v.mp4").write_bytes(DATA)
        facade.upload_file("video-outputs", "a.mp4", tmp_path / "v.mp4")
        with open(tmp_path / "v.mp4", "rb") as handle:
            facade.upload_file("video-outputs", "b.mp4", io.BufferedReader(_Unseekable(handle)))
        assert remote.objects("video-outputs")["a.mp4"].data == DATA
        assert remote.objects("video-outputs")["b.mp4"].data == DATA


class _Unseekable(io.RawIOBase):
    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class TestStreamedDownload:
    def test_reads_as_it_goes(self, remote: FakeSupabase) -> None:
        remote.objects  # noqa: B018
        storages["video-clips"].save_object("a.mp4", DATA)
        with storages["video-clips"].open("a.mp4") as handle:
            first = handle.read(100)
            assert first == DATA[:100]
            rest = b"".join(handle.chunks(CHUNK))
        assert first + rest == DATA

    @pytest.mark.parametrize("after", [0, 1, 100_000])
    def test_dropped_connection_resumes_with_range(self, remote: FakeSupabase, tmp_path: Path, after: int) -> None:
        storages["video-clips"].save_object("a.mp4", DATA)
        remote.inject(Fault("drop_body", after=after, path_contains="/object/video-clips/a.mp4"))
        facade.download_to(bucket="video-clips", path="a.mp4", destination=tmp_path / "a.mp4")
        assert (tmp_path / "a.mp4").read_bytes() == DATA
        assert remote.ranges == ([f"bytes={after}-"] if after else [])

    def test_server_that_ignores_range(self, remote: FakeSupabase) -> None:
        storages["video-clips"].save_object("a.mp4", DATA)
        remote.ignore_range = True
        remote.inject(Fault("drop_body", after=70_000, path_contains="/object/video-clips/a.mp4"))
        assert facade.download_file("video-clips", "a.mp4") == DATA

    def test_gives_up_after_the_retry_attempts(self, remote: FakeSupabase) -> None:
        storages["video-clips"].save_object("a.mp4", DATA)
        remote.inject(*[Fault("drop_body", after=0, path_contains="/object/video-clips/a.mp4") for _ in range(5)])
        with pytest.raises(errors.ServiceUnavailableError):
            facade.download_file("video-clips", "a.mp4")

    def test_progress_resets_the_attempts(self, remote: FakeSupabase) -> None:
        storages["video-clips"].save_object("a.mp4", DATA)
        remote.inject(*[Fault("drop_body", after=50, path_contains="/object/video-clips/a.mp4") for _ in range(5)])
        assert facade.download_file("video-clips", "a.mp4") == DATA
        assert remote.ranges == [f"bytes={50 * i}-" for i in range(1, 6)]

    def test_missing_object_and_bucket(self, remote: FakeSupabase) -> None:
        with pytest.raises(FileNotFoundError):
            storages["video-clips"].open("none.mp4")
        del remote.buckets["video-clips"]
        with pytest.raises(errors.ConfigError) as caught:
            storages["video-clips"].open("none.mp4")
        assert caught.value.code == "BUCKET_NOT_FOUND"


def test_shared_key_option_is_checked(fake_supabase: FakeSupabase) -> None:
    storage = SupabaseStorage(bucket="video-clips", url=fake_supabase.url, key=SERVICE_KEY)
    assert storage.list_objects() == []
