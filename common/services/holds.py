"""Reservations: hold budget before an expensive call, then settle it with the actual cost or release it.

A hold counts against the budget (``jobs.reserved_cost`` is the sum of the open ones) until it
is settled, released, or older than ``RESERVATION_TTL_SECONDS`` (its term runs from
``created_at``; :func:`hold_renew` restarts it for a long call), so a crashed worker cannot block
a job. Every operation locks the job row before its holds (the same order as charges, see
:mod:`common.services.charges`), expires the holds past their term and decides with fresh figures.
On PostgreSQL, reserve, settle and release are each one prepared statement (one round trip) in
the common case (:mod:`common.services._holds_pg`); whatever that statement does not take (over
budget, a finished job, a closed or expired hold, stale holds to expire first) is decided by the
locked ORM path below, which is also the SQLite path, with the same rules and errors.

* :func:`hold_reserve` is refused atomically when spent + reserved + estimate exceeds the limit,
  and on a finished job (``JOB_FINISHED``).
* :func:`hold_settle` always records the actual cost (the money is spent), even above the
  estimate or the budget, for an expired or released hold and for a finished job; settling
  again returns the first row. Spend above the budget is logged at ERROR (``budget_overrun``).
* :func:`hold_release` gives the budget back; closing a closed hold does nothing.
* :func:`holds_expire` is the sweep (``manage.py recover_jobs`` runs it); expiry is otherwise lazy.
* :func:`hold_reservation` / :func:`ahold_reservation` hold for a ``with`` block.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from common.db import async_twin, boundary, retry_locked
from common.errors import ValidationError
from common.ids import canonical_uuid, parse_job_id
from common.models import HoldStatus, Job, JobCost, JobCostHold
from common.money import ZERO, format_money, parse_money
from common.selectors.costs import hold_cutoff
from common.services import _budget, _holds_pg

__all__ = [
    "Reservation",
    "ahold_release",
    "ahold_renew",
    "ahold_reservation",
    "ahold_reserve",
    "ahold_settle",
    "aholds_expire",
    "ajob_holds_release",
    "hold_release",
    "hold_renew",
    "hold_reservation",
    "hold_reserve",
    "hold_settle",
    "holds_expire",
    "job_holds_release",
    "release_holds_on_finish",
]

logger = _budget.logger
T = TypeVar("T")


def _pg(conn: BaseDatabaseWrapper, step: Callable[[], T | None]) -> T | None:
    """Run a one-statement step: as its own transaction (autocommit), or in a savepoint inside the caller's."""
    if conn.in_atomic_block:
        with transaction.atomic():  # a failed statement leaves the caller's transaction usable, as on the ORM path
            return step()
    return step()


def _hold_id(hold: JobCostHold | UUID | str) -> UUID:
    if isinstance(hold, JobCostHold):
        return hold.id
    parsed = canonical_uuid(hold)
    if parsed is None:
        raise ValidationError(f"hold {hold!r:.80} is not a valid hold id")
    return parsed


def _hold_job(hold_id: UUID) -> UUID:
    job_id = JobCostHold.objects.filter(id=hold_id).values_list("job_id", flat=True).first()
    if job_id is None:
        raise ValidationError(f"hold {hold_id} does not exist", code="HOLD_NOT_FOUND")
    return job_id


@boundary
def hold_reserve(
    *, job_id: UUID | str, stage: str, api_name: str, estimate: Decimal | int, limit: Decimal | int | None = None
) -> JobCostHold:
    """Hold ``estimate`` of the job's budget before an expensive call; refused atomically when it does not fit.

    Raises:
        BudgetExceededError: spent + open holds + estimate would exceed the limit; nothing was held.
        ValidationError: a bad amount or name, an unknown job, or (``JOB_FINISHED``) a finished job.
    """
    job_uuid = parse_job_id(job_id)
    stage = _budget.name(stage, "stage", 64)
    api_name = _budget.name(api_name, "api_name", 64)
    amount = parse_money(estimate, name="estimate")
    checked_limit = None if limit is None else parse_money(limit, name="limit")

    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor == "postgresql":
        now = timezone.now()
        fast = _pg(
            conn,
            lambda: _holds_pg.reserve(
                conn,
                job_id=job_uuid,
                stage=stage,
                api_name=api_name,
                amount=amount,
                limit=checked_limit,
                now=now,
                cutoff=hold_cutoff(now),
            ),
        )
        if fast is not None:
            return fast
    return retry_locked(functools.partial(_reserve_locked, job_uuid, stage, api_name, amount, checked_limit))


