"""The job lifecycle: create a job, run its stages, report progress, and finish it.

Every function is keyword-only and typed, runs in one ``transaction.atomic``
block and locks the job row first (``select_for_update``; SQLite serialises
writers with ``BEGIN IMMEDIATE``), so two workers can never both make a
transition that only one of them may make. An illegal transition raises
:class:`~common.errors.ValidationError` (code ``INVALID_TRANSITION``) naming the
job and what was wrong, and changes nothing. Each function has an async twin
(``a`` prefix) that runs it in a worker thread.

Legal transitions::

    job:   queued -> processing -> completed
           queued (requeued by recovery, every stage completed) -> completed
           queued | processing -> failed | cancelled        (completed, failed, cancelled are final)
    stage: (none) | pending | failed -> processing -> completed | failed
           processing (lease expired) -> processing              (taken over by another worker)

A started stage is leased to its worker (see :mod:`common.services.leases`).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from common.conf import app_settings
from common.db import boundary
from common.errors import PipelineError, ValidationError
from common.log import _to_jsonable, get_logger
from common.models import MAX_ATTEMPTS, Job, JobCost, JobStage, JobStatus, StageStatus, clean_json, clean_text
from common.selectors import job_estimate_remaining, job_get, job_lease_duration, parse_user_id
from common.services.costs import format_money, money_from_sum, money_sum

__all__ = [
    "INVALID_TRANSITION",
    "ajob_cancel",
    "ajob_complete",
    "ajob_create",
    "ajob_fail",
    "ajob_set_budget",
    "ajob_update_progress",
    "astage_complete",
    "astage_fail",
    "astage_start",
    "check_lease_owner",
    "default_lease_owner",
    "job_cancel",
    "job_complete",
    "job_create",
    "job_fail",
    "job_finished",
    "job_set_budget",
    "job_update_progress",
    "stage_complete",
    "stage_fail",
    "stage_start",
]

INVALID_TRANSITION = "INVALID_TRANSITION"
CANCELLED_CODE = "JOB_CANCELLED"
TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"

# Sent (after the transaction commits) when a job becomes completed, failed or cancelled.
# Receivers get ``job`` (the Job instance) and ``status``; the cost tracker can release open holds here.
job_finished = Signal()

logger = get_logger(__name__)

_ACTIVE = (JobStatus.QUEUED, JobStatus.PROCESSING)
_STAGE_UPDATE_FIELDS = ["status", "started_at", "completed_at", "duration_seconds", "cost", "metadata", "attempts"]


# --------------------------------------------------------------------------- helpers


def _illegal(job: Job, message: str, **details: Any) -> ValidationError:
    return ValidationError(
        f"job {job.id}: {message}",
        job_id=job.id,
        code=INVALID_TRANSITION,
        details={"status": job.status, **details},
    )


def _lock_job(job_id: UUID | str) -> Job:
    """Return the job row locked for update (call inside ``transaction.atomic``)."""
    return job_get(job_id=job_id, for_update=True)


def _require_active(job: Job, action: str) -> None:
    if job.status not in _ACTIVE:
        raise _illegal(job, f"cannot {action}: the job is already {job.status}", action=action)


def _check_stage_name(stage_name: str) -> None:
    clean_text(stage_name, field="stage_name", max_length=64)
    stages = tuple(app_settings.PIPELINE_STAGES)
    if stage_name not in stages:
        raise ValidationError(
            f"unknown stage {stage_name!r}; the pipeline's stages are {', '.join(stages)} "
            "(app setting PIPELINE_STAGES)",
            code="UNKNOWN_STAGE",
        )


def _stage_cost(job: Job, stage_name: str) -> Decimal:
    """Sum of the ledger rows recorded against one stage of the job."""
    # money_sum is exact on SQLite too, where a plain SUM would add the stored decimals as floats.
    total = JobCost.objects.filter(job=job, stage_name=stage_name).aggregate(total=money_sum())["total"]
    return money_from_sum(total)


def _clean_metadata(metadata: object, job_id: UUID | str) -> dict[str, Any]:
    """The caller's stage metadata, refused unless it is a dict of plain JSON (see ``clean_json``)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValidationError(
            f"metadata must be a dict of plain JSON values, got {type(metadata).__name__}", job_id=job_id
        )
    try:
        return dict(clean_json(metadata, field="metadata"))
    except ValidationError as exc:
        exc.job_id = exc.job_id or job_id  # the refusal names the job, as the database boundary's do
        raise


