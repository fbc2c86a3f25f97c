"""Stage leases: owner and expiry at start, takeover of an expired stage, heartbeats, the stage_lease helpers."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from common.errors import ConfigError, GenerationError, LeaseLostError, PipelineError, ValidationError
from common.models import Job, JobStage
from common.services import jobs, leases
from common.services.jobs import job_fail, stage_complete, stage_start
from common.services.leases import (
    stage_complete_leased,
    stage_fail_leased,
    stage_heartbeat,
    stage_lease,
)
from tests.services.costs_helpers import run_threads
from tests.services.lease_helpers import new_job, silence

pytestmark = pytest.mark.django_db(transaction=True)

STAGE = "video_generation"


def stage_row(job_id, name: str = STAGE) -> JobStage:
    return JobStage.objects.get(job_id=job_id, stage_name=name)


def wait_for(predicate, timeout: float = 20.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --------------------------------------------------------------------------- start and takeover


def test_start_leases_the_stage_to_this_process_for_the_lease_time():
    job = new_job()
    before = timezone.now()
    stage = stage_start(job_id=job.id, stage_name=STAGE)
    row = stage_row(job.id)
    assert row.lease_owner == stage.lease_owner == f"{socket.gethostname()}:{os.getpid()}"
    assert row.lease_owner == jobs.default_lease_owner() == leases.default_lease_owner()
    lease = dt.timedelta(seconds=60)
    assert before + lease <= row.lease_expires_at <= timezone.now() + lease


def test_start_with_an_owner_and_a_setting():
    job = new_job()
    with override_settings(VIDEOGEN_COMMON={"JOB_LEASE_SECONDS": 5}):
        stage_start(job_id=job.id, stage_name=STAGE, owner="worker-1/thread-3")
    row = stage_row(job.id)
    assert row.lease_owner == "worker-1/thread-3"
    assert row.lease_expires_at - row.started_at == dt.timedelta(seconds=5)


def test_a_live_lease_is_not_taken_over_and_nothing_changes():
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="worker-a")
    before = stage_row(job.id)
    with pytest.raises(ValidationError) as info:
        stage_start(job_id=job.id, stage_name=STAGE, owner="worker-b")
    assert info.value.code == jobs.INVALID_TRANSITION
    assert "already processing" in info.value.message
    assert "worker-a" in info.value.message
    assert info.value.details["reason"] == "lease_held"
    assert info.value.details["lease_owner"] == "worker-a"
    after = stage_row(job.id)
    assert (after.lease_owner, after.lease_expires_at, after.attempts) == ("worker-a", before.lease_expires_at, 1)


def test_a_dead_workers_stage_is_taken_over_with_one_more_attempt(caplog):
    """The defect: stage_start on a dead worker's stage raised INVALID_TRANSITION ("already processing")."""
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="worker-a")
    silence(job.id)
    with caplog.at_level(logging.WARNING, logger="common.services.jobs"):
        stage = stage_start(job_id=job.id, stage_name=STAGE, owner="worker-b")
    assert stage.attempts == 2
    row = stage_row(job.id)
    assert (row.status, row.lease_owner, row.attempts) == ("processing", "worker-b", 2)
    assert row.lease_expires_at > timezone.now()
    assert Job.objects.get(id=job.id).status == "processing"
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "stage_taken_over"]
    assert record.previous_owner == "worker-a"
    assert record.lease_owner == "worker-b"


def test_a_stage_from_before_leases_is_taken_over_once_a_lease_has_passed_since_its_start():
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="old")
    JobStage.objects.filter(job_id=job.id).update(lease_expires_at=None, lease_owner=None)
    with pytest.raises(ValidationError):  # started just now: treated as leased from its start
        stage_start(job_id=job.id, stage_name=STAGE, owner="new")
    JobStage.objects.filter(job_id=job.id).update(started_at=timezone.now() - dt.timedelta(seconds=61))
    assert stage_start(job_id=job.id, stage_name=STAGE, owner="new").attempts == 2


