"""Repairing a job's stored money from the ledger: the write behind ``manage.py reconcile_costs --fix``.

The ledger is the truth (:mod:`common.selectors.reconcile` finds the jobs that disagree with it).
"""

from __future__ import annotations

from uuid import UUID

from django.db import transaction

from common.db import async_twin, boundary
from common.ids import parse_job_id
from common.log import get_logger
from common.models import Job
from common.money import format_money
from common.selectors.costs import job_reserved
from common.selectors.reconcile import CostMismatch, job_ledger_total
from common.services.holds import holds_expire

__all__ = ["ajob_costs_repair", "job_costs_repair"]

logger = get_logger("common.costs")


@boundary
def job_costs_repair(*, job_id: UUID | str) -> CostMismatch | None:
    """Close the job's expired holds and set its totals from the ledger and its open holds, under the row lock.

    Returns what was changed (``None`` when the job matched or does not exist); a repair is logged at
    WARNING (``event=cost_reconciled``) with both figures of each total.
    """
    job_uuid = parse_job_id(job_id)
    with transaction.atomic():
        row = Job.objects.select_for_update().filter(id=job_uuid).values_list("total_cost", "reserved_cost").first()
        if row is None:
            return None
        holds_expire(job_id=job_uuid)  # under the lock we hold: the holds it closes leave the open sum below
        ledger = job_ledger_total(job_id=job_uuid)
        holds = job_reserved(job_id=job_uuid)
        if row[0] == ledger and row[1] == holds:
            return None
        Job.objects.filter(id=job_uuid).update(total_cost=ledger, reserved_cost=holds)
    found = CostMismatch(job_uuid, row[0], ledger, row[1], holds)
    logger.warning(
        "reconcile_costs repaired job %s: total_cost %s -> %s, reserved_cost %s -> %s",
        job_uuid,
        format_money(row[0]),
        format_money(ledger),
        format_money(row[1]),
        format_money(holds),
        extra={"job_id": str(job_uuid), "event": "cost_reconciled", **found.to_dict()},
    )
    return found


ajob_costs_repair = async_twin(job_costs_repair)