def _error_record(error: object) -> dict[str, Any]:
    """``error.to_dict()`` made storable: details converted as the log formatter does (Decimal, UUID, dates ...).

    NaN and infinities in the details become the strings ``"nan"``/``"inf"`` (as in log lines); text with NUL or a
    lone surrogate is refused (``ValidationError`` naming ``error.message``, ``error.code`` or
    ``error.details``), so a failure is stored whole or not at all.
    """
    if not isinstance(error, PipelineError):
        raise ValidationError(
            f"error must be a PipelineError (translate it at the boundary), got {type(error).__name__}"
        )
    clean_text(error.code, field="error.code")
    clean_text(error.message, field="error.message")
    try:
        record = json.loads(json.dumps(_to_jsonable(error.to_dict())), parse_constant=str)
    except (RecursionError, ValueError, TypeError) as exc:
        raise ValidationError(f"error.details cannot be stored as JSON: {type(exc).__name__}: {exc}") from None
    clean_json(record.get("details"), field="error.details")
    return dict(clean_json(record, field="error"))


def _seconds_between(start: datetime | None, end: datetime) -> int | None:
    if start is None:
        return None
    return max(round((end - start).total_seconds()), 0)


def _finish_stage(
    job: Job, stage: JobStage, *, status: str, now: datetime, metadata: dict[str, Any] | None = None
) -> None:
    stage.status = status
    stage.completed_at = now
    stage.duration_seconds = _seconds_between(stage.started_at, now)
    stage.cost = _stage_cost(job, stage.stage_name)
    if metadata:
        stage.metadata = {**(stage.metadata or {}), **metadata}
    stage.save(update_fields=_STAGE_UPDATE_FIELDS)


def _save_job(job: Job, *fields: str) -> None:
    job.save(update_fields=[*fields, "updated_at"])


def _estimate(job: Job, stages: Iterable[JobStage] | None = None) -> int:
    return job_estimate_remaining(job_id=job.id, stages=stages)


def _finish_job(job: Job, status: str, now: datetime, *, stage_metadata: dict[str, Any]) -> None:
    """Fail the stages still running and notify ``job_finished`` once the transaction commits."""
    for stage in JobStage.objects.select_for_update().filter(job=job, status=StageStatus.PROCESSING):
        _finish_stage(job, stage, status=StageStatus.FAILED, now=now, metadata=stage_metadata)
    transaction.on_commit(lambda: job_finished.send(sender=Job, job=job, status=status))


# --------------------------------------------------------------------------- jobs


@boundary
def job_create(
    *,
    user_id: UUID | str,
    audio_url: str,
    user_prompt: str,
    budget_limit: Decimal | str | int | None = None,
) -> Job:
    """Create a queued job (budget from ``DEFAULT_JOB_BUDGET`` unless given) with its first time estimate.

    Raises:
        ValidationError: for a bad user id, an empty audio URL or prompt, or a negative/inexact budget.
    """
    user = parse_user_id(user_id)
    clean_text(audio_url, field="audio_url")
    clean_text(user_prompt, field="user_prompt")
    fields: dict[str, Any] = {"user_id": user, "audio_url": audio_url, "user_prompt": user_prompt}
    if budget_limit is not None:
        fields["budget_limit"] = _parse_budget(budget_limit)
    with transaction.atomic():
        job = Job(**fields)
        job.estimated_remaining = _estimate(job, stages=())
        job.save(force_insert=True)
    logger.info("job created", extra={"job_id": str(job.id), "budget_limit": str(job.budget_limit)})
    return job


def _parse_budget(value: object) -> Decimal:
    shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise ValidationError(
            f"budget_limit must be a Decimal, an int or a decimal string, not {type(value).__name__} {shown}"
        )
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationError(f"budget_limit {shown} is not a decimal amount") from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError(f"budget_limit must be a finite amount of at least 0, got {shown}")
    # The size test first: quantizing 1e999999999 would raise InvalidOperation.
    if amount >= Decimal("1e8") or amount != amount.quantize(Decimal("0.000001")):
        raise ValidationError(f"budget_limit {shown} must have at most 6 decimal places and 8 integer digits")
    return amount + 0  # -0 becomes 0


