"""``manage.py reconcile_costs [--fix]``: check ``jobs.total_cost`` against the ledger for every job.

The ledger (``job_costs``) is the source of truth. Each job's ``total_cost`` must
equal the exact sum of its ledger rows, and ``reserved_cost`` the sum of its open,
unexpired holds (a hold older than ``RESERVATION_TTL_SECONDS`` no longer counts,
as in every budget check). Mismatches are listed and the exit status is 1; with
``--fix`` each one is repaired under the job's row lock: expired holds are closed
(``holds_expire``) and the totals set from the ledger and the open holds
(exit status 0 once repaired). The read is :func:`common.selectors.reconcile.jobs_cost_mismatches`,
the repair :func:`common.services.reconcile.job_costs_repair`.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.ids import canonical_uuid
from common.selectors.reconcile import jobs_cost_mismatches
from common.services.reconcile import job_costs_repair


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
        found = list(jobs_cost_mismatches(job_ids=job_ids or None))
        fixed = []
        if options["fix"]:
            fixed = [m for m in (job_costs_repair(job_id=m.job_id) for m in found) if m is not None]
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
