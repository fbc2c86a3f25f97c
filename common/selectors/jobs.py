"""Reads of jobs and stages: one job, a user's jobs, what a caller may see, stale jobs (timings: :mod:`.estimates`).

Every function is keyword-only and typed; the async twins (``a`` prefix) run the
query in a worker thread via ``sync_to_async`` so they never block the event loop.
An unknown or malformed job id raises :class:`~common.errors.ValidationError`
with code ``JOB_NOT_FOUND`` / ``INVALID_JOB_ID`` (see :mod:`common.ids`), never ``DoesNotExist``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db.models import Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from common.callers import SupabaseUser, is_staff_caller
from common.conf import app_settings
from common.db import boundary
from common.errors import ConfigError, ValidationError
from common.ids import argument_list, canonical_uuid, parse_job_id, parse_job_ids, parse_user_id
from common.models import ACTIVE_JOB_STATUSES, Job, JobCost, JobStage, JobStatus, StageStatus
from common.selectors.estimates import (  # noqa: F401 - their home before common.selectors.estimates
    job_estimate_remaining,
    stage_median_duration,
    stage_median_durations,
)

__all__ = [
    "STALE_LEASE_EXPIRED",
    "STALE_QUEUED",
    "StaleJob",
    "ajob_get",
    "ajob_get_visible",
    "ajob_list_for_user",
    "ajobs_stale_report",
    "job_costs",
    "job_get",
    "job_get_visible",
    "job_lease_duration",
    "job_list_for_user",
    "job_list_visible",
    "job_queued_stale_after",
    "job_stages",
    "jobs_lease_expired",
    "jobs_live_ids",
    "jobs_queued_stale",
    "jobs_stale",
    "jobs_stale_report",
]

JOB_NOT_FOUND = "JOB_NOT_FOUND"


@boundary
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


@boundary
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


def _visible(user: Any) -> QuerySet[Job]:
    if is_staff_caller(user):
        return Job.objects.all()
    if isinstance(user, SupabaseUser):
        return Job.objects.filter(user_id=user.id)
    return Job.objects.none()


@boundary
def job_list_visible(*, user: Any, statuses: Sequence[str] = ()) -> QuerySet[Job]:
    """The jobs ``user`` may read, newest first: all for active staff, their own for a Supabase user, else none.

    ``statuses`` keeps only jobs with one of those statuses. The query runs where the queryset is
    iterated (the API pages it).

    Raises:
        ValidationError: an unknown status.
    """
    statuses = argument_list(statuses, field="statuses", what="job statuses")
    unknown = [s for s in statuses if not isinstance(s, str) or s not in JobStatus.values]
    if unknown:
        raise ValidationError(f"unknown job status {unknown!r:.120}; expected {', '.join(JobStatus.values)}")
    jobs = _visible(user).order_by("-created_at")
    return jobs.filter(status__in=list(statuses)) if statuses else jobs


@boundary(name_job=False)  # an error must not tell a caller that a job it may not see exists
def job_get_visible(*, user: Any, job_id: object) -> Job | None:
    """The job ``job_id`` if ``user`` may read it, else ``None``.

    A job that does not exist, another user's job and a malformed id (anything but a UUID or its
    canonical text) all answer ``None``, so a caller cannot tell them apart (the API answers 404).
    """
    pk = canonical_uuid(job_id)
    return None if pk is None else _visible(user).filter(pk=pk).first()


@boundary
def job_stages(*, job_id: UUID | str) -> list[JobStage]:
    """The job's stages in pipeline order (``PIPELINE_STAGES``; unknown names last, by start time)."""
    order = {name: i for i, name in enumerate(app_settings.PIPELINE_STAGES)}
    stages = list(JobStage.objects.filter(job_id=parse_job_id(job_id)))
    return sorted(stages, key=lambda s: (order.get(s.stage_name, len(order)), s.started_at or timezone.now()))


@boundary
def job_costs(*, job_id: UUID | str) -> QuerySet[JobCost]:
    """The job's ledger rows, oldest first."""
    return JobCost.objects.filter(job_id=parse_job_id(job_id)).order_by("timestamp", "id")


@boundary
async def ajob_get(*, job_id: UUID | str) -> Job:
    """Async twin of :func:`job_get`."""
    return await sync_to_async(job_get)(job_id=job_id)


@boundary(name_job=False)
async def ajob_get_visible(*, user: Any, job_id: object) -> Job | None:
    """Async twin of :func:`job_get_visible`."""
    return await sync_to_async(job_get_visible)(user=user, job_id=job_id)


