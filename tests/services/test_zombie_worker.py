"""A worker that was paused (not killed) past its lease and comes back: the documented worker paths stop it.

The whole process stood still (a long GC pause, a frozen VM, ``SIGSTOP``), so its renewer did not beat either
and nothing told it the stage was taken over. When it resumes, its ``stage_lease`` block ends normally or with
an error; either way the stage now belongs to another worker (or was requeued by ``recover_jobs``) and must be
left alone. Issue 16's known gap (plain ``stage_complete``/``stage_fail`` do not check the owner) is outside
these paths: the README tells a worker to end its stages through the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import override_settings

from common.errors import GenerationError, LeaseLostError
from common.models import JobStage
from common.services.jobs import stage_start
from common.services.leases import astage_lease, stage_lease
from common.services.recovery import job_requeue
from tests.services.lease_helpers import new_job, silence

pytestmark = pytest.mark.django_db(transaction=True)

STAGE = "video_generation"
PAUSED = {"JOB_LEASE_SECONDS": 30}  # with renew_every=29 the renewer never beats inside these tests: a paused process


def row(job_id) -> JobStage:
    return JobStage.objects.get(job_id=job_id, stage_name=STAGE)


def paused_worker(job_id, meanwhile: Callable[[], None], error: Exception | None = None) -> None:
    """A worker's ``stage_lease`` block during which ``meanwhile`` happens; it ends normally or raises ``error``."""
    with (
        override_settings(VIDEOGEN_COMMON=PAUSED),
        stage_lease(job_id=job_id, stage_name=STAGE, owner="zombie", renew_every=29),
    ):
        silence(job_id)  # the pause: the lease ran out
        meanwhile()
        if error is not None:
            raise error


def test_a_paused_worker_whose_block_ends_normally_does_not_complete_the_new_owners_stage():
    job = new_job()

    def take_over() -> None:
        stage_start(job_id=job.id, stage_name=STAGE, owner="successor")

    with pytest.raises(LeaseLostError) as lost:
        paused_worker(job.id, take_over)
    assert lost.value.details["current_owner"] == "successor"
    assert (row(job.id).status, row(job.id).lease_owner, row(job.id).attempts) == ("processing", "successor", 2)


def test_a_paused_worker_whose_block_raises_does_not_fail_the_new_owners_stage(caplog):
    job = new_job()

    def take_over() -> None:
        stage_start(job_id=job.id, stage_name=STAGE, owner="successor")

    with pytest.raises(GenerationError):
        paused_worker(job.id, take_over, GenerationError("the provider timed out while we were paused"))
    assert (row(job.id).status, row(job.id).lease_owner) == ("processing", "successor")
    refused = [r for r in caplog.records if getattr(r, "event", None) == "stage_fail_failed"]
    assert [r.levelno for r in refused] == [logging.WARNING]


def test_a_paused_worker_whose_job_was_requeued_meanwhile_leaves_it_queued():
    job = new_job()
    with pytest.raises(LeaseLostError):
        paused_worker(job.id, lambda: job_requeue(job_id=job.id))  # recover_jobs --requeue ran during the pause
    job.refresh_from_db()
    assert (job.status, row(job.id).status) == ("queued", "pending")


async def test_the_async_lease_stops_a_paused_worker_too():
    job = await sync_to_async(new_job)()

    def take_over() -> None:
        silence(job.id)
        stage_start(job_id=job.id, stage_name=STAGE, owner="successor")

    with override_settings(VIDEOGEN_COMMON=PAUSED), pytest.raises(LeaseLostError):
        async with astage_lease(job_id=job.id, stage_name=STAGE, owner="zombie", renew_every=29):
            await sync_to_async(take_over)()
    stage = await sync_to_async(row)(job.id)
    assert (stage.status, stage.lease_owner) == ("processing", "successor")
    await sync_to_async(lambda: connection.close())()
