"""Reservations (common.services.holds): hold, settle, release, renew, release a job's holds, the context managers.

The budget's edges (expiry, keep-alive, finished jobs) are in test_costs_rules.py, the sweep in
test_expire_holds.py, concurrency in test_costs_concurrency.py.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from common.errors import BudgetExceededError, ValidationError
from common.models import HoldStatus, Job, JobCostHold
from common.selectors import job_budget_fits
from common.services.charges import charge_record
from common.services.holds import (
    ahold_release,
    ahold_renew,
    ahold_reservation,
    ahold_reserve,
    ahold_settle,
    aholds_expire,
    ajob_holds_release,
    hold_release,
    hold_reservation,
    hold_reserve,
    hold_settle,
    job_holds_release,
    release_holds_on_finish,
)
from tests.services.costs_helpers import make_job, reload

pytestmark = pytest.mark.django_db


def test_reserve_holds_budget_and_settle_records_actual():
    job = make_job("1.00")
    hold = hold_reserve(job_id=job.id, stage="video_generation", api_name="animatediff", estimate=Decimal("0.80"))
    assert hold.status == HoldStatus.ACTIVE
    assert reload(job).reserved_cost == Decimal("0.80")
    with pytest.raises(BudgetExceededError) as info:
        charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.21"), enforce=True)
    assert info.value.details["reserved"] == "0.80"
    with pytest.raises(BudgetExceededError):
        hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.21"))
    row = hold_settle(hold=hold, actual_cost=Decimal("0.75"))
    assert row.cost == Decimal("0.75")
    assert row.idempotency_key == f"hold:{hold.id}"
    job = reload(job)
    assert job.total_cost == Decimal("0.75")
    assert job.reserved_cost == 0
    hold.refresh_from_db()
    assert hold.status == HoldStatus.SETTLED
    assert hold.settled_cost_id == row.id
    assert hold.closed_at is not None
    # Settling again returns the same row and charges nothing.
    assert hold_settle(hold=hold.id, actual_cost=Decimal("0.75")).id == row.id
    assert reload(job).total_cost == Decimal("0.75")
    # Release of a settled hold does nothing.
    assert hold_release(hold=hold).status == HoldStatus.SETTLED


def test_settle_records_even_over_budget_and_logs(caplog, django_capture_on_commit_callbacks):
    job = make_job("1.00")
    hold = hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.90"))
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        hold_settle(hold=hold, actual_cost=Decimal("1.20"))
    assert reload(job).total_cost == Decimal("1.20")
    assert any(getattr(r, "event", None) == "budget_overrun" for r in caplog.records)


def test_release_gives_budget_back():
    job = make_job("1.00")
    hold = hold_reserve(job_id=job.id, stage="s", api_name="svd", estimate=Decimal("1.00"))
    released = hold_release(hold=str(hold.id))
    assert released.status == HoldStatus.RELEASED
    job = reload(job)
    assert job.reserved_cost == 0
    assert job.total_cost == 0
    charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("1.00"), enforce=True)


def test_unknown_and_malformed_holds():
    with pytest.raises(ValidationError, match="does not exist") as info:
        hold_settle(hold=uuid.uuid4(), actual_cost=Decimal("0.1"))
    assert info.value.code == "HOLD_NOT_FOUND"
    with pytest.raises(ValidationError, match="not a valid hold id"):
        hold_release(hold="nope")


def test_reservation_context_manager_settles_or_releases():
    job = make_job("1.00")
    with hold_reservation(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30")) as held:
        assert held.estimate == Decimal("0.30")
        held.settle(Decimal("0.25"))
    assert reload(job).total_cost == Decimal("0.25")

    with (
        pytest.raises(RuntimeError),
        hold_reservation(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30")),
    ):
        raise RuntimeError("generation failed")
    job = reload(job)
    assert job.total_cost == Decimal("0.25")
    assert job.reserved_cost == 0
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.RELEASED).count() == 1

    # Left without settling: charged the estimate (the call was made, its cost unknown).
    with hold_reservation(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30")):
        pass
    assert reload(job).total_cost == Decimal("0.55")


def test_expired_holds_stop_counting():
    job = make_job("1.00")
    stale = hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("1.00"))
    with pytest.raises(BudgetExceededError):
        charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("0.10"), enforce=True)
    JobCostHold.objects.filter(id=stale.id).update(created_at=timezone.now() - timedelta(hours=1))
    assert job_budget_fits(job_id=job.id, new_cost=Decimal("1.00")) is True
    # The enforced charge finds the stale hold, expires it, and goes through.
    charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("0.10"), enforce=True)
    stale.refresh_from_db()
    assert stale.status == HoldStatus.EXPIRED
    job = reload(job)
    assert job.reserved_cost == 0
    assert job.total_cost == Decimal("0.10")
    # A late settlement of the expired hold still records the money spent.
    hold_settle(hold=stale, actual_cost=Decimal("0.50"))
    assert reload(job).total_cost == Decimal("0.60")
    assert reload(job).reserved_cost == 0


def test_ttl_setting_is_read_at_call_time():
    job = make_job("1.00")
    hold_reserve(job_id=job.id, stage="s", api_name="svd", estimate=Decimal("1.00"))
    with override_settings(VIDEOGEN_COMMON={"RESERVATION_TTL_SECONDS": 0}):
        hold_reserve(job_id=job.id, stage="s", api_name="svd", estimate=Decimal("1.00"))
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.EXPIRED).count() == 1


def test_release_job_holds_and_finish_receiver():
    job = make_job("1.00")
    hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30"))
    hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30"))
    assert job_holds_release(job_id=job.id) == 2
    job = reload(job)
    assert job.reserved_cost == 0
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.RELEASED).count() == 2
    hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30"))
    release_holds_on_finish(Job, job=job, status="failed")
    assert reload(job).reserved_cost == 0


@pytest.mark.parametrize("finish", ["fail", "cancel", "complete"])
def test_finishing_a_job_through_the_lifecycle_releases_its_holds(finish, django_capture_on_commit_callbacks):
    """The receiver is connected in CommonConfig.ready(): no budget stays on hold for a finished job."""
    from common.errors import GenerationError
    from common.services import jobs

    job = make_job("1.00")
    hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30"))
    assert reload(job).reserved_cost == Decimal("0.30")
    with django_capture_on_commit_callbacks(execute=True):
        if finish == "fail":
            jobs.job_fail(job_id=job.id, error=GenerationError("clip 3 failed"))
        elif finish == "cancel":
            jobs.job_cancel(job_id=job.id)
        else:
            jobs.stage_start(job_id=job.id, stage_name="composition")  # completing needs a processing job
            jobs.stage_complete(job_id=job.id, stage_name="composition")
            jobs.job_complete(job_id=job.id, video_url="https://example.test/v.mp4")
    assert reload(job).reserved_cost == 0
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.RELEASED).count() == 1


@pytest.mark.parametrize("hold", ["nope", "{00000000-0000-4000-8000-000000000000}", 42, None])
def test_a_hold_id_follows_the_id_rule(hold):
    """A hold id is a UUID or its canonical text, as job and user ids are (common.ids)."""
    with pytest.raises(ValidationError, match="not a valid hold id"):
        hold_settle(hold=hold, actual_cost=Decimal("0.1"))


def test_reserve_on_an_unknown_job():
    missing = uuid.uuid4()
    with pytest.raises(ValidationError, match="does not exist") as info:
        hold_reserve(job_id=missing, stage="s", api_name="svd", estimate=Decimal(1))
    assert info.value.code == "JOB_NOT_FOUND"


@pytest.mark.django_db(transaction=True)
async def test_the_async_twins_hold_settle_and_release():
    job = await sync_to_async(make_job)("1.00")
    hold = await ahold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30"))
    assert (await ahold_renew(hold=hold)).status == HoldStatus.ACTIVE
    assert (await ahold_settle(hold=hold, actual_cost=Decimal("0.25"))).cost == Decimal("0.25")
    other = await ahold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30"))
    assert (await ahold_release(hold=other)).status == HoldStatus.RELEASED
    await ahold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30"))
    assert await ajob_holds_release(job_id=job.id) == 1
    assert await aholds_expire(job_id=job.id) == 0
    async with ahold_reservation(job_id=job.id, stage="s", api_name="svd", estimate=Decimal("0.10")) as held:
        await held.asettle(Decimal("0.05"))
    assert await sync_to_async(lambda: reload(job).total_cost)() == Decimal("0.30")
    await sync_to_async(lambda: connection.close())()


def test_an_expired_hold_frees_its_budget_for_the_checks():
    job = make_job("1.00")
    hold = hold_reserve(job_id=job.id, stage="s", api_name="svd", estimate=Decimal("1.00"))
    assert not job_budget_fits(job_id=job.id, new_cost=Decimal("0.01"))
    JobCostHold.objects.filter(id=hold.id).update(created_at=timezone.now() - timedelta(hours=1))
    assert job_budget_fits(job_id=job.id, new_cost=Decimal("1.00"))
    with pytest.raises(BudgetExceededError):
        charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("1.01"), enforce=True)