@boundary
async def ajob_list_for_user(*, user_id: UUID | str, status: str | None = None) -> list[Job]:
    """Async twin of :func:`job_list_for_user` (returns a list: the query runs in a worker thread)."""

    def _list() -> list[Job]:
        return list(job_list_for_user(user_id=user_id, status=status))

    return await sync_to_async(_list)()


# --------------------------------------------------------------------------- stale jobs (leases and recovery)

STALE_LEASE_EXPIRED = "lease_expired"
STALE_QUEUED = "queued_stale"


def _seconds_setting(name: str) -> dt.timedelta:
    value = getattr(app_settings, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"VIDEOGEN_COMMON[{name!r}] must be a positive number of seconds, got {value!r}")
    return dt.timedelta(seconds=float(value))


def job_lease_duration() -> dt.timedelta:
    """How long a stage's lease lasts without a heartbeat (``JOB_LEASE_SECONDS``).

    Raises:
        ConfigError: the setting is not a positive number.
    """
    return _seconds_setting("JOB_LEASE_SECONDS")


def job_queued_stale_after() -> dt.timedelta:
    """How long a queued job may sit untouched before it counts as stale (``JOB_QUEUED_STALE_SECONDS``).

    Raises:
        ConfigError: the setting is not a positive number.
    """
    return _seconds_setting("JOB_QUEUED_STALE_SECONDS")


def _lease_expired_q(edge: dt.datetime) -> Q:
    # A processing job is lease-expired when no stage holds a lease lasting past ``edge`` and nothing
    # changed the job row for a lease before it: between two stages the job row (touched by every stage
    # transition and progress update) covers the gap, so a worker that died there is found too.
    live_lease = JobStage.objects.filter(job_id=OuterRef("pk"), lease_expires_at__gt=edge)
    return Q(~Exists(live_lease), status=JobStatus.PROCESSING, updated_at__lte=edge - job_lease_duration())


def _queued_stale_q(edge: dt.datetime) -> Q:
    # A queued job nothing has touched (created, requeued, given progress) for JOB_QUEUED_STALE_SECONDS.
    return Q(status=JobStatus.QUEUED, updated_at__lte=edge - job_queued_stale_after())


_EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
_MAX_GRACE = dt.timedelta(days=36500)


def check_moment(value: object, *, name: str = "now") -> dt.datetime:
    """``value`` when it is an aware datetime between the years 1900 and 9000; ``None`` means now.

    Raises:
        ValidationError: anything else, naming ``name`` (a naive datetime would be read in some time zone).
    """
    if value is None:
        return timezone.now()
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be a datetime with a time zone, got {value!r:.80}", details={"field": name})
    if not _EARLIEST <= value <= _LATEST:
        raise ValidationError(f"{name} must be between 1900 and 9000, got {value.isoformat()}", details={"field": name})
    return value


def _check_grace(value: object) -> dt.timedelta:
    if value is None:
        return dt.timedelta(0)
    if not isinstance(value, dt.timedelta) or not dt.timedelta(0) <= value <= _MAX_GRACE:
        raise ValidationError(
            f"grace must be a timedelta from 0 to {_MAX_GRACE.days} days, got {value!r:.80}", details={"field": "grace"}
        )
    return value


def _edge(now: dt.datetime | None, grace: dt.timedelta | None) -> dt.datetime:
    return check_moment(now) - _check_grace(grace)


@boundary
def jobs_lease_expired(*, now: dt.datetime | None = None, grace: dt.timedelta | None = None) -> QuerySet[Job]:
    """Processing jobs whose worker stopped renewing its lease (more than ``grace`` ago).

    No stage of the job holds a lease lasting past ``now - grace``, and the job row has not changed
    for ``JOB_LEASE_SECONDS`` before that.
    """
    return Job.objects.filter(_lease_expired_q(_edge(now, grace)))


@boundary
def jobs_queued_stale(*, now: dt.datetime | None = None, grace: dt.timedelta | None = None) -> QuerySet[Job]:
    """Queued jobs nothing has touched for ``JOB_QUEUED_STALE_SECONDS`` (plus ``grace``)."""
    return Job.objects.filter(_queued_stale_q(_edge(now, grace)))


