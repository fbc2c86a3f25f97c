"""common.maintenance: live-job-aware temp cleanup, the cache cap, and the background loops (tasks and thread)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import DatabaseError
from django.test import override_settings

from common import maintenance, selectors
from common.errors import ValidationError
from common.maintenance import ResourceManager
from common.models import Job, JobStatus
from common.tempfiles import temp_file_manager

NOW = time.time()
OLD = NOW - 48 * 3600  # older than the default 24 h
RECENT = NOW - 3600


@pytest.fixture
def manager() -> ResourceManager:
    return ResourceManager()


def write(path: Path, size: int, mtime: float | None = None, atime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (atime if atime is not None else mtime, mtime))
    return path


def age(path: Path, when: float = OLD) -> None:
    os.utime(path, (when, when), follow_symlinks=False)


def make_job(status: str) -> Job:
    return Job.objects.create(user_id=uuid.uuid4(), status=status, audio_url="s3://a.mp3", user_prompt="p")


def threshold_records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


# --------------------------------------------------------------------------- temp cleanup


def build_tree(temp_root: Path, outside: Path, live: list[Job], finished: list[Job]) -> dict[str, Path]:
    """A realistic temp root: old and recent files, job workspaces, symlinks out of the root."""
    p: dict[str, Path] = {}
    p["old_loose"] = write(temp_root / "old.bin", 100, OLD)
    p["recent_loose"] = write(temp_root / "recent.bin", 10, RECENT)
    p["old_user_file"] = write(temp_root / "users" / "u1" / "render" / "frame.png", 1000, OLD)
    age(temp_root / "users" / "u1" / "render")
    p["old_empty_dir"] = temp_root / "users" / "u1" / "empty"
    p["old_empty_dir"].mkdir()
    age(p["old_empty_dir"])
    p["recent_empty_dir"] = temp_root / "users" / "u1" / "fresh"
    p["recent_empty_dir"].mkdir()
    age(temp_root / "users" / "u1")
    age(temp_root / "users")
    for i, job in enumerate(live):
        p[f"live{i}"] = write(temp_root / "jobs" / str(job.id) / "clips" / "c.mp4", 5000, OLD)
        age(temp_root / "jobs" / str(job.id) / "clips")
        age(temp_root / "jobs" / str(job.id))
    for i, job in enumerate(finished):
        p[f"finished{i}"] = write(temp_root / "jobs" / str(job.id) / "out.mp4", 300, OLD)
        age(temp_root / "jobs" / str(job.id))
    p["non_uuid_job"] = write(temp_root / "jobs" / "scratch" / "x.tmp", 7, OLD)
    age(temp_root / "jobs" / "scratch")
    age(temp_root / "jobs")
    # Symlinks pointing out of the root, old themselves: the links go, the targets never.
    outside.mkdir()
    p["target_file"] = write(outside / "precious.mp4", 4096, OLD)
    p["target_dir_file"] = write(outside / "dir" / "inner.mp4", 4096, OLD)
    p["link_file"] = temp_root / "link_to_file"
    p["link_file"].symlink_to(p["target_file"])
    age(p["link_file"])
    p["link_dir"] = temp_root / "users" / "u1" / "link_to_dir"
    p["link_dir"].symlink_to(outside / "dir", target_is_directory=True)
    age(p["link_dir"])
    age(temp_root / "users" / "u1")
    return p


@pytest.mark.django_db
def test_cleanup_spares_live_jobs_in_use_paths_and_symlink_targets(roots, manager, tmp_path: Path) -> None:
    temp_root, _ = roots
    live = [make_job(JobStatus.QUEUED), make_job(JobStatus.PROCESSING)]
    finished = [make_job(JobStatus.COMPLETED), make_job(JobStatus.FAILED), make_job(JobStatus.CANCELLED)]
    p = build_tree(temp_root, tmp_path / "outside", live, finished)
    with temp_file_manager.temp_file(user_id="u2") as held:
        held.write_bytes(b"in use")
        age(held)
        stats = manager.cleanup_temporary_files()
        assert held.exists()

    # Removed: old loose file, old frame, three finished jobs' outputs, the non-UUID job's file, two links.
    assert stats.files_removed == 8
    # A symlink's own size is the length of its target path.
    link_bytes = len(str(p["target_file"])) + len(str(p["target_dir_file"].parent))
    assert stats.bytes_freed == 100 + 1000 + 3 * 300 + 7 + link_bytes
    assert not p["old_loose"].exists()
    assert not p["old_user_file"].exists()
    assert not p["old_empty_dir"].exists()
    assert not (temp_root / "users" / "u1" / "render").exists()
    assert not p["link_file"].is_symlink()
    assert not p["link_dir"].is_symlink()
    assert all(not p[f"finished{i}"].exists() for i in range(3))
    assert all(not (temp_root / "jobs" / str(job.id)).exists() for job in finished)
    assert not (temp_root / "jobs" / "scratch").exists()
    # Kept.
    assert p["recent_loose"].exists()
    assert p["recent_empty_dir"].is_dir()
    assert p["live0"].exists()
    assert p["live1"].exists()
    assert p["target_file"].read_bytes() == b"x" * 4096
    assert p["target_dir_file"].exists()
    assert stats.skipped_live_jobs == 2
    assert stats.skipped_in_use == 1
    assert stats.errors == 0
    # Removed dirs: render, empty, scratch, three finished job dirs.
    assert stats.dirs_removed == 6
    assert manager.last_cleanup is stats
    kinds = {item["path"]: item["kind"] for item in stats.removed}
    assert kinds[str(p["link_file"])] == "link"
    assert kinds[str(p["old_loose"])] == "file"


@pytest.mark.django_db
def test_dry_run_reports_the_same_and_removes_nothing(roots, manager, tmp_path: Path) -> None:
    temp_root, _ = roots
    live = [make_job(JobStatus.PROCESSING)]
    finished = [make_job(JobStatus.COMPLETED)]
    build_tree(temp_root, tmp_path / "outside", live, finished)
    before = sorted(str(x) for x in temp_root.rglob("*"))
    dry = manager.cleanup_temporary_files(dry_run=True)
    assert sorted(str(x) for x in temp_root.rglob("*")) == before
    real = manager.cleanup_temporary_files()
    assert dry.dry_run
    assert not real.dry_run
    for key in ("files_removed", "dirs_removed", "bytes_freed", "skipped_live_jobs"):
        assert getattr(dry, key) == getattr(real, key), key
    assert [i["path"] for i in dry.removed] == [i["path"] for i in real.removed]


@pytest.mark.django_db
def test_job_status_change_releases_the_workspace(roots, manager) -> None:
    temp_root, _ = roots
    job = make_job(JobStatus.PROCESSING)
    clip = write(temp_root / "jobs" / str(job.id) / "clip.mp4", 50, OLD)
    manager.cleanup_temporary_files()
    assert clip.exists()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    stats = manager.cleanup_temporary_files()
    assert not clip.exists()
    assert stats.files_removed == 1
    assert stats.bytes_freed == 50


@pytest.mark.django_db
def test_max_age_from_argument_and_settings(roots, manager) -> None:
    temp_root, cache_root = roots
    f = write(temp_root / "two_hours.bin", 1, NOW - 2 * 3600)
    assert manager.cleanup_temporary_files(3).files_removed == 0
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": temp_root, "CACHE_DIR": cache_root, "TEMP_MAX_AGE_HOURS": 1}):
        stats = manager.cleanup_temporary_files()
    assert stats.max_age_hours == 1
    assert stats.files_removed == 1
    assert not f.exists()
    for bad in (-1, float("inf"), float("nan"), "3", True):
        with pytest.raises(ValidationError):
            manager.cleanup_temporary_files(bad)


def test_unreadable_jobs_table_keeps_every_job_workspace(roots, manager, monkeypatch) -> None:
    temp_root, _ = roots

    def down(**kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(selectors, "jobs_live_ids", down)
    clip = write(temp_root / "jobs" / str(uuid.uuid4()) / "clip.mp4", 5, OLD)
    loose = write(temp_root / "loose.bin", 5, OLD)
    stats = manager.cleanup_temporary_files()
    assert clip.exists()
    assert not loose.exists()
    assert stats.errors == 1
    assert "jobs table" in stats.failures[0]["error"]


def test_cleanup_of_a_missing_root_is_empty(tmp_path: Path, manager) -> None:
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": tmp_path / "missing"}):
        stats = manager.cleanup_temporary_files()
    assert stats.to_dict()["files_removed"] == 0
    assert stats.errors == 0


@pytest.fixture
def queued_job(transactional_db) -> Job:
    """A committed queued job, created in the main thread (async tests then touch the DB only via the code)."""
    return make_job(JobStatus.QUEUED)


async def test_async_cleanup_twin(roots, manager, queued_job: Job) -> None:
    temp_root, _ = roots
    job = queued_job
    kept = write(temp_root / "jobs" / str(job.id) / "a", 1, OLD)
    gone = write(temp_root / "b", 1, OLD)
    stats = await manager.acleanup_temporary_files()
    assert kept.exists()
    assert not gone.exists()
    assert stats.skipped_live_jobs == 1


# --------------------------------------------------------------------------- cache cap


def test_cache_cap_evicts_least_recently_used(roots, manager, tmp_path: Path) -> None:
    _, cache_root = roots
    # Last use = later of atime and mtime: e was read recently although written long ago.
    a = write(cache_root / "a", 100, NOW - 500)
    b = write(cache_root / "sub" / "b", 100, NOW - 400)
    c = write(cache_root / "c", 100, NOW - 300)
    d = write(cache_root / "sub" / "deeper" / "d", 100, NOW - 200)
    e = write(cache_root / "e", 100, NOW - 900, atime=NOW - 100)
    outside = write(tmp_path / "outside.bin", 10_000)
    link = cache_root / "link"
    link.symlink_to(outside)
    age(link, NOW - 1000)
    link_size = link.lstat().st_size

    dry = manager.enforce_cache_limit(250, dry_run=True)
    assert dry.files_evicted == 4
    assert a.exists()
    assert link.is_symlink()
    stats = manager.enforce_cache_limit(250)
    assert stats.bytes_before == 500 + link_size
    assert [Path(i["path"]).name for i in stats.evicted] == ["link", "a", "b", "c"]
    assert stats.bytes_after == 200 <= 250
    assert stats.bytes_freed == 300 + link_size
    assert not link.is_symlink()
    assert outside.stat().st_size == 10_000
    assert d.exists()
    assert e.exists()
    assert not a.exists()
    assert not b.exists()
    assert not c.exists()
    assert manager.enforce_cache_limit(250).files_evicted == 0


def test_cache_cap_from_settings_and_validation(roots, manager) -> None:
    temp_root, cache_root = roots
    for i in range(4):
        write(cache_root / f"f{i}", 1000, NOW - 100 * (4 - i))
    with override_settings(
        VIDEOGEN_COMMON={"TEMP_DIR": temp_root, "CACHE_DIR": cache_root, "CACHE_DIR_MAX_BYTES": 2000}
    ):
        stats = manager.enforce_cache_limit()
    assert stats.limit_bytes == 2000
    assert stats.files_evicted == 2
    assert sorted(p.name for p in cache_root.iterdir()) == ["f2", "f3"]
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ValidationError) as bad_info:
            manager.enforce_cache_limit(bad)
        assert bad_info.value.details == {"field": "max_bytes"}
    stop = threading.Event()
    stop.set()
    assert manager.enforce_cache_limit(0, stop=stop).interrupted


async def test_async_cache_twin_and_missing_cache_dir(tmp_path: Path, manager) -> None:
    with override_settings(VIDEOGEN_COMMON={"CACHE_DIR": tmp_path / "none"}):
        stats = await manager.aenforce_cache_limit()
    assert stats.bytes_before == 0
    assert stats.files_evicted == 0


# --------------------------------------------------------------------------- background work


async def wait_for(predicate, attempts: int = 1000) -> None:
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_async_background_tasks_start_and_stop_cleanly(roots, caplog, queued_job: Job) -> None:
    temp_root, cache_root = roots
    job = queued_job
    live = write(temp_root / "jobs" / str(job.id) / "clip.mp4", 10, OLD)
    old = write(temp_root / "old.bin", 10, OLD)
    manager = ResourceManager()
    with override_settings(
        VIDEOGEN_COMMON={"TEMP_DIR": temp_root, "CACHE_DIR": cache_root, "MEMORY_THRESHOLD_PERCENT": 0.0}
    ):
        monitor = await manager.start_monitoring(interval=0.01)
        cleanup = await manager.schedule_cleanup(interval_hours=1)
        assert await manager.start_monitoring(interval=0.01) is monitor  # started once
        assert manager.running_tasks() == ["cleanup", "monitor"]
        await wait_for(lambda: manager.samples_taken >= 3 and manager.cleanups_run >= 1)
        await manager.shutdown()
    assert monitor.done()
    assert cleanup.done()
    assert manager.running_tasks() == []
    assert not old.exists()
    assert live.exists()
    assert (
        len([r for r in threshold_records(caplog, "resource_threshold_crossed") if r.__dict__["resource"] == "memory"])
        == 1
    )
    await manager.shutdown()  # idempotent


async def test_shutdown_interrupts_a_cleanup_round(roots) -> None:
    temp_root, _ = roots
    manager = ResourceManager()
    entered = threading.Event()
    release = threading.Event()
    real = manager.run_maintenance

    def slow(*, stop=None):
        entered.set()
        release.wait(5)
        return real(stop=stop)

    manager.run_maintenance = slow  # type: ignore[method-assign]
    for i in range(20):
        write(temp_root / f"f{i}", 1, OLD)
    task = await manager.schedule_cleanup(interval_hours=24)
    await asyncio.to_thread(entered.wait, 5)
    shutting = asyncio.create_task(manager.shutdown())
    await asyncio.sleep(0)  # shutdown has now set the stop flag and cancelled the task
    release.set()
    await shutting
    assert task.done()
    # The stop flag was set before the round walked the tree: nothing, or only part, was removed.
    assert manager.last_cleanup is not None
    assert manager.last_cleanup.interrupted


def test_monitoring_thread_starts_and_stops(roots) -> None:
    temp_root, _cache_root = roots
    old = write(temp_root / "old.bin", 10, OLD)
    manager = ResourceManager()
    thread = manager.start_monitoring_thread(interval=0.01, cleanup_interval_hours=1)
    assert manager.start_monitoring_thread(interval=0.01) is thread
    for _ in range(1000):
        if manager.samples_taken >= 3 and manager.cleanups_run >= 1:
            break
        time.sleep(0.01)
    assert manager.stop(timeout=10)
    assert not thread.is_alive()
    assert manager.samples_taken >= 3
    assert manager.cleanups_run == 1
    assert not old.exists()
    assert manager.stop()  # no thread: nothing to do


async def test_async_shutdown_also_stops_the_thread(roots) -> None:
    manager = ResourceManager()
    thread = manager.start_monitoring_thread(interval=0.01)
    await manager.shutdown()
    assert not thread.is_alive()


async def test_bad_intervals_are_refused(roots) -> None:
    manager = ResourceManager()
    for bad in (0, -1, float("inf"), "5", True):
        with pytest.raises(ValidationError):
            await manager.start_monitoring(interval=bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await manager.schedule_cleanup(interval_hours=bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            manager.start_monitoring_thread(interval=bad)  # type: ignore[arg-type]
    assert manager.running_tasks() == []


def test_maintenance_survives_a_failing_step(roots, monkeypatch, caplog) -> None:
    manager = ResourceManager()

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(manager, "cleanup_temporary_files", boom)
    monkeypatch.setattr(manager, "enforce_cache_limit", boom)
    assert manager.run_maintenance() == {}
    assert {getattr(r, "event", None) for r in caplog.records} >= {"temp_cleanup_failed", "cache_cap_failed"}


def test_lazy_imports() -> None:
    import common

    assert common.resource_manager is maintenance.resource_manager
    assert common.ResourceManager is ResourceManager
    assert common.temp_file_manager is temp_file_manager
    assert common.TempFileManager is type(temp_file_manager)


# --------------------------------------------------------------------------- the seeds' call forms (issue 10, item 14)


@pytest.mark.django_db
def test_the_seeds_dict_forms_of_the_results(roots) -> None:
    """``resource_manager.cleanup_temporary_files()['files_removed']`` and the cache cap's likewise."""
    from common import resource_manager

    temp_root, cache_root = roots
    write(temp_root / "old.bin", 5, OLD)
    stats = resource_manager.cleanup_temporary_files()
    assert stats["files_removed"] == 1
    assert stats["bytes_freed"] == 5
    assert stats["errors"] == 0
    assert dict(stats) == stats.to_dict()
    stats["removed"].clear()  # a copy
    assert len(stats.removed) == 1

    write(cache_root / "c.bin", 10, OLD)
    eviction = resource_manager.enforce_cache_limit(0)
    assert eviction["files_evicted"] == 1
    assert eviction["bytes_after"] == 0
    with pytest.raises(TypeError):
        eviction["files_evicted"] = 0  # type: ignore[index]