def test_a_completed_stage_is_never_taken_over():
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="worker-a")
    stage_complete(job_id=job.id, stage_name=STAGE)
    silence(job.id)
    with pytest.raises(ValidationError) as info:
        stage_start(job_id=job.id, stage_name=STAGE, owner="worker-b")
    assert "already completed" in info.value.message


@pytest.mark.parametrize("owner", ["", "   ", "x" * 129, "bad\x00owner", "line\nbreak", 42])
def test_bad_owners_are_refused_before_anything_is_written(owner):
    job = new_job()
    with pytest.raises(ValidationError) as info:
        stage_start(job_id=job.id, stage_name=STAGE, owner=owner)
    assert info.value.details["field"] == "owner"
    assert not JobStage.objects.filter(job_id=job.id).exists()
    stage_start(job_id=job.id, stage_name=STAGE, owner="good")
    with pytest.raises(ValidationError):
        stage_heartbeat(job_id=job.id, stage_name=STAGE, owner=owner)


@pytest.mark.parametrize("value", [0, -5, float("nan"), float("inf"), "60", True, None])
def test_a_bad_lease_setting_is_a_config_error(value):
    job = new_job()
    with override_settings(VIDEOGEN_COMMON={"JOB_LEASE_SECONDS": value}), pytest.raises(ConfigError) as info:
        stage_start(job_id=job.id, stage_name=STAGE)
    assert "JOB_LEASE_SECONDS" in info.value.message
    assert not JobStage.objects.filter(job_id=job.id).exists()


# --------------------------------------------------------------------------- heartbeat


def test_heartbeat_renews_the_lease():
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="w")
    JobStage.objects.filter(job_id=job.id).update(lease_expires_at=timezone.now() + dt.timedelta(seconds=1))
    expires = stage_heartbeat(job_id=job.id, stage_name=STAGE, owner="w")
    assert stage_row(job.id).lease_expires_at == expires
    assert expires > timezone.now() + dt.timedelta(seconds=50)


def test_a_late_heartbeat_keeps_a_lapsed_lease_nobody_took():
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="w")
    silence(job.id)
    stage_heartbeat(job_id=job.id, stage_name=STAGE, owner="w")
    with pytest.raises(ValidationError):  # alive again: no takeover
        stage_start(job_id=job.id, stage_name=STAGE, owner="other")


def test_heartbeat_after_a_takeover_tells_the_old_worker_to_stop():
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="worker-a")
    silence(job.id)
    stage_start(job_id=job.id, stage_name=STAGE, owner="worker-b")
    with pytest.raises(LeaseLostError) as info:
        stage_heartbeat(job_id=job.id, stage_name=STAGE, owner="worker-a")
    assert info.value.code == "LEASE_LOST"
    assert info.value.job_id == job.id
    assert "taken over by worker-b" in info.value.message
    assert info.value.details["current_owner"] == "worker-b"
    assert stage_row(job.id).lease_owner == "worker-b"  # the loser's beat changed nothing


@pytest.mark.parametrize("ending", ["completed", "failed", "job_failed", "never_started"])
def test_heartbeat_on_a_stage_that_ended_is_lease_lost(ending):
    job = new_job()
    if ending != "never_started":
        stage_start(job_id=job.id, stage_name=STAGE, owner="w")
    if ending == "completed":
        stage_complete(job_id=job.id, stage_name=STAGE)
    elif ending == "failed":
        jobs.stage_fail(job_id=job.id, stage_name=STAGE)
    elif ending == "job_failed":
        job_fail(job_id=job.id, error=GenerationError("boom"))
    with pytest.raises(LeaseLostError) as info:
        stage_heartbeat(job_id=job.id, stage_name=STAGE, owner="w")
    expected = {"completed": "completed", "failed": "failed", "job_failed": "failed", "never_started": None}[ending]
    assert info.value.details["stage_status"] == expected


