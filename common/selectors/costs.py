"""Reads of money: what a job has reserved, spent and may still spend, and its cost summary.

**Reserved** has one definition, :func:`holds_open`: the holds that are active and younger than
``RESERVATION_TTL_SECONDS`` (an older hold holds nothing, whether or not a sweep has marked it
expired yet). Every reader sums those: the budget checks and the cost summary (so the API),
``budget_report``, ``reconcile_costs`` and the locked cost writes (:mod:`common.services.holds`),
through :func:`job_reserved` (one job, a statement of its own), :func:`jobs_reserved` (every job
holding something, one grouped query) or :func:`reserved_sum` (an expression over a ``Job`` queryset).

The checks here are advisory reads: a charge or a hold that must not exceed the budget is
enforced atomically by the services (:mod:`common.services.charges`, :mod:`common.services.holds`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Count, OuterRef, QuerySet, Subquery

from common.conf import app_settings
from common.db import async_twin, boundary, retry_locked
from common.errors import BudgetExceededError
from common.ids import parse_job_id
from common.models import HoldStatus, Job, JobCost, JobCostHold
from common.money import ZERO, format_money, money_from_sum, money_sum, parse_money, round_money, share_of
from common.selectors.jobs import check_moment, job_not_found

__all__ = [
    "CostSummary",
    "JobSpend",
    "ajob_budget_check",
    "ajob_budget_fits",
    "ajob_cost_summary",
    "ajob_reserved",
    "ajob_spend",
    "ajob_total_cost",
    "ajobs_reserved",
    "hold_cutoff",
    "holds_open",
    "job_budget_check",
    "job_budget_fits",
    "job_cost_summary",
    "job_reserved",
    "job_spend",
    "job_total_cost",
    "jobs_reserved",
    "reserved_sum",
]


@dataclasses.dataclass(frozen=True)
class JobSpend:
    """A job's money at one moment: spent (``total_cost``), reserved (its open holds) and budget."""

    job_id: UUID
    spent: Decimal
    reserved: Decimal
    budget: Decimal


def hold_cutoff(now: datetime | None = None) -> datetime:
    """The moment before which a hold has expired: ``now - RESERVATION_TTL_SECONDS`` (read at call time).

    Raises:
        ValidationError: ``now`` is not an aware datetime (see :func:`~common.selectors.jobs.check_moment`).
    """
    return check_moment(now) - timedelta(seconds=float(app_settings.RESERVATION_TTL_SECONDS))


def holds_open(*, now: datetime | None = None) -> QuerySet[JobCostHold]:
    """The holds that count against budgets at ``now`` (default: now): active and not yet expired.

    The one definition of "reserved" (see the module docstring); a hold's term runs from its
    ``created_at``, which keeping it alive moves forward.
    """
    return JobCostHold.objects.filter(status=HoldStatus.ACTIVE, created_at__gt=hold_cutoff(now))


@boundary
def job_reserved(*, job_id: UUID | str, now: datetime | None = None) -> Decimal:
    """What the job has reserved at ``now``: the exact sum of its :func:`holds_open` (0 for none).

    One statement of its own, so under the job's row lock it sees the holds as they are after the
    wait (a subquery in the locking statement would read them as they were before it).
    """
    total = holds_open(now=now).filter(job_id=parse_job_id(job_id)).aggregate(total=money_sum("amount"))["total"]
    return money_from_sum(total)


ajob_reserved = async_twin(job_reserved)


def reserved_sum(*, now: datetime | None = None) -> Subquery:
    """:func:`job_reserved` as an expression for a ``Job`` queryset (``.annotate(reserved=reserved_sum())``).

    Read the annotation with :func:`~common.money.money_from_sum` (``None`` when nothing is held).
    """
    return Subquery(
        holds_open(now=now)
        .filter(job_id=OuterRef("pk"))
        .order_by()
        .values("job_id")
        .annotate(total=money_sum("amount"))
        .values("total")
    )


@boundary
def jobs_reserved(*, now: datetime | None = None) -> dict[UUID, Decimal]:
    """What each job with open holds has reserved at ``now``: one grouped query, jobs holding nothing left out.

    Holds exist only for calls in flight, so this is usually small; a report over every job joins the
    same grouping in SQL instead, so that its memory does not grow with holds (``budget_report``).
    """
    grouped = holds_open(now=now).order_by().values("job_id").annotate(total=money_sum("amount"))
    return {job_id: money_from_sum(total) for job_id, total in grouped.values_list("job_id", "total")}


ajobs_reserved = async_twin(jobs_reserved)


def _spend(job_uuid: UUID) -> JobSpend:
    def read() -> JobSpend:
        row = (
            Job.objects.filter(id=job_uuid)
            .annotate(reserved=reserved_sum())
            .values_list("total_cost", "budget_limit", "reserved")
            .first()
        )
        if row is None:
            raise job_not_found(job_uuid)
        return JobSpend(job_uuid, row[0], money_from_sum(row[2]), row[1])

    return retry_locked(read, atomic=False)