def job_set_budget(*, job_id: UUID | str, budget_limit: Decimal | str | int, changed_by: str | None = None) -> Job:
    """Set the job's budget, and nothing else, under the job's row lock; log who changed it from what to what.

    Only ``budget_limit`` (and ``updated_at``) is written, so spend charged concurrently is never
    overwritten; charges waiting for the row lock are checked against the new budget. A budget
    below what the job has spent is allowed (it stops further enforced charges). Any job status.

    Raises:
        ValidationError: a malformed or unknown job, a budget that is not a non-negative amount
            with at most 6 decimal places and 8 integer digits, or a bad ``changed_by``.
    """
    amount = _parse_budget(budget_limit)
    who = None if changed_by is None else clean_text(changed_by, field="changed_by", max_length=255)
    with transaction.atomic():
        job = _lock_job(job_id)
        old = job.budget_limit
        job.budget_limit = amount
        _save_job(job, "budget_limit")
    logger.info(
        "budget of job %s changed from %s to %s by %s",
        job.id,
        format_money(old),
        format_money(amount),
        who or "an unnamed caller",
        extra={
            "job_id": str(job.id),
            "event": "budget_changed",
            "old_budget": format_money(old),
            "new_budget": format_money(amount),
            "changed_by": who,
            "spent": format_money(job.total_cost),
        },
    )
    return job


@boundary
def job_update_progress(*, job_id: UUID | str, progress: int, current_stage: str | None = None) -> Job:
    """Set the job's progress (0-100, never backwards) and optionally its current stage.

    A queued job becomes processing once it has progress or a stage. ``estimated_remaining`` is recomputed.

    Raises:
        ValidationError: for progress outside 0-100 or going backwards, an unknown stage,
            or a job that is already finished.
    """
    if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
        raise ValidationError(f"progress must be a whole number from 0 to 100, got {progress!r}", job_id=job_id)
    if current_stage is not None:
        clean_text(current_stage, field="current_stage", max_length=64)
        _check_stage_name(current_stage)
    with transaction.atomic():
        job = _lock_job(job_id)
        _require_active(job, "update progress")
        if progress < job.progress:
            raise _illegal(job, f"progress cannot go backwards (from {job.progress} to {progress})", progress=progress)
        job.progress = progress
        if progress > 0 or current_stage is not None:
            job.status = JobStatus.PROCESSING
        if current_stage is not None:
            job.current_stage = current_stage
        job.estimated_remaining = _estimate(job)
        _save_job(job, "progress", "status", "current_stage", "estimated_remaining")
    return job


def _requeued_with_every_stage_done(job: Job) -> bool:
    """A queued job whose stages all completed: its worker died before ``job_complete`` and recovery requeued it."""
    if job.status != JobStatus.QUEUED:
        return False
    return set(JobStage.objects.filter(job=job).values_list("status", flat=True)) == {StageStatus.COMPLETED}


@boundary
def job_complete(*, job_id: UUID | str, video_url: str) -> Job:
    """Mark a processing job completed with its video (progress 100, nothing remaining).

    A queued job whose stages are all completed may be completed too: its worker died before this call and
    recovery requeued it, so the worker that takes it again has nothing left to run.

    Raises:
        ValidationError: when the job is not processing, a stage is still running, or the URL is empty.
    """
    clean_text(video_url, field="video_url")
    with transaction.atomic():
        job = _lock_job(job_id)
        if job.status != JobStatus.PROCESSING and not _requeued_with_every_stage_done(job):
            raise _illegal(job, f"cannot complete a job that is {job.status} (only a processing job can complete)")
        running = list(
            JobStage.objects.filter(job=job, status=StageStatus.PROCESSING).values_list("stage_name", flat=True)
        )
        if running:
            raise _illegal(job, f"cannot complete while stage(s) {', '.join(running)} are still processing")
        now = timezone.now()
        job.status = JobStatus.COMPLETED
        job.progress = 100
        job.estimated_remaining = 0
        job.video_url = video_url
        job.current_stage = None
        job.completed_at = now
        _save_job(job, "status", "progress", "estimated_remaining", "video_url", "current_stage", "completed_at")
        _finish_job(job, JobStatus.COMPLETED, now, stage_metadata={})
    logger.info("job completed", extra={"job_id": str(job.id)})
    return job