def test_heartbeat_needs_an_owner_and_a_valid_job_id():
    job = new_job()
    with pytest.raises(ValidationError):
        stage_heartbeat(job_id=job.id, stage_name=STAGE, owner=None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as info:
        stage_heartbeat(job_id="not-a-uuid", stage_name=STAGE, owner="w")
    assert info.value.code == "INVALID_JOB_ID"


# --------------------------------------------------------------------------- ending a leased stage


def test_the_loser_cannot_complete_or_fail_the_winners_stage():
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="worker-a")
    silence(job.id)
    stage_start(job_id=job.id, stage_name=STAGE, owner="worker-b")
    with pytest.raises(LeaseLostError):
        stage_complete_leased(job_id=job.id, stage_name=STAGE, owner="worker-a")
    with pytest.raises(LeaseLostError):
        stage_fail_leased(job_id=job.id, stage_name=STAGE, owner="worker-a", error=GenerationError("x"))
    assert stage_row(job.id).status == "processing"
    done = stage_complete_leased(job_id=job.id, stage_name=STAGE, owner="worker-b", metadata={"clips": 3})
    assert done.status == "completed"
    assert stage_row(job.id).metadata == {"clips": 3}


def test_fail_leased_keeps_the_error():
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner="w")
    stage_fail_leased(job_id=job.id, stage_name=STAGE, owner="w", error=GenerationError("clip 3 failed"))
    row = stage_row(job.id)
    assert row.status == "failed"
    assert row.metadata["error"]["code"] == "GENERATION_FAILED"


# --------------------------------------------------------------------------- the context manager


def test_stage_lease_completes_the_stage_when_the_block_ends():
    job = new_job()
    with stage_lease(job_id=job.id, stage_name=STAGE, owner="w", metadata={"scenes": 4}) as lease:
        assert lease.owner == "w"
        assert lease.stage.status == "processing"
        lease.check()
    row = stage_row(job.id)
    assert (row.status, row.metadata) == ("completed", {"scenes": 4})
    assert lease.ended
    assert not lease.lost.is_set()


def test_stage_lease_explicit_complete_with_metadata():
    job = new_job()
    with stage_lease(job_id=job.id, stage_name=STAGE) as lease:
        lease.complete({"clips": 12})
    assert stage_row(job.id).metadata == {"clips": 12}
    assert stage_row(job.id).status == "completed"


def test_stage_lease_fails_the_stage_on_a_pipeline_error_and_lets_it_through():
    job = new_job()
    with pytest.raises(GenerationError), stage_lease(job_id=job.id, stage_name=STAGE):
        raise GenerationError("clip 5 failed", job_id=job.id)
    row = stage_row(job.id)
    assert row.status == "failed"
    assert row.metadata["error"]["message"] == "clip 5 failed"
    # It may be started again, by anybody: a failed stage holds no lease.
    assert stage_start(job_id=job.id, stage_name=STAGE, owner="retry").attempts == 2


def test_stage_lease_fails_the_stage_on_any_other_error_too():
    job = new_job()
    with pytest.raises(KeyError), stage_lease(job_id=job.id, stage_name=STAGE):
        raise KeyError("scene")
    error = stage_row(job.id).metadata["error"]
    assert error["code"] == "PIPELINE_ERROR"
    assert error["details"] == {"exception": "KeyError"}


def test_stage_lease_explicit_fail():
    job = new_job()
    with stage_lease(job_id=job.id, stage_name=STAGE) as lease:
        lease.fail(GenerationError("no clips"))
    assert stage_row(job.id).status == "failed"
    with pytest.raises(ValidationError):  # ended: a second end is an illegal transition
        lease.complete()


def test_stage_lease_refuses_a_bad_renew_interval_before_starting():
    job = new_job()
    for bad in (0, -1, 60, 61, float("nan"), True):
        with pytest.raises(ValidationError), stage_lease(job_id=job.id, stage_name=STAGE, renew_every=bad):
            pass
    assert not JobStage.objects.filter(job_id=job.id).exists()


