"""``manage.py reconcile_costs [--fix]``: check ``jobs.total_cost`` against the ledger for every job.

The ledger (``job_costs``) is the source of truth. Each job's ``total_cost`` must
equal the exact sum of its ledger rows, and ``reserved_cost`` the sum of its open,
unexpired holds (a hold older than ``RESERVATION_TTL_SECONDS`` no longer counts,
as in every budget check). Mismatches are listed and the exit status is 1; with
``--fix`` each one is repaired under the job's row lock: expired holds are closed
(``holds_expire``) and the totals set from the ledger and the open holds
(exit status 0 once repaired).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import OuterRef, Subquery

from common.ids import canonical_uuid
from common.log import get_logger
from common.models import Job, JobCost
from common.money import format_money, money_from_sum, money_sum
from common.selectors.costs import job_reserved, reserved_sum
from common.services.holds import holds_expire

logger = get_logger("common.costs")


@dataclass(frozen=True)
class Mismatch:
    """One job whose stored figures disagree with the ledger or its holds."""

    job_id: uuid.UUID
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


def find_mismatches(job_ids: list[uuid.UUID] | None = None) -> Iterator[Mismatch]:
    """Stream the jobs whose ``total_cost`` or ``reserved_cost`` disagrees with the ledger / open, unexpired holds."""
    jobs = Job.objects.all()
    if job_ids:
        jobs = jobs.filter(id__in=job_ids)
    rows = (
        jobs.annotate(
            ledger=_ledger_sum(),
            holds=reserved_sum(),  # what the job has reserved: its open, unexpired holds
        )
        .order_by("created_at", "id")
        .values_list("id", "total_cost", "reserved_cost", "ledger", "holds")
    )
    for job_id, total, reserved, ledger, holds in rows.iterator(chunk_size=5000):
        ledger_total, open_holds = money_from_sum(ledger), money_from_sum(holds)
        if total != ledger_total or reserved != open_holds:
            yield Mismatch(job_id, total, ledger_total, reserved, open_holds)


def repair(job_id: uuid.UUID) -> Mismatch | None:
    """Close expired holds, set the job's totals from the ledger and its open holds under the row lock.

    Returns what was changed (``None`` when the job matched or no longer exists).
    """
    with transaction.atomic():
        row = Job.objects.select_for_update().filter(id=job_id).values_list("total_cost", "reserved_cost").first()
        if row is None:
            return None
        holds_expire(job_id=job_id)  # under the lock we hold: the holds it closes leave the open sum below
        ledger = money_from_sum(JobCost.objects.filter(job_id=job_id).aggregate(s=money_sum())["s"])
        holds = job_reserved(job_id=job_id)
        if row[0] == ledger and row[1] == holds:
            return None
        Job.objects.filter(id=job_id).update(total_cost=ledger, reserved_cost=holds)
    found = Mismatch(job_id, row[0], ledger, row[1], holds)
    logger.warning(
        "reconcile_costs repaired job %s: total_cost %s -> %s, reserved_cost %s -> %s",
        job_id,
        format_money(row[0]),
        format_money(ledger),
        format_money(row[1]),
        format_money(holds),
        extra={"job_id": str(job_id), "event": "cost_reconciled", **found.to_dict()},
    )
    return found


class Command(BaseCommand):
    """Check every job's ``total_cost`` against the ledger; list mismatches; ``--fix`` repairs them."""

    help = (
        "Check jobs.total_cost against the sum of job_costs (and reserved_cost against open, unexpired holds) "
        "for every job. "
        "Exit status 1 when there are mismatches; --fix repairs them from the ledger."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--fix``, ``--job`` and ``--format``."""
        parser.add_argument("--fix", action="store_true", help="repair mismatches from the ledger")
        parser.add_argument("--job", action="append", default=[], help="only this job id (repeatable)")
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        """List (and optionally repair) mismatches; set the exit status."""
        job_ids = []
        for value in options["job"]:
            job_id = canonical_uuid(value)
            if job_id is None:
                raise CommandError(f"--job {value!r} is not a valid UUID")
            job_ids.append(job_id)
        found = list(find_mismatches(job_ids or None))
        fixed = []
        if options["fix"]:
            fixed = [m for m in (repair(m.job_id) for m in found) if m is not None]
        if options["format"] == "json":
            self.stdout.write(
                json.dumps(
                    {
                        "mismatches": [m.to_dict() for m in found],
                        "fixed": [str(m.job_id) for m in fixed] if options["fix"] else None,
                    }
                )
            )
        else:
            if not found:
                self.stdout.write(self.style.SUCCESS("all jobs match the ledger"))
            for m in found:
                d = m.to_dict()
                self.stdout.write(
                    f"{d['job_id']}  total_cost {d['total_cost']}  ledger {d['ledger_total']}  "
                    f"difference {d['difference']}  reserved_cost {d['reserved_cost']}  open holds {d['open_holds']}"
                )
            if found:
                verb = "repaired" if options["fix"] else "found"
                self.stdout.write(f"{len(found)} mismatch(es) {verb}")
        if found and not options["fix"]:
            raise CommandError(f"{len(found)} job(s) do not match the ledger (run with --fix to repair)", returncode=1)