@boundary
def job_fail(*, job_id: UUID | str, error: PipelineError) -> Job:
    """Mark a queued or processing job failed, storing the error's code and message.

    Stages still running are marked failed too.

    The error's details are stored JSON-safe (see :func:`_error_record`).

    Raises:
        ValidationError: when the job is already completed, failed or cancelled, or ``error`` is not
            a :class:`PipelineError` whose text can be stored (no NUL, no lone surrogate).
    """
    record = _error_record(error)
    with transaction.atomic():
        job = _lock_job(job_id)
        _require_active(job, "fail the job")
        now = timezone.now()
        job.status = JobStatus.FAILED
        job.error_code = record["code"][:64]
        job.error_message = record["message"]
        job.estimated_remaining = None
        job.completed_at = now
        _save_job(job, "status", "error_code", "error_message", "estimated_remaining", "completed_at")
        _finish_job(job, JobStatus.FAILED, now, stage_metadata={"error": record})
    logger.warning("job failed", extra={"job_id": str(job.id), "error_code": job.error_code})
    return job


@boundary
def job_cancel(*, job_id: UUID | str, reason: str | None = None) -> Job:
    """Cancel a queued or processing job (code ``JOB_CANCELLED``); stages still running are marked failed.

    Raises:
        ValidationError: when the job is already completed, failed or cancelled, or ``reason`` is not text.
    """
    if reason is not None:
        clean_text(reason, field="reason", blank=True)
    with transaction.atomic():
        job = _lock_job(job_id)
        _require_active(job, "cancel the job")
        now = timezone.now()
        job.status = JobStatus.CANCELLED
        job.error_code = CANCELLED_CODE
        job.error_message = reason or "The job was cancelled."
        job.estimated_remaining = None
        job.completed_at = now
        _save_job(job, "status", "error_code", "error_message", "estimated_remaining", "completed_at")
        _finish_job(job, JobStatus.CANCELLED, now, stage_metadata={"cancelled": True})
    logger.info("job cancelled", extra={"job_id": str(job.id)})
    return job