def test_the_renewer_keeps_the_lease_alive():
    job = new_job()
    with (
        override_settings(VIDEOGEN_COMMON={"JOB_LEASE_SECONDS": 30}),
        stage_lease(job_id=job.id, stage_name=STAGE, renew_every=0.02) as lease,
    ):
        first = stage_row(job.id).lease_expires_at
        assert wait_for(lambda: stage_row(job.id).lease_expires_at > first)
        assert lease.expires_at >= first
    assert stage_row(job.id).status == "completed"


def test_the_renewer_finds_a_takeover_and_tells_the_worker():
    job = new_job()
    told: list[LeaseLostError] = []
    seen = threading.Event()

    def on_lost(error: LeaseLostError) -> None:
        told.append(error)
        seen.set()

    checked: list[BaseException] = []

    def work() -> None:
        with (
            override_settings(VIDEOGEN_COMMON={"JOB_LEASE_SECONDS": 30}),
            stage_lease(job_id=job.id, stage_name=STAGE, owner="worker-a", renew_every=0.02, on_lost=on_lost) as lease,
        ):
            # Another worker's takeover commits (what stage_start writes once the lease has run out).
            JobStage.objects.filter(job_id=job.id).update(lease_owner="worker-b")
            assert seen.wait(20)
            assert lease.lost.is_set()
            try:
                lease.check()
            except LeaseLostError as exc:
                checked.append(exc)

    with pytest.raises(LeaseLostError):  # the block ends normally; completing what is not ours is refused
        work()
    assert checked == told
    assert told[0].details["current_owner"] == "worker-b"
    row = stage_row(job.id)
    assert (row.status, row.lease_owner) == ("processing", "worker-b")  # left alone for its new owner


def test_an_error_after_the_lease_was_lost_leaves_the_stage_alone():
    job = new_job()

    def work() -> None:
        with stage_lease(job_id=job.id, stage_name=STAGE, owner="worker-a") as lease:
            silence(job.id)
            stage_start(job_id=job.id, stage_name=STAGE, owner="worker-b")
            with pytest.raises(LeaseLostError):
                lease.renew()
            raise GenerationError("gave up")

    with pytest.raises(GenerationError):
        work()
    row = stage_row(job.id)
    assert (row.status, row.lease_owner, row.attempts) == ("processing", "worker-b", 2)


