"""Stage leases: a worker owns the stage it runs for ``JOB_LEASE_SECONDS``, renewed by a heartbeat.

:func:`~common.services.jobs.stage_start` leases the stage to an owner id (default ``<host>:<pid>``).
While the worker lives, a heartbeat renews the lease; when the worker dies the lease runs out, and
another worker's ``stage_start`` of the same stage takes it over (``attempts`` + 1), so a task
engine's redelivery (Celery with late acknowledgement, a Redis list re-push) resumes the job without
manual steps. ``manage.py recover_jobs`` deals with the jobs nobody resumes.

Exactly one owner wins a race between a takeover and a late heartbeat: the heartbeat is one
conditional ``UPDATE ... WHERE status = 'processing' AND lease_owner = <owner>``, and a takeover
decides on the stage row it has locked (``SELECT ... FOR UPDATE`` reads the newest version). The
worker that lost is told by :class:`~common.errors.LeaseLostError` (code ``LEASE_LOST``), raised by
its next renewal and by :meth:`StageLease.check`, :meth:`StageLease.complete` and :meth:`StageLease.fail`.

The usual form is the context manager, which starts the stage, renews its lease from a background
thread every third of the lease, completes the stage when the block ends and fails it when the
block raises::

    with stage_lease(job_id=job_id, stage_name="video_generation") as lease:
        for scene in scenes:
            lease.check()           # LeaseLostError once another worker has taken the stage over
            render(scene)
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections
from django.utils import timezone

from common.db import boundary, release_thread_connections
from common.errors import LeaseLostError, PipelineError, ValidationError
from common.ids import parse_job_id
from common.log import get_logger
from common.models import Job, JobStage, StageStatus, clean_text
from common.selectors.jobs import job_lease_duration
from common.services.stages import (
    astage_start,
    check_lease_owner,
    complete_stage,
    default_lease_owner,
    fail_stage,
    stage_start,
)

__all__ = [
    "StageLease",
    "astage_complete_leased",
    "astage_fail_leased",
    "astage_heartbeat",
    "astage_lease",
    "default_lease_owner",
    "stage_complete_leased",
    "stage_fail_leased",
    "stage_heartbeat",
    "stage_lease",
]

logger = get_logger(__name__)


def _lost(job_id: UUID, stage_name: str, owner: str) -> LeaseLostError:
    """The error for ``owner`` no longer holding the stage, saying who or what has it now."""
    stage = JobStage.objects.filter(job_id=job_id, stage_name=stage_name).values("status", "lease_owner").first()
    job_status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    if stage is None:
        why = "it was never started"
    elif stage["status"] == StageStatus.PROCESSING:
        why = f"it was taken over by {stage['lease_owner']}"
    else:
        why = f"it is {stage['status']} (the job is {job_status})"
    return LeaseLostError(
        f"job {job_id}: stage {stage_name!r} is no longer leased to {owner}: {why}; stop working on it",
        job_id=job_id,
        details={
            "stage": stage_name,
            "owner": owner,
            "current_owner": stage and stage["lease_owner"],
            "stage_status": stage and stage["status"],
            "job_status": job_status,
        },
    )


def _owner(owner: str) -> str:
    if owner is None:
        raise ValidationError("owner is required: the lease owner given to stage_start", details={"field": "owner"})
    return check_lease_owner(owner)


@boundary
def stage_heartbeat(*, job_id: UUID | str, stage_name: str, owner: str) -> datetime:
    """Renew ``owner``'s lease on a processing stage for ``JOB_LEASE_SECONDS``; return the new expiry.

    A lease that has run out but that nobody has taken over is renewed too (its worker was only late).

    Raises:
        LeaseLostError: the stage is not processing under ``owner`` any more (taken over, requeued,
            failed, or its job finished): stop working on it.
        ValidationError: a malformed job id or owner.
    """
    job_uuid = parse_job_id(job_id)
    clean_text(stage_name, field="stage_name", max_length=64)
    owner = _owner(owner)
    lease = job_lease_duration()
    expires = timezone.now() + lease
    # One UPDATE, atomic by itself: no BEGIN/COMMIT round trips around it.
    renewed = JobStage.objects.filter(
        job_id=job_uuid, stage_name=stage_name, status=StageStatus.PROCESSING, lease_owner=owner
    ).update(lease_expires_at=expires)
    if not renewed:
        raise _lost(job_uuid, stage_name, owner)
    return expires


def _loser(stage_name: str, owner: str) -> Callable[[UUID], LeaseLostError]:
    """The ``lost`` callback of a leased end: the error naming who or what holds the stage now."""
    return lambda job_id: _lost(job_id, stage_name, owner)


@boundary
def stage_complete_leased(
    *, job_id: UUID | str, stage_name: str, owner: str, metadata: dict[str, Any] | None = None
) -> JobStage:
    """:func:`~common.services.jobs.stage_complete`, only while ``owner`` still holds the stage's lease.

    Raises:
        LeaseLostError: another worker took the stage over (or it was recovered): its result is not this worker's.
        ValidationError: as ``stage_complete``.
    """
    owner = _owner(owner)
    clean_text(stage_name, field="stage_name", max_length=64)
    return complete_stage(job_id, stage_name, metadata, owner=owner, lost=_loser(stage_name, owner))


@boundary
def stage_fail_leased(
    *,
    job_id: UUID | str,
    stage_name: str,
    owner: str,
    error: PipelineError | None = None,
    metadata: dict[str, Any] | None = None,
) -> JobStage:
    """:func:`~common.services.jobs.stage_fail`, only while ``owner`` still holds the stage's lease.

    Raises:
        LeaseLostError: another worker took the stage over (or it was recovered): leave it alone.
        ValidationError: as ``stage_fail``.
    """
    owner = _owner(owner)
    clean_text(stage_name, field="stage_name", max_length=64)
    return fail_stage(job_id, stage_name, error, metadata, owner=owner, lost=_loser(stage_name, owner))


class StageLease:
    """A worker's hold on a started stage: renew, check, and end it (see :func:`stage_lease`)."""

    def __init__(self, *, stage: JobStage, owner: str) -> None:
        self.stage = stage
        self.job_id: UUID = stage.job_id
        self.stage_name = stage.stage_name
        self.owner = owner
        self.expires_at = stage.lease_expires_at
        self.error: LeaseLostError | None = None
        self.ended = False
        self.lost = threading.Event()  # set once this worker learns it lost the stage

    def _mark_lost(self, error: LeaseLostError) -> None:
        if not self.lost.is_set():
            self.error = error
            self.lost.set()
            logger.warning(
                "lease lost: %s",
                error.message,
                extra={
                    "job_id": str(self.job_id),
                    "stage": self.stage_name,
                    "event": "lease_lost",
                    "owner": self.owner,
                },
            )

    def check(self) -> None:
        """Raise :class:`LeaseLostError` when a renewal found the stage taken over (call between units of work)."""
        if self.error is not None:
            raise self.error

    def renew(self) -> datetime:
        """Renew the lease now (the background renewer calls this); return the new expiry."""
        try:
            self.expires_at = stage_heartbeat(job_id=self.job_id, stage_name=self.stage_name, owner=self.owner)
        except LeaseLostError as exc:
            self._mark_lost(exc)
            raise
        return self.expires_at

    def _ended(self, call: Callable[[], JobStage]) -> JobStage:
        self.check()
        if self.ended:
            raise ValidationError(
                f"job {self.job_id}: stage {self.stage_name!r} was already ended ({self.stage.status}) by this lease",
                job_id=self.job_id,
                code="INVALID_TRANSITION",
            )
        try:
            stage = call()
        except LeaseLostError as exc:
            self._mark_lost(exc)
            raise
        self.stage, self.ended = stage, True
        return stage

    def complete(self, metadata: dict[str, Any] | None = None) -> JobStage:
        """Complete the stage (only while this worker holds it)."""
        return self._ended(
            lambda: stage_complete_leased(
                job_id=self.job_id, stage_name=self.stage_name, owner=self.owner, metadata=metadata
            )
        )

    def fail(self, error: PipelineError | None = None, metadata: dict[str, Any] | None = None) -> JobStage:
        """Fail the stage (only while this worker holds it); it may be started again."""
        return self._ended(
            lambda: stage_fail_leased(
                job_id=self.job_id, stage_name=self.stage_name, owner=self.owner, error=error, metadata=metadata
            )
        )

    async def arenew(self) -> datetime:
        """Async twin of :meth:`renew`."""
        return await sync_to_async(self.renew)()

    async def acomplete(self, metadata: dict[str, Any] | None = None) -> JobStage:
        """Async twin of :meth:`complete`."""
        return await sync_to_async(self.complete)(metadata)

    async def afail(self, error: PipelineError | None = None, metadata: dict[str, Any] | None = None) -> JobStage:
        """Async twin of :meth:`fail`."""
        return await sync_to_async(self.fail)(error, metadata)


