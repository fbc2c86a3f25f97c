"""Local resources of a render worker: psutil readings and thresholds.

A :class:`ResourceMonitor` reads memory, the disks of ``TEMP_DIR`` and ``CACHE_DIR``,
CPU and process RSS with psutil; warns once per threshold crossing; and refuses work
with :class:`~common.errors.ResourceError` (``ensure_free_disk``, ``ensure_memory``).
The module functions (:func:`disk_usage`, :func:`memory_usage`, :func:`ensure_free_disk`)
serve callers that need one reading: temp files' ``min_free_bytes``, the health checks.
The seeds' ``resource_manager`` (:mod:`common.maintenance`) is a monitor that also
cleans. Every knob is read from ``app_settings`` at call time.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from common.errors import ResourceError, ValidationError
from common.fs import managed_root
from common.log import get_logger

__all__ = [
    "DiskUsage",
    "MemoryUsage",
    "ResourceMonitor",
    "SystemResources",
    "cache_root",
    "disk_usage",
    "ensure_free_disk",
    "memory_usage",
    "non_negative_int",
    "positive_number",
    "temp_root",
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


@dataclass(frozen=True)
class MemoryUsage:
    """Memory of the machine (bytes; percent 0-100)."""

    total: int
    available: int
    percent_used: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return asdict(self)


def _existing(path: Path) -> Path:
    """The nearest existing ancestor of ``path`` (disk usage needs a path that exists)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _settings() -> Any:
    from common.conf import app_settings

    return app_settings


def temp_root() -> Path:
    """The configured temp root (``app_settings.TEMP_DIR``), absolute."""
    return managed_root(_settings().TEMP_DIR)


def cache_root() -> Path:
    """The configured cache directory (``app_settings.CACHE_DIR``), absolute."""
    return managed_root(_settings().CACHE_DIR)


def disk_usage(path: Path | str) -> DiskUsage:
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


def memory_usage() -> MemoryUsage:
    """Memory of the machine now.

    Raises:
        ResourceError: when psutil cannot read it.
    """
    try:
        memory = psutil.virtual_memory()
    except (psutil.Error, OSError) as exc:
        raise ResourceError(f"Could not read memory usage: {exc}", details={"resource": "memory"}) from exc
    return MemoryUsage(total=int(memory.total), available=int(memory.available), percent_used=float(memory.percent))


def ensure_free_disk(bytes_needed: int, *, path: Path | str) -> DiskUsage:
    """Return the disk usage at ``path`` if ``bytes_needed`` are free.

    Raises:
        ValidationError: when ``bytes_needed`` is negative or not an integer.
        ResourceError: when less than ``bytes_needed`` is free.
    """
    non_negative_int(bytes_needed, "bytes_needed")
    usage = disk_usage(path)
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


# --------------------------------------------------------------------------- monitor


class ResourceMonitor:
    """Samples memory, disk, CPU and this process; warns on threshold crossings; refuses work that would not fit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crossed: dict[str, bool] = {}
        self._process: psutil.Process | None = None
        self.last_sample: SystemResources | None = None
        self.samples_taken = 0

    # ---- paths

    @property
    def temp_root(self) -> Path:
        """The temp root whose disk is read (``app_settings.TEMP_DIR``)."""
        return temp_root()

    @property
    def cache_root(self) -> Path:
        """The cache directory (``app_settings.CACHE_DIR``)."""
        return cache_root()

    # ---- readings

    def disk_usage(self, path: Path | str) -> DiskUsage:
        """Usage of the file system holding ``path`` (see :func:`disk_usage`)."""
        return disk_usage(path)

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
        return ensure_free_disk(bytes_needed, path=path if path is not None else self.temp_root)

    def ensure_memory(self, bytes_needed: int | None = None) -> SystemResources:
        """Return a sample if memory allows new work.

        With ``bytes_needed``, at least that much must be available; without it,
        memory use must be below ``MEMORY_THRESHOLD_PERCENT``.

        Raises:
            ValidationError: when ``bytes_needed`` is negative or not an integer.
            ResourceError: when memory is short.
        """
        if bytes_needed is not None:
            non_negative_int(bytes_needed, "bytes_needed")
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

    # ---- one round of monitoring

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


def positive_number(value: Any, what: str) -> float:
    """Return ``value`` as a float if it is a positive, finite number (not a bool).

    Raises:
        ValidationError: naming ``what`` otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < float("inf")):
        raise ValidationError(f"{what} must be a positive number, got {value!r}", details={"field": what})
    return float(value)


def non_negative_int(value: Any, what: str) -> None:
    """Check that ``value`` is a non-negative integer (not a bool).

    Raises:
        ValidationError: naming ``what`` otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{what} must be a non-negative integer, got {value!r}", details={"field": what})
