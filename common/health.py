"""Health checks: one small class per service, one runner shared by the HTTP views and ``check_services``.

Each check runs in a worker thread with a timeout, is timed, and is marked
critical or not (``VIDEOGEN_COMMON["HEALTH_CRITICAL_CHECKS"]``). The service is
ready when every critical check passes. No check writes files: the storage
check lists each bucket (Supabase) or checks its folder's permissions (local).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from common.conf import app_settings
from common.errors import ServiceUnavailableError
from common.log import get_logger

__all__ = [
    "VERSION",
    "CacheCheck",
    "CheckResult",
    "DatabaseCheck",
    "HealthCheck",
    "HealthReport",
    "StorageCheck",
    "arun_checks",
    "default_checks",
    "get_version",
    "liveness",
    "readiness",
    "run_checks",
]

logger = get_logger("common.health")

# The release of this code; importlib.metadata wins when the project is installed as a package.
VERSION = "0.1.0"
_DISTRIBUTION = "videogen-common"


@functools.cache
def get_version() -> str:
    """Return the installed version of the project (package metadata is read once, then cached)."""
    try:
        return package_version(_DISTRIBUTION)
    except PackageNotFoundError:
        return VERSION


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``ok``, ``error`` or ``timeout``, with its latency."""

    name: str
    status: str
    critical: bool
    latency_ms: float
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the check passed."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "critical": self.critical,
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.message:
            data["message"] = self.message
        if self.details:
            data["details"] = self.details
        return data