# --------------------------------------------------------------------------- stages


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
        raise _illegal(
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
    _check_stage_name(stage_name)
    clean_metadata = _clean_metadata(metadata, job_id)
    lease_owner = check_lease_owner(owner)
    lease = job_lease_duration()
    with transaction.atomic():
        job = _lock_job(job_id)
        _require_active(job, f"start stage {stage_name!r}")
        stage, _ = JobStage.objects.select_for_update().get_or_create(job=job, stage_name=stage_name)
        now = timezone.now()
        previous_owner = None
        if stage.status == StageStatus.PROCESSING:
            previous_owner = _take_over(job, stage, now, lease)
        elif stage.status == StageStatus.COMPLETED:
            raise _illegal(job, f"cannot start stage {stage_name!r}: it is already {stage.status}", stage=stage_name)
        taken_over = stage.status == StageStatus.PROCESSING
        _check_attempts(job, stage)
        stage.status = StageStatus.PROCESSING
        stage.started_at = now
        stage.completed_at = None
        stage.duration_seconds = None
        stage.attempts += 1
        stage.lease_owner = lease_owner
        stage.lease_expires_at = now + lease
        if clean_metadata:
            stage.metadata = {**(stage.metadata or {}), **clean_metadata}
        stage.save(update_fields=[*_STAGE_UPDATE_FIELDS, "lease_owner", "lease_expires_at"])
        job.status = JobStatus.PROCESSING
        job.current_stage = stage_name
        job.estimated_remaining = _estimate(job)
        _save_job(job, "status", "current_stage", "estimated_remaining")
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
    _check_stage_name(stage_name)
    if job.status != JobStatus.PROCESSING:
        raise _illegal(job, f"cannot {action} stage {stage_name!r}: the job is {job.status}", stage=stage_name)
    stage = JobStage.objects.select_for_update().filter(job=job, stage_name=stage_name).first()
    if stage is None:
        raise _illegal(job, f"cannot {action} stage {stage_name!r}: it was never started", stage=stage_name)
    if stage.status != StageStatus.PROCESSING:
        raise _illegal(
            job, f"cannot {action} stage {stage_name!r}: it is {stage.status}, not processing", stage=stage_name
        )
    return stage


def _end_stage(
    job_id: UUID | str, stage_name: str, action: str, status: str, metadata: dict[str, Any] | None
) -> JobStage:
    """Finish a processing stage with ``status`` and refresh the job's estimate, in one locked transaction."""
    _check_stage_name(stage_name)
    with transaction.atomic():
        job = _lock_job(job_id)
        stage = _running_stage(job, stage_name, action)
        _finish_stage(job, stage, status=status, now=timezone.now(), metadata=metadata)
        job.estimated_remaining = _estimate(job)
        _save_job(job, "estimated_remaining")
    stage.job = job
    return stage


@boundary
def stage_complete(*, job_id: UUID | str, stage_name: str, metadata: dict[str, Any] | None = None) -> JobStage:
    """Complete a processing stage: duration, cost rolled up from the ledger, new time estimate.

    Raises:
        ValidationError: when the job is not processing, the stage is not processing, or the
            metadata is not plain JSON.
    """
    stage = _end_stage(job_id, stage_name, "complete", StageStatus.COMPLETED, _clean_metadata(metadata, job_id))
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
    extra = _clean_metadata(metadata, job_id)
    if error is not None:
        extra["error"] = _error_record(error)
    stage = _end_stage(job_id, stage_name, "fail", StageStatus.FAILED, extra)
    logger.warning("stage failed", extra={"job_id": str(stage.job_id), "stage": stage_name})
    return stage


# --------------------------------------------------------------------------- async twins


async def ajob_create(
    *,
    user_id: UUID | str,
    audio_url: str,
    user_prompt: str,
    budget_limit: Decimal | str | int | None = None,
) -> Job:
    """Async twin of :func:`job_create`."""
    return await sync_to_async(job_create)(
        user_id=user_id, audio_url=audio_url, user_prompt=user_prompt, budget_limit=budget_limit
    )


async def ajob_set_budget(
    *, job_id: UUID | str, budget_limit: Decimal | str | int, changed_by: str | None = None
) -> Job:
    """Async twin of :func:`job_set_budget`."""
    return await sync_to_async(job_set_budget)(job_id=job_id, budget_limit=budget_limit, changed_by=changed_by)


async def ajob_update_progress(*, job_id: UUID | str, progress: int, current_stage: str | None = None) -> Job:
    """Async twin of :func:`job_update_progress`."""
    return await sync_to_async(job_update_progress)(job_id=job_id, progress=progress, current_stage=current_stage)


async def ajob_complete(*, job_id: UUID | str, video_url: str) -> Job:
    """Async twin of :func:`job_complete`."""
    return await sync_to_async(job_complete)(job_id=job_id, video_url=video_url)


async def ajob_fail(*, job_id: UUID | str, error: PipelineError) -> Job:
    """Async twin of :func:`job_fail`."""
    return await sync_to_async(job_fail)(job_id=job_id, error=error)


async def ajob_cancel(*, job_id: UUID | str, reason: str | None = None) -> Job:
    """Async twin of :func:`job_cancel`."""
    return await sync_to_async(job_cancel)(job_id=job_id, reason=reason)


async def astage_start(
    *, job_id: UUID | str, stage_name: str, metadata: dict[str, Any] | None = None, owner: str | None = None
) -> JobStage:
    """Async twin of :func:`stage_start`."""
    return await sync_to_async(stage_start)(job_id=job_id, stage_name=stage_name, metadata=metadata, owner=owner)


async def astage_complete(*, job_id: UUID | str, stage_name: str, metadata: dict[str, Any] | None = None) -> JobStage:
    """Async twin of :func:`stage_complete`."""
    return await sync_to_async(stage_complete)(job_id=job_id, stage_name=stage_name, metadata=metadata)


async def astage_fail(
    *,
    job_id: UUID | str,
    stage_name: str,
    error: PipelineError | None = None,
    metadata: dict[str, Any] | None = None,
) -> JobStage:
    """Async twin of :func:`stage_fail`."""
    return await sync_to_async(stage_fail)(job_id=job_id, stage_name=stage_name, error=error, metadata=metadata)
