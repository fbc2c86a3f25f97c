"""``manage.py check_services``: run the readiness checks (database, cache, storage, JWKS, disk, memory)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.health import JWKSCheck, StorageCheck, default_checks, run_checks


def describe_pool(pool: dict[str, Any]) -> str:
    """One line on the database connection pool (the details of the database check)."""
    stats = pool.get("stats", {})
    return (
        f"pool {pool['name']}: {pool['in_use']} of {pool['max_size']} in use, {pool['idle']} idle, "
        f"{pool['waiting']} waiting; {stats.get('requests_num', 0)} requests, "
        f"{stats.get('requests_queued', 0)} queued, {stats.get('requests_wait_ms', 0)} ms waited, "
        f"{stats.get('requests_errors', 0)} failed"
    )


class Command(BaseCommand):
    """Run the same checks as ``GET /health/ready``; exit 1 when a critical one fails."""

    help = "Check the database, cache, storage, JWKS, disk and memory; exit non-zero when a critical check fails."

    def add_arguments(self, parser: CommandParser) -> None:
        """Add ``--json`` and ``--check NAME``."""
        parser.add_argument("--json", action="store_true", help="Print the report as JSON (as /health/ready does).")
        parser.add_argument(
            "--check",
            action="append",
            dest="only",
            metavar="NAME",
            help="Run only this check (database, cache, storage, jwks, disk or memory); repeatable.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the checks, print them, and fail when a critical one failed."""
        checks = default_checks()
        for check in checks:
            if isinstance(check, (StorageCheck, JWKSCheck)):
                check.use_cache = False  # an operator asking wants a fresh answer, not /health/ready's cached one
        only = options.get("only")
        if only:
            known = {c.name for c in checks}
            unknown = sorted(set(only) - known)
            if unknown:
                raise CommandError(f"Unknown check(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
            checks = [c for c in checks if c.name in only]
        report = run_checks(checks)
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2))
        else:
            self.stdout.write(f"videogen {report.version}")
            for result in report.results:
                label = "critical" if result.critical else "optional"
                status = result.status.upper()
                styled = self.style.SUCCESS(status) if result.ok else self.style.ERROR(status)
                line = f"  {result.name:<9} {styled:<7} {result.latency_ms:8.1f} ms  ({label})"
                if result.message:
                    line += f"  {result.message}"
                self.stdout.write(line)
                pool = result.details.get("pool") if result.name == "database" else None
                if pool:
                    self.stdout.write(f"            {describe_pool(pool)}")
        if not report.healthy:
            failed = [r.name for r in report.results if r.critical and not r.ok]
            raise CommandError(f"Critical service check(s) failed: {', '.join(failed)}.", returncode=1)
        if not options["json"]:
            self.stdout.write(self.style.SUCCESS("All critical services are available."))
