"""Stale jobs and their recovery: the selectors, job_requeue, job_fail_worker_lost and recover_jobs."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from common import selectors
from common.errors import LeaseLostError, ValidationError
from common.models import HoldStatus, Job, JobCostHold, JobStage
from common.services import costs, recovery
from common.services.jobs import job_complete, job_update_progress, stage_complete, stage_start
from common.services.leases import stage_heartbeat
from common.services.recovery import job_fail_worker_lost, job_requeue, recover_jobs
from tests.services.lease_helpers import new_job, silence, untouched_for

pytestmark = pytest.mark.django_db

STAGE = "video_generation"


def stale_ids(**kwargs) -> set:
    return set(selectors.jobs_stale(**kwargs).values_list("id", flat=True))


def running(owner: str = "worker-a", stage: str = STAGE) -> Job:
    job = new_job()
    stage_start(job_id=job.id, stage_name=stage, owner=owner)
    return job


# --------------------------------------------------------------------------- selectors


def test_a_job_whose_worker_died_mid_stage_is_lease_expired():
    dead, alive = running(), running()
    silence(dead.id)
    assert alive.id not in stale_ids()
    assert set(selectors.jobs_lease_expired().values_list("id", flat=True)) == {dead.id}
    assert stale_ids() == {dead.id}
    assert not selectors.jobs_queued_stale().exists()


def test_a_job_whose_worker_died_between_two_stages_is_found_too():
    job = running(stage="audio_analysis")
    stage_complete(job_id=job.id, stage_name="audio_analysis")
    assert stale_ids() == set()  # just finished a stage: its worker is about to start the next
    silence(job.id)
    assert stale_ids() == {job.id}


def test_a_processing_job_without_stages_goes_stale_after_a_lease_of_silence():
    job = new_job()
    job_update_progress(job_id=job.id, progress=5)
    assert stale_ids() == set()
    untouched_for(job.id, 61)
    assert stale_ids() == {job.id}


def test_a_live_lease_keeps_an_old_job_fresh():
    job = running()
    untouched_for(job.id, 3600)  # the job row is old, but the stage's lease is live
    assert stale_ids() == set()


def test_queued_jobs_go_stale_after_the_setting():
    old, fresh = new_job(), new_job()
    untouched_for(old.id, 3601)
    assert fresh.id not in stale_ids()
    assert set(selectors.jobs_queued_stale().values_list("id", flat=True)) == {old.id}
    with override_settings(VIDEOGEN_COMMON={"JOB_QUEUED_STALE_SECONDS": 7200}):
        assert stale_ids() == set()


def test_finished_jobs_are_never_stale():
    job = running()
    stage_complete(job_id=job.id, stage_name=STAGE)
    job_complete(job_id=job.id, video_url="https://example.com/v.mp4")
    silence(job.id, 10**6)
    assert stale_ids() == set()
    assert selectors.jobs_live_ids() == set()


def test_grace_counts_from_when_the_lease_ran_out():
    job = running()
    silence(job.id, 10)
    assert stale_ids(grace=dt.timedelta(seconds=5)) == {job.id}
    assert stale_ids(grace=dt.timedelta(seconds=60)) == set()
    assert stale_ids(now=timezone.now() + dt.timedelta(seconds=100), grace=dt.timedelta(seconds=60)) == {job.id}


def test_live_ids_drop_jobs_stale_for_longer_than_the_grace():
    alive, recent, long_dead, queued = running(), running(), running(), new_job()
    silence(recent.id, 60)
    silence(long_dead.id, 25 * 3600)
    untouched_for(queued.id, 3600 + 25 * 3600)
    grace = dt.timedelta(hours=24)
    assert selectors.jobs_live_ids(grace=grace) == {str(alive.id), str(recent.id)}
    assert selectors.jobs_live_ids() == {str(alive.id)}


def test_stale_report_says_why_and_since_when():
    dead = running("host-1:42")
    stage_start(job_id=dead.id, stage_name="composition", owner="host-1:42")
    silence(dead.id, 30)
    lease_ran_out = JobStage.objects.filter(job_id=dead.id).first().lease_expires_at
    queued = new_job()
    untouched_for(queued.id, 5000)
    report = selectors.jobs_stale_report()
    assert [r.job_id for r in report] == [queued.id, dead.id]  # stale the longest first
    second, first = report
    assert (first.kind, first.status, first.current_stage) == ("lease_expired", "processing", "composition")
    assert first.running_stages == ("composition", "video_generation")
    assert first.lease_owners == ("host-1:42",)
    assert first.stale_since == lease_ran_out
    assert (second.kind, second.running_stages, second.lease_owners) == ("queued_stale", (), ())
    updated = Job.objects.get(id=queued.id).updated_at
    assert second.stale_since == updated + dt.timedelta(seconds=3600)
    data = json.loads(json.dumps([r.to_dict() for r in report]))
    assert data[1]["kind"] == "lease_expired"
    assert selectors.jobs_stale_report(job_ids=[str(queued.id)])[0].job_id == queued.id
    assert len(selectors.jobs_stale_report(limit=1)) == 1
    with pytest.raises(ValidationError):
        selectors.jobs_stale_report(job_ids=["nope"])


def test_a_bad_stale_setting_is_a_config_error():
    from common.errors import ConfigError

    with override_settings(VIDEOGEN_COMMON={"JOB_QUEUED_STALE_SECONDS": -1}), pytest.raises(ConfigError):
        list(selectors.jobs_stale())


# --------------------------------------------------------------------------- requeue


def test_requeue_returns_the_stage_to_pending_and_the_job_to_the_queue(django_capture_on_commit_callbacks):
    job = running()
    hold = costs.reserve(job.id, STAGE, "svd", Decimal("0.60"))
    silence(job.id)
    sent = []
    recovery.job_requeued.connect(lambda sender, job, **kw: sent.append(job.id), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            requeued = job_requeue(job_id=job.id)
    finally:
        recovery.job_requeued.disconnect(dispatch_uid="t")
    assert requeued.status == "queued"
    stage = JobStage.objects.get(job_id=job.id, stage_name=STAGE)
    assert stage.status == "pending"
    assert stage.attempts == 1
    assert stage.metadata["recovery"]["action"] == "requeue"
    assert stage.metadata["recovery"]["lease_owner"] == "worker-a"
    row = Job.objects.get(id=job.id)
    assert (row.status, row.reserved_cost) == ("queued", Decimal(0))
    assert JobCostHold.objects.get(id=hold.id).status == HoldStatus.RELEASED
    assert sent == [job.id]
    assert stale_ids() == set()  # the queue clock starts again
    # The dead worker, if it comes back, is told to stop; a new worker starts the stage afresh.
    with pytest.raises(LeaseLostError):
        stage_heartbeat(job_id=job.id, stage_name=STAGE, owner="worker-a")
    assert stage_start(job_id=job.id, stage_name=STAGE, owner="worker-b").attempts == 2


def test_requeue_of_a_stale_queued_job_restarts_its_clock_and_releases_holds():
    job = new_job()
    costs.reserve(job.id, STAGE, "svd", Decimal("0.30"))
    untouched_for(job.id, 4000)
    job_requeue(job_id=job.id)
    row = Job.objects.get(id=job.id)
    assert (row.status, row.reserved_cost) == ("queued", Decimal(0))
    assert stale_ids() == set()


@pytest.mark.parametrize("recover", [job_requeue, job_fail_worker_lost])
def test_recovery_refuses_a_job_that_is_not_stale_and_changes_nothing(recover):
    alive = running()
    hold = costs.reserve(alive.id, STAGE, "svd", Decimal("0.60"))
    before = Job.objects.get(id=alive.id)
    with pytest.raises(ValidationError) as info:
        recover(job_id=alive.id)
    assert info.value.code == recovery.JOB_NOT_STALE
    assert "live lease" in info.value.message
    after = Job.objects.get(id=alive.id)
    assert (after.status, after.reserved_cost, after.updated_at) == ("processing", Decimal("0.60"), before.updated_at)
    assert JobCostHold.objects.get(id=hold.id).status == HoldStatus.ACTIVE
    assert JobStage.objects.get(job_id=alive.id).status == "processing"
    finished = running()
    stage_complete(job_id=finished.id, stage_name=STAGE)
    job_complete(job_id=finished.id, video_url="v")
    with pytest.raises(ValidationError) as info:
        recover(job_id=finished.id)
    assert info.value.code == recovery.JOB_NOT_STALE
    with pytest.raises(ValidationError) as info:
        recover(job_id="00000000-0000-4000-8000-000000000000")
    assert info.value.code == "JOB_NOT_FOUND"


# --------------------------------------------------------------------------- fail


def test_fail_worker_lost_fails_the_job_and_its_stage_and_releases_holds():
    job = running("host-9:7")
    hold = costs.reserve(job.id, STAGE, "svd", Decimal("0.60"))
    silence(job.id)
    failed = job_fail_worker_lost(job_id=job.id)
    assert (failed.status, failed.error_code) == ("failed", "WORKER_LOST")
    assert "host-9:7" in failed.error_message
    stage = JobStage.objects.get(job_id=job.id)
    assert stage.status == "failed"
    assert stage.metadata["error"]["code"] == "WORKER_LOST"
    assert Job.objects.get(id=job.id).reserved_cost == Decimal(0)
    assert JobCostHold.objects.get(id=hold.id).status == HoldStatus.RELEASED


def test_fail_worker_lost_of_a_stale_queued_job():
    job = new_job()
    untouched_for(job.id, 4000)
    failed = job_fail_worker_lost(job_id=job.id)
    assert failed.error_code == "WORKER_LOST"
    assert "never started it" in failed.error_message


# --------------------------------------------------------------------------- recover_jobs


def test_recover_jobs_lists_sweeps_and_acts():
    dead, alive, queued = running(), running(), new_job()
    silence(dead.id)
    untouched_for(queued.id, 4000)
    old = costs.reserve(alive.id, STAGE, "svd", Decimal("0.40"))
    JobCostHold.objects.filter(id=old.id).update(created_at=timezone.now() - dt.timedelta(hours=1))

    dry = recover_jobs(action="requeue", dry_run=True)
    assert dry.holds_expired == 1
    assert {s.job_id for s in dry.stale} == {dead.id, queued.id}
    assert dry.done == []
    assert JobCostHold.objects.get(id=old.id).status == HoldStatus.ACTIVE  # a dry run changes nothing
    assert Job.objects.get(id=dead.id).status == "processing"

    listed = recover_jobs()
    assert listed.holds_expired == 1
    assert Job.objects.get(id=alive.id).reserved_cost == Decimal(0)
    assert Job.objects.get(id=dead.id).status == "processing"  # listing only

    done = recover_jobs(action="requeue")
    assert set(done.done) == {dead.id, queued.id}
    assert done.skipped == {}
    assert Job.objects.get(id=dead.id).status == "queued"
    assert Job.objects.get(id=alive.id).status == "processing"
    assert recover_jobs().stale == []
    data = json.loads(json.dumps(done.to_dict()))
    assert data["action"] == "requeue"
    assert sorted(data["done"]) == sorted([str(dead.id), str(queued.id)])


def test_recover_jobs_fail_and_a_job_filter():
    one, two = running(), running()
    silence(one.id)
    silence(two.id)
    report = recover_jobs(action="fail", job_ids=[one.id])
    assert report.done == [one.id]
    assert Job.objects.get(id=one.id).error_code == "WORKER_LOST"
    assert Job.objects.get(id=two.id).status == "processing"


def test_recover_jobs_refuses_an_unknown_action():
    with pytest.raises(ValidationError):
        recover_jobs(action="delete")


@pytest.mark.django_db(transaction=True)
async def test_async_twins():
    job = await sync_to_async(running)()
    await sync_to_async(silence)(job.id)
    report = await recovery.arecover_jobs()
    assert [s.job_id for s in report.stale] == [job.id]
    assert [s.job_id for s in await selectors.ajobs_stale_report()] == [job.id]
    assert (await recovery.ajob_requeue(job_id=job.id)).status == "queued"
    await sync_to_async(untouched_for)(job.id, 4000)
    assert (await recovery.ajob_fail_worker_lost(job_id=job.id)).error_code == "WORKER_LOST"
    await sync_to_async(lambda: connection.close())()
