"""Stage transitions: start (or take over) a stage under a lease, complete it, fail it.

Each function locks the job row, then the stage's, as the job transitions do (:mod:`common.services.jobs`,
which re-exports these): on PostgreSQL in one round trip (:mod:`._pg_transitions`), elsewhere in one
``transaction.atomic`` block of ORM statements; both refuse the same transitions with the same errors. A started stage
is leased to its worker for ``JOB_LEASE_SECONDS``; its heartbeat and the lease context managers
are in :mod:`common.services.leases`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from common.db import async_twin, boundary
from common.errors import PipelineError, ValidationError
from common.ids import parse_job_id
from common.log import get_logger
from common.models import MAX_ATTEMPTS, Job, JobStage, JobStatus, StageStatus
from common.selectors.estimates import stage_median_record
from common.selectors.jobs import job_lease_duration, job_not_found
from common.services import _pg_transitions as pg
from common.services._lifecycle import (
    STAGE_UPDATE_FIELDS,
    check_stage_name,
    clean_metadata,
    error_record,
    estimate,
    expected_seconds,
    finish_stage,
    illegal,
    lock_job,
    require_active,
    save_job,
)

__all__ = [
    "TOO_MANY_ATTEMPTS",
    "astage_complete",
    "astage_fail",
    "astage_start",
    "check_lease_owner",
    "default_lease_owner",
    "stage_complete",
    "stage_fail",
    "stage_start",
]

TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"

logger = get_logger("common.services.jobs")  # the lifecycle's one logger: stage events sit beside job events


def default_lease_owner() -> str:
    """The lease owner of this process when none is given: ``<host>:<pid>`` (a new one after a fork)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def check_lease_owner(owner: str | None) -> str:
    """Return ``owner`` (or :func:`default_lease_owner`) after checking it is 1-128 printable characters.

    Raises:
        ValidationError: the owner is not such a string.
    """
    if owner is None:
        return default_lease_owner()
    if not isinstance(owner, str) or not owner.strip() or len(owner) > 128 or not owner.isprintable():
        raise ValidationError(
            f"lease owner must be 1-128 printable characters, got {owner!r:.80}", details={"field": "owner"}
        )
    return owner


def _take_over(job: Job, stage: JobStage, now: datetime, lease: timedelta) -> str | None:
    """Check a processing stage may be taken over (its lease has expired); return the owner it had."""
    expires = stage.lease_expires_at or ((stage.started_at or now) + lease)  # rows from before leases
    if expires > now:
        raise illegal(
            job,
            f"cannot start stage {stage.stage_name!r}: it is already processing"
            f" (leased to {stage.lease_owner} until {expires.isoformat()})",
            stage=stage.stage_name,
            reason="lease_held",
            lease_owner=stage.lease_owner,
            lease_expires_at=expires.isoformat(),
        )
    return stage.lease_owner


@boundary
def stage_start(
    *, job_id: UUID | str, stage_name: str, metadata: dict[str, Any] | None = None, owner: str | None = None
) -> JobStage:
    """Start (or retry) a stage: it becomes processing, its attempt count goes up, the job becomes processing.

    The stage is leased to ``owner`` (default :func:`default_lease_owner`) for ``JOB_LEASE_SECONDS``;
    keep it with a heartbeat (:mod:`common.services.leases`). A stage still processing whose lease
    has expired is taken over: the new owner gets it and ``attempts`` goes up (the worker that lost it
    is told so at its next heartbeat).

    Raises:
        ValidationError: for an unknown stage, a bad owner, a finished job, a completed stage, a
            stage processing under a lease that has not expired (``details["reason"] == "lease_held"``),
            metadata that is not plain JSON, or a stage started ``MAX_ATTEMPTS`` times already
            (code ``TOO_MANY_ATTEMPTS``).
    """
    check_stage_name(stage_name)
    cleaned = clean_metadata(metadata, job_id)
    lease_owner = check_lease_owner(owner)
    lease = job_lease_duration()
    start = _start_pg if pg.enabled() else _start_orm
    stage, job, previous_owner = start(job_id, stage_name, cleaned, lease_owner, lease)
    taken_over = previous_owner is not _NOT_TAKEN
    stage.job = job
    extra = {"job_id": str(job.id), "stage": stage_name, "attempt": stage.attempts, "lease_owner": lease_owner}
    if taken_over:
        logger.warning(
            "stage taken over from %s (its lease expired)",
            previous_owner,
            extra={**extra, "event": "stage_taken_over", "previous_owner": previous_owner},
        )
    else:
        logger.info("stage started", extra=extra)
    return stage


astage_start = async_twin(stage_start)

_NOT_TAKEN: Any = object()  # the previous owner of a stage that was not taken over


