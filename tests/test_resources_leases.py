"""Temp cleanup and leases: a job whose lease expired longer ago than the temp age is cleaned like a finished one."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.test import override_settings

from common.maintenance import ResourceManager
from common.services.jobs import stage_start
from tests.services.lease_helpers import new_job, silence, untouched_for

pytestmark = pytest.mark.django_db

OLD = time.time() - 48 * 3600  # older than the 24 h temp age


def workspace(root: Path, job_id) -> Path:
    clip = root / "jobs" / str(job_id) / "clip.mp4"
    clip.parent.mkdir(parents=True, exist_ok=True)
    clip.write_bytes(b"x" * 10)
    os.utime(clip, (OLD, OLD))
    return clip


def test_a_long_dead_workers_workspace_is_cleaned_a_recent_or_live_one_kept(tmp_path: Path):
    """The defect: the workspace of a dead worker's job was never cleaned (the job looked live forever)."""
    root = tmp_path / "temp"
    alive, recent, long_dead, long_queued = new_job(), new_job(), new_job(), new_job()
    for job in (alive, recent, long_dead):
        stage_start(job_id=job.id, stage_name="video_generation", owner="w")
    silence(recent.id, 3600)  # lease ran out an hour ago: within the temp age, kept
    silence(long_dead.id, 25 * 3600)  # ran out 25 h ago: cleaned
    untouched_for(long_queued.id, 3600 + 25 * 3600)  # stale for 25 h: cleaned
    jobs = {"alive": alive, "recent": recent, "long_dead": long_dead, "long_queued": long_queued}
    clips = {name: workspace(root, job.id) for name, job in jobs.items()}
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": root, "CACHE_DIR": tmp_path / "cache"}):
        ResourceManager().cleanup_temporary_files()
    assert {name: clip.exists() for name, clip in clips.items()} == {
        "alive": True,
        "recent": True,
        "long_dead": False,
        "long_queued": False,
    }
