"""``manage.py recover_jobs [--requeue | --fail] [--dry-run] [--json] [--job ID ...]``: jobs of dead workers.

Sweeps the expired cost holds first (the same sweep is safe to run from cron on its own), then lists
the stale jobs: processing jobs whose lease expired and queued jobs nothing has touched for
``JOB_QUEUED_STALE_SECONDS``. ``--requeue`` returns their running stages to pending and the jobs to
the queue; ``--fail`` fails them with code ``WORKER_LOST``; both release the jobs' holds.
``--dry-run`` changes nothing (no sweep either) and says what would be done.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.errors import PipelineError
from common.services.recovery import FAIL, REQUEUE, RecoveryReport, recover_jobs

DONE = {REQUEUE: "requeued", FAIL: "failed"}


class Command(BaseCommand):
    """List (and requeue or fail) the jobs whose worker is gone; sweep expired holds."""

    help = (
        "Sweep expired cost holds and list stale jobs (lease expired, or queued too long). "
        "--requeue returns their running stage to pending; --fail fails them with WORKER_LOST; "
        "both release their holds. --dry-run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--requeue``/``--fail``, ``--dry-run``, ``--json`` and ``--job``."""
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--requeue", action="store_true", help="return the stale jobs to the queue")
        action.add_argument("--fail", action="store_true", help="fail the stale jobs with code WORKER_LOST")
        parser.add_argument("--dry-run", action="store_true", help="change nothing; say what would be done")
        parser.add_argument("--json", action="store_true", help="print one JSON document")
        parser.add_argument("--job", action="append", default=[], help="only this job id (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the recovery and print what it found and did."""
        job_ids = []
        for value in options["job"]:
            try:
                job_ids.append(uuid.UUID(value))
            except ValueError:
                raise CommandError(f"--job {value!r} is not a valid UUID") from None
        action = REQUEUE if options["requeue"] else FAIL if options["fail"] else None
        try:
            report = recover_jobs(action=action, dry_run=options["dry_run"], job_ids=job_ids or None)
        except PipelineError as exc:
            raise CommandError(f"recovery failed: {exc.message} ({exc.code})") from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict()))
        else:
            self._table(report)

    def _table(self, report: RecoveryReport) -> None:
        verb = "would expire" if report.dry_run else "expired"
        self.stdout.write(f"holds: {verb} {report.holds_expired}")
        if not report.stale:
            self.stdout.write(self.style.SUCCESS("no stale jobs"))
            return
        for job in report.stale:
            stages = ", ".join(job.running_stages) or "-"
            owners = ", ".join(job.lease_owners) or "-"
            self.stdout.write(
                f"{job.job_id}  {job.kind:<13}  {job.status:<10}  since {job.stale_since.isoformat()}  "
                f"stage {job.current_stage or '-'}  running {stages}  owner {owners}"
            )
        count = len(report.stale)
        if report.action is None:
            self.stdout.write(f"{count} stale job(s); --requeue or --fail to recover them")
        elif report.dry_run:
            self.stdout.write(f"{count} stale job(s) would be {DONE[report.action]} (dry run: nothing changed)")
        else:
            self.stdout.write(f"{len(report.done)} job(s) {DONE[report.action]}, {len(report.skipped)} skipped")
            for job_id, reason in report.skipped.items():
                self.stdout.write(f"  skipped {job_id}: {reason}")
