"""Local resources of a render worker: readings, thresholds, temp cleanup and the cache-size cap.

:data:`resource_manager` (a :class:`ResourceManager`) reads memory, disk, CPU and
process RSS with psutil; warns once per threshold crossing; refuses work with
:class:`~common.errors.ResourceError` (``ensure_free_disk``, ``ensure_memory``);
removes old temp files while sparing live jobs' workspaces and paths in use;
and keeps the cache directory under its byte cap by evicting the least
recently used files. Background work runs either as asyncio tasks
(``start_monitoring``, ``schedule_cleanup``, ``shutdown``) or in one daemon
thread (``start_monitoring_thread``, ``stop``). Every knob is read from
``app_settings`` at call time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from common.errors import PipelineError, ResourceError, ValidationError
from common.fs import ENTRY, CleanupStats, FailureReport, SkipReason, Walk, open_below, open_root, refuse
from common.ids import canonical_uuid
from common.log import get_logger
from common.tempfiles import (
    JOBS_DIRNAME,
    TempFileManager,
    is_path_in_use,
    prune_tree,
    temp_file_manager,
)

__all__ = [
    "CacheEvictionStats",
    "CleanupStats",
    "DiskUsage",
    "ResourceManager",
    "SystemResources",
    "resource_manager",
]

logger = get_logger(__name__)


# --------------------------------------------------------------------------- readings


@dataclass(frozen=True)
class DiskUsage:
    """Usage of the file system holding ``path`` (bytes; percent 0-100)."""

    path: str
    total: int
    used: int
    free: int
    percent_used: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return asdict(self)


@dataclass(frozen=True)
class SystemResources(Mapping[str, Any]):
    """One sample of the machine and this process.

    Also a read-only mapping of :meth:`to_dict`, so the seeds' form works:
    ``resource_manager.get_system_resources()["memory"]["percent_used"]``.
    """

    memory_total: int
    memory_available: int
    memory_percent_used: float
    temp_disk: DiskUsage
    cache_disk: DiskUsage
    cpu_percent: float
    cpu_count: int
    process_rss: int
    pid: int

    def to_dict(self) -> dict[str, Any]:
        """Return nested numbers: ``memory``, ``disk`` (``temp``/``cache``), ``cpu``, ``process``."""
        return {
            "memory": {
                "total": self.memory_total,
                "available": self.memory_available,
                "percent_used": self.memory_percent_used,
            },
            "disk": {"temp": self.temp_disk.to_dict(), "cache": self.cache_disk.to_dict()},
            "cpu": {"percent": self.cpu_percent, "count": self.cpu_count},
            "process": {"pid": self.pid, "rss": self.process_rss},
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("memory", "disk", "cpu", "process"))

    def __len__(self) -> int:
        return 4


@dataclass
class CacheEvictionStats(FailureReport):
    """What the cache-size cap evicted (or, with ``dry_run``, would evict)."""

    limit_bytes: int
    bytes_before: int = 0
    bytes_after: int = 0
    files_evicted: int = 0
    bytes_freed: int = 0
    dry_run: bool = False
    interrupted: bool = False
    root: str = ""
    refused: str = ""
    evicted: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


def _existing(path: Path) -> Path:
    """The nearest existing ancestor of ``path`` (disk usage needs a path that exists)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _settings() -> Any:
    from common.conf import app_settings

    return app_settings


# --------------------------------------------------------------------------- manager


