"""Reads of jobs, stages and costs (the HackSoft "selectors"): one place for the queries services and views share.

Every function is keyword-only and typed; the async twins (``a`` prefix) run the
query in a worker thread via ``sync_to_async`` so they never block the event loop.
An unknown or malformed job id raises :class:`~common.errors.ValidationError`
with code ``JOB_NOT_FOUND`` / ``INVALID_JOB_ID``, never ``DoesNotExist``.
"""

from __future__ import annotations

import functools
import statistics
import uuid
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from common.conf import app_settings
from common.errors import ValidationError
from common.models import Job, JobCost, JobStage, JobStatus, StageStatus, clean_text

__all__ = [
    "ajob_get",
    "ajob_list_for_user",
    "job_costs",
    "job_estimate_remaining",
    "job_get",
    "job_list_for_user",
    "job_stages",
    "parse_job_id",
    "parse_user_id",
    "stage_median_duration",
    "stage_median_durations",
]

JOB_NOT_FOUND = "JOB_NOT_FOUND"
INVALID_JOB_ID = "INVALID_JOB_ID"
INVALID_USER_ID = "INVALID_USER_ID"
MAX_HISTORY = 10_000


def _parse_uuid(value: UUID | str, what: str, code: str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
        raise ValidationError(f"{shown} is not a valid {what} (expected a UUID)", code=code) from None


def parse_job_id(job_id: UUID | str) -> UUID:
    """Return ``job_id`` as a UUID.

    Raises:
        ValidationError: (code ``INVALID_JOB_ID``) when it is not a UUID.
    """
    return _parse_uuid(job_id, "job id", INVALID_JOB_ID)


def parse_user_id(user_id: UUID | str) -> UUID:
    """Return ``user_id`` as a UUID.

    Raises:
        ValidationError: (code ``INVALID_USER_ID``) when it is not a UUID.
    """
    return _parse_uuid(user_id, "user id", INVALID_USER_ID)


def job_get(*, job_id: UUID | str, for_update: bool = False) -> Job:
    """Return the job with ``job_id``; with ``for_update`` its row locked (call inside ``transaction.atomic``).

    Raises:
        ValidationError: code ``INVALID_JOB_ID`` for a malformed id, ``JOB_NOT_FOUND`` when there is no such job.
    """
    pk = parse_job_id(job_id)
    jobs = Job.objects.select_for_update() if for_update else Job.objects.all()
    try:
        return jobs.get(pk=pk)
    except Job.DoesNotExist:
        raise job_not_found(pk) from None


def job_not_found(job_id: UUID) -> ValidationError:
    """The error for a well-formed job id with no job (code ``JOB_NOT_FOUND``)."""
    return ValidationError(f"job {job_id} does not exist", job_id=job_id, code=JOB_NOT_FOUND)


def job_list_for_user(*, user_id: UUID | str, status: str | None = None) -> QuerySet[Job]:
    """The user's jobs, newest first, optionally only those with ``status``.

    Raises:
        ValidationError: a malformed user id (code ``INVALID_USER_ID``) or an unknown status.
    """
    qs = Job.objects.filter(user_id=parse_user_id(user_id)).order_by("-created_at")
    if status is not None:
        if not isinstance(status, str) or status not in JobStatus.values:
            raise ValidationError(f"unknown job status {status!r}; expected one of {', '.join(JobStatus.values)}")
        qs = qs.filter(status=status)
    return qs


def job_stages(*, job_id: UUID | str) -> list[JobStage]:
    """The job's stages in pipeline order (``PIPELINE_STAGES``; unknown names last, by start time)."""
    order = {name: i for i, name in enumerate(app_settings.PIPELINE_STAGES)}
    stages = list(JobStage.objects.filter(job_id=parse_job_id(job_id)))
    return sorted(stages, key=lambda s: (order.get(s.stage_name, len(order)), s.started_at or timezone.now()))


def job_costs(*, job_id: UUID | str) -> QuerySet[JobCost]:
    """The job's ledger rows, oldest first."""
    return JobCost.objects.filter(job_id=parse_job_id(job_id)).order_by("timestamp", "id")


def _recent_durations(stage_name: str, limit: int) -> QuerySet[JobStage, tuple[str, int | None]]:
    # Served by the (stage_name, status, completed_at) index: a backward index scan stopping at ``limit``.
    return (
        JobStage.objects.filter(stage_name=stage_name, status=StageStatus.COMPLETED, duration_seconds__isnull=False)
        .order_by("-completed_at")
        .values_list("stage_name", "duration_seconds")[:limit]
    )


@functools.lru_cache(maxsize=32)
def _union_sql(vendor: str, names: tuple[str, ...], limit: int) -> tuple[str, tuple[Any, ...]]:
    """The ``UNION ALL`` of :func:`_recent_durations` for ``names``, compiled once per ``vendor`` (the cache key).

    The estimate runs on every lifecycle transition, under the job's row lock; building and
    compiling six querysets costs Django several times what the query itself costs.
    """
    parts = [_recent_durations(name, limit) for name in names]
    return parts[0].union(*parts[1:], all=True).query.sql_with_params()


def stage_median_durations(*, stage_names: Iterable[str], history: int | None = None) -> dict[str, float | None]:
    """Median duration (seconds) of the last ``history`` completed runs of each stage (``None``: no runs).

    One query on PostgreSQL (a ``UNION ALL`` of per-stage index scans), one per stage on SQLite.
    ``history`` defaults to the ``ESTIMATE_HISTORY_JOBS`` app setting.

    Raises:
        ValidationError: a stage name that is not text a column can hold, or ``history`` that is
            not a whole number from 0 to ``MAX_HISTORY``.
    """
    if isinstance(stage_names, str) or not isinstance(stage_names, Iterable):
        raise ValidationError(f"stage_names must be a list of stage names, got {type(stage_names).__name__}")
    names = tuple(dict.fromkeys(clean_text(name, field="stage_name", max_length=64) for name in stage_names))
    limit = app_settings.ESTIMATE_HISTORY_JOBS if history is None else _history(history)
    durations: dict[str, list[int]] = {name: [] for name in names}
    if names and limit > 0:
        rows: Iterable[tuple[str, int | None]]
        if connection.features.supports_slicing_ordering_in_compound and len(names) > 1:
            with connection.cursor() as cursor:
                cursor.execute(*_union_sql(connection.vendor, names, limit))
                rows = cursor.fetchall()
        else:
            rows = [row for name in names for row in _recent_durations(name, limit)]
        for name, seconds in rows:
            if seconds is not None:
                durations[name].append(seconds)
    return {name: float(statistics.median(values)) if values else None for name, values in durations.items()}


def _history(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_HISTORY:
        raise ValidationError(f"history must be a whole number from 0 to {MAX_HISTORY}, got {value!r}")
    return value


def stage_median_duration(*, stage_name: str, history: int | None = None) -> float | None:
    """Median duration (seconds) of the last ``history`` completed runs of ``stage_name``, or ``None``."""
    clean_text(stage_name, field="stage_name", max_length=64)
    return stage_median_durations(stage_names=[stage_name], history=history)[stage_name]


def job_estimate_remaining(*, job_id: UUID | str, stages: Iterable[JobStage] | None = None) -> int:
    """Seconds the job still needs: for each stage not yet completed, its median recent duration.

    A stage that is running counts only for what is left of its median (never below zero);
    a stage with no history counts ``DEFAULT_STAGE_SECONDS``. ``stages`` (the job's ``JobStage``
    rows, when the caller has them) saves a query.

    Raises:
        ValidationError: a malformed job id, or ``stages`` that are not ``JobStage`` rows.
    """
    pk = parse_job_id(job_id)
    if stages is not None:
        given = list(stages) if isinstance(stages, Iterable) and not isinstance(stages, str | bytes) else None
        if given is None or not all(isinstance(stage, JobStage) for stage in given):
            raise ValidationError("stages must be the job's JobStage rows (or None to read them)")
        stages = given
    rows = {s.stage_name: s for s in (stages if stages is not None else JobStage.objects.filter(job_id=pk))}
    default = float(app_settings.DEFAULT_STAGE_SECONDS)
    remaining = [
        name for name in app_settings.PIPELINE_STAGES if name not in rows or rows[name].status != StageStatus.COMPLETED
    ]
    medians = stage_median_durations(stage_names=remaining)
    now = timezone.now()
    total = 0.0
    for name in remaining:
        stage = rows.get(name)
        median = medians[name]
        expected = default if median is None else median
        if stage is not None and stage.status == StageStatus.PROCESSING and stage.started_at is not None:
            expected = max(expected - (now - stage.started_at).total_seconds(), 0.0)
        total += expected
    return round(total)


async def ajob_get(*, job_id: UUID | str) -> Job:
    """Async twin of :func:`job_get`."""
    return await sync_to_async(job_get)(job_id=job_id)


async def ajob_list_for_user(*, user_id: UUID | str, status: str | None = None) -> list[Job]:
    """Async twin of :func:`job_list_for_user` (returns a list: the query runs in a worker thread)."""

    def _list() -> list[Job]:
        return list(job_list_for_user(user_id=user_id, status=status))

    return await sync_to_async(_list)()