def _start_orm(
    job_id: UUID | str, stage_name: str, cleaned: dict[str, Any], lease_owner: str, lease: timedelta
) -> tuple[JobStage, Job, Any]:
    """``stage_start`` with the ORM: lock the job, then the stage, check, save both."""
    with transaction.atomic():
        job = lock_job(job_id)
        require_active(job, f"start stage {stage_name!r}")
        stage, _ = JobStage.objects.select_for_update().get_or_create(job=job, stage_name=stage_name)
        now = timezone.now()
        previous_owner = _NOT_TAKEN
        if stage.status == StageStatus.PROCESSING:
            previous_owner = _take_over(job, stage, now, lease)
        elif stage.status == StageStatus.COMPLETED:
            raise illegal(job, f"cannot start stage {stage_name!r}: it is already {stage.status}", stage=stage_name)
        _check_attempts(job, stage)
        stage.status = StageStatus.PROCESSING
        stage.started_at = now
        stage.completed_at = None
        stage.duration_seconds = None
        stage.attempts += 1
        stage.lease_owner = lease_owner
        stage.lease_expires_at = now + lease
        if cleaned:
            stage.metadata = {**(stage.metadata or {}), **cleaned}
        stage.save(update_fields=[*STAGE_UPDATE_FIELDS, "lease_owner", "lease_expires_at"])
        job.status = JobStatus.PROCESSING
        job.current_stage = stage_name
        job.estimated_remaining = estimate(job)
        save_job(job, "status", "current_stage", "estimated_remaining")
    return stage, job, previous_owner


def _start_pg(
    job_id: UUID | str, stage_name: str, cleaned: dict[str, Any], lease_owner: str, lease: timedelta
) -> tuple[JobStage, Job, Any]:
    """``stage_start`` in one round trip (:func:`._pg_transitions.stage_start`); a refusal raises as the ORM's does."""
    pk, now = parse_job_id(job_id), timezone.now()
    result = pg.stage_start(
        job_id=pk,
        stage_name=stage_name,
        now=now,
        lease=lease,
        owner=lease_owner,
        metadata=cleaned,
        max_attempts=MAX_ATTEMPTS,
        expected=expected_seconds(),
    )
    if result.stage is None or result.job is None:
        if result.job_status is None:
            raise job_not_found(pk)
        job = Job(id=pk, status=result.job_status)
        require_active(job, f"start stage {stage_name!r}")
        before = JobStage(
            job_id=pk,
            stage_name=stage_name,
            status=result.old_status,
            attempts=result.old_attempts,
            lease_owner=result.old_owner,
            lease_expires_at=result.old_expires,
            started_at=result.old_started,
        )
        if before.status == StageStatus.PROCESSING:
            _take_over(job, before, now, lease)
        elif before.status == StageStatus.COMPLETED:
            raise illegal(job, f"cannot start stage {stage_name!r}: it is already {before.status}", stage=stage_name)
        _check_attempts(job, before)
        raise RuntimeError(f"job {pk}: stage_start of {stage_name!r} was not applied and no rule refused it")
    taken = result.old_owner if result.old_status == StageStatus.PROCESSING else _NOT_TAKEN
    return result.stage, result.job, taken


def _check_attempts(job: Job, stage: JobStage) -> None:
    """Refuse one more start of a stage whose attempt count is at the column's limit."""
    if stage.attempts >= MAX_ATTEMPTS:
        raise ValidationError(
            f"job {job.id}: stage {stage.stage_name!r} was started {stage.attempts} times; attempts cannot"
            f" go past {MAX_ATTEMPTS}",
            job_id=job.id,
            code=TOO_MANY_ATTEMPTS,
            details={"stage": stage.stage_name, "attempts": stage.attempts},
        )


def _running_stage(job: Job, stage_name: str, action: str) -> JobStage:
    check_stage_name(stage_name)
    if job.status != JobStatus.PROCESSING:
        raise illegal(job, f"cannot {action} stage {stage_name!r}: the job is {job.status}", stage=stage_name)
    stage = JobStage.objects.select_for_update().filter(job=job, stage_name=stage_name).first()
    if stage is None:
        raise illegal(job, f"cannot {action} stage {stage_name!r}: it was never started", stage=stage_name)
    if stage.status != StageStatus.PROCESSING:
        raise illegal(
            job, f"cannot {action} stage {stage_name!r}: it is {stage.status}, not processing", stage=stage_name
        )
    return stage


LostLease = Callable[[UUID], Exception]  # the error for a stage no longer held by the caller's lease


