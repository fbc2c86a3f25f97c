"""``manage.py cleanup_job_files``: remove the stored objects of long-finished jobs and orphans (safe from cron)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.errors import PipelineError
from common.storage.buckets import BUCKETS
from common.storage.cleanup import apply_cleanup, plan_cleanup, retention_days


class Command(BaseCommand):
    """Plan (``--dry-run``) or apply the removal of job objects; see :mod:`common.storage.cleanup` for the rules."""

    help = (
        "Remove the objects of jobs finished longer ago than STORAGE_RETENTION_DAYS (per bucket) and of folders that "
        "are no job (older than STORAGE_ORPHAN_GRACE_HOURS). Live (queued/processing) jobs are never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Add ``--dry-run``, ``--json`` and ``--bucket``."""
        parser.add_argument("--dry-run", action="store_true", help="List what would be removed; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print the plan and its outcome as JSON.")
        parser.add_argument(
            "--bucket",
            action="append",
            dest="buckets",
            metavar="NAME",
            choices=list(BUCKETS),
            help="Only this bucket (repeatable; default: all four).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Plan, apply unless ``--dry-run``, report; exit 1 when a bucket or a folder could not be handled."""
        buckets = options.get("buckets") or list(BUCKETS)
        try:
            retention = {bucket: retention_days(bucket) for bucket in buckets}
            plans = plan_cleanup(buckets=buckets)
            if not options["dry_run"]:
                plans = apply_cleanup(plans)
        except PipelineError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        failed = [p.bucket for p in plans if p.error] + [
            f"{a.bucket}/{a.folder}" for p in plans for a in p.actions if a.error
        ]
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "dry_run": bool(options["dry_run"]),
                        "buckets": [
                            {
                                "bucket": p.bucket,
                                "retention_days": retention[p.bucket],
                                "error": p.error,
                                "kept_live": p.kept_live,
                                "kept_recent": p.kept_recent,
                                "actions": [a.to_dict() for a in p.actions],
                            }
                            for p in plans
                        ],
                        "objects_removed": sum(a.deleted for p in plans for a in p.actions),
                    },
                    indent=2,
                )
            )
        else:
            self._print(plans, retention, dry_run=bool(options["dry_run"]))
        if failed:
            raise CommandError(f"Could not clean up: {', '.join(failed)}.", returncode=1)

    def _print(self, plans: list[Any], retention: dict[str, float | None], *, dry_run: bool) -> None:
        verb = "would remove" if dry_run else "removed"
        for plan in plans:
            keep = "forever" if retention[plan.bucket] is None else f"{retention[plan.bucket]:g} days"
            if plan.error:
                self.stdout.write(self.style.ERROR(f"{plan.bucket}: {plan.error}"))
                continue
            self.stdout.write(
                f"{plan.bucket} (finished jobs kept {keep}): {len(plan.actions)} folder(s) due, "
                f"{plan.kept_live} live job(s) and {plan.kept_recent} recent folder(s) kept"
            )
            for action in plan.actions:
                count = len(action.objects) if dry_run else action.deleted
                what = f"job {action.job_status}" if action.reason == "expired" else "no such job"
                line = f"  {verb} {count} object(s) under {action.folder or '(bucket root)'}/ ({action.reason}: {what})"
                if action.skipped:
                    line = f"  kept {action.folder}/: {action.skipped}"
                elif action.error:
                    line = self.style.ERROR(f"  failed {action.folder}/: {action.error}")
                self.stdout.write(line)
        total = sum((len(a.objects) if dry_run else a.deleted) for p in plans for a in p.actions)
        self.stdout.write(self.style.SUCCESS(f"{total} object(s) {verb}."))
