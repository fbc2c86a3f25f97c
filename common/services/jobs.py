"""The job lifecycle: create a job, report its progress, change its budget, and finish it.

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

The stage transitions live in :mod:`common.services.stages` and are re-exported here
(``from common.services.jobs import stage_start`` keeps working). A started stage is leased
to its worker (see :mod:`common.services.leases`). Nothing here imports the cost tracker:
the ``job_finished`` signal lets it release a finished job's holds.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from common.db import async_twin, boundary
from common.errors import PipelineError, ValidationError
from common.ids import parse_job_id, parse_user_id
from common.log import get_logger
from common.models import Job, JobStage, JobStatus, StageStatus, clean_text
from common.money import format_money, parse_money
from common.selectors.jobs import job_not_found
from common.services import _lifecycle as lifecycle
from common.services import _pg_transitions as pg
from common.services import stages
from common.services.stages import *  # noqa: F403 - the stage transitions, re-exported (see the docstring)

__all__ = [
    "INVALID_TRANSITION",
    "ajob_cancel",
    "ajob_complete",
    "ajob_create",
    "ajob_fail",
    "ajob_set_budget",
    "ajob_update_progress",
    "job_cancel",
    "job_complete",
    "job_create",
    "job_fail",
    "job_finished",
    "job_set_budget",
    "job_update_progress",
]

__all__ += stages.__all__

INVALID_TRANSITION = lifecycle.INVALID_TRANSITION
CANCELLED_CODE = "JOB_CANCELLED"

# Sent (after the transaction commits) when a job becomes completed, failed or cancelled.
# Receivers get ``job`` (the Job instance) and ``status``; the cost tracker releases open holds here.
job_finished = Signal()

logger = get_logger(__name__)


def _finish_job(job: Job, status: str, now: datetime, *, stage_metadata: dict[str, Any]) -> None:
    """Fail the stages still running and notify ``job_finished`` once the transaction commits."""
    for stage in JobStage.objects.select_for_update().filter(job=job, status=StageStatus.PROCESSING):
        lifecycle.finish_stage(job, stage, status=StageStatus.FAILED, now=now, metadata=stage_metadata)
    _notify(job, status)


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
        fields["budget_limit"] = parse_money(budget_limit, name="budget_limit", text=True)
    job = Job(**fields)
    job.estimated_remaining = lifecycle.estimate(job, stages=())
    job.save(force_insert=True)  # one INSERT: atomic by itself, no BEGIN/COMMIT round trips
    logger.info("job created", extra={"job_id": str(job.id), "budget_limit": str(job.budget_limit)})
    return job


ajob_create = async_twin(job_create)


@boundary
def job_set_budget(*, job_id: UUID | str, budget_limit: Decimal | str | int, changed_by: str | None = None) -> Job:
    """Set the job's budget, and nothing else, under the job's row lock; log who changed it from what to what.

    Only ``budget_limit`` (and ``updated_at``) is written, so spend charged concurrently is never
    overwritten; charges waiting for the row lock are checked against the new budget. A budget
    below what the job has spent is allowed (it stops further enforced charges). Any job status.

    Raises:
        ValidationError: a malformed or unknown job, a budget that is not a non-negative amount
            with at most 6 decimal places and 8 integer digits, or a bad ``changed_by``.
    """
    amount = parse_money(budget_limit, name="budget_limit", text=True)
    who = None if changed_by is None else clean_text(changed_by, field="changed_by", max_length=255)
    with transaction.atomic():
        job = lifecycle.lock_job(job_id)
        old = job.budget_limit
        job.budget_limit = amount
        lifecycle.save_job(job, "budget_limit")
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


ajob_set_budget = async_twin(job_set_budget)


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
        lifecycle.check_stage_name(current_stage)
    if pg.enabled():
        return _progress_pg(parse_job_id(job_id), progress, current_stage)
    with transaction.atomic():
        job = lifecycle.lock_job(job_id)
        lifecycle.require_active(job, "update progress")
        if progress < job.progress:
            raise lifecycle.illegal(
                job, f"progress cannot go backwards (from {job.progress} to {progress})", progress=progress
            )
        job.progress = progress
        if progress > 0 or current_stage is not None:
            job.status = JobStatus.PROCESSING
        if current_stage is not None:
            job.current_stage = current_stage
        job.estimated_remaining = lifecycle.estimate(job)
        lifecycle.save_job(job, "progress", "status", "current_stage", "estimated_remaining")
    return job


ajob_update_progress = async_twin(job_update_progress)


def _progress_pg(pk: UUID, progress: int, current_stage: str | None) -> Job:
    """``job_update_progress`` in one round trip; a refusal raises as the ORM version's does."""
    now = timezone.now()
    result = pg.job_progress(
        job_id=pk, progress=progress, current_stage=current_stage, now=now, expected=lifecycle.expected_seconds()
    )
    if result.job is None:
        job = _refused(pk, result)
        lifecycle.require_active(job, "update progress")
        old = result.old_progress or 0
        raise lifecycle.illegal(job, f"progress cannot go backwards (from {old} to {progress})", progress=progress)
    return result.job


