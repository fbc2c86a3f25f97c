"""Recovery of jobs whose worker is gone: requeue them or fail them with ``WORKER_LOST``.

A job is *stale* (see :func:`common.selectors.jobs_stale`) when it is processing and its lease
expired (no stage holds a live lease and the job row has not changed for ``JOB_LEASE_SECONDS``),
or when it is queued and nothing has touched it for ``JOB_QUEUED_STALE_SECONDS`` (a worker took it
off the queue and died before starting it, or the queue lost it).

Both actions lock the job row and then its stages, and decide again under those locks, so a worker
that renews its lease or takes the stage over at the same moment is never undercut: either the
recovery sees the live lease and skips the job (``ValidationError`` code ``JOB_NOT_STALE``), or the
worker's next heartbeat finds the stage gone (``LeaseLostError``). Both release the job's holds.
``manage.py recover_jobs`` and the admin's actions call these functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from common.db import boundary
from common.errors import ValidationError, WorkerLostError
from common.log import get_logger
from common.models import HoldStatus, Job, JobCostHold, JobStage, JobStatus, StageStatus
from common.selectors import StaleJob, job_estimate_remaining, job_get, jobs_stale, jobs_stale_report
from common.selectors.costs import hold_cutoff
from common.services.holds import holds_expire, job_holds_release
from common.services.jobs import job_fail

__all__ = [
    "JOB_NOT_STALE",
    "RecoveryReport",
    "ajob_fail_worker_lost",
    "ajob_requeue",
    "arecover_jobs",
    "job_fail_worker_lost",
    "job_requeue",
    "job_requeued",
    "recover_jobs",
]

JOB_NOT_STALE = "JOB_NOT_STALE"
REQUEUE = "requeue"
FAIL = "fail"

# Sent after the transaction commits when a job was requeued; receivers get ``job``. Connect one that
# pushes the job back onto your task queue when the queue itself does not redeliver (a plain Redis list).
job_requeued = Signal()

logger = get_logger(__name__)


def _lock_stale(job_id: UUID | str) -> tuple[Job, list[JobStage]]:
    """Lock the job, then its stages, and check (under those locks) that it is still stale."""
    job = job_get(job_id=job_id, for_update=True)
    stages = list(JobStage.objects.select_for_update().filter(job=job).order_by("stage_name"))
    if not jobs_stale().filter(id=job.id).exists():
        raise ValidationError(
            f"job {job.id} is not stale (it is {job.status}"
            + (", with a live lease" if job.status == JobStatus.PROCESSING else "")
            + "): recovery leaves it alone",
            job_id=job.id,
            code=JOB_NOT_STALE,
            details={"status": job.status},
        )
    return job, stages


def _give_back_holds(job_id: UUID) -> int:
    """Expire the job's holds past their TTL, then release the rest (inside the caller's transaction)."""
    holds_expire(job_id=job_id)
    return job_holds_release(job_id=job_id)


@boundary
def job_requeue(*, job_id: UUID | str) -> Job:
    """Return a stale job to the queue: running stages back to pending, the job queued, its holds released.

    The stage keeps its attempts; the next ``stage_start`` starts it afresh. ``job_requeued`` is sent
    after commit, and the job counts as stale again if nobody starts it within ``JOB_QUEUED_STALE_SECONDS``.

    Raises:
        ValidationError: code ``JOB_NOT_STALE`` when the job is not stale (finished, or its worker is alive),
            ``JOB_NOT_FOUND`` / ``INVALID_JOB_ID`` for an unknown or malformed id.
    """
    with transaction.atomic():
        job, stages = _lock_stale(job_id)
        stamp = timezone.now()
        returned = []
        for stage in stages:
            if stage.status != StageStatus.PROCESSING:
                continue
            stage.status = StageStatus.PENDING
            stage.metadata = {
                **(stage.metadata or {}),
                "recovery": {"action": REQUEUE, "at": stamp.isoformat(), "lease_owner": stage.lease_owner},
            }
            stage.lease_expires_at = None
            stage.save(update_fields=["status", "metadata", "lease_expires_at"])
            returned.append(stage.stage_name)
        was = job.status
        job.status = JobStatus.QUEUED
        job.estimated_remaining = job_estimate_remaining(job_id=job.id)
        job.save(update_fields=["status", "estimated_remaining", "updated_at"])
        released = _give_back_holds(job.id)
        transaction.on_commit(lambda: job_requeued.send(sender=Job, job=job))
    logger.warning(
        "job requeued by recovery (was %s; stages %s back to pending; %d hold(s) released)",
        was,
        ", ".join(returned) or "none",
        released,
        extra={"job_id": str(job.id), "event": "job_requeued", "stages": returned, "holds_released": released},
    )
    return job


@boundary
def job_fail_worker_lost(*, job_id: UUID | str) -> Job:
    """Fail a stale job with code ``WORKER_LOST`` (its running stages fail too) and release its holds.

    Raises:
        ValidationError: code ``JOB_NOT_STALE`` when the job is not stale, ``JOB_NOT_FOUND`` /
            ``INVALID_JOB_ID`` for an unknown or malformed id.
    """
    with transaction.atomic():
        job, stages = _lock_stale(job_id)
        owners = sorted({s.lease_owner for s in stages if s.status == StageStatus.PROCESSING and s.lease_owner})
        what = "stopped renewing its lease" if job.status == JobStatus.PROCESSING else "never started it"
        error = WorkerLostError(
            f"The worker running job {job.id} {what}"
            + (f" (last owner {', '.join(owners)})" if owners else "")
            + "; failed by recovery.",
            job_id=job.id,
            details={"status": job.status, "lease_owners": owners},
        )
        job = job_fail(job_id=job.id, error=error)
        _give_back_holds(job.id)
    return job


@dataclasses.dataclass
class RecoveryReport:
    """What a recovery run found and did."""

    action: str | None
    dry_run: bool
    holds_expired: int  # in a dry run: how many would expire
    stale: list[StaleJob]
    done: list[UUID] = dataclasses.field(default_factory=list)
    skipped: dict[UUID, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "holds_expired": self.holds_expired,
            "stale": [job.to_dict() for job in self.stale],
            "done": [str(job_id) for job_id in self.done],
            "skipped": {str(job_id): reason for job_id, reason in self.skipped.items()},
        }


def _expirable_holds() -> int:
    """How many holds a sweep would close now (active, past their term)."""
    return JobCostHold.objects.filter(status=HoldStatus.ACTIVE, created_at__lte=hold_cutoff()).count()


@boundary
def recover_jobs(
    *,
    action: str | None = None,
    dry_run: bool = False,
    job_ids: Iterable[UUID | str] | None = None,
) -> RecoveryReport:
    """Sweep expired holds, list the stale jobs, and (``action`` ``"requeue"`` or ``"fail"``) recover each.

    With ``dry_run`` nothing changes: the report says how many holds would expire and which jobs
    would be recovered. A job that stopped being stale between the listing and its turn is skipped,
    with the reason.

    Raises:
        ValidationError: an unknown action or a malformed job id.
    """
    if action not in (None, REQUEUE, FAIL):
        raise ValidationError(f"action must be {REQUEUE!r}, {FAIL!r} or None, got {action!r}")
    holds = _expirable_holds() if dry_run else holds_expire()
    report = RecoveryReport(
        action=action, dry_run=dry_run, holds_expired=holds, stale=jobs_stale_report(job_ids=job_ids)
    )
    if action is None or dry_run:
        return report
    recover = job_requeue if action == REQUEUE else job_fail_worker_lost
    for stale in report.stale:
        try:
            recover(job_id=stale.job_id)
        except ValidationError as exc:
            report.skipped[stale.job_id] = exc.message
        else:
            report.done.append(stale.job_id)
    return report


@boundary
async def ajob_requeue(*, job_id: UUID | str) -> Job:
    """Async twin of :func:`job_requeue`."""
    return await sync_to_async(job_requeue)(job_id=job_id)


@boundary
async def ajob_fail_worker_lost(*, job_id: UUID | str) -> Job:
    """Async twin of :func:`job_fail_worker_lost`."""
    return await sync_to_async(job_fail_worker_lost)(job_id=job_id)


@boundary
async def arecover_jobs(
    *,
    action: str | None = None,
    dry_run: bool = False,
    job_ids: Iterable[UUID | str] | None = None,
) -> RecoveryReport:
    """Async twin of :func:`recover_jobs`."""
    return await sync_to_async(recover_jobs)(action=action, dry_run=dry_run, job_ids=job_ids)
