"""Lifecycle transitions in one round trip on PostgreSQL (issue 14 item 2), and the races that shape them.

bench/jobs.py counts the round trips on the wire (libpq's trace) and measures their speed; here the
statement count is kept from growing back, and the races the one-statement form must survive run
with real threads: a job finishing while a stage starts, a takeover racing a late heartbeat.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.errors import GenerationError, LeaseLostError, ValidationError
from common.models import Job, JobStage
from common.selectors import job_estimate_remaining
from common.services import jobs, leases

USER = uuid.UUID("44444444-4444-4444-8444-444444444444")

pytestmark = pytest.mark.django_db


def new_job() -> Job:
    return jobs.job_create(user_id=USER, audio_url="a", user_prompt="p")


def executes(call) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        call()
    return [query["sql"] for query in ctx.captured_queries]


@pytest.mark.postgres
def test_each_transition_is_one_execute_on_postgresql():
    job = new_job()
    owner = "worker-1"
    calls = {
        "job_create": new_job,
        "stage_start": lambda: jobs.stage_start(job_id=job.id, stage_name="audio_analysis", owner=owner),
        "stage_heartbeat": lambda: leases.stage_heartbeat(job_id=job.id, stage_name="audio_analysis", owner=owner),
        "job_update_progress": lambda: jobs.job_update_progress(job_id=job.id, progress=5),
        "stage_complete_leased": lambda: leases.stage_complete_leased(
            job_id=job.id, stage_name="audio_analysis", owner=owner
        ),
        "stage_start again": lambda: jobs.stage_start(job_id=job.id, stage_name="scene_planning"),
        "stage_fail": lambda: jobs.stage_fail(job_id=job.id, stage_name="scene_planning"),
        "stage_start retry": lambda: jobs.stage_start(job_id=job.id, stage_name="scene_planning", owner=owner),
        "stage_fail_leased": lambda: leases.stage_fail_leased(job_id=job.id, stage_name="scene_planning", owner=owner),
        "stage_start third": lambda: jobs.stage_start(job_id=job.id, stage_name="scene_planning"),
        "stage_complete": lambda: jobs.stage_complete(job_id=job.id, stage_name="scene_planning"),
        "job_complete": lambda: jobs.job_complete(job_id=job.id, video_url="v.mp4"),
    }
    for name, call in calls.items():
        sent = executes(call)
        assert len(sent) == 1, (name, sent)
        assert "SAVEPOINT" not in sent[0], name
    running = new_job()
    jobs.stage_start(job_id=running.id, stage_name="audio_analysis")
    assert len(executes(lambda: jobs.job_fail(job_id=running.id, error=GenerationError()))) == 1
    cancelled = new_job()
    jobs.stage_start(job_id=cancelled.id, stage_name="audio_analysis")
    assert len(executes(lambda: jobs.job_cancel(job_id=cancelled.id))) == 1
    assert JobStage.objects.get(job=cancelled, stage_name="audio_analysis").status == "failed"


@pytest.mark.postgres
def test_a_refused_transition_is_one_execute_and_changes_nothing():
    job = new_job()
    jobs.stage_start(job_id=job.id, stage_name="audio_analysis")
    before = Job.objects.get(pk=job.pk)
    with CaptureQueriesContext(connection) as ctx, pytest.raises(ValidationError) as info:
        jobs.stage_complete(job_id=job.id, stage_name="composition")
    assert len(ctx.captured_queries) == 1
    assert info.value.code == jobs.INVALID_TRANSITION
    assert "it was never started" in info.value.message
    after = Job.objects.get(pk=job.pk)
    assert (after.updated_at, after.status) == (before.updated_at, before.status)
    assert not JobStage.objects.filter(job=job, stage_name="composition").exists()


def test_the_stored_estimate_matches_the_exact_selector_between_stages():
    """The transitions' estimate (cached medians, SQL on PostgreSQL) equals the exact selector's when no stage runs."""
    now = timezone.now()
    for i, seconds in enumerate([40, 90, 10]):
        done = Job.objects.create(user_id=USER, audio_url="a", user_prompt="p")
        JobStage.objects.create(
            job=done,
            stage_name="reference_generation",
            status="completed",
            started_at=now - dt.timedelta(hours=i + 1),
            completed_at=now - dt.timedelta(hours=i + 1) + dt.timedelta(seconds=seconds),
            duration_seconds=seconds,
        )
    job = new_job()
    for name in ("audio_analysis", "scene_planning", "reference_generation"):
        jobs.stage_start(job_id=job.id, stage_name=name)
        stage = jobs.stage_complete(job_id=job.id, stage_name=name)
        assert stage.job.estimated_remaining == job_estimate_remaining(job_id=job.id)
    jobs.stage_start(job_id=job.id, stage_name="prompt_generation")
    stage = jobs.stage_fail(job_id=job.id, stage_name="prompt_generation")
    assert stage.job.estimated_remaining == job_estimate_remaining(job_id=job.id) == 3 * 60


def race(actions) -> list[object]:
    """Run the actions in threads released together; each result or exception."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = actions[i]()
        except Exception as exc:
            results[i] = exc
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres  # the SQLite test database serialises writers (the ORM version, unchanged, runs there)
@pytest.mark.django_db(transaction=True)
def test_a_job_failing_while_stages_start_leaves_no_stage_running():
    """The finishing transition sees every stage started before it took the job's lock (no stale snapshot)."""
    for _ in range(12):
        job = new_job()
        jobs.stage_start(job_id=job.id, stage_name="audio_analysis")
        results = race(
            [
                lambda job=job: jobs.stage_start(job_id=job.id, stage_name="scene_planning"),
                lambda job=job: jobs.job_fail(job_id=job.id, error=GenerationError()),
                lambda job=job: jobs.stage_start(job_id=job.id, stage_name="composition"),
            ]
        )
        assert all(
            isinstance(r, JobStage | Job) or getattr(r, "code", None) == jobs.INVALID_TRANSITION for r in results
        ), results
        assert Job.objects.get(pk=job.pk).status == "failed"
        assert not JobStage.objects.filter(job=job, status="processing").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_takeover_and_the_old_owners_complete_have_one_winner():
    for _ in range(10):
        job = new_job()
        jobs.stage_start(job_id=job.id, stage_name="audio_analysis", owner="old")
        JobStage.objects.filter(job=job).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
        results = race(
            [
                lambda job=job: jobs.stage_start(job_id=job.id, stage_name="audio_analysis", owner="new"),
                lambda job=job: leases.stage_complete_leased(job_id=job.id, stage_name="audio_analysis", owner="old"),
            ]
        )
        stage = JobStage.objects.get(job=job)
        took_over, completed = results
        if isinstance(took_over, JobStage):  # the takeover won: the old owner's result is refused
            assert isinstance(completed, LeaseLostError)
            assert (stage.status, stage.lease_owner, stage.attempts) == ("processing", "new", 2)
        else:  # the old owner completed first: nothing is left to take over
            assert isinstance(completed, JobStage)
            assert isinstance(took_over, ValidationError)
            assert took_over.code == jobs.INVALID_TRANSITION
            assert (stage.status, stage.lease_owner, stage.attempts) == ("completed", "old", 1)