def _reserve_locked(job_id: UUID, stage: str, api_name: str, amount: Decimal, limit: Decimal | None) -> JobCostHold:
    """Reserve under the job row lock with exact figures (SQLite, and PostgreSQL's slow path)."""
    now = timezone.now()
    state = _budget.lock_job(job_id, now)
    if state.finished:
        raise _budget.finished_error(job_id, state.status, "reservation")
    effective = state.budget if limit is None else limit
    if state.total + state.reserved + amount > effective:
        raise _budget.refusal(job_id, state.total, state.reserved, amount, effective, "reservation")
    created = JobCostHold.objects.create(
        job_id=job_id, stage_name=stage, api_name=api_name, amount=amount, created_at=now
    )
    Job.objects.filter(id=job_id).update(reserved_cost=state.reserved + amount)
    return created


ahold_reserve = async_twin(hold_reserve)


@boundary
def hold_settle(*, hold: JobCostHold | UUID | str, actual_cost: Decimal | int) -> JobCost:
    """Record the actual cost of a held call and close the hold; return the ledger row.

    The cost is always recorded (the money is spent), even when it exceeds the estimate or
    the budget, when the hold has expired (an expired hold holds nothing, so its cost is all
    new spend) or was released, and when the job has finished; settling the same hold again
    returns the first row. A settle that leaves the job over its budget is logged at ERROR
    (``event=budget_overrun``, with ``held`` and ``actual``); one on a finished job at WARNING
    (``event=late_charge``).

    Raises:
        ValidationError: a bad amount or hold id, or a total too large for the money column.
    """
    hold_id = _hold_id(hold)
    cost = parse_money(actual_cost, name="actual_cost")

    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor == "postgresql":
        now = timezone.now()
        fast = _pg(conn, lambda: _holds_pg.settle(conn, hold_id=hold_id, cost=cost, now=now, cutoff=hold_cutoff(now)))
        if fast is not None:
            row, held, new_total, budget, status = fast
            old_total = new_total - cost
            _budget.after_spend(
                row.job_id,
                old_total=old_total,
                new_total=new_total,
                budget=budget,
                status=status,
                cost=cost,
                what="settle",
                held=held,
                hold_status=str(HoldStatus.ACTIVE),
            )
            return row
    return retry_locked(functools.partial(_settle_locked, hold_id, cost))


def _settle_locked(hold_id: UUID, cost: Decimal) -> JobCost:
    """Settle under the job row lock with exact figures (SQLite, and PostgreSQL's slow path)."""
    now = timezone.now()
    job_id = _hold_job(hold_id)
    # Lock order: the job row, then its holds (every operation does the same).
    state = _budget.lock_job(job_id, now)
    current = JobCostHold.objects.get(id=hold_id)
    if current.status == HoldStatus.SETTLED and current.settled_cost_id is not None:
        return JobCost.objects.get(id=current.settled_cost_id)
    reserved = state.reserved - current.amount if current.status == HoldStatus.ACTIVE else state.reserved
    new_total = _budget.new_total(job_id, state.total, cost)
    row = JobCost(
        job_id=job_id,
        stage_name=current.stage_name,
        api_name=current.api_name,
        cost=cost,
        timestamp=now,
        idempotency_key=f"hold:{hold_id}",
    )
    row.save(force_insert=True)
    JobCostHold.objects.filter(id=hold_id).update(status=HoldStatus.SETTLED, closed_at=now, settled_cost=row)
    Job.objects.filter(id=job_id).update(total_cost=new_total, reserved_cost=reserved)
    _budget.after_spend(
        job_id,
        old_total=state.total,
        new_total=new_total,
        budget=state.budget,
        status=state.status,
        cost=cost,
        what="settle",
        held=current.amount,
        hold_status=str(current.status),
    )
    return row


ahold_settle = async_twin(hold_settle)


@boundary
def hold_release(*, hold: JobCostHold | UUID | str) -> JobCostHold:
    """Give a hold's budget back without charging (the call was not made); closing a closed hold does nothing."""
    hold_id = _hold_id(hold)

    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor == "postgresql":
        now = timezone.now()
        fast = _pg(conn, lambda: _holds_pg.release(conn, hold_id=hold_id, now=now, cutoff=hold_cutoff(now)))
        if fast is not None:
            return fast
    return retry_locked(functools.partial(_release_locked, hold_id))


