"""Issue 16 item 6: ``manage.py cleanup_job_files`` on both backends and both databases."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from common.models import Job, JobStatus
from common.storage import facade
from common.storage.cleanup import apply_cleanup, plan_cleanup
from tests.storage import samples
from tests.storage.conftest import Backend, supabase_storages
from tests.storage.fake_supabase import FakeSupabase

pytestmark = pytest.mark.django_db

FILES = {
    "audio-uploads": "song.mp3",
    "reference-images": "ref.png",
    "video-clips": "clip_0.mp4",
    "video-outputs": "final.mp4",
}
DATA = {
    "audio-uploads": samples.MP3,
    "reference-images": samples.PNG,
    "video-clips": samples.MP4,
    "video-outputs": samples.MP4,
}
NO_GRACE = {"STORAGE_ORPHAN_GRACE_HOURS": 0}


def make_job(status: str, finished_days_ago: float | None = None) -> str:
    job = Job.objects.create(user_id=uuid.uuid4(), status=status, audio_url="a.mp3", user_prompt="p")
    created = timezone.now() - timedelta(days=100)
    finished = timezone.now() - timedelta(days=finished_days_ago) if finished_days_ago is not None else None
    Job.objects.filter(id=job.id).update(created_at=created, completed_at=finished)
    return str(job.id)


def store(folder: str, *, buckets: tuple[str, ...] = tuple(FILES)) -> None:
    for bucket in buckets:
        facade.upload_file(bucket, f"{folder}/{FILES[bucket]}", DATA[bucket])
        facade.upload_file(bucket, f"{folder}/more/{FILES[bucket]}", DATA[bucket])


def everything() -> dict[str, list[str]]:
    return {bucket: facade.list_files(bucket, recursive=True) for bucket in FILES}


def run(*args: str) -> dict:
    out = io.StringIO()
    call_command("cleanup_job_files", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def jobs(backend: Backend) -> dict[str, str]:
    """Jobs in every state, each with objects in every bucket; orphans beside them."""
    ids = {
        "completed_40d": make_job(JobStatus.COMPLETED, 40),
        "failed_10d": make_job(JobStatus.FAILED, 10),
        "cancelled_1d": make_job(JobStatus.CANCELLED, 1),
        "processing": make_job(JobStatus.PROCESSING),
        "queued": make_job(JobStatus.QUEUED),
        "orphan_uuid": str(uuid.uuid4()),
        "orphan_name": "tmp-stuff",
    }
    for folder in ids.values():
        store(folder)
    facade.upload_file("video-clips", "stray.mp4", samples.MP4)
    return ids


def test_removes_expired_and_orphans_never_live(jobs: dict[str, str]) -> None:
    with override_settings(VIDEOGEN_COMMON=NO_GRACE):
        report = run()
    left = everything()
    for bucket, names in left.items():
        folders = {n.split("/")[0] for n in names}
        assert {jobs["processing"], jobs["queued"]} <= folders, bucket  # live: untouched
        assert jobs["cancelled_1d"] in folders, bucket  # within every retention
        assert jobs["completed_40d"] not in folders, bucket  # past every retention
        assert not {jobs["orphan_uuid"], "tmp-stuff"} & folders, bucket
        # 10 days: past the 7 days of uploads, images and clips; within the 30 days of final videos.
        assert (jobs["failed_10d"] in folders) == (bucket == "video-outputs"), bucket
    assert "stray.mp4" not in left["video-clips"]
    removed = {(b["bucket"], a["folder"], a["reason"]) for b in report["buckets"] for a in b["actions"]}
    assert ("video-clips", "", "orphan") in removed
    assert ("video-outputs", jobs["completed_40d"], "expired") in removed
    assert report["objects_removed"] == sum(len(a["objects"]) for b in report["buckets"] for a in b["actions"])
    assert report["objects_removed"] == 4 * 2 * 3 + 3 * 2 + 1
    assert run()["objects_removed"] == 0  # idempotent


def test_dry_run_deletes_nothing(jobs: dict[str, str]) -> None:
    before = everything()
    with override_settings(VIDEOGEN_COMMON=NO_GRACE):
        report = run("--dry-run")
    assert everything() == before
    assert report["dry_run"] is True
    assert report["objects_removed"] == 0
    due = sorted(n for b in report["buckets"] for a in b["actions"] for n in a["objects"])
    assert len(due) == 4 * 2 * 3 + 3 * 2 + 1
    text = io.StringIO()
    with override_settings(VIDEOGEN_COMMON=NO_GRACE):
        call_command("cleanup_job_files", "--dry-run", stdout=text)
    assert "would remove" in text.getvalue()
    assert everything() == before


def test_recent_orphans_are_kept(jobs: dict[str, str]) -> None:
    run()  # default grace: 24 hours
    folders = {n.split("/")[0] for n in facade.list_files("audio-uploads", recursive=True)}
    assert {jobs["orphan_uuid"], "tmp-stuff"} <= folders
    assert jobs["completed_40d"] not in folders


def test_retention_none_keeps_forever_and_bucket_filter(jobs: dict[str, str]) -> None:
    retention = {"audio-uploads": None, "reference-images": 7, "video-clips": 7, "video-outputs": 30}
    with override_settings(VIDEOGEN_COMMON={"STORAGE_RETENTION_DAYS": retention, **NO_GRACE}):
        run("--bucket", "audio-uploads", "--bucket", "video-clips")
    audio = {n.split("/")[0] for n in facade.list_files("audio-uploads", recursive=True)}
    assert jobs["completed_40d"] in audio
    assert "tmp-stuff" not in audio
    assert jobs["completed_40d"] not in {n.split("/")[0] for n in facade.list_files("video-clips", recursive=True)}
    assert jobs["completed_40d"] in {n.split("/")[0] for n in facade.list_files("video-outputs", recursive=True)}


@pytest.mark.parametrize("value", [-1, "7", float("nan"), True])
def test_bad_retention_setting(backend: Backend, value: object) -> None:
    with (
        override_settings(VIDEOGEN_COMMON={"STORAGE_RETENTION_DAYS": {"video-clips": value}}),
        pytest.raises(CommandError, match="STORAGE_RETENTION_DAYS"),
    ):
        call_command("cleanup_job_files", stdout=io.StringIO())


def test_state_is_read_again_before_deleting(jobs: dict[str, str]) -> None:
    with override_settings(VIDEOGEN_COMMON=NO_GRACE):
        plans = plan_cleanup(buckets=["video-clips"])
    Job.objects.filter(id=jobs["completed_40d"]).update(status=JobStatus.PROCESSING)  # re-queued meanwhile
    orphan = jobs["orphan_uuid"]
    Job.objects.create(id=orphan, user_id=uuid.uuid4(), audio_url="a", user_prompt="p")  # its row appeared
    facade.upload_file("video-clips", "tmp-stuff/late.mp4", samples.MP4)  # uploaded after planning
    apply_cleanup(plans)
    folders = {n.split("/")[0] for n in facade.list_files("video-clips", recursive=True)}
    assert {jobs["completed_40d"], orphan} <= folders
    assert facade.list_files("video-clips", "tmp-stuff", recursive=True) == ["tmp-stuff/late.mp4"]
    skipped = {a.folder: a.skipped for p in plans for a in p.actions if a.skipped}
    assert skipped == {jobs["completed_40d"]: "the job is no longer finished", orphan: "a job with this id exists now"}


def test_a_failing_bucket_does_not_stop_the_others(fake_supabase: FakeSupabase) -> None:
    with override_settings(STORAGES=supabase_storages(fake_supabase.url), VIDEOGEN_COMMON=NO_GRACE):
        job = make_job(JobStatus.COMPLETED, 40)
        store(job)
        del fake_supabase.buckets["audio-uploads"]
        out = io.StringIO()
        with pytest.raises(CommandError) as caught:
            call_command("cleanup_job_files", stdout=out)
        assert caught.value.returncode == 1
        assert "audio-uploads" in str(caught.value)
        assert "BUCKET_NOT_FOUND" in out.getvalue()
        assert facade.list_files("video-clips", recursive=True) == []
        assert "removed" in out.getvalue()