@dataclass(frozen=True)
class HealthReport:
    """All check results; ``healthy`` when every critical check passed."""

    results: tuple[CheckResult, ...]
    version: str

    @property
    def healthy(self) -> bool:
        """True when no critical check failed."""
        return all(r.ok for r in self.results if r.critical)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON body of ``/health/ready``."""
        return {
            "status": "ok" if self.healthy else "unavailable",
            "version": self.version,
            "checks": {r.name: r.to_dict() for r in self.results},
        }


class HealthCheck:
    """Base class: subclasses set ``name`` and implement :meth:`check`, which raises when unhealthy."""

    name: ClassVar[str] = ""

    def __init__(self, *, critical: bool | None = None, timeout: float | None = None) -> None:
        self._critical = critical
        self._timeout = timeout

    @property
    def critical(self) -> bool:
        """Whether a failure makes the service not ready (default from HEALTH_CRITICAL_CHECKS)."""
        if self._critical is not None:
            return self._critical
        return self.name in tuple(app_settings.HEALTH_CRITICAL_CHECKS)

    @property
    def timeout(self) -> float:
        """Seconds the runner waits for this check (default HEALTH_CHECK_TIMEOUT)."""
        return float(self._timeout if self._timeout is not None else app_settings.HEALTH_CHECK_TIMEOUT)

    def check(self) -> dict[str, Any] | None:
        """Probe the service; return optional details, raise on failure."""
        raise NotImplementedError

    def run(self) -> dict[str, Any] | None:
        """Run :meth:`check` in the calling (worker) thread."""
        return self.check()


class DatabaseCheck(HealthCheck):
    """``SELECT 1`` on a database alias within the check's timeout (getting a connection included).

    Its details show the vendor and, on PostgreSQL, this process's connection pool (``pool``: size,
    connections open / in use / idle, threads waiting, psycopg's own counters); informative only, the
    check fails when no connection comes in time, saying whether the pool is exhausted or the database
    cannot be reached.
    """

    name = "database"

    def __init__(self, *, using: str = "default", critical: bool | None = None, timeout: float | None = None) -> None:
        super().__init__(critical=critical, timeout=timeout)
        self.using = using

    def check(self) -> dict[str, Any] | None:
        """Run the query within 80 % of the timeout.

        The margin lets a failure arrive with its reason before the runner stops waiting (an exhausted
        pool then reads "exhausted", not "timeout").
        """
        from common import db

        db.ping(using=self.using, timeout=self.timeout * 0.8)
        return {"vendor": connections[self.using].vendor}

    def run(self) -> dict[str, Any] | None:
        """Run the check, give this worker thread's connection back, then add the pool's figures."""
        from common import db

        try:
            details = self.check()
        finally:
            connections[self.using].close()
        pool = db.pool_status(using=self.using)
        if details is not None and pool is not None:
            details["pool"] = pool
        return details


class CacheCheck(HealthCheck):
    """Write, read back and delete a short-lived probe key."""

    name = "cache"

    def check(self) -> dict[str, Any] | None:
        """Probe the cache."""
        from django.core.cache import caches

        from common import cache

        cache.ping()
        backend = caches[cache.CACHE_ALIAS]
        return {"backend": type(backend).__name__}


class StorageCheck(HealthCheck):
    """Reach every bucket without writing: a one-entry listing on Supabase, folder permissions locally."""

    name = "storage"

    def __init__(
        self, *, buckets: Sequence[str] | None = None, critical: bool | None = None, timeout: float | None = None
    ) -> None:
        super().__init__(critical=critical, timeout=timeout)
        self.buckets = tuple(buckets) if buckets is not None else None

    def check(self) -> dict[str, Any] | None:
        """Probe each bucket."""
        from common.storage.buckets import BUCKETS
        from common.storage.facade import get_bucket_storage

        names = self.buckets if self.buckets is not None else tuple(BUCKETS)
        backends = set()
        for bucket in names:
            storage = get_bucket_storage(bucket)
            backends.add(type(storage).__name__)
            try:
                storage.ping()
            except Exception as exc:  # name the bucket that failed; keep the original error as the cause
                raise ServiceUnavailableError(f"bucket {bucket!r}: {_describe(exc)}") from exc
        return {"buckets": list(names), "backend": ", ".join(sorted(backends))}


def default_checks() -> list[HealthCheck]:
    """The checks ``/health/ready`` and ``check_services`` run: database, cache, storage."""
    return [DatabaseCheck(), CacheCheck(), StorageCheck()]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def run_checks(checks: Sequence[HealthCheck] | None = None) -> HealthReport:
    """Run ``checks`` (default: :func:`default_checks`) in parallel threads, each with its own timeout."""
    selected = list(checks) if checks is not None else default_checks()
    results: list[CheckResult] = []
    executor = ThreadPoolExecutor(max_workers=max(1, len(selected)), thread_name_prefix="health")
    try:
        started = time.monotonic()  # every check starts now; each has its own deadline from here
        futures = [(check, executor.submit(_timed, check)) for check in selected]
        for check, future in futures:
            remaining = max(0.0, check.timeout - (time.monotonic() - started))
            try:
                status, latency, message, details = future.result(timeout=remaining)
            except FutureTimeout:
                status, latency = "timeout", (time.monotonic() - started) * 1000
                message, details = f"no answer within {check.timeout:g} s", {}
            result = CheckResult(check.name, status, check.critical, latency, message, details or {})
            if not result.ok:
                logger.warning("Health check %s: %s %s", check.name, status, message, extra={"check": result.to_dict()})
            results.append(result)
    finally:
        # A check that timed out keeps its thread; do not wait for it.
        executor.shutdown(wait=False, cancel_futures=True)
    return HealthReport(tuple(results), get_version())


async def arun_checks(checks: Sequence[HealthCheck] | None = None) -> HealthReport:
    """Async twin of :func:`run_checks` (the checks run in worker threads either way)."""
    return await sync_to_async(run_checks, thread_sensitive=False)(checks)


def _timed(check: HealthCheck) -> tuple[str, float, str, dict[str, Any] | None]:
    started = time.monotonic()
    try:
        details = check.run()
    except Exception as exc:  # noqa: BLE001 - a check's failure is its result, whatever it raised
        return "error", (time.monotonic() - started) * 1000, _describe(exc), None
    return "ok", (time.monotonic() - started) * 1000, "", details


@never_cache
@require_GET
def liveness(request: HttpRequest) -> JsonResponse:
    """``GET /health``: the process is up (no I/O); 200 with the version."""
    return JsonResponse({"status": "ok", "version": get_version()})


@never_cache
@require_GET
def readiness(request: HttpRequest) -> JsonResponse:
    """``GET /health/ready``: 200 when every critical check passes, else 503; each check's status and latency."""
    report = run_checks()
    return JsonResponse(report.to_dict(), status=200 if report.healthy else 503)
