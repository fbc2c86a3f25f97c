"""Reads of money (common.selectors.costs): reserved, spent, the budget checks and the cost summary."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from common import money
from common.errors import BudgetExceededError, ServiceUnavailableError, ValidationError
from common.models import HoldStatus, Job, JobCostHold
from common.selectors import (
    holds_open,
    job_budget_check,
    job_budget_fits,
    job_cost_summary,
    job_reserved,
    job_spend,
    job_total_cost,
    jobs_reserved,
    reserved_sum,
)
from common.services.charges import charge_record
from common.services.holds import hold_release, hold_reserve, hold_settle
from tests.services.costs_helpers import make_job

pytestmark = pytest.mark.django_db

TTL = timedelta(seconds=15 * 60)


def held(job: Job, amount: str, *, age: timedelta = timedelta(0)) -> JobCostHold:
    hold = hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal(amount))
    if age:
        JobCostHold.objects.filter(id=hold.id).update(created_at=timezone.now() - age)
    return hold


def test_check_budget_counts_spend_and_holds():
    job = make_job("1.00")
    charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("0.50"))
    assert job_budget_fits(job_id=job.id, new_cost=Decimal("0.50")) is True
    assert job_budget_fits(job_id=job.id, new_cost=Decimal("0.51")) is False
    assert job_budget_fits(job_id=job.id, new_cost=Decimal("0.51"), limit=Decimal("2")) is True
    hold_reserve(job_id=job.id, stage="s", api_name="svd", estimate=Decimal("0.40"))
    assert job_budget_fits(job_id=job.id, new_cost=Decimal("0.11")) is False
    job_budget_check(job_id=job.id)
    with pytest.raises(BudgetExceededError) as info:
        job_budget_check(job_id=job.id, limit=Decimal("0.80"))
    assert info.value.details["reserved"] == "0.40"


def test_job_cost_summary_breaks_down_by_stage_and_api():
    job = make_job("2.00")
    charge_record(job_id=job.id, stage="reference_generation", api_name="sdxl", cost=Decimal("0.0055"))
    charge_record(job_id=job.id, stage="reference_generation", api_name="sdxl", cost=Decimal("0.0055"))
    charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"))
    hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.06"))
    summary = job_cost_summary(job_id=job.id)
    assert summary.total == Decimal("0.071")
    assert summary.ledger_total == summary.total
    assert summary.reserved == Decimal("0.06")
    assert summary.remaining == Decimal("1.869")
    assert summary.charges == 3
    assert summary.by_stage == {"reference_generation": Decimal("0.011"), "video_generation": Decimal("0.06")}
    assert summary.by_api == {"sdxl": Decimal("0.011"), "svd": Decimal("0.06")}
    data = summary.to_dict()
    assert data["total"] == "0.071"
    assert data["by_api"]["sdxl"] == "0.011"
    assert data["share_used"] == "0.0355"


def test_reserved_is_the_open_unexpired_holds_only():
    job = make_job("10.00")
    held(job, "0.30")
    held(job, "0.0055")
    held(job, "0.90", age=TTL + timedelta(seconds=1))  # past its term: holds nothing, swept or not
    hold_release(hold=held(job, "0.40"))
    hold_settle(hold=held(job, "0.50"), actual_cost=Decimal("0.45"))
    assert job_reserved(job_id=job.id) == Decimal("0.3055")
    assert set(holds_open().filter(job=job).values_list("amount", flat=True)) == {Decimal("0.30"), Decimal("0.0055")}
    spend = job_spend(job_id=str(job.id))
    assert (spend.spent, spend.reserved, spend.budget) == (Decimal("0.45"), Decimal("0.3055"), Decimal("10.00"))
    assert job_total_cost(job_id=job.id) == Decimal("0.45")


def test_reserved_at_another_moment():
    job = make_job("10.00")
    held(job, "0.30", age=timedelta(minutes=10))
    assert job_reserved(job_id=job.id) == Decimal("0.30")
    assert job_reserved(job_id=job.id, now=timezone.now() + timedelta(minutes=6)) == 0


def test_every_reader_agrees_on_what_is_reserved():
    """One definition: the selector, its SQL expression, the summary (so the API), budget_report and reconcile."""
    jobs = [make_job("10.00") for _ in range(3)]
    held(jobs[0], "0.30")
    held(jobs[0], "0.20", age=TTL + timedelta(minutes=1))
    held(jobs[1], "0.000001")
    report = io.StringIO()
    call_command("budget_report", "--format", "json", "--section", "jobs", stdout=report)
    in_report = {row["job_id"]: Decimal(row["reserved"]) for row in json.loads(report.getvalue())["jobs"]}
    annotated = dict(Job.objects.filter(id__in=[j.id for j in jobs]).annotate(r=reserved_sum()).values_list("id", "r"))
    grouped = jobs_reserved()
    for job, expected in zip(jobs, (Decimal("0.30"), Decimal("0.000001"), Decimal(0)), strict=True):
        assert job_reserved(job_id=job.id) == expected
        assert grouped.get(job.id, Decimal(0)) == expected
        assert money.money_from_sum(annotated[job.id]) == expected
        assert job_cost_summary(job_id=job.id).reserved == expected
        assert in_report[str(job.id)] == expected
    # reconcile_costs compares reserved_cost with the same sum: only the job with a stale hold differs.
    out = io.StringIO()
    with pytest.raises(Exception):  # noqa: B017 - CommandError(returncode=1): mismatches were found
        call_command("reconcile_costs", "--format", "json", stdout=out)
    [mismatch] = json.loads(out.getvalue())["mismatches"]
    assert (mismatch["job_id"], mismatch["reserved_cost"], mismatch["open_holds"]) == (str(jobs[0].id), "0.50", "0.30")


@pytest.mark.parametrize(
    "read",
    [
        lambda job_id: job_total_cost(job_id=job_id),
        lambda job_id: job_spend(job_id=job_id),
        lambda job_id: job_budget_fits(job_id=job_id, new_cost=Decimal(1)),
        lambda job_id: job_budget_check(job_id=job_id),
        lambda job_id: job_cost_summary(job_id=job_id),
    ],
)
def test_an_unknown_or_malformed_job(read):
    with pytest.raises(ValidationError, match="does not exist") as missing:
        read(uuid.uuid4())
    assert missing.value.code == "JOB_NOT_FOUND"
    with pytest.raises(ValidationError) as malformed:
        read("job-42")
    assert malformed.value.code == "INVALID_JOB_ID"


def test_bad_amounts_in_the_checks_are_named():
    job = make_job()
    with pytest.raises(ValidationError, match="new_cost must be a Decimal, got float"):
        job_budget_fits(job_id=job.id, new_cost=0.5)
    with pytest.raises(ValidationError, match="limit must not be negative"):
        job_budget_check(job_id=job.id, limit=Decimal(-1))


def test_a_database_failure_is_service_unavailable():
    job = make_job()

    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection refused")

    with connection.execute_wrapper(refuse), pytest.raises(ServiceUnavailableError) as info:
        job_budget_fits(job_id=job.id, new_cost=Decimal(1))
    assert "database is unavailable" in info.value.message
    assert info.value.message.startswith("selectors.job_budget_fits")
    assert info.value.job_id == job.id
    assert info.value.retryable


def test_the_summary_of_a_job_with_nothing_spent():
    job = make_job("0")
    summary = job_cost_summary(job_id=job.id)
    assert (summary.total, summary.reserved, summary.remaining, summary.charges) == (0, 0, 0, 0)
    assert summary.share_used is None
    assert summary.to_dict()["share_used"] is None
    assert summary.to_dict()["remaining"] == "0.00"
    assert HoldStatus.ACTIVE not in JobCostHold.objects.filter(job=job).values_list("status", flat=True)