class ResourceManager:
    """Watches memory and disk, enforces limits, and cleans the temp and cache directories."""

    def __init__(self, temp_files: TempFileManager | None = None) -> None:
        self.temp_files = temp_files or temp_file_manager
        self._lock = threading.Lock()
        self._crossed: dict[str, bool] = {}
        self._process: psutil.Process | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._task_stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_stop = threading.Event()
        self.last_sample: SystemResources | None = None
        self.samples_taken = 0
        self.cleanups_run = 0
        self.last_cleanup: CleanupStats | None = None
        self.last_eviction: CacheEvictionStats | None = None

    # ---- paths

    @property
    def temp_root(self) -> Path:
        """The managed temp root (``app_settings.TEMP_DIR`` unless the temp manager has its own)."""
        return self.temp_files.root

    @property
    def cache_root(self) -> Path:
        """The cache directory (``app_settings.CACHE_DIR``)."""
        return Path(os.path.abspath(Path(_settings().CACHE_DIR).expanduser()))

    # ---- readings

    def disk_usage(self, path: Path | str) -> DiskUsage:
        """Usage of the file system holding ``path`` (or its nearest existing ancestor).

        Raises:
            ResourceError: when the operating system cannot say.
        """
        where = _existing(Path(path))
        try:
            usage = psutil.disk_usage(str(where))
        except (psutil.Error, OSError) as exc:
            raise ResourceError(
                f"Could not read disk usage of {where}: {exc}",
                details={"resource": "disk", "path": str(where)},
            ) from exc
        return DiskUsage(
            path=str(where), total=usage.total, used=usage.used, free=usage.free, percent_used=float(usage.percent)
        )

    def get_system_resources(self) -> SystemResources:
        """Sample memory, the temp and cache disks, CPU (since the previous sample) and this process's RSS.

        Raises:
            ResourceError: when psutil cannot read a value.
        """
        try:
            memory = psutil.virtual_memory()
            cpu = float(psutil.cpu_percent(interval=None))
            cpu_count = psutil.cpu_count() or 1
            if self._process is None or self._process.pid != os.getpid():  # re-read after a fork
                self._process = psutil.Process()
            rss = int(self._process.memory_info().rss)
            pid = self._process.pid
        except (psutil.Error, OSError) as exc:
            raise ResourceError(f"Could not read system resources: {exc}", details={"resource": "system"}) from exc
        return SystemResources(
            memory_total=int(memory.total),
            memory_available=int(memory.available),
            memory_percent_used=float(memory.percent),
            temp_disk=self.disk_usage(self.temp_root),
            cache_disk=self.disk_usage(self.cache_root),
            cpu_percent=cpu,
            cpu_count=cpu_count,
            process_rss=rss,
            pid=pid,
        )

    async def aget_system_resources(self) -> SystemResources:
        """Async twin of :meth:`get_system_resources` (a slow mount cannot block the loop)."""
        return await asyncio.to_thread(self.get_system_resources)

    # ---- thresholds

    def check_thresholds(self, resources: SystemResources | None = None) -> list[str]:
        """Compare a sample with the thresholds; log a warning for each *new* crossing.

        A resource that stays above its threshold is not reported again until
        it has dropped below ``threshold - RESOURCE_THRESHOLD_HYSTERESIS_PERCENT``
        (logged at INFO) and crossed again. Returns the names newly crossed:
        ``"memory"``, ``"disk_temp"``, ``"disk_cache"``.
        """
        conf = _settings()
        sample = resources or self.get_system_resources()
        memory_threshold = float(conf.MEMORY_THRESHOLD_PERCENT)
        disk_threshold = float(conf.DISK_THRESHOLD_PERCENT)
        margin = float(conf.RESOURCE_THRESHOLD_HYSTERESIS_PERCENT)
        readings = [
            ("memory", sample.memory_percent_used, memory_threshold, None),
            ("disk_temp", sample.temp_disk.percent_used, disk_threshold, sample.temp_disk.path),
            ("disk_cache", sample.cache_disk.percent_used, disk_threshold, sample.cache_disk.path),
        ]
        crossed_now: list[str] = []
        for name, percent, threshold, path in readings:
            with self._lock:
                was_crossed = self._crossed.get(name, False)
                if not was_crossed and percent >= threshold:
                    self._crossed[name] = True
                    crossed_now.append(name)
                    event = "crossed"
                elif was_crossed and percent < threshold - margin:
                    self._crossed[name] = False
                    event = "recovered"
                else:
                    continue
            extra = {
                "event": f"resource_threshold_{event}",
                "resource": name,
                "percent_used": percent,
                "threshold_percent": threshold,
            }
            if path is not None:
                extra["path"] = path
            where = f" ({path})" if path else ""
            if event == "crossed":
                logger.warning(
                    "%s usage %.1f%% reached the %.1f%% threshold%s", name, percent, threshold, where, extra=extra
                )
            else:
                logger.info(
                    "%s usage %.1f%% is back below the %.1f%% threshold%s", name, percent, threshold, where, extra=extra
                )
        return crossed_now

    def crossed_thresholds(self) -> list[str]:
        """Names of the resources currently above their thresholds (as of the last check)."""
        with self._lock:
            return sorted(name for name, crossed in self._crossed.items() if crossed)

    def ensure_free_disk(self, bytes_needed: int, *, path: Path | str | None = None) -> DiskUsage:
        """Return the disk usage at ``path`` (default: the temp root) if ``bytes_needed`` are free.

        Raises:
            ValidationError: when ``bytes_needed`` is negative or not an integer.
            ResourceError: when less than ``bytes_needed`` is free.
        """
        _non_negative_int(bytes_needed, "bytes_needed")
        usage = self.disk_usage(path if path is not None else self.temp_root)
        if usage.free < bytes_needed:
            raise ResourceError(
                f"Not enough disk space at {usage.path}: {usage.free} bytes free, {bytes_needed} needed. "
                "Free space or run `manage.py cleanup_temp_files`.",
                details={
                    "resource": "disk",
                    "path": usage.path,
                    "free_bytes": usage.free,
                    "required_bytes": bytes_needed,
                    "percent_used": usage.percent_used,
                },
            )
        return usage

    def ensure_memory(self, bytes_needed: int | None = None) -> SystemResources:
        """Return a sample if memory allows new work.

        With ``bytes_needed``, at least that much must be available; without it,
        memory use must be below ``MEMORY_THRESHOLD_PERCENT``.

        Raises:
            ValidationError: when ``bytes_needed`` is negative or not an integer.
            ResourceError: when memory is short.
        """
        if bytes_needed is not None:
            _non_negative_int(bytes_needed, "bytes_needed")
        sample = self.get_system_resources()
        threshold = float(_settings().MEMORY_THRESHOLD_PERCENT)
        details: dict[str, Any] = {
            "resource": "memory",
            "available_bytes": sample.memory_available,
            "percent_used": sample.memory_percent_used,
            "threshold_percent": threshold,
        }
        if bytes_needed is not None:
            if sample.memory_available < bytes_needed:
                raise ResourceError(
                    f"Not enough memory: {sample.memory_available} bytes available, {bytes_needed} needed.",
                    details={**details, "required_bytes": bytes_needed},
                )
        elif sample.memory_percent_used >= threshold:
            raise ResourceError(
                f"Memory use is {sample.memory_percent_used:.1f}%, at or above the {threshold:.1f}% threshold; "
                "try again when running work has finished.",
                details=details,
            )
        return sample

    # ---- temp cleanup

    def _live_job_ids(self) -> set[str]:
        # Queued and processing jobs, less those whose lease expired (or that sat queued untouched)
        # longer ago than the temp age: their workspaces are cleaned like a finished job's.
        from datetime import timedelta

        from common.selectors import jobs_live_ids

        return jobs_live_ids(grace=timedelta(hours=float(_settings().TEMP_MAX_AGE_HOURS)))

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
        from django.db import DatabaseError

        try:
            return self._live_job_ids(), None
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
        _non_negative_int(max_bytes, "max_bytes")
        root = str(self.cache_root)
        stats = CacheEvictionStats(limit_bytes=max_bytes, dry_run=dry_run, root=root)
        try:
            root_fd = open_root(root, create=False)
        except ResourceError as exc:
            root_fd = None
            refuse(stats, exc, what="cache cap")
        except OSError as exc:
            root_fd = None
            stats.failures.append({"path": root, "error": exc.strerror or str(exc)})
        if root_fd is not None:
            try:
                _evict_lru(root_fd, root, max_bytes, stats, record=record, stop=stop)
            finally:
                os.close(root_fd)
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

    def sample_and_check(self) -> SystemResources | None:
        """Take a sample and check thresholds; a failed reading is logged, not raised."""
        try:
            sample = self.get_system_resources()
        except ResourceError as exc:
            logger.warning("resource sample failed: %s", exc, extra={"event": "resource_sample_failed"})
            return None
        self.last_sample = sample
        self.samples_taken += 1
        self.check_thresholds(sample)
        return sample

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
        seconds = _positive(
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
        hours = _positive(
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
        seconds = _positive(
            interval if interval is not None else _settings().RESOURCE_MONITOR_INTERVAL_SECONDS, "interval"
        )
        cleanup_seconds = (
            None
            if cleanup_interval_hours is None
            else _positive(cleanup_interval_hours, "cleanup_interval_hours") * 3600
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


# (last use, path, size, directory path, directory (dev, ino), name, file (dev, ino))
_CacheFile = tuple[float, str, int, str, tuple[int, int], str, tuple[int, int]]


def _ident(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _scan_cache(root_fd: int, root: str, stats: CacheEvictionStats) -> list[_CacheFile]:
    """Every non-directory under the cache root (links and fifos included), reached without following a link."""
    files: list[_CacheFile] = []
    walk = Walk(root_fd, root, lambda path, error: stats.failures.append({"path": path, "error": error}))
    if not walk.start():
        return files
    try:
        for kind, frame, name, st in walk:
            if kind != ENTRY:
                continue
            if stat.S_ISDIR(st.st_mode):
                walk.descend(frame, name, st)
                continue
            used = max(st.st_atime, st.st_mtime)
            path = frame.path + os.sep + name
            files.append((used, path, st.st_size, frame.path, _ident(frame.st), name, _ident(st)))
    finally:
        walk.close()
    return files


def _open_scanned_dir(
    root_fd: int, root: str, path: str, expected: tuple[int, int], stats: CacheEvictionStats
) -> int | None:
    """Reopen directory ``path`` from the root without following links; ``None`` unless it is the one scanned."""
    parts = tuple(path[len(root) :].split(os.sep)[1:])
    try:
        fd = open_below(root_fd, root, parts, create=False)
    except ResourceError as exc:  # a link swapped in since the scan: never followed
        stats.failures.append({"path": path, "error": exc.message})
        return None
    except OSError as exc:
        stats.failures.append({"path": path, "error": exc.strerror or str(exc)})
        return None
    if fd is not None and _ident(os.fstat(fd)) != expected:
        os.close(fd)  # another directory renamed into place: look again next run
        return None
    return fd


def _evict_lru(
    root_fd: int,
    root: str,
    max_bytes: int,
    stats: CacheEvictionStats,
    *,
    record: bool,
    stop: threading.Event | None,
) -> None:
    """Evict the least recently used files below ``root_fd`` until at most ``max_bytes`` remain.

    Files are chosen oldest first, then unlinked directory by directory (one
    descriptor open at a time), each directory reopened from the root without
    following links and checked to be the one scanned; a file replaced since the
    scan (another inode) is left alone. Files that could not be evicted are
    made up for with the next oldest, in further rounds.
    """
    files = _scan_cache(root_fd, root, stats)
    total = sum(item[2] for item in files)
    stats.bytes_before = total
    files.sort()
    evicted: list[tuple[int, str, int]] = []
    position = 0
    while total > max_bytes and position < len(files) and not stats.interrupted:
        # Choose the oldest files that bring the total under the cap, grouped by directory.
        chosen: dict[str, list[tuple[int, _CacheFile]]] = {}
        projected = total
        while projected > max_bytes and position < len(files):
            item = files[position]
            if not is_path_in_use(item[1]):
                chosen.setdefault(item[3], []).append((position, item))
                projected -= item[2]
            position += 1
        for dir_path, items in chosen.items():
            if stop is not None and stop.is_set():
                stats.interrupted = True
                break
            dir_fd = None if stats.dry_run else _open_scanned_dir(root_fd, root, dir_path, items[0][1][4], stats)
            if dir_fd is None and not stats.dry_run:
                continue
            try:
                for index, (_used, path, size, _dir, _dir_id, name, file_id) in items:
                    if dir_fd is not None:
                        try:
                            if _ident(os.stat(name, dir_fd=dir_fd, follow_symlinks=False)) != file_id:
                                continue  # replaced since the scan
                            os.unlink(name, dir_fd=dir_fd)
                        except FileNotFoundError:
                            total -= size
                            continue
                        except OSError as exc:
                            stats.failures.append({"path": path, "error": exc.strerror or str(exc)})
                            continue
                    total -= size
                    stats.files_evicted += 1
                    stats.bytes_freed += size
                    if record:
                        evicted.append((index, path, size))
            finally:
                if dir_fd is not None:
                    os.close(dir_fd)
    evicted.sort()  # least recently used first, as chosen
    stats.evicted = [{"path": path, "bytes": size} for _index, path, size in evicted]
    stats.bytes_after = total


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < float("inf")):
        raise ValidationError(f"{what} must be a positive number, got {value!r}", details={"field": what})
    return float(value)


def _non_negative_int(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{what} must be a non-negative integer, got {value!r}", details={"field": what})


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
