"""The reconciliation read: jobs whose stored money disagrees with the ledger or with their open holds.

The ledger (``job_costs``) is the source of truth: a job's ``total_cost`` must equal the exact sum of its
ledger rows, and ``reserved_cost`` the sum of its open, unexpired holds (the same rule as every budget
check, :func:`common.selectors.costs.reserved_sum`). ``manage.py reconcile_costs`` lists what this finds
and repairs it through :func:`common.services.reconcile.job_costs_repair`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from django.db.models import OuterRef, Subquery

from common.db import boundary
from common.ids import parse_job_id, parse_job_ids
from common.models import Job, JobCost
from common.money import format_money, money_from_sum, money_sum
from common.selectors.costs import reserved_sum

__all__ = ["CostMismatch", "job_ledger_total", "jobs_cost_mismatches"]


@dataclass(frozen=True)
class CostMismatch:
    """One job whose stored figures disagree with the ledger or its holds."""

    job_id: UUID
    total_cost: Decimal
    ledger_total: Decimal
    reserved_cost: Decimal
    open_holds: Decimal

    @property
    def difference(self) -> Decimal:
        """``total_cost - ledger_total`` (positive: the job claims more than the ledger holds)."""
        return self.total_cost - self.ledger_total

    def to_dict(self) -> dict[str, str]:
        """JSON-friendly, amounts as exact strings."""
        return {
            "job_id": str(self.job_id),
            "total_cost": format_money(self.total_cost),
            "ledger_total": format_money(self.ledger_total),
            "difference": format_money(self.difference),  # signed: "-0.0655"
            "reserved_cost": format_money(self.reserved_cost),
            "open_holds": format_money(self.open_holds),
        }


def _ledger_sum() -> Subquery:
    return Subquery(
        JobCost.objects.filter(job_id=OuterRef("pk"))
        .order_by()
        .values("job_id")
        .annotate(total=money_sum())
        .values("total")
    )


@boundary
def job_ledger_total(*, job_id: UUID | str) -> Decimal:
    """The exact sum of the job's ledger rows (``0`` for none), whatever ``jobs.total_cost`` says."""
    job_uuid = parse_job_id(job_id)
    return money_from_sum(JobCost.objects.filter(job_id=job_uuid).aggregate(s=money_sum())["s"])


@boundary
def jobs_cost_mismatches(*, job_ids: Iterable[UUID | str] | None = None) -> Iterator[CostMismatch]:
    """Stream the jobs (all, or ``job_ids``) whose ``total_cost`` or ``reserved_cost`` is off, oldest first.

    One query over the jobs, read in chunks: memory stays flat whatever the number of jobs. Database
    errors met while iterating leave as :class:`~common.errors.PipelineError` too.
    """
    jobs = Job.objects.all()
    if job_ids is not None:
        jobs = jobs.filter(id__in=parse_job_ids(job_ids))
    rows = (
        jobs.annotate(ledger=_ledger_sum(), holds=reserved_sum())
        .order_by("created_at", "id")
        .values_list("id", "total_cost", "reserved_cost", "ledger", "holds")
    )
    return _mismatches(rows.iterator(chunk_size=5000))


def _mismatches(
    rows: Iterator[tuple[UUID, Decimal, Decimal, Decimal | None, Decimal | None]],
) -> Iterator[CostMismatch]:
    with boundary("selectors.jobs_cost_mismatches"):
        for job_id, total, reserved, ledger, holds in rows:
            ledger_total, open_holds = money_from_sum(ledger), money_from_sum(holds)
            if total != ledger_total or reserved != open_holds:
                yield CostMismatch(job_id, total, ledger_total, reserved, open_holds)