def _release_locked(hold_id: UUID) -> JobCostHold:
    """Release under the job row lock (SQLite, and PostgreSQL's slow path)."""
    now = timezone.now()
    job_id = _hold_job(hold_id)
    state = _budget.lock_job(job_id, now)
    current = JobCostHold.objects.get(id=hold_id)
    if current.status != HoldStatus.ACTIVE:
        return current
    JobCostHold.objects.filter(id=hold_id).update(status=HoldStatus.RELEASED, closed_at=now)
    Job.objects.filter(id=job_id).update(reserved_cost=state.reserved - current.amount)
    current.refresh_from_db()
    return current


ahold_release = async_twin(hold_release)


@boundary
def hold_renew(*, hold: JobCostHold | UUID | str) -> JobCostHold:
    """Keep a hold alive for a long call: its term (``created_at``) restarts now; return the hold.

    Call it at least every ``RESERVATION_TTL_SECONDS`` (say, every third of it) while the call
    runs. A hold that has already expired is held again when its amount still fits the budget.

    Raises:
        BudgetExceededError: (code ``HOLD_EXPIRED``) the hold expired and the budget it held has been
            used meanwhile; nothing changed. Abort the call if you can; a call already made is still
            recorded by :func:`hold_settle` (and logged as an overrun if it takes the job over budget).
        ValidationError: (code ``HOLD_CLOSED``) the hold was settled or released (for instance
            because the job finished): stop the call; (``JOB_FINISHED``) the job has finished;
            (``HOLD_NOT_FOUND``) no such hold.
    """
    hold_id = _hold_id(hold)

    def renew() -> JobCostHold:
        now = timezone.now()
        job_id = _hold_job(hold_id)
        state = _budget.lock_job(job_id, now)  # expires this hold too when its term is over
        current = JobCostHold.objects.get(id=hold_id)
        if current.status in (HoldStatus.SETTLED, HoldStatus.RELEASED):
            raise ValidationError(
                f"hold {hold_id} of job {job_id} is already {current.status}: there is nothing to keep alive",
                job_id=job_id,
                code=_budget.HOLD_CLOSED,
                details={"status": str(current.status)},
            )
        if state.finished:
            raise _budget.finished_error(job_id, state.status, "keeping a hold alive")
        if current.status == HoldStatus.ACTIVE:
            JobCostHold.objects.filter(id=hold_id).update(created_at=now)
        else:  # expired: hold the amount again if it still fits
            if state.total + state.reserved + current.amount > state.budget:
                refusal = _budget.refusal(job_id, state.total, state.reserved, current.amount, state.budget, "renewal")
                refusal.code = _budget.HOLD_EXPIRED
                refusal.message = f"hold {hold_id} expired and cannot be held again: {refusal.message}"
                raise refusal
            JobCostHold.objects.filter(id=hold_id).update(status=HoldStatus.ACTIVE, created_at=now, closed_at=None)
            Job.objects.filter(id=job_id).update(reserved_cost=state.reserved + current.amount)
        current.refresh_from_db()
        return current

    return retry_locked(renew)


ahold_renew = async_twin(hold_renew)


@boundary
def job_holds_release(*, job_id: UUID | str) -> int:
    """Release every open hold of a job (e.g. when it finishes); return how many were released."""
    job_uuid = parse_job_id(job_id)

    def give_back() -> int:
        now = timezone.now()
        _budget.lock_job(job_uuid, now)
        released = JobCostHold.objects.filter(job_id=job_uuid, status=HoldStatus.ACTIVE).update(
            status=HoldStatus.RELEASED, closed_at=now
        )
        Job.objects.filter(id=job_uuid).update(reserved_cost=ZERO)
        return released

    return retry_locked(give_back)


ajob_holds_release = async_twin(job_holds_release)