def test_renewal_trouble_is_logged_and_retried(caplog):
    """A renewal that cannot reach the database is retried at the next beat; the worker is not stopped."""
    job = new_job()
    failures = []
    original = leases.stage_heartbeat

    def flaky(**kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise PipelineError("the database is unavailable", code="SERVICE_UNAVAILABLE")
        return original(**kwargs)

    leases.stage_heartbeat = flaky  # type: ignore[assignment]
    try:
        with (
            caplog.at_level(logging.WARNING, logger="common.services.leases"),
            stage_lease(job_id=job.id, stage_name=STAGE, renew_every=0.02) as lease,
        ):
            first = stage_row(job.id).lease_expires_at
            assert wait_for(lambda: stage_row(job.id).lease_expires_at > first)
            assert not lease.lost.is_set()
    finally:
        leases.stage_heartbeat = original  # type: ignore[assignment]
    assert [r for r in caplog.records if getattr(r, "event", None) == "lease_renewal_failed"]
    assert stage_row(job.id).status == "completed"


@pytest.mark.postgres
def test_renewer_threads_give_their_connections_back():
    """Twelve leases whose renewers each beat: the pool (10 connections) still serves 9 threads at once."""
    for _ in range(12):
        job = new_job()
        with stage_lease(job_id=job.id, stage_name=STAGE, renew_every=0.01):
            first = stage_row(job.id).lease_expires_at
            assert wait_for(lambda: stage_row(job.id).lease_expires_at > first)  # noqa: B023
    held = threading.Barrier(9)

    def hold(i: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            held.wait(timeout=60)  # all nine hold a connection at once
            return cursor.fetchone()[0]

    assert run_threads(9, hold) == [1] * 9


# --------------------------------------------------------------------------- async


async def test_astage_lease_completes_and_renews():
    job = await sync_to_async(new_job)()
    async with leases.astage_lease(job_id=job.id, stage_name=STAGE, owner="async-w", renew_every=0.02) as lease:
        first = lease.expires_at
        for _ in range(2000):
            if lease.expires_at > first:
                break
            await asyncio.sleep(0.01)
        assert lease.expires_at > first
    row = await sync_to_async(stage_row)(job.id)
    assert (row.status, row.lease_owner) == ("completed", "async-w")
    await sync_to_async(lambda: connection.close())()  # the worker thread's connection, so the test DB can be dropped


async def test_astage_lease_fails_on_error_and_async_twins_work():
    job = await sync_to_async(new_job)()
    with pytest.raises(GenerationError):
        async with leases.astage_lease(job_id=job.id, stage_name=STAGE):
            raise GenerationError("nope")
    assert (await sync_to_async(stage_row)(job.id)).status == "failed"
    await jobs.astage_start(job_id=job.id, stage_name=STAGE, owner="a")
    assert await leases.astage_heartbeat(job_id=job.id, stage_name=STAGE, owner="a") > timezone.now()
    with pytest.raises(LeaseLostError):
        await leases.astage_complete_leased(job_id=job.id, stage_name=STAGE, owner="b")
    await leases.astage_fail_leased(job_id=job.id, stage_name=STAGE, owner="a")
    await jobs.astage_start(job_id=job.id, stage_name=STAGE, owner="a")
    done = await leases.astage_complete_leased(job_id=job.id, stage_name=STAGE, owner="a")
    assert done.status == "completed"
    await sync_to_async(lambda: connection.close())()


# --------------------------------------------------------------------------- the README's worker example


async def _readme_run_audio_analysis(job_id, analyse):
    """The README's example, verbatim but for ``analyse`` being passed in and the result type."""
    from common.errors import AudioAnalysisError
    from common.services.jobs import ajob_fail, ajob_update_progress
    from common.services.leases import astage_lease

    try:
        async with astage_lease(job_id=job_id, stage_name="audio_analysis") as lease:
            try:
                analysis = await analyse(job_id, lease)
            except PipelineError:
                raise
            except Exception as exc:
                raise AudioAnalysisError(str(exc), job_id=job_id) from exc
            lease.check()
    except PipelineError as exc:
        if exc.code != "LEASE_LOST":
            await ajob_fail(job_id=job_id, error=exc)
        raise
    await ajob_update_progress(job_id=job_id, progress=15, current_stage="scene_planning")
    return analysis


async def test_readme_worker_example_runs_fails_and_stops_on_a_lost_lease():
    async def ok(job_id, lease):
        return {"bpm": 120}

    async def broken(job_id, lease):
        raise RuntimeError("decoder crashed")

    async def overtaken(job_id, lease):
        def take_over():
            silence(job_id)
            stage_start(job_id=job_id, stage_name="audio_analysis", owner="someone-else")

        await sync_to_async(take_over)()
        with pytest.raises(LeaseLostError):
            await lease.arenew()
        return {"bpm": 1}

    good, bad, lost = [await sync_to_async(new_job)() for _ in range(3)]
    assert await _readme_run_audio_analysis(good.id, ok) == {"bpm": 120}
    with pytest.raises(PipelineError) as info:
        await _readme_run_audio_analysis(bad.id, broken)
    assert info.value.code == "AUDIO_ANALYSIS_FAILED"
    with pytest.raises(LeaseLostError):
        await _readme_run_audio_analysis(lost.id, overtaken)

    def states():
        return {
            job.id: (job.status, JobStage.objects.get(job_id=job.id).status, job.progress)
            for job in Job.objects.filter(id__in=[good.id, bad.id, lost.id])
        }

    assert await sync_to_async(states)() == {
        good.id: ("processing", "completed", 15),
        bad.id: ("failed", "failed", 0),
        lost.id: ("processing", "processing", 0),  # left to the worker that took it over
    }
    await sync_to_async(lambda: connection.close())()
