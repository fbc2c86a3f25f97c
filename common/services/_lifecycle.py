"""The job state machine's shared rules (private to :mod:`.jobs` and :mod:`.stages`).

Locking the job row, refusing an illegal transition, checking stage names, metadata and
error records, rolling a stage's cost up from the ledger, and the time estimate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.utils import timezone

from common.conf import app_settings
from common.errors import PipelineError, ValidationError
from common.log import _to_jsonable
from common.models import Job, JobCost, JobStage, JobStatus, clean_json, clean_text
from common.money import money_from_sum, money_sum
from common.selectors.estimates import estimate_seconds, expected_from, stage_medians_cached
from common.selectors.jobs import job_get

INVALID_TRANSITION = "INVALID_TRANSITION"
# The transitions refresh ``Job.estimated_remaining``; bench/jobs.py switches this off to measure what that costs.
ESTIMATE = True
ACTIVE = (JobStatus.QUEUED, JobStatus.PROCESSING)
STAGE_UPDATE_FIELDS = ["status", "started_at", "completed_at", "duration_seconds", "cost", "metadata", "attempts"]


def illegal(job: Job, message: str, **details: Any) -> ValidationError:
    """The refusal of an illegal transition (code ``INVALID_TRANSITION``), naming the job."""
    return ValidationError(
        f"job {job.id}: {message}",
        job_id=job.id,
        code=INVALID_TRANSITION,
        details={"status": job.status, **details},
    )


def lock_job(job_id: UUID | str) -> Job:
    """Return the job row locked for update (call inside ``transaction.atomic``)."""
    return job_get(job_id=job_id, for_update=True)


def require_active(job: Job, action: str) -> None:
    """Refuse ``action`` on a completed, failed or cancelled job."""
    if job.status not in ACTIVE:
        raise illegal(job, f"cannot {action}: the job is already {job.status}", action=action)


def check_stage_name(stage_name: str) -> None:
    """Refuse a stage name that is not text or not one of ``PIPELINE_STAGES``."""
    clean_text(stage_name, field="stage_name", max_length=64)
    stages = tuple(app_settings.PIPELINE_STAGES)
    if stage_name not in stages:
        raise ValidationError(
            f"unknown stage {stage_name!r}; the pipeline's stages are {', '.join(stages)} "
            "(app setting PIPELINE_STAGES)",
            code="UNKNOWN_STAGE",
        )


def stage_cost(job: Job, stage_name: str) -> Decimal:
    """Sum of the ledger rows recorded against one stage of the job."""
    # money_sum is exact on SQLite too, where a plain SUM would add the stored decimals as floats.
    total = JobCost.objects.filter(job=job, stage_name=stage_name).aggregate(total=money_sum())["total"]
    return money_from_sum(total)


def clean_metadata(metadata: object, job_id: UUID | str) -> dict[str, Any]:
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


def error_record(error: object) -> dict[str, Any]:
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


def seconds_between(start: datetime | None, end: datetime) -> int | None:
    """Whole seconds from ``start`` to ``end`` (never negative), or ``None`` without a start."""
    if start is None:
        return None
    return max(round((end - start).total_seconds()), 0)


def finish_stage(
    job: Job, stage: JobStage, *, status: str, now: datetime, metadata: dict[str, Any] | None = None
) -> None:
    """End a stage with ``status``: its duration, its cost rolled up from the ledger, its metadata merged."""
    stage.status = status
    stage.completed_at = now
    stage.duration_seconds = seconds_between(stage.started_at, now)
    stage.cost = stage_cost(job, stage.stage_name)
    if metadata:
        stage.metadata = {**(stage.metadata or {}), **metadata}
    stage.save(update_fields=STAGE_UPDATE_FIELDS)


def save_job(job: Job, *fields: str) -> None:
    """Write ``fields`` (and ``updated_at``) of the locked job."""
    job.save(update_fields=[*fields, "updated_at"])


def expected_seconds() -> dict[str, float] | None:
    """Each pipeline stage's expected seconds from this process's cached medians; ``None`` with the estimate off."""
    if not ESTIMATE:
        return None
    return expected_from(stage_medians_cached(stage_names=app_settings.PIPELINE_STAGES))


def estimate(job: Job, stages: Iterable[JobStage] | None = None) -> int | None:
    """The job's new ``estimated_remaining`` from the cached medians (:mod:`common.selectors.estimates`).

    ``stages`` are the job's rows when the caller has them (else they are read). With the estimate
    switched off the job keeps the value it has.
    """
    expected = expected_seconds()
    if expected is None:
        return job.estimated_remaining
    rows = {s.stage_name: s for s in (JobStage.objects.filter(job=job) if stages is None else stages)}
    return estimate_seconds(rows, expected, timezone.now())