def _expire_job_holds(job_id: UUID) -> int:
    """Under the job row lock: close the job's expired holds and set ``reserved_cost`` to its open holds."""
    now = timezone.now()
    # Lock order: the job row, then its holds (every operation does the same).
    reserved_before = Job.objects.select_for_update().filter(id=job_id).values_list("reserved_cost", flat=True).first()
    if reserved_before is None:
        return 0
    expired, reserved = _budget.expire_and_sum(job_id, now)
    if reserved != reserved_before:
        Job.objects.filter(id=job_id).update(reserved_cost=reserved)
    if expired:

        def log() -> None:
            logger.info(
                "expired %d hold(s) of job %s: reserved %s -> %s",
                expired,
                job_id,
                format_money(reserved_before),
                format_money(reserved),
                extra={"job_id": str(job_id), "event": "holds_expired", "expired": expired},
            )

        transaction.on_commit(log)
    return expired


@boundary
def holds_expire(*, job_id: UUID | str | None = None) -> int:
    """Close the open holds older than ``RESERVATION_TTL_SECONDS`` (status ``expired``); return how many.

    Each affected job's ``reserved_cost`` becomes the sum of its remaining open holds, so the admin, the
    ``Job`` payload and the budget checks agree again. One short transaction per job, locking the job row
    before its holds as every cost operation does: safe beside charges, settles and other sweeps, and
    from cron (``manage.py recover_jobs``). ``job_id`` limits the sweep to one job.
    """
    job_uuid = None if job_id is None else parse_job_id(job_id)

    def candidates() -> list[UUID]:
        holds = JobCostHold.objects.filter(status=HoldStatus.ACTIVE, created_at__lte=hold_cutoff())
        if job_uuid is not None:
            holds = holds.filter(job_id=job_uuid)
        return list(holds.order_by("job_id").values_list("job_id", flat=True).distinct())

    expired = 0
    for candidate in retry_locked(candidates, atomic=False):
        expired += retry_locked(functools.partial(_expire_job_holds, candidate))
    return expired


aholds_expire = async_twin(holds_expire)


def release_holds_on_finish(sender: object, *, job: Job, **kwargs: Any) -> None:
    """``job_finished`` receiver: a completed, failed or cancelled job keeps no budget on hold."""
    job_holds_release(job_id=job.id)


class Reservation:
    """A hold in a ``with hold_reservation(...)`` block: call :meth:`settle` with the actual cost."""

    def __init__(self, hold: JobCostHold) -> None:
        self.hold = hold
        self.cost: JobCost | None = None

    @property
    def estimate(self) -> Decimal:
        """The amount held."""
        return self.hold.amount

    def settle(self, actual_cost: Decimal | int) -> JobCost:
        """Record the actual cost and close the hold."""
        self.cost = hold_settle(hold=self.hold, actual_cost=actual_cost)
        return self.cost

    async def asettle(self, actual_cost: Decimal | int) -> JobCost:
        """Async twin of :meth:`settle`."""
        self.cost = await ahold_settle(hold=self.hold, actual_cost=actual_cost)
        return self.cost

    def keep_alive(self) -> JobCostHold:
        """Restart the hold's term while a long call runs (see :func:`hold_renew`)."""
        self.hold = hold_renew(hold=self.hold)
        return self.hold

    async def akeep_alive(self) -> JobCostHold:
        """Async twin of :meth:`keep_alive`."""
        self.hold = await ahold_renew(hold=self.hold)
        return self.hold


@contextmanager
def hold_reservation(
    *, job_id: UUID | str, stage: str, api_name: str, estimate: Decimal | int, limit: Decimal | int | None = None
) -> Iterator[Reservation]:
    """Hold budget for the block; released when the block raises, settled at the estimate if never settled."""
    held = Reservation(hold_reserve(job_id=job_id, stage=stage, api_name=api_name, estimate=estimate, limit=limit))
    try:
        yield held
    except BaseException:
        if held.cost is None:
            hold_release(hold=held.hold)
        raise
    if held.cost is None:
        held.settle(held.estimate)


@asynccontextmanager
async def ahold_reservation(
    *, job_id: UUID | str, stage: str, api_name: str, estimate: Decimal | int, limit: Decimal | int | None = None
) -> AsyncIterator[Reservation]:
    """Async twin of :func:`hold_reservation`."""
    hold = await ahold_reserve(job_id=job_id, stage=stage, api_name=api_name, estimate=estimate, limit=limit)
    held = Reservation(hold)
    try:
        yield held
    except BaseException:
        if held.cost is None:
            await ahold_release(hold=held.hold)
        raise
    if held.cost is None:
        await held.asettle(held.estimate)
