"""Removing the objects of finished jobs and orphans (``manage.py cleanup_job_files``).

The convention: every object of a job lives under ``<job_id>/`` in each bucket (``<job_id>/song.mp3``,
``<job_id>/clip_3.mp4``, ``<job_id>/final.mp4``). A top-level folder is therefore a job id, and

* the objects of a job that finished (completed, failed or cancelled) longer ago than the bucket's
  retention (``STORAGE_RETENTION_DAYS``, final videos kept longest; ``None`` keeps them forever) are removed;
* a top-level folder (or a file at the bucket root) whose name is not the id of an existing job is an
  orphan: a dead worker's uploads, a job deleted from the database. It is removed once its newest
  object is older than ``STORAGE_ORPHAN_GRACE_HOURS``, so an upload made just before its job row
  is committed is never taken for one;
* a live job (queued or processing) is never touched, whatever its age.

Job state is read, never written. Right before deleting, each folder's job is read again, and only
the objects listed at planning time are deleted (never a whole prefix), so a job that came back to
life or an object uploaded meanwhile survives.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from common.conf import app_settings
from common.errors import ConfigError, PipelineError
from common.log import get_logger
from common.storage.buckets import BUCKETS

__all__ = ["CleanupAction", "apply_cleanup", "plan_cleanup", "retention_days"]

logger = get_logger("common.storage")
_ID_BATCH = 500  # ids per query (SQLite allows 999 parameters)


@dataclass
class CleanupAction:
    """The objects of one top-level folder of one bucket that are to be removed, and why."""

    bucket: str
    folder: str  # the job id (or other top-level name); "" for files at the bucket root
    reason: str  # "expired" (a finished job past retention) or "orphan" (no such job)
    objects: list[str]
    job_status: str | None = None
    finished_at: datetime | None = None
    newest_object: datetime | None = None
    deleted: int = 0
    skipped: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (datetimes as ISO 8601)."""
        data = asdict(self)
        for key in ("finished_at", "newest_object"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass
class BucketPlan:
    """What planning found in one bucket: the actions, the folders kept, and an error when listing failed."""

    bucket: str
    actions: list[CleanupAction] = field(default_factory=list)
    kept_live: int = 0
    kept_recent: int = 0
    error: str | None = None


def retention_days(bucket: str) -> float | None:
    """Days a finished job's objects stay in ``bucket`` (``STORAGE_RETENTION_DAYS``); None keeps them forever.

    Raises:
        ConfigError: for a value that is not a non-negative number or None.
    """
    table = app_settings.STORAGE_RETENTION_DAYS or {}
    value = table.get(bucket) if isinstance(table, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ConfigError(
            f"VIDEOGEN_COMMON['STORAGE_RETENTION_DAYS'][{bucket!r}] must be a number of days (0 or more) or None, "
            f"not {value!r}."
        )
    return float(value)


def _orphan_grace() -> timedelta:
    hours = app_settings.STORAGE_ORPHAN_GRACE_HOURS
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 <= hours < float("inf"):
        raise ConfigError(f"VIDEOGEN_COMMON['STORAGE_ORPHAN_GRACE_HOURS'] must be 0 or more hours, not {hours!r}.")
    return timedelta(hours=hours)


def _job_id(folder: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(folder)
    except ValueError:
        return None


def _jobs(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[str, datetime]]:
    """``{job id: (status, finished or last updated)}`` for the ids that are jobs (read-only)."""
    from common.models import Job

    wanted = list(ids)
    found: dict[uuid.UUID, tuple[str, datetime]] = {}
    for start in range(0, len(wanted), _ID_BATCH):
        rows = Job.objects.filter(id__in=wanted[start : start + _ID_BATCH]).values_list(
            "id", "status", "completed_at", "updated_at"
        )
        for job_id, status, completed_at, updated_at in rows:
            found[job_id] = (status, completed_at or updated_at)
    return found


def _plan_bucket(bucket: str, now: datetime) -> BucketPlan:
    from common.models import FINISHED_JOB_STATUSES
    from common.storage.facade import get_bucket_storage

    plan = BucketPlan(bucket)
    days = retention_days(bucket)
    grace = _orphan_grace()
    folders: dict[str, list[Any]] = {}
    for entry in get_bucket_storage(bucket).list_entries("", recursive=True):
        head, _, rest = entry.name.partition("/")
        folders.setdefault(head if rest else "", []).append(entry)
    jobs = _jobs(i for i in map(_job_id, folders) if i is not None)
    finished = {str(s) for s in FINISHED_JOB_STATUSES}
    for folder, entries in sorted(folders.items()):
        names = [e.name for e in entries]
        newest = max((e.updated for e in entries if e.updated is not None), default=None)
        job_id = _job_id(folder)
        job = jobs.get(job_id) if job_id is not None else None
        if job is None:
            if newest is not None and now - newest < grace:
                plan.kept_recent += 1
                continue
            plan.actions.append(CleanupAction(bucket, folder, "orphan", names, newest_object=newest))
        elif job[0] not in finished:
            plan.kept_live += 1
        elif days is not None and now - job[1] >= timedelta(days=days):
            plan.actions.append(CleanupAction(bucket, folder, "expired", names, job[0], job[1], newest))
        else:
            plan.kept_recent += 1
    return plan


def plan_cleanup(*, buckets: Iterable[str] | None = None, now: datetime | None = None) -> list[BucketPlan]:
    """List, for each bucket, the folders whose objects are due for removal (nothing is deleted).

    A bucket that cannot be listed gets ``error`` set; the others are still planned.
    """
    moment = now or timezone.now()
    plans = []
    for bucket in buckets if buckets is not None else BUCKETS:
        try:
            plans.append(_plan_bucket(bucket, moment))
        except PipelineError as exc:
            logger.error("Cannot plan the cleanup of bucket %s: %s", bucket, exc, extra={"bucket": bucket})
            plans.append(BucketPlan(bucket, error=f"{exc.code}: {exc.message}"))
    return plans


def apply_cleanup(plans: list[BucketPlan]) -> list[BucketPlan]:
    """Delete the objects of every planned action, re-reading each folder's job first; return ``plans`` updated."""
    from common.models import FINISHED_JOB_STATUSES
    from common.storage.facade import get_bucket_storage

    finished = {str(s) for s in FINISHED_JOB_STATUSES}
    for plan in plans:
        if not plan.actions:
            continue
        storage = get_bucket_storage(plan.bucket)
        current = _jobs(i for i in (_job_id(a.folder) for a in plan.actions) if i is not None)
        for action in plan.actions:
            job_id = _job_id(action.folder)
            job = current.get(job_id) if job_id is not None else None
            if action.reason == "orphan" and job is not None:
                action.skipped = "a job with this id exists now"
                continue
            if action.reason == "expired" and (job is None or job[0] not in finished):
                action.skipped = "the job is no longer finished" if job is not None else "the job is gone"
                continue
            try:
                storage.delete_objects(action.objects)
            except (PipelineError, OSError) as exc:
                action.error = str(exc)
                logger.error(
                    "Could not remove %d objects under %s/%s/: %s",
                    len(action.objects),
                    plan.bucket,
                    action.folder,
                    exc,
                    extra={"bucket": plan.bucket, "folder": action.folder},
                )
                continue
            action.deleted = len(action.objects)
            logger.info(
                "Removed %d objects under %s/%s/ (%s)",
                action.deleted,
                plan.bucket,
                action.folder,
                action.reason,
                extra={"bucket": plan.bucket, "folder": action.folder, "reason": action.reason},
            )
    return plans
