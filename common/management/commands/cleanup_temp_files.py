"""``manage.py cleanup_temp_files``: remove old temp files (sparing live jobs), optionally cap the cache."""

from __future__ import annotations

import json
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.conf import app_settings
from common.errors import PipelineError
from common.fs import CacheEvictionStats, CleanupStats
from common.maintenance import resource_manager

# Redraw the terminal counter every this many entries (and once at the end).
PROGRESS_EVERY = 200


def _size(num: int) -> str:
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Command(BaseCommand):
    """Remove temp files older than the configured age; live jobs' workspaces and paths in use are kept."""

    help = (
        "Remove files and empty directories under TEMP_DIR older than TEMP_MAX_AGE_HOURS (or --older-than). "
        "Workspaces of queued/processing jobs are kept; symlinks are removed, never followed "
        "(a TEMP_DIR or CACHE_DIR that is itself a symlink is refused). "
        "--cache also evicts least-recently-used files from CACHE_DIR down to CACHE_DIR_MAX_BYTES."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the options."""
        parser.add_argument(
            "--older-than",
            metavar="HOURS",
            default=None,
            help="remove entries last modified more than HOURS ago (default: TEMP_MAX_AGE_HOURS; 0 = all)",
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would be removed; remove nothing")
        parser.add_argument("--json", action="store_true", help="print the statistics as one JSON object")
        parser.add_argument(
            "--cache", action="store_true", help="also evict least-recently-used files from CACHE_DIR over its cap"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the cleanup and report."""
        hours = self._hours(options["older_than"])
        dry_run: bool = options["dry_run"]
        as_json: bool = options["json"]
        show_progress = self.stderr.isatty()

        def progress(stats: CleanupStats) -> None:
            if stats.scanned % PROGRESS_EVERY == 0:
                self.stderr.write(f"\rscanned {stats.scanned} entries, {stats.files_removed} files", ending="")
                self.stderr.flush()

        try:
            stats = resource_manager.cleanup_temporary_files(
                hours, dry_run=dry_run, progress=progress if show_progress else None
            )
            eviction = resource_manager.enforce_cache_limit(dry_run=dry_run) if options["cache"] else None
        except PipelineError as exc:
            raise CommandError(exc.message) from None
        finally:
            if show_progress:
                self.stderr.write("\r\033[K", ending="")
                self.stderr.flush()

        if as_json:
            payload: dict[str, Any] = {"temp": stats.to_dict()}
            if eviction is not None:
                payload["cache"] = eviction.to_dict()
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            self._print_text(stats, eviction)
        refused = [r.refused for r in (stats, eviction) if r is not None and r.refused]
        if refused:
            raise CommandError(" ".join(refused))
        errors = stats.errors + (eviction.errors if eviction is not None else 0)
        if errors:
            raise CommandError(f"{errors} entries could not be removed (see the list above)")

    def _hours(self, raw: str | None) -> float:
        if raw is None:
            return float(app_settings.TEMP_MAX_AGE_HOURS)
        try:
            hours = float(raw)
        except ValueError:
            raise CommandError(f"--older-than must be a number of hours, got {raw!r}") from None
        if not math.isfinite(hours) or hours < 0:
            raise CommandError(f"--older-than must be zero or a positive number of hours, got {raw!r}")
        return hours

    def _print_text(self, stats: CleanupStats, eviction: CacheEvictionStats | None) -> None:
        verb = "would remove" if stats.dry_run else "removed"
        for item in stats.removed:
            size = f" ({_size(item['bytes'])})" if item["kind"] != "dir" else ""
            self.stdout.write(f"{verb} {item['kind']} {item['path']}{size}")
        for failure in stats.failures:
            if failure["error"] != stats.refused:  # a refusal is the command's error message
                self.stderr.write(f"could not remove {failure['path']}: {failure['error']}")
        prefix = "[dry run] " if stats.dry_run else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"{prefix}{stats.root}: {verb} {stats.files_removed} files and {stats.dirs_removed} directories "
                f"older than {stats.max_age_hours:g} h, {_size(stats.bytes_freed)}; kept {stats.skipped_live_jobs} "
                f"live job workspaces, {stats.skipped_in_use} paths in use, {stats.skipped_recent} recent entries"
            )
        )
        if eviction is None:
            return
        verb = "would evict" if eviction.dry_run else "evicted"
        for item in eviction.evicted:
            self.stdout.write(f"{verb} {item['path']} ({_size(item['bytes'])})")
        for failure in eviction.failures:
            if failure["error"] != eviction.refused:
                self.stderr.write(f"could not evict {failure['path']}: {failure['error']}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{prefix}{eviction.root}: {verb} {eviction.files_evicted} files, {_size(eviction.bytes_freed)}; "
                f"{_size(eviction.bytes_after)} of the {_size(eviction.limit_bytes)} cap in use"
            )
        )