def _end_stage(
    job_id: UUID | str,
    stage_name: str,
    action: str,
    status: str,
    metadata: dict[str, Any] | None,
    *,
    owner: str | None = None,
    lost: LostLease | None = None,
) -> JobStage:
    """Finish a processing stage with ``status`` and refresh the job's estimate, under the job's row lock.

    With ``owner``, only while that owner holds the stage's lease (else ``lost(job_id)`` is raised). A
    completion is folded into this process's cached medians once it commits.
    """
    if lost is None:  # a leased call names a lost lease before a bad stage name, as it always did
        check_stage_name(stage_name)
    since = time.monotonic()
    if pg.enabled():
        stage = _end_pg(parse_job_id(job_id), stage_name, action, status, metadata, owner, lost)
    else:
        with transaction.atomic():
            job = lock_job(job_id)
            if owner is not None and lost is not None and not _held(job, stage_name, owner):
                raise lost(job.id)
            stage = _running_stage(job, stage_name, action)
            finish_stage(job, stage, status=status, now=timezone.now(), metadata=metadata)
            job.estimated_remaining = estimate(job)
            save_job(job, "estimated_remaining")
        stage.job = job
    if status == StageStatus.COMPLETED:
        seconds = stage.duration_seconds
        transaction.on_commit(lambda: stage_median_record(stage_name=stage_name, seconds=seconds, since=since))
    return stage


def _held(job: Job, stage_name: str, owner: str) -> bool:
    """Lock the stage and tell whether it is processing under ``owner``'s lease."""
    held = JobStage.objects.select_for_update().filter(
        job=job, stage_name=stage_name, status=StageStatus.PROCESSING, lease_owner=owner
    )
    return held.exists()


def _end_pg(
    pk: UUID,
    stage_name: str,
    action: str,
    status: str,
    metadata: dict[str, Any] | None,
    owner: str | None,
    lost: LostLease | None,
) -> JobStage:
    """``_end_stage`` in one round trip (:func:`._pg_transitions.stage_end`); a refusal raises as the ORM's does."""
    result = pg.stage_end(
        job_id=pk,
        stage_name=stage_name,
        status=status,
        now=timezone.now(),
        metadata=metadata,
        owner=owner if lost is not None else None,
        expected=expected_seconds(),
    )
    if result.stage is None or result.job is None:
        if result.job_status is None:
            raise job_not_found(pk)
        if lost is not None and not (result.old_status == StageStatus.PROCESSING and result.old_owner == owner):
            raise lost(pk)
        job = Job(id=pk, status=result.job_status)
        if job.status != JobStatus.PROCESSING:
            raise illegal(job, f"cannot {action} stage {stage_name!r}: the job is {job.status}", stage=stage_name)
        if result.old_status is None:
            raise illegal(job, f"cannot {action} stage {stage_name!r}: it was never started", stage=stage_name)
        raise illegal(
            job, f"cannot {action} stage {stage_name!r}: it is {result.old_status}, not processing", stage=stage_name
        )
    result.stage.job = result.job
    return result.stage


@boundary
def stage_complete(*, job_id: UUID | str, stage_name: str, metadata: dict[str, Any] | None = None) -> JobStage:
    """Complete a processing stage: duration, cost rolled up from the ledger, new time estimate.

    Raises:
        ValidationError: when the job is not processing, the stage is not processing, or the
            metadata is not plain JSON.
    """
    return complete_stage(job_id, stage_name, metadata)


def complete_stage(
    job_id: UUID | str,
    stage_name: str,
    metadata: dict[str, Any] | None,
    *,
    owner: str | None = None,
    lost: LostLease | None = None,
) -> JobStage:
    """:func:`stage_complete`, and for ``stage_complete_leased`` only while ``owner`` holds the lease."""
    cleaned = clean_metadata(metadata, job_id)
    stage = _end_stage(job_id, stage_name, "complete", StageStatus.COMPLETED, cleaned, owner=owner, lost=lost)
    logger.info(
        "stage completed",
        extra={
            "job_id": str(stage.job_id),
            "stage": stage_name,
            "duration": stage.duration_seconds,
            "cost": str(stage.cost),
        },
    )
    return stage


astage_complete = async_twin(stage_complete)


@boundary
def stage_fail(
    *,
    job_id: UUID | str,
    stage_name: str,
    error: PipelineError | None = None,
    metadata: dict[str, Any] | None = None,
) -> JobStage:
    """Fail a processing stage (it may be started again); the error is kept in its metadata.

    The job stays processing: call :func:`job_fail` to give up on the whole job.

    Raises:
        ValidationError: when the job is not processing, the stage is not processing, the metadata
            is not plain JSON, or the error cannot be stored (see :func:`job_fail`).
    """
    return fail_stage(job_id, stage_name, error, metadata)


def fail_stage(
    job_id: UUID | str,
    stage_name: str,
    error: PipelineError | None,
    metadata: dict[str, Any] | None,
    *,
    owner: str | None = None,
    lost: LostLease | None = None,
) -> JobStage:
    """:func:`stage_fail`, and for ``stage_fail_leased`` only while ``owner`` holds the lease."""
    extra = clean_metadata(metadata, job_id)
    if error is not None:
        extra["error"] = error_record(error)
    stage = _end_stage(job_id, stage_name, "fail", StageStatus.FAILED, extra, owner=owner, lost=lost)
    logger.warning("stage failed", extra={"job_id": str(stage.job_id), "stage": stage_name})
    return stage


astage_fail = async_twin(stage_fail)
