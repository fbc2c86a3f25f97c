"""Health checks: one small class per service, one runner shared by the HTTP views and ``check_services``.

Each check runs in a worker thread with a timeout, is timed, and is marked
critical or not (``VIDEOGEN_COMMON["HEALTH_CRITICAL_CHECKS"]``). The service is
ready when every critical check passes. No check writes files: the storage
check lists each bucket (Supabase) or checks its folder's permissions (local).
"""

from __future__ import annotations

import functools
import threading
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
from common.errors import ConfigError, ResourceError, ServiceUnavailableError
from common.log import get_logger, redact
from common.masking import mask_url

__all__ = [
    "VERSION",
    "CacheCheck",
    "CheckResult",
    "DatabaseCheck",
    "DiskCheck",
    "HealthCheck",
    "HealthReport",
    "JWKSCheck",
    "MemoryCheck",
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
    """Prove every bucket usable without writing (one bucket listing on Supabase, folder permissions locally).

    On Supabase it proves each bucket exists, is private and is visible to the key, which must be
    the service role's.

    The result is reused for ``HEALTH_STORAGE_CACHE_SECONDS`` (``use_cache=False`` probes every
    time, as ``check_services`` does); while one thread refreshes an expired result, the others
    answer with the previous one instead of piling onto the storage server.
    """

    name = "storage"

    def __init__(
        self,
        *,
        buckets: Sequence[str] | None = None,
        critical: bool | None = None,
        timeout: float | None = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(critical=critical, timeout=timeout)
        self.buckets = tuple(buckets) if buckets is not None else None
        self.use_cache = use_cache

    def check(self) -> dict[str, Any] | None:
        """Probe each group of buckets (one probe per server and key), reusing a fresh cached result."""
        from common.storage.buckets import BUCKETS
        from common.storage.facade import get_bucket_storage

        names = self.buckets if self.buckets is not None else tuple(BUCKETS)
        groups: dict[tuple[str, ...], tuple[Any, list[str]]] = {}
        for bucket in names:
            storage = get_bucket_storage(bucket)
            groups.setdefault(storage.probe_key(), (storage, []))[1].append(bucket)
        ttl = float(app_settings.HEALTH_STORAGE_CACHE_SECONDS) if self.use_cache else 0.0
        details: dict[str, Any] = {
            "buckets": list(names),
            "backend": ", ".join(sorted({type(s).__name__ for s, _ in groups.values()})),
        }
        ages = []
        for key, (storage, buckets) in groups.items():
            extra, age = _probe_cache.get((*key, *buckets), ttl, lambda s=storage, b=buckets: _probe(s, b))
            details.update(extra)
            if age is not None:
                ages.append(age)
        if ages:
            details["cached_age_s"] = round(max(ages), 3)
        return details


def _probe(storage: Any, buckets: list[str]) -> dict[str, Any]:
    try:
        return dict(storage.check_buckets(buckets))
    except ConfigError as exc:  # it already names the buckets and the key problem
        raise ServiceUnavailableError(_describe(exc)) from exc
    except Exception as exc:  # name the buckets; keep the original error as the cause
        label = ", ".join(repr(b) for b in buckets)
        raise ServiceUnavailableError(f"bucket{'s' if len(buckets) > 1 else ''} {label}: {_describe(exc)}") from exc


class _ProbeCache:
    """Results of storage probes for a few seconds; one refresh at a time, others answer with the last result."""

    def __init__(self) -> None:
        self.clock = time.monotonic  # tests replace it to age results
        self._lock = threading.Lock()
        self._refreshing: set[tuple[str, ...]] = set()
        self._results: dict[tuple[str, ...], tuple[float, dict[str, Any] | None, str | None]] = {}

    def get(self, key: tuple[str, ...], ttl: float, probe: Any) -> tuple[dict[str, Any], float | None]:
        """Return (details, age of the cached result or None when probed now); re-raise a cached failure."""
        now = self.clock()
        with self._lock:
            cached = self._results.get(key)
            fresh = cached is not None and now - cached[0] < ttl
            busy = key in self._refreshing
            if not fresh and not (busy and cached is not None and ttl > 0):
                self._refreshing.add(key)
                cached = None
        if cached is not None:
            stamp, details, error = cached
            if error is not None:  # a new exception each time: re-raising one object would grow its traceback
                raise ServiceUnavailableError(f"{error} (checked {now - stamp:.1f} s ago)")
            return dict(details or {}), now - stamp
        try:
            details = probe()
        except BaseException as exc:
            self._store(key, None, str(exc))
            raise
        self._store(key, details, None)
        return details, None

    def _store(self, key: tuple[str, ...], details: dict[str, Any] | None, error: str | None) -> None:
        with self._lock:
            self._refreshing.discard(key)
            self._results[key] = (self.clock(), details, error)
            if len(self._results) > 64:  # settings changed many times (tests): forget the oldest
                del self._results[min(self._results, key=lambda k: self._results[k][0])]

    def clear(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._results.clear()


_probe_cache = _ProbeCache()


class JWKSCheck(HealthCheck):
    """Fetch the Supabase Auth JWKS: reachable, parses, and holds at least one usable signing key.

    Not critical by default: while the JWKS is down, tokens whose keys are cached still verify.
    With no JWKS configured (no ``SUPABASE_URL``, or ``API_JWKS_URL = ""``) it passes and says so.
    The result is reused for ``HEALTH_JWKS_CACHE_SECONDS`` like the storage check's, so a readiness
    probe under load does not call Supabase Auth each time (``use_cache=False``, as ``check_services``
    does, fetches every time).
    """

    name = "jwks"

    def __init__(self, *, critical: bool | None = None, timeout: float | None = None, use_cache: bool = True) -> None:
        super().__init__(critical=critical, timeout=timeout)
        self.use_cache = use_cache

    def check(self) -> dict[str, Any] | None:
        """Fetch the JWKS directly (not through the token cache: this proves the endpoint answers)."""
        from common.api.authentication import token_systems

        url = token_systems().jwks_url
        if url is None:
            return {"configured": False}
        ttl = float(app_settings.HEALTH_JWKS_CACHE_SECONDS) if self.use_cache else 0.0
        details, age = _probe_cache.get(("jwks", url), ttl, lambda: self._fetch(url))
        if age is not None:
            details["cached_age_s"] = round(age, 3)
        return details

    def _fetch(self, url: str) -> dict[str, Any]:
        from common.api.jwks import fetch_jwks

        shown = mask_url(url)
        timeout = min(self.timeout, float(app_settings.API_JWKS_TIMEOUT))
        keyset = fetch_jwks(url, timeout=timeout)
        if not keyset.keys:
            raise ServiceUnavailableError(f"the JWKS at {shown} has no usable signing key ({keyset.skipped} skipped)")
        return {"url": shown, "keys": len(keyset.keys), "algorithms": keyset.algorithms}


class DiskCheck(HealthCheck):
    """The file systems of ``TEMP_DIR`` and ``CACHE_DIR`` used below ``DISK_THRESHOLD_PERCENT``.

    Reuses the resource readings (:func:`common.resources.disk_usage`); its details give each file
    system's usage. Not critical by default: a full disk refuses new work (``ensure_free_disk``),
    the service still answers.
    """

    name = "disk"

    def check(self) -> dict[str, Any] | None:
        """Read both file systems; fail naming each one at or above the threshold."""
        from common import resources

        threshold = float(app_settings.DISK_THRESHOLD_PERCENT)
        details: dict[str, Any] = {"threshold_percent": threshold}
        full = []
        for label, root in (("temp", resources.temp_root()), ("cache", resources.cache_root())):
            usage = resources.disk_usage(root)
            details[label] = usage.to_dict()
            if usage.percent_used >= threshold:
                full.append(f"{label} {usage.path} is {usage.percent_used:.1f}% used")
        if full:
            raise ResourceError(f"{'; '.join(full)} (threshold {threshold:g}%)", details=details)
        return details


class MemoryCheck(HealthCheck):
    """Memory used below ``MEMORY_THRESHOLD_PERCENT`` (:func:`common.resources.memory_usage`).

    Not critical by default: ``ensure_memory`` refuses new work while memory is short.
    """

    name = "memory"

    def check(self) -> dict[str, Any] | None:
        """Read memory; fail when its use is at or above the threshold."""
        from common import resources

        threshold = float(app_settings.MEMORY_THRESHOLD_PERCENT)
        usage = resources.memory_usage()
        details = {**usage.to_dict(), "threshold_percent": threshold}
        if usage.percent_used >= threshold:
            raise ResourceError(f"memory is {usage.percent_used:.1f}% used (threshold {threshold:g}%)", details=details)
        return details


def default_checks() -> list[HealthCheck]:
    """The checks ``/health/ready`` and ``check_services`` run: database, cache, storage, JWKS, disk, memory."""
    return [DatabaseCheck(), CacheCheck(), StorageCheck(), JWKSCheck(), DiskCheck(), MemoryCheck()]


def _describe(exc: BaseException) -> str:
    """The error as ``Type: text`` for a public body: configured secrets and URL credentials redacted."""
    text = str(exc) or type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}")


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