def _refused(pk: UUID, result: pg.JobResult) -> Job:
    """The job as a refused PostgreSQL transition saw it (``JOB_NOT_FOUND`` when there is none)."""
    if result.job_status is None:
        raise job_not_found(pk)
    return Job(id=pk, status=result.job_status, progress=result.old_progress or 0)


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
    if pg.enabled():
        job = _complete_pg(parse_job_id(job_id), video_url)
        logger.info("job completed", extra={"job_id": str(job.id)})
        return job
    with transaction.atomic():
        job = lifecycle.lock_job(job_id)
        if job.status != JobStatus.PROCESSING and not _requeued_with_every_stage_done(job):
            raise lifecycle.illegal(
                job, f"cannot complete a job that is {job.status} (only a processing job can complete)"
            )
        running = list(
            JobStage.objects.filter(job=job, status=StageStatus.PROCESSING).values_list("stage_name", flat=True)
        )
        if running:
            raise lifecycle.illegal(job, f"cannot complete while stage(s) {', '.join(running)} are still processing")
        now = timezone.now()
        job.status = JobStatus.COMPLETED
        job.progress = 100
        job.estimated_remaining = 0
        job.video_url = video_url
        job.current_stage = None
        job.completed_at = now
        lifecycle.save_job(
            job, "status", "progress", "estimated_remaining", "video_url", "current_stage", "completed_at"
        )
        _finish_job(job, JobStatus.COMPLETED, now, stage_metadata={})
    logger.info("job completed", extra={"job_id": str(job.id)})
    return job


ajob_complete = async_twin(job_complete)


def _complete_pg(pk: UUID, video_url: str) -> Job:
    """``job_complete`` in one round trip; a refusal raises as the ORM version's does."""
    result = pg.job_complete(job_id=pk, video_url=video_url, now=timezone.now())
    if result.job is None:
        job = _refused(pk, result)
        if job.status != JobStatus.PROCESSING and not (job.status == JobStatus.QUEUED and result.every_stage_completed):
            raise lifecycle.illegal(
                job, f"cannot complete a job that is {job.status} (only a processing job can complete)"
            )
        raise lifecycle.illegal(job, f"cannot complete while stage(s) {', '.join(result.running)} are still processing")
    _notify(result.job, JobStatus.COMPLETED)
    return result.job


def _end_pg(pk: UUID, status: str, code: str, message: str, action: str, stage_metadata: dict[str, Any]) -> Job:
    """``job_fail``/``job_cancel`` in one round trip; a refusal raises as the ORM version's does."""
    result = pg.job_end(
        job_id=pk, status=status, code=code, message=message, now=timezone.now(), stage_metadata=stage_metadata
    )
    if result.job is None:
        lifecycle.require_active(_refused(pk, result), action)
        raise RuntimeError(f"job {pk}: {action} was not applied and no rule refused it")
    _notify(result.job, status)
    return result.job


def _notify(job: Job, status: str) -> None:
    """Send ``job_finished`` once the transition commits (at once outside a caller's transaction)."""
    transaction.on_commit(lambda: job_finished.send(sender=Job, job=job, status=status))


@boundary
def job_fail(*, job_id: UUID | str, error: PipelineError) -> Job:
    """Mark a queued or processing job failed, storing the error's code and message.

    Stages still running are marked failed too.

    The error's details are stored JSON-safe (see :func:`error_record`).

    Raises:
        ValidationError: when the job is already completed, failed or cancelled, or ``error`` is not
            a :class:`PipelineError` whose text can be stored (no NUL, no lone surrogate).
    """
    record = lifecycle.error_record(error)
    if pg.enabled():
        job = _end_pg(
            parse_job_id(job_id),
            JobStatus.FAILED,
            record["code"][:64],
            record["message"],
            "fail the job",
            {"error": record},
        )
        logger.warning("job failed", extra={"job_id": str(job.id), "error_code": job.error_code})
        return job
    with transaction.atomic():
        job = lifecycle.lock_job(job_id)
        lifecycle.require_active(job, "fail the job")
        now = timezone.now()
        job.status = JobStatus.FAILED
        job.error_code = record["code"][:64]
        job.error_message = record["message"]
        job.estimated_remaining = None
        job.completed_at = now
        lifecycle.save_job(job, "status", "error_code", "error_message", "estimated_remaining", "completed_at")
        _finish_job(job, JobStatus.FAILED, now, stage_metadata={"error": record})
    logger.warning("job failed", extra={"job_id": str(job.id), "error_code": job.error_code})
    return job


ajob_fail = async_twin(job_fail)


@boundary
def job_cancel(*, job_id: UUID | str, reason: str | None = None) -> Job:
    """Cancel a queued or processing job (code ``JOB_CANCELLED``); stages still running are marked failed.

    Raises:
        ValidationError: when the job is already completed, failed or cancelled, or ``reason`` is not text.
    """
    if reason is not None:
        clean_text(reason, field="reason", blank=True)
    if pg.enabled():
        message = reason or "The job was cancelled."
        job = _end_pg(
            parse_job_id(job_id), JobStatus.CANCELLED, CANCELLED_CODE, message, "cancel the job", {"cancelled": True}
        )
        logger.info("job cancelled", extra={"job_id": str(job.id)})
        return job
    with transaction.atomic():
        job = lifecycle.lock_job(job_id)
        lifecycle.require_active(job, "cancel the job")
        now = timezone.now()
        job.status = JobStatus.CANCELLED
        job.error_code = CANCELLED_CODE
        job.error_message = reason or "The job was cancelled."
        job.estimated_remaining = None
        job.completed_at = now
        lifecycle.save_job(job, "status", "error_code", "error_message", "estimated_remaining", "completed_at")
        _finish_job(job, JobStatus.CANCELLED, now, stage_metadata={"cancelled": True})
    logger.info("job cancelled", extra={"job_id": str(job.id)})
    return job


ajob_cancel = async_twin(job_cancel)