def _interval(renew_every: float | None) -> float:
    lease = job_lease_duration().total_seconds()
    if renew_every is None:
        return lease / 3
    if isinstance(renew_every, bool) or not isinstance(renew_every, (int, float)) or not 0 < renew_every < lease:
        raise ValidationError(
            f"renew_every must be a number of seconds above 0 and below JOB_LEASE_SECONDS ({lease:g}),"
            f" got {renew_every!r}",
            details={"field": "renew_every"},
        )
    return float(renew_every)


def _renewal_failed(lease: StageLease, exc: BaseException) -> None:
    logger.warning(
        "lease renewal failed, retrying at the next beat: %s",
        exc,
        extra={"job_id": str(lease.job_id), "stage": lease.stage_name, "event": "lease_renewal_failed"},
    )


def _notify(on_lost: Callable[[LeaseLostError], None] | None, error: LeaseLostError) -> None:
    if on_lost is None:
        return
    try:
        on_lost(error)
    except Exception:
        logger.exception("the on_lost callback raised", extra={"job_id": str(error.job_id), "event": "lease_on_lost"})


class _Renewer(threading.Thread):
    """Renews a lease every ``interval`` seconds until stopped or lost; holds a connection only during a beat."""

    def __init__(self, lease: StageLease, interval: float, on_lost: Callable[[LeaseLostError], None] | None) -> None:
        super().__init__(name=f"lease-{lease.stage_name}-{lease.job_id}", daemon=True)
        self.lease, self.interval, self.on_lost = lease, interval, on_lost
        self.stopping = threading.Event()
        self.context = contextvars.copy_context()  # the worker's job context: what a beat logs carries its job_id

    def run(self) -> None:
        self.context.run(self._beat)

    def _beat(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                try:
                    self.lease.renew()
                except LeaseLostError as exc:
                    _notify(self.on_lost, exc)
                    return
                except (PipelineError, DatabaseError) as exc:  # the database is away: try again at the next beat
                    _renewal_failed(self.lease, exc)
                finally:
                    # A beat borrows a connection: kept between beats, each stage would hold two (its worker's and
                    # this), and a worker with as many threads as connections would starve its own renewals.
                    release_thread_connections()
        finally:
            connections.close_all()  # this thread's connections only: give the pool slot back

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()


def _as_pipeline_error(exc: BaseException, job_id: UUID) -> PipelineError:
    if isinstance(exc, PipelineError):
        return exc
    return PipelineError(f"{type(exc).__name__}: {exc}", job_id=job_id, details={"exception": type(exc).__name__})


def _fail_quietly(lease: StageLease, exc: BaseException) -> None:
    """Fail the stage after the block raised ``exc``; problems doing so are logged, ``exc`` goes on."""
    if lease.ended or lease.lost.is_set():
        return
    try:
        lease.fail(_as_pipeline_error(exc, lease.job_id))
    except (PipelineError, DatabaseError) as problem:
        logger.warning(
            "could not fail stage %s after an error: %s",
            lease.stage_name,
            problem,
            extra={"job_id": str(lease.job_id), "stage": lease.stage_name, "event": "stage_fail_failed"},
        )


@contextmanager
def stage_lease(
    *,
    job_id: UUID | str,
    stage_name: str,
    owner: str | None = None,
    metadata: dict[str, Any] | None = None,
    renew_every: float | None = None,
    on_lost: Callable[[LeaseLostError], None] | None = None,
) -> Iterator[StageLease]:
    """Start (or take over) a stage, keep its lease alive from a background thread, and end it with the block.

    The block ending normally completes the stage (unless it called ``lease.complete``/``lease.fail``);
    an exception fails it (the error kept in its metadata) and goes on. The renewer beats every
    ``renew_every`` seconds (default a third of ``JOB_LEASE_SECONDS``); once a renewal finds the stage
    taken over it stops, sets ``lease.lost``, calls ``on_lost(error)`` from its thread, and
    ``lease.check()``/``complete()``/``fail()`` raise :class:`LeaseLostError`.

    Raises:
        ValidationError: as :func:`~common.services.jobs.stage_start` (a live lease held by another worker
            has ``details["reason"] == "lease_held"``), or a bad ``renew_every``.
    """
    interval = _interval(renew_every)
    owner = check_lease_owner(owner)
    lease = StageLease(
        stage=stage_start(job_id=job_id, stage_name=stage_name, metadata=metadata, owner=owner), owner=owner
    )
    renewer = _Renewer(lease, interval, on_lost)
    renewer.start()
    try:
        yield lease
    except BaseException as exc:
        renewer.stop()
        _fail_quietly(lease, exc)
        raise
    finally:
        renewer.stop()
    if not lease.ended:
        lease.complete()


async def _arenew(lease: StageLease, interval: float, on_lost: Callable[[LeaseLostError], None] | None) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await lease.arenew()
        except LeaseLostError as exc:
            _notify(on_lost, exc)
            return
        except (PipelineError, DatabaseError) as exc:
            _renewal_failed(lease, exc)


async def _afail_quietly(lease: StageLease, exc: BaseException) -> None:
    await sync_to_async(_fail_quietly)(lease, exc)


@asynccontextmanager
async def astage_lease(
    *,
    job_id: UUID | str,
    stage_name: str,
    owner: str | None = None,
    metadata: dict[str, Any] | None = None,
    renew_every: float | None = None,
    on_lost: Callable[[LeaseLostError], None] | None = None,
) -> AsyncIterator[StageLease]:
    """Async twin of :func:`stage_lease`: the lease is renewed by a task on the running event loop."""
    interval = _interval(renew_every)
    owner = check_lease_owner(owner)
    stage = await astage_start(job_id=job_id, stage_name=stage_name, metadata=metadata, owner=owner)
    lease = StageLease(stage=stage, owner=owner)
    renewer = asyncio.create_task(_arenew(lease, interval, on_lost), name=f"lease-{stage_name}-{lease.job_id}")

    async def stop() -> None:
        if not renewer.done():
            renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)

    try:
        yield lease
    except BaseException as exc:
        await stop()
        await _afail_quietly(lease, exc)
        raise
    finally:
        await stop()
    if not lease.ended:
        await lease.acomplete()


@boundary
async def astage_heartbeat(*, job_id: UUID | str, stage_name: str, owner: str) -> datetime:
    """Async twin of :func:`stage_heartbeat`."""
    return await sync_to_async(stage_heartbeat)(job_id=job_id, stage_name=stage_name, owner=owner)


@boundary
async def astage_complete_leased(
    *, job_id: UUID | str, stage_name: str, owner: str, metadata: dict[str, Any] | None = None
) -> JobStage:
    """Async twin of :func:`stage_complete_leased`."""
    return await sync_to_async(stage_complete_leased)(
        job_id=job_id, stage_name=stage_name, owner=owner, metadata=metadata
    )


@boundary
async def astage_fail_leased(
    *,
    job_id: UUID | str,
    stage_name: str,
    owner: str,
    error: PipelineError | None = None,
    metadata: dict[str, Any] | None = None,
) -> JobStage:
    """Async twin of :func:`stage_fail_leased`."""
    return await sync_to_async(stage_fail_leased)(
        job_id=job_id, stage_name=stage_name, owner=owner, error=error, metadata=metadata
    )
