"""The hold sweep (costs.expire_holds): one truth about expired holds across every view."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from common.errors import ValidationError
from common.models import HoldStatus, Job, JobCostHold
from common.schemas import Job as JobPayload
from common.services import costs
from tests.services.costs_helpers import make_job

pytestmark = pytest.mark.django_db

STAGE = "video_generation"
TTL = timedelta(seconds=15 * 60)


def age_hold(hold: JobCostHold, by: timedelta = TTL + timedelta(seconds=1)) -> None:
    JobCostHold.objects.filter(id=hold.id).update(created_at=timezone.now() - by)


def views(job: Job) -> dict[str, Decimal]:
    """What each view says the job holds."""
    report = io.StringIO()
    call_command("budget_report", "--job", str(job.id), "--format", "json", stdout=report)
    row = Job.objects.get(id=job.id)
    return {
        "reserved_cost": row.reserved_cost,
        "payload": JobPayload.model_validate(row).reserved_cost,
        "summary": costs.job_cost_summary(job.id).reserved,
        "budget_report": Decimal(json.loads(report.getvalue())["jobs"][0]["reserved"]),
    }


def test_an_expired_hold_is_one_truth_after_the_sweep():
    """The defect: after expiry, the summary and budget_report ignored a hold that reserved_cost still counted."""
    job = make_job("1.00")
    hold = costs.reserve(job.id, STAGE, "svd", Decimal("0.90"))
    costs.reserve(job.id, STAGE, "svd", Decimal("0.05"))
    age_hold(hold)
    assert len(set(views(job).values())) == 2  # they disagree until something sweeps
    assert costs.expire_holds() == 1
    assert set(views(job).values()) == {Decimal("0.05")}
    stored = JobCostHold.objects.get(id=hold.id)
    assert stored.status == HoldStatus.EXPIRED
    assert stored.closed_at is not None
    assert costs.check_budget(job.id, Decimal("0.95"))
    assert not costs.check_budget(job.id, Decimal("0.96"))


def test_the_sweep_is_idempotent_and_leaves_fresh_holds_alone():
    job = make_job("5.00")
    fresh = costs.reserve(job.id, STAGE, "svd", Decimal("0.30"))
    assert costs.expire_holds() == 0
    old = costs.reserve(job.id, STAGE, "svd", Decimal("0.20"))
    age_hold(old)
    assert costs.expire_holds() == 1
    assert costs.expire_holds() == 0
    assert JobCostHold.objects.get(id=fresh.id).status == HoldStatus.ACTIVE
    assert Job.objects.get(id=job.id).reserved_cost == Decimal("0.30")


def test_the_sweep_of_one_job_touches_no_other():
    one, two = make_job(), make_job()
    holds = [costs.reserve(j.id, STAGE, "svd", Decimal("0.10")) for j in (one, two)]
    for hold in holds:
        age_hold(hold)
    assert costs.expire_holds(job_id=str(one.id)) == 1
    assert Job.objects.get(id=one.id).reserved_cost == Decimal(0)
    assert Job.objects.get(id=two.id).reserved_cost == Decimal("0.10")
    assert JobCostHold.objects.get(id=holds[1].id).status == HoldStatus.ACTIVE
    assert costs.expire_holds(job_id=two.id) == 1


def test_the_sweep_brings_a_drifted_reserved_cost_back_to_the_open_holds():
    job = make_job()
    fresh = costs.reserve(job.id, STAGE, "svd", Decimal("0.30"))
    old = costs.reserve(job.id, STAGE, "svd", Decimal("0.20"))
    age_hold(old)
    Job.objects.filter(id=job.id).update(reserved_cost=Decimal("7.00"))  # drifted behind the tracker's back
    assert costs.expire_holds() == 1
    assert Job.objects.get(id=job.id).reserved_cost == fresh.amount


def test_settling_a_swept_hold_records_the_cost_and_keeps_reserved_right():
    job = make_job("2.00")
    hold = costs.reserve(job.id, STAGE, "svd", Decimal("0.50"))
    other = costs.reserve(job.id, STAGE, "svd", Decimal("0.25"))
    age_hold(hold)
    costs.expire_holds()
    row = costs.settle(hold, Decimal("0.45"))
    assert row.cost == Decimal("0.45")
    stored = Job.objects.get(id=job.id)
    assert stored.total_cost == Decimal("0.45")
    assert stored.reserved_cost == other.amount


def test_the_sweep_refuses_a_malformed_job_id_and_ignores_an_unknown_one():
    with pytest.raises(ValidationError) as info:
        costs.expire_holds(job_id="not-a-uuid")
    assert info.value.code == "INVALID_JOB_ID"
    assert costs.expire_holds(job_id="00000000-0000-4000-8000-000000000000") == 0


def test_reconcile_checks_reserved_cost_against_open_unexpired_holds_and_fix_sweeps():
    """The defect: reconcile_costs did not notice a reserved_cost that still counted an expired hold."""
    job = make_job("1.00")
    hold = costs.reserve(job.id, STAGE, "svd", Decimal("0.90"))
    age_hold(hold)
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("reconcile_costs", "--format", "json", stdout=out)
    assert info.value.returncode == 1
    [mismatch] = json.loads(out.getvalue())["mismatches"]
    assert (mismatch["reserved_cost"], mismatch["open_holds"]) == ("0.90", "0.00")
    out = io.StringIO()
    call_command("reconcile_costs", "--fix", "--format", "json", stdout=out)
    assert json.loads(out.getvalue())["fixed"] == [str(job.id)]
    assert JobCostHold.objects.get(id=hold.id).status == HoldStatus.EXPIRED
    assert Job.objects.get(id=job.id).reserved_cost == Decimal(0)
    out = io.StringIO()
    call_command("reconcile_costs", stdout=out)
    assert "all jobs match the ledger" in out.getvalue()


@pytest.mark.django_db(transaction=True)
async def test_async_twin():
    job = await sync_to_async(make_job)()
    hold = await costs.areserve(job.id, STAGE, "svd", Decimal("0.10"))
    await sync_to_async(age_hold)(hold)
    assert await costs.aexpire_holds(job_id=job.id) == 1
    await sync_to_async(lambda: connection.close())()


def test_a_hold_expired_on_the_way_never_stays_in_reserved_cost():
    """Releasing an already closed hold locks the job and expires its old holds: reserved_cost follows."""
    job = make_job("5.00")
    old = costs.reserve(job.id, STAGE, "svd", Decimal("0.50"))
    closed = costs.reserve(job.id, STAGE, "svd", Decimal("0.20"))
    costs.release(closed)
    age_hold(old)
    costs.release(closed)  # returns early: the hold was closed already
    assert JobCostHold.objects.get(id=old.id).status == HoldStatus.EXPIRED
    assert Job.objects.get(id=job.id).reserved_cost == Decimal(0)
