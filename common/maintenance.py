"""Keeping a render worker's disk in order: temp cleanup, the cache-size cap, and the background loops.

:data:`resource_manager` (a :class:`ResourceManager`, the seeds' object) is a
:class:`~common.resources.ResourceMonitor` (readings, thresholds, refusals) that also
removes old temp files while sparing live jobs' workspaces (the live jobs come from
:func:`common.selectors.jobs_live_ids`) and paths in use (:mod:`common.tempfiles`);
keeps the cache directory under its byte cap by evicting the least recently used files;
and runs both, with the monitor's sampling, in the background: as asyncio tasks
(``start_monitoring``, ``schedule_cleanup``, ``shutdown``) or in one daemon thread
(``start_monitoring_thread``, ``stop``). The walking and removing is :mod:`common.fs`'s.
Every knob is read from ``app_settings`` at call time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from common.errors import PipelineError, ValidationError
from common.fs import CacheEvictionStats, CleanupStats, SkipReason, evict_lru, prune_tree
from common.ids import canonical_uuid
from common.log import get_logger
from common.resources import ResourceMonitor, non_negative_int, positive_number
from common.tempfiles import JOBS_DIRNAME, TempFileManager, is_path_in_use, temp_file_manager

__all__ = ["CacheEvictionStats", "CleanupStats", "ResourceManager", "resource_manager"]

logger = get_logger(__name__)


def _settings() -> Any:
    from common.conf import app_settings

    return app_settings


class ResourceManager(ResourceMonitor):
    """Watches memory and disk, enforces limits, and cleans the temp and cache directories."""

    def __init__(self, temp_files: TempFileManager | None = None) -> None:
        super().__init__()
        self.temp_files = temp_files or temp_file_manager
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._task_stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_stop = threading.Event()
        self.cleanups_run = 0
        self.last_cleanup: CleanupStats | None = None
        self.last_eviction: CacheEvictionStats | None = None

    @property
    def temp_root(self) -> Path:
        """The managed temp root (``app_settings.TEMP_DIR`` unless the temp manager has its own)."""
        return self.temp_files.root

    # ---- temp cleanup

    def cleanup_temporary_files(
        self,
        max_age_hours: float | None = None,
        *,
        dry_run: bool = False,
        record: bool = True,
        stop: threading.Event | None = None,
        progress: Callable[[CleanupStats], None] | None = None,
    ) -> CleanupStats:
        """Remove files, then empty directories, under the temp root older than ``max_age_hours``.

        Defaults to ``TEMP_MAX_AGE_HOURS``. Spares the workspace of every job
        that is queued or processing (``<root>/jobs/<job_id>``), everything held
        by an open temp context, and never follows a symlink (an old link is
        removed, its target never). When the jobs table cannot be read, every
        job workspace is spared and the problem is counted as an error.

        Raises:
            ValidationError: when ``max_age_hours`` is negative or not a number.
        """
        if max_age_hours is None:
            max_age_hours = float(_settings().TEMP_MAX_AGE_HOURS)
        if (
            isinstance(max_age_hours, bool)
            or not isinstance(max_age_hours, (int, float))
            or not (0 <= max_age_hours < float("inf"))
        ):
            raise ValidationError(
                f"max_age_hours must be a non-negative number of hours, got {max_age_hours!r}",
                details={"field": "max_age_hours"},
            )
        root = self.temp_root
        jobs_dir = os.path.join(root, JOBS_DIRNAME)
        live: set[str] | None = None
        db_error: str | None = None

        def skip(path: str) -> SkipReason | None:
            nonlocal live, db_error
            if is_path_in_use(path):
                return "in_use"
            parent, name = os.path.split(path)
            if parent == jobs_dir:
                if live is None and db_error is None:
                    live, db_error = self._read_live_jobs()
                if db_error is not None:
                    return "live_job"  # cannot tell: keep it
                job_id = canonical_uuid(name)  # a job's workspace is named by its id, canonical text
                if job_id is not None and live is not None and str(job_id) in live:
                    return "live_job"
            return None

        stats = prune_tree(
            root, max_age_hours=max_age_hours, skip=skip, dry_run=dry_run, record=record, stop=stop, progress=progress
        )
        if db_error is not None:
            stats.failures.append({"path": jobs_dir, "error": f"job workspaces kept: {db_error}"})
        self.last_cleanup = stats
        logger.info(
            "temp cleanup%s: %d files and %d directories, %d bytes freed, %d errors",
            " (dry run)" if dry_run else "",
            stats.files_removed,
            stats.dirs_removed,
            stats.bytes_freed,
            stats.errors,
            extra={
                "event": "temp_cleanup",
                "root": str(root),
                "dry_run": dry_run,
                "files_removed": stats.files_removed,
                "dirs_removed": stats.dirs_removed,
                "bytes_freed": stats.bytes_freed,
                "skipped_in_use": stats.skipped_in_use,
                "skipped_live_jobs": stats.skipped_live_jobs,
                "errors": stats.errors,
            },
        )
        return stats

    def _read_live_jobs(self) -> tuple[set[str] | None, str | None]:
        # Queued and processing jobs, less those whose lease expired (or that sat queued untouched)
        # longer ago than the temp age: their workspaces are cleaned like a finished job's.
        from datetime import timedelta

        from django.db import DatabaseError

        from common import selectors

        try:
            return selectors.jobs_live_ids(grace=timedelta(hours=float(_settings().TEMP_MAX_AGE_HOURS))), None
        except (DatabaseError, PipelineError) as exc:  # the selectors' boundary translates database errors
            logger.warning(
                "could not read live jobs; sparing every job workspace: %s",
                exc,
                extra={"event": "temp_cleanup_jobs_unknown", "error": str(exc)},
            )
            return None, f"the jobs table could not be read ({type(exc).__name__})"

    async def acleanup_temporary_files(
        self, max_age_hours: float | None = None, *, dry_run: bool = False
    ) -> CleanupStats:
        """Async twin of :meth:`cleanup_temporary_files` (runs in a worker thread)."""
        return await asyncio.to_thread(
            _closing_connections(self.cleanup_temporary_files), max_age_hours, dry_run=dry_run
        )

    # ---- cache cap

    def enforce_cache_limit(
        self,
        max_bytes: int | None = None,
        *,
        dry_run: bool = False,
        record: bool = True,
        stop: threading.Event | None = None,
    ) -> CacheEvictionStats:
        """Evict least-recently-used files from the cache directory until it holds at most ``max_bytes``.

        Defaults to ``CACHE_DIR_MAX_BYTES``. "Used" is the later of the access
        and modification times (access times are coarse on ``relatime`` mounts
        and frozen on ``noatime`` ones). Symlinks are counted and evicted as
        links, never followed; files held by an open temp context are kept.

        Raises:
            ValidationError: when ``max_bytes`` is negative or not an integer.
        """
        if max_bytes is None:
            max_bytes = int(_settings().CACHE_DIR_MAX_BYTES)
        non_negative_int(max_bytes, "max_bytes")
        root = str(self.cache_root)
        stats = evict_lru(root, max_bytes, skip=is_path_in_use, dry_run=dry_run, record=record, stop=stop)
        self.last_eviction = stats
        if stats.files_evicted or stats.errors:
            logger.info(
                "cache cap%s: evicted %d files (%d bytes); %d of %d bytes left",
                " (dry run)" if dry_run else "",
                stats.files_evicted,
                stats.bytes_freed,
                stats.bytes_after,
                max_bytes,
                extra={
                    "event": "cache_evicted",
                    "root": root,
                    "dry_run": dry_run,
                    "files_evicted": stats.files_evicted,
                    "bytes_freed": stats.bytes_freed,
                    "bytes_after": stats.bytes_after,
                    "limit_bytes": max_bytes,
                    "errors": stats.errors,
                },
            )
        return stats

    async def aenforce_cache_limit(self, max_bytes: int | None = None, *, dry_run: bool = False) -> CacheEvictionStats:
        """Async twin of :meth:`enforce_cache_limit` (runs in a worker thread)."""
        return await asyncio.to_thread(self.enforce_cache_limit, max_bytes, dry_run=dry_run)

    # ---- one round of background work

    def run_maintenance(self, *, stop: threading.Event | None = None) -> dict[str, Any]:
        """Run the temp cleanup and the cache cap once; failures are logged, never raised."""
        result: dict[str, Any] = {}
        try:
            result["temp"] = self.cleanup_temporary_files(record=False, stop=stop).to_dict()
        except Exception as exc:  # a background loop must survive one bad round
            logger.exception("temp cleanup failed", extra={"event": "temp_cleanup_failed", "error": str(exc)})
        if stop is None or not stop.is_set():
            try:
                result["cache"] = self.enforce_cache_limit(record=False, stop=stop).to_dict()
            except Exception as exc:  # same
                logger.exception("cache cap failed", extra={"event": "cache_cap_failed", "error": str(exc)})
        self.cleanups_run += 1
        return result

    # ---- asyncio background tasks

    def _start_task(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        task = self._tasks.get(name)
        if task is not None and not task.done():
            return task
        self._task_stop.clear()
        task = asyncio.get_running_loop().create_task(factory(), name=f"videogen-{name}")
        self._tasks[name] = task
        return task

    async def start_monitoring(self, interval: float | None = None) -> asyncio.Task[None]:
        """Start (once) a task sampling resources every ``interval`` seconds (``RESOURCE_MONITOR_INTERVAL_SECONDS``)."""
        seconds = positive_number(
            interval if interval is not None else _settings().RESOURCE_MONITOR_INTERVAL_SECONDS, "interval"
        )

        async def loop() -> None:
            while True:
                await asyncio.to_thread(self.sample_and_check)
                await asyncio.sleep(seconds)

        return self._start_task("monitor", loop)

    async def schedule_cleanup(self, interval_hours: float | None = None) -> asyncio.Task[None]:
        """Start (once) a task running the temp cleanup and cache cap now and every ``interval_hours``.

        Defaults to ``TEMP_CLEANUP_INTERVAL_HOURS``. :meth:`shutdown` interrupts
        a round in progress between two files and waits for it.
        """
        hours = positive_number(
            interval_hours if interval_hours is not None else _settings().TEMP_CLEANUP_INTERVAL_HOURS, "interval_hours"
        )

        async def loop() -> None:
            while True:
                round_ = asyncio.ensure_future(
                    asyncio.to_thread(_closing_connections(self.run_maintenance), stop=self._task_stop)
                )
                try:
                    await asyncio.shield(round_)
                except asyncio.CancelledError:
                    # Let the thread notice the stop flag and finish before the task ends.
                    self._task_stop.set()
                    await asyncio.wait([round_])
                    raise
                await asyncio.sleep(hours * 3600)

        return self._start_task("cleanup", loop)

    async def shutdown(self) -> None:
        """Stop the background tasks and thread, waiting for each to end."""
        self._task_stop.set()
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._thread is not None:
            await asyncio.to_thread(self.stop)

    def running_tasks(self) -> list[str]:
        """Names of the asyncio background tasks still running."""
        return sorted(name for name, task in self._tasks.items() if not task.done())

    # ---- thread for sync workers

    def start_monitoring_thread(
        self, interval: float | None = None, *, cleanup_interval_hours: float | None = None
    ) -> threading.Thread:
        """Start (once) a daemon thread sampling every ``interval`` seconds.

        With ``cleanup_interval_hours`` it also runs the temp cleanup and cache cap, now and then at that period.
        """
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        seconds = positive_number(
            interval if interval is not None else _settings().RESOURCE_MONITOR_INTERVAL_SECONDS, "interval"
        )
        cleanup_seconds = (
            None
            if cleanup_interval_hours is None
            else positive_number(cleanup_interval_hours, "cleanup_interval_hours") * 3600
        )
        self._thread_stop.clear()
        stop = self._thread_stop

        def run() -> None:
            next_cleanup = time.monotonic()
            try:
                while not stop.is_set():
                    self.sample_and_check()
                    if cleanup_seconds is not None and time.monotonic() >= next_cleanup:
                        self.run_maintenance(stop=stop)
                        next_cleanup = time.monotonic() + cleanup_seconds
                    stop.wait(seconds)
            finally:
                _close_db_connections()

        self._thread = threading.Thread(target=run, name="videogen-resource-monitor", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop the monitoring thread and wait up to ``timeout`` seconds; True when it has ended."""
        self._thread_stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True


def _close_db_connections() -> None:
    """Close this thread's database connections (a worker thread must not leak them)."""
    from django.db import connections

    connections.close_all()


def _closing_connections(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``func`` (run in a worker thread) so the thread's database connections are closed after it."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        finally:
            _close_db_connections()

    return wrapper


resource_manager = ResourceManager()