@boundary
def job_spend(*, job_id: UUID | str) -> JobSpend:
    """The job's spent, reserved and budget, read in one statement.

    Raises:
        ValidationError: a malformed id (``INVALID_JOB_ID``) or no such job (``JOB_NOT_FOUND``).
    """
    return _spend(parse_job_id(job_id))


ajob_spend = async_twin(job_spend)


@boundary
def job_total_cost(*, job_id: UUID | str) -> Decimal:
    """What the job has spent (``jobs.total_cost``).

    Raises:
        ValidationError: a malformed id or no such job.
    """
    job_uuid = parse_job_id(job_id)
    total = retry_locked(
        lambda: Job.objects.filter(id=job_uuid).values_list("total_cost", flat=True).first(), atomic=False
    )
    if total is None:
        raise job_not_found(job_uuid)
    return total


ajob_total_cost = async_twin(job_total_cost)


@boundary
def job_budget_fits(*, job_id: UUID | str, new_cost: Decimal | int, limit: Decimal | int | None = None) -> bool:
    """True when spent + reserved + ``new_cost`` fits ``limit`` (default the job's budget).

    Advisory: to act on it, charge with ``enforce=True`` or reserve, which decide atomically.
    """
    job_uuid = parse_job_id(job_id)
    amount = parse_money(new_cost, name="new_cost")
    spend = _spend(job_uuid)
    effective = spend.budget if limit is None else parse_money(limit, name="limit")
    return spend.spent + spend.reserved + amount <= effective


ajob_budget_fits = async_twin(job_budget_fits)


@boundary
def job_budget_check(*, job_id: UUID | str, limit: Decimal | int | None = None) -> None:
    """Raise ``BudgetExceededError`` when the job's spent + reserved is over ``limit`` (default its budget)."""
    job_uuid = parse_job_id(job_id)
    spend = _spend(job_uuid)
    effective = spend.budget if limit is None else parse_money(limit, name="limit")
    if spend.spent + spend.reserved > effective:
        raise BudgetExceededError(
            f"job {job_uuid} is over its budget: spent {format_money(spend.spent)} + reserved"
            f" {format_money(spend.reserved)} exceeds the limit {format_money(effective)}",
            job_id=job_uuid,
            details={
                "spent": format_money(spend.spent),
                "reserved": format_money(spend.reserved),
                "attempted": "0.00",
                "limit": format_money(effective),
            },
        )


ajob_budget_check = async_twin(job_budget_check)


@dataclasses.dataclass(frozen=True)
class CostSummary:
    """A job's spend: totals, open holds, and the ledger grouped by stage and by API."""

    job_id: UUID
    total: Decimal
    budget: Decimal
    reserved: Decimal
    remaining: Decimal
    share_used: Decimal | None
    charges: int
    ledger_total: Decimal
    by_stage: dict[str, Decimal]
    by_api: dict[str, Decimal]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (amounts as exact strings)."""
        return {
            "job_id": str(self.job_id),
            "total": format_money(self.total),
            "budget": format_money(self.budget),
            "reserved": format_money(self.reserved),
            "remaining": format_money(self.remaining),
            "share_used": None if self.share_used is None else str(self.share_used),
            "charges": self.charges,
            "ledger_total": format_money(self.ledger_total),
            "by_stage": {k: format_money(v) for k, v in self.by_stage.items()},
            "by_api": {k: format_money(v) for k, v in self.by_api.items()},
        }


def _summary(job_uuid: UUID) -> CostSummary:
    spend = _spend(job_uuid)
    ledger = JobCost.objects.filter(job_id=job_uuid)
    totals = ledger.aggregate(total=money_sum(), n=Count("id"))
    by_stage = {
        r["stage_name"]: money_from_sum(r["total"])
        for r in ledger.order_by("stage_name").values("stage_name").annotate(total=money_sum())
    }
    by_api = {
        r["api_name"]: money_from_sum(r["total"])
        for r in ledger.order_by("api_name").values("api_name").annotate(total=money_sum())
    }
    return CostSummary(
        job_id=job_uuid,
        total=spend.spent,
        budget=spend.budget,
        reserved=spend.reserved,
        remaining=round_money(max(spend.budget - spend.spent - spend.reserved, ZERO)),
        share_used=share_of(spend.spent, spend.budget),
        charges=totals["n"],
        ledger_total=money_from_sum(totals["total"]),
        by_stage=by_stage,
        by_api=by_api,
    )


@boundary
def job_cost_summary(*, job_id: UUID | str) -> CostSummary:
    """The job's spend, budget, remaining, open holds and the ledger's breakdown by stage and API.

    Raises:
        ValidationError: a malformed id or no such job.
    """
    job_uuid = parse_job_id(job_id)
    return retry_locked(lambda: _summary(job_uuid), atomic=False)


ajob_cost_summary = async_twin(job_cost_summary)
