"""The per-process stage medians the transitions' estimate reads (issue 14 item 2): staleness and invalidation."""

from __future__ import annotations

import datetime as dt
import random
import statistics
import uuid

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.errors import ConfigError
from common.models import Job, JobStage
from common.selectors import estimates
from common.selectors.estimates import (
    stage_median_durations,
    stage_median_record,
    stage_medians_cached,
    stage_medians_forget,
)
from common.services import jobs

USER = uuid.UUID("55555555-5555-4555-8555-555555555555")
NAMES = ["audio_analysis", "composition"]

pytestmark = pytest.mark.django_db


def completed(stage_name: str, seconds: int, hours_ago: float = 1.0) -> None:
    """A completed run in another job, written behind the services' back (as another process would)."""
    other = Job.objects.create(user_id=USER, audio_url="a", user_prompt="p")
    end = timezone.now() - dt.timedelta(hours=hours_ago)
    JobStage.objects.create(
        job=other,
        stage_name=stage_name,
        status="completed",
        started_at=end - dt.timedelta(seconds=seconds),
        completed_at=end,
        duration_seconds=seconds,
    )


class Clock:
    """``time.monotonic`` of the estimates module, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(estimates.time, "monotonic", lambda: self.now)


def queries(call) -> int:
    with CaptureQueriesContext(connection) as ctx:
        call()
    return len(ctx.captured_queries)


def test_the_cached_medians_equal_the_exact_ones_and_the_second_read_sends_nothing():
    for seconds in (10, 30, 50):
        completed("audio_analysis", seconds)
    assert stage_medians_cached(stage_names=NAMES) == stage_median_durations(stage_names=NAMES)
    assert stage_medians_cached(stage_names=NAMES) == {"audio_analysis": 30.0, "composition": None}
    assert queries(lambda: stage_medians_cached(stage_names=NAMES)) == 0


def test_history_written_elsewhere_is_seen_once_the_ttl_has_passed(monkeypatch):
    clock = Clock(monkeypatch)
    completed("audio_analysis", 10)
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 10.0
    completed("audio_analysis", 30, hours_ago=0.5)  # another process's completion
    clock.now += 29.0
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 10.0  # stale for at most the TTL
    clock.now += 1.5
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 20.0


def test_a_completion_in_this_process_is_folded_in_when_it_commits(django_capture_on_commit_callbacks):
    for seconds in (100, 200):
        completed("composition", seconds)
    assert stage_medians_cached(stage_names=NAMES)["composition"] == 150.0
    job = jobs.job_create(user_id=USER, audio_url="a", user_prompt="p")
    jobs.stage_start(job_id=job.id, stage_name="composition")
    JobStage.objects.filter(job=job).update(started_at=timezone.now() - dt.timedelta(seconds=300))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        stage = jobs.stage_complete(job_id=job.id, stage_name="composition")
    assert stage.duration_seconds == 300
    assert stage_medians_cached(stage_names=NAMES)["composition"] == 150.0  # not committed yet: not counted
    for callback in callbacks:
        callback()
    assert queries(lambda: stage_medians_cached(stage_names=NAMES)) == 0
    assert stage_medians_cached(stage_names=NAMES)["composition"] == 200.0
    assert stage_median_durations(stage_names=["composition"])["composition"] == 200.0  # the exact read agrees


def test_a_window_loaded_after_the_completion_began_does_not_count_it_twice(monkeypatch):
    clock = Clock(monkeypatch)
    completed("audio_analysis", 10)
    completed("audio_analysis", 20, hours_ago=0.5)  # committed: the load below already holds it
    since = clock.now - 1  # the completion's transaction began before the window was loaded
    stage_medians_cached(stage_names=NAMES)
    stage_median_record(stage_name="audio_analysis", seconds=20, since=since)
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 15.0
    stage_median_record(stage_name="audio_analysis", seconds=90, since=clock.now + 1)  # began after the load
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 20.0


@override_settings(VIDEOGEN_COMMON={"ESTIMATE_HISTORY_JOBS": 3})
def test_the_window_keeps_the_last_history_runs():
    for i, seconds in enumerate([1000, 5, 6, 7]):
        completed("audio_analysis", seconds, hours_ago=10 - i)
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 6.0
    for seconds in (50, 60):
        stage_median_record(stage_name="audio_analysis", seconds=seconds, since=float("inf"))
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 50.0  # 7, 50, 60


def test_the_window_median_matches_statistics_median():
    rng = random.Random(14)
    for size in (0, 1, 2, 5, 50):
        window = estimates._Window([], size, loaded_at=0.0)
        kept: list[int] = []
        for _ in range(200):
            value = rng.randint(0, 400)
            window.add(value)
            kept = ([*kept, value])[-size:] if size else []
            assert window.median() == (float(statistics.median(kept)) if kept else None)


def test_a_settings_change_and_forget_drop_the_windows():
    completed("audio_analysis", 10)
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 10.0
    completed("audio_analysis", 30, hours_ago=0.5)
    with override_settings(VIDEOGEN_COMMON={"DEFAULT_STAGE_SECONDS": 60}):
        assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 20.0
    completed("audio_analysis", 50, hours_ago=0.2)
    stage_medians_forget()
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 30.0


@override_settings(VIDEOGEN_COMMON={"ESTIMATE_CACHE_SECONDS": 0})
def test_a_ttl_of_zero_reads_the_history_every_time():
    completed("audio_analysis", 10)
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 10.0
    completed("audio_analysis", 30, hours_ago=0.5)
    assert stage_medians_cached(stage_names=NAMES)["audio_analysis"] == 20.0
    assert queries(lambda: stage_medians_cached(stage_names=NAMES)) >= 1


@pytest.mark.parametrize("value", [-1, "30", True, float("nan"), float("inf")])
def test_a_bad_ttl_is_a_config_error(value):
    with override_settings(VIDEOGEN_COMMON={"ESTIMATE_CACHE_SECONDS": value}), pytest.raises(ConfigError) as info:
        stage_medians_cached(stage_names=NAMES)
    assert "ESTIMATE_CACHE_SECONDS" in info.value.message


def test_the_transitions_read_no_median_while_the_windows_are_fresh():
    job = jobs.job_create(user_id=USER, audio_url="a", user_prompt="p")  # loads the windows
    with CaptureQueriesContext(connection) as ctx:
        jobs.stage_start(job_id=job.id, stage_name="audio_analysis")
        jobs.stage_complete(job_id=job.id, stage_name="audio_analysis")
    medians = [q["sql"] for q in ctx.captured_queries if '"duration_seconds" IS NOT NULL' in q["sql"]]
    assert medians == []