@boundary
def jobs_stale(*, now: dt.datetime | None = None, grace: dt.timedelta | None = None) -> QuerySet[Job]:
    """Jobs a recovery may act on: lease expired (processing) or stale (queued); see the two selectors above."""
    edge = _edge(now, grace)
    return Job.objects.filter(_lease_expired_q(edge) | _queued_stale_q(edge))


@boundary
def jobs_live_ids(*, grace: dt.timedelta | None = None) -> set[str]:
    """Ids (strings) of the queued and processing jobs, less those stale for longer than ``grace``.

    The temp cleanup keeps these jobs' workspaces; a job whose lease expired longer than ``grace``
    ago (the temp age) is treated like a finished one.
    """
    edge = _edge(None, grace)
    rows = Job.objects.filter(status__in=ACTIVE_JOB_STATUSES).exclude(_lease_expired_q(edge) | _queued_stale_q(edge))
    return {str(job_id) for job_id in rows.values_list("id", flat=True)}


@dataclasses.dataclass(frozen=True)
class StaleJob:
    """A job recovery may act on, with what shows why: its kind, running stages and since when it is stale."""

    job_id: uuid.UUID
    status: str
    kind: str  # STALE_LEASE_EXPIRED or STALE_QUEUED
    current_stage: str | None
    stale_since: dt.datetime
    running_stages: tuple[str, ...]
    lease_owners: tuple[str, ...]
    updated_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (times in ISO 8601)."""
        return {
            "job_id": str(self.job_id),
            "status": self.status,
            "kind": self.kind,
            "current_stage": self.current_stage,
            "stale_since": self.stale_since.isoformat(),
            "running_stages": list(self.running_stages),
            "lease_owners": list(self.lease_owners),
            "updated_at": self.updated_at.isoformat(),
        }


@boundary
def jobs_stale_report(
    *, now: dt.datetime | None = None, job_ids: Iterable[UUID | str] | None = None, limit: int | None = None
) -> list[StaleJob]:
    """The stale jobs, each with its running stages, their lease owners and since when it is stale.

    Sorted by ``stale_since`` (``limit`` keeps the jobs untouched the longest).

    A lease-expired job is stale since its last lease ran out (or a lease after its last change);
    a queued one since ``JOB_QUEUED_STALE_SECONDS`` after its last change.
    """
    now = check_moment(now)
    lease, stale_after = job_lease_duration(), job_queued_stale_after()
    last_lease = (
        JobStage.objects.filter(job_id=OuterRef("pk"))
        .order_by()
        .values("job_id")
        .annotate(until=Max("lease_expires_at"))
        .values("until")
    )
    jobs = jobs_stale(now=now).annotate(lease_until=Subquery(last_lease)).order_by("updated_at", "id")
    if job_ids is not None:
        jobs = jobs.filter(id__in=parse_job_ids(job_ids))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValidationError(f"limit must be a whole number of at least 0, got {limit!r:.80}")
        jobs = jobs[:limit]
    rows = list(jobs.values_list("id", "status", "current_stage", "updated_at", "lease_until"))
    running: dict[UUID, list[tuple[str, str | None]]] = {}
    for job_id, name, owner in (
        JobStage.objects.filter(job_id__in=[r[0] for r in rows], status=StageStatus.PROCESSING)
        .order_by("job_id", "stage_name")
        .values_list("job_id", "stage_name", "lease_owner")
    ):
        running.setdefault(job_id, []).append((name, owner))
    report = []
    for job_id, status, current_stage, updated_at, lease_until in rows:
        if status == JobStatus.QUEUED:
            kind, since = STALE_QUEUED, updated_at + stale_after
        else:
            kind, since = STALE_LEASE_EXPIRED, max(filter(None, (lease_until, updated_at + lease)))
        stages = running.get(job_id, [])
        report.append(
            StaleJob(
                job_id=job_id,
                status=status,
                kind=kind,
                current_stage=current_stage,
                stale_since=since,
                running_stages=tuple(name for name, _ in stages),
                lease_owners=tuple(sorted({owner for _, owner in stages if owner})),
                updated_at=updated_at,
            )
        )
    return sorted(report, key=lambda job: (job.stale_since, str(job.job_id)))


@boundary
async def ajobs_stale_report(
    *, now: dt.datetime | None = None, job_ids: Iterable[UUID | str] | None = None, limit: int | None = None
) -> list[StaleJob]:
    """Async twin of :func:`jobs_stale_report`."""
    return await sync_to_async(jobs_stale_report)(now=now, job_ids=job_ids, limit=limit)
