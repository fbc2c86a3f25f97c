"""The app's own knobs: ``VIDEOGEN_COMMON`` over :data:`DEFAULTS`, read at call time.

:data:`app_settings` exposes the ``VIDEOGEN_COMMON`` dict from Django's settings
merged over :data:`DEFAULTS`, read at call time so that ``override_settings``
works (the DRF ``api_settings`` pattern).

The environment (and ``.env``) is parsed in :mod:`common.env`. Its public names are
re-exported here unchanged (``from common.conf import load_env_settings``,
``get_settings``, ``settings``...), since the seeds' ``shared.config`` and the pipeline
modules' settings import them from this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.core.signals import setting_changed

from common import env
from common.env import *  # noqa: F403 - the environment's public API, re-exported unchanged (see above)
from common.env import DEFAULT_SQLITE_PATH

# The app settings, then every public name of common.env (tests/test_conf.py checks they are the same objects).
__all__ = ["DEFAULTS", "AppSettings", "app_settings", *env.__all__]


# --------------------------------------------------------------------------- app settings

DEFAULTS: dict[str, Any] = {
    # Money
    "DEFAULT_JOB_BUDGET": Decimal("20.00"),
    "BUDGET_WARNING_THRESHOLDS": (Decimal("0.80"),),
    "RESERVATION_TTL_SECONDS": 15 * 60,
    # PostgreSQL: run the enforced-charge statement as a prepared statement (bench/costs.py prints the gain).
    # Turn off behind a pooler that cannot keep prepared statements (pgbouncer < 1.21 in transaction mode).
    "COST_PREPARED_STATEMENTS": True,
    # Price table: api name -> {"unit": ..., "price": Decimal}; filled by the cost tracker's defaults.
    "API_PRICES": {},
    # Pipeline stages in order, and fallback durations (seconds) when there is no history.
    "PIPELINE_STAGES": (
        "audio_analysis",
        "scene_planning",
        "reference_generation",
        "prompt_generation",
        "video_generation",
        "composition",
    ),
    "DEFAULT_STAGE_SECONDS": 60,
    "ESTIMATE_HISTORY_JOBS": 50,
    # How long a process keeps the per-stage medians the transitions' estimate uses (common.selectors.estimates);
    # its own completions are folded in at once, other processes' are seen within this. 0: query every time.
    "ESTIMATE_CACHE_SECONDS": 30,
    # Workers (common.services.leases): a stage's lease, renewed by its heartbeat every third of it; a queued
    # job nothing has touched for JOB_QUEUED_STALE_SECONDS is reported (and requeued) by recover_jobs.
    "JOB_LEASE_SECONDS": 60,
    "JOB_QUEUED_STALE_SECONDS": 3600,
    # Local disk
    # Inside this checkout's var/ (beside the SQLite file), so two checkouts never clean each other's files
    "TEMP_DIR": DEFAULT_SQLITE_PATH.parent / "tmp",
    "CACHE_DIR": DEFAULT_SQLITE_PATH.parent / "cache",
    "CACHE_DIR_MAX_BYTES": 5 * 1024**3,
    "TEMP_MAX_AGE_HOURS": 24,
    "MEMORY_THRESHOLD_PERCENT": 85.0,
    "DISK_THRESHOLD_PERCENT": 90.0,
    # Resources (common.resources): sampling period, cleanup period, and how far below a threshold
    # a reading must drop before a new crossing is warned about again
    "RESOURCE_MONITOR_INTERVAL_SECONDS": 60.0,
    "TEMP_CLEANUP_INTERVAL_HOURS": 6.0,
    "RESOURCE_THRESHOLD_HYSTERESIS_PERCENT": 2.0,
    # Services
    "CACHE_SOCKET_TIMEOUT": 0.5,
    "HEALTH_CHECK_TIMEOUT": 3.0,
    "SIGNED_URL_EXPIRES_IN": 3600,
    # Storage (common.storage): HTTP timeout for Supabase, retries of transient failures
    "STORAGE_TIMEOUT": 20.0,
    "STORAGE_RETRY_ATTEMPTS": 3,
    "STORAGE_RETRY_BASE_DELAY": 0.5,
    # Uploads above this many bytes go through Supabase's resumable (TUS) endpoint in chunks of
    # STORAGE_CHUNK_SIZE bytes (Supabase wants exactly 6 MiB chunks); smaller ones are one request.
    "STORAGE_RESUMABLE_THRESHOLD": 6 * 1024 * 1024,
    "STORAGE_CHUNK_SIZE": 6 * 1024 * 1024,
    # manage.py cleanup_job_files: days a finished job's objects are kept, per bucket (None: forever),
    # and how old objects under a folder that is no job must be before they are removed as orphans.
    "STORAGE_RETENTION_DAYS": {"audio-uploads": 7, "reference-images": 7, "video-clips": 7, "video-outputs": 30},
    "STORAGE_ORPHAN_GRACE_HOURS": 24,
    # Database helpers (common.db): retries of lost connections
    "DB_RETRY_ATTEMPTS": 3,
    "DB_RETRY_BASE_DELAY": 0.5,
    # A wait for a pooled connection this long (seconds) or longer logs a WARNING; None turns it off
    "DB_POOL_WAIT_WARNING_SECONDS": 1.0,
    # Health (common.health): names of the checks whose failure makes /health/ready answer 503
    "HEALTH_CRITICAL_CHECKS": ("database", "storage"),
    # Seconds /health/ready reuses the storage check's last result (0: probe every time)
    "HEALTH_STORAGE_CACHE_SECONDS": 5.0,
    # Seconds /health/ready reuses the JWKS check's last result (0: fetch every time)
    "HEALTH_JWKS_CACHE_SECONDS": 5.0,
    # REST API (common.api): bearer-token checks and per-user rate limit
    "API_JWT_LEEWAY_SECONDS": 10,
    "API_JWT_ISSUER": None,  # e.g. "https://<project>.supabase.co/auth/v1" to also require that "iss"
    # Supabase signing keys (common.api.jwks): None derives <SUPABASE_URL>/auth/v1/.well-known/jwks.json,
    # "" switches the JWKS off; keys are cached for CACHE_SECONDS, fetches are MIN_REFRESH_SECONDS apart
    "API_JWKS_URL": None,
    "API_JWKS_TIMEOUT": 2.0,
    "API_JWKS_CACHE_SECONDS": 600,
    "API_JWKS_MIN_REFRESH_SECONDS": 10,
    "API_THROTTLE_RATE": "600/min",  # per caller; None turns throttling off
}


class AppSettings:
    """The ``VIDEOGEN_COMMON`` namespace of Django settings over :data:`DEFAULTS`, read at call time.

    Unknown keys raise ``ImproperlyConfigured`` (DRF's habit), so a typo is
    never silently ignored. The merged dict is cached and dropped whenever
    ``VIDEOGEN_COMMON`` changes (``override_settings`` sends ``setting_changed``).
    """

    setting_name = "VIDEOGEN_COMMON"

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._merged: dict[str, Any] | None = None

    def user_settings(self) -> dict[str, Any]:
        """Return the raw ``VIDEOGEN_COMMON`` dict from Django settings."""
        from django.conf import settings as django_settings

        value = getattr(django_settings, self.setting_name, {})
        return dict(value or {})

    def unknown_keys(self) -> list[str]:
        """Return keys of ``VIDEOGEN_COMMON`` that are not known settings."""
        return sorted(set(self.user_settings()) - set(self.defaults))

    def _load(self) -> dict[str, Any]:
        if self._merged is None:
            from django.core.exceptions import ImproperlyConfigured

            unknown = self.unknown_keys()
            if unknown:
                raise ImproperlyConfigured(
                    f"{self.setting_name} has unknown keys: {', '.join(unknown)}. "
                    f"Known keys: {', '.join(sorted(self.defaults))}."
                )
            self._merged = {**self.defaults, **self.user_settings()}
        return self._merged

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Invalid {self.setting_name} setting: {name!r}")
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.defaults)

    def reload(self) -> None:
        """Drop the cached values (called on ``setting_changed``)."""
        self._merged = None


app_settings = AppSettings(DEFAULTS)


def _reload_app_settings(*, setting: str, **kwargs: Any) -> None:
    """Drop cached app settings when ``VIDEOGEN_COMMON`` changes (as DRF does for its settings)."""
    if setting == AppSettings.setting_name:
        app_settings.reload()


setting_changed.connect(_reload_app_settings, dispatch_uid="common.conf.app_settings")
