"""Reservations on PostgreSQL, one statement per step (private to :mod:`common.services.holds`).

Each function runs one prepared statement (one round trip, see :mod:`._statements`) that does the
whole step when it is the common case, and otherwise changes nothing and returns ``None``, so that
:mod:`.holds` decides on its locked ORM path, exactly as before (and with the same errors):

* :func:`reserve`: ``UPDATE jobs SET reserved_cost = reserved_cost + estimate WHERE total_cost +
  reserved_cost + estimate <= limit AND status is active``, then the hold's ``INSERT`` from that row.
  The condition names only columns of the locked row, so PostgreSQL re-checks it against the newest
  version after a lock wait (READ COMMITTED), as the enforced charge does (:mod:`.charges`).
* :func:`settle`: the job row locked (``SELECT ... FOR NO KEY UPDATE``, the lock an ``UPDATE`` of
  the row takes, so it serialises with every other cost operation on the job while inserts of holds and
  ledger rows elsewhere keep their foreign-key checks; the lock order of every cost
  operation: the job row, then its holds), the hold closed (an ``UPDATE`` re-checks it is still
  active and unexpired on its newest version), the ledger row inserted, the job's totals moved.
* :func:`release`: the job row locked, the hold closed as released, ``reserved_cost`` lowered.

``jobs.reserved_cost`` is the sum of the job's holds with status ``active`` (every operation keeps it
so; ``reconcile_costs`` checks it). It may still count a hold past its term until something expires
it, which only makes the fast condition stricter. To keep the lazy expiry rule (every reservation step
on a job first closes its holds past their term), each statement also requires that the job has no
active hold past its term (``NOT EXISTS``, on the statement's snapshot: a stale hold it misses can
only be one already closed meanwhile, so the exact decision is unaffected); when it has one, the
statement does nothing and the locked path expires it first. A step the statement does not take
(over budget, a finished job, a closed, expired or unknown hold, a sum the column cannot hold) is
decided there too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from django.db.backends.base.base import BaseDatabaseWrapper

from common.models import ACTIVE_JOB_STATUSES, HoldStatus, JobCost, JobCostHold
from common.money import MAX_MONEY
from common.services._statements import run_prepared

M = TypeVar("M", JobCost, JobCostHold)

__all__ = ["RELEASE_SQL", "RESERVE_SQL", "SETTLE_SQL", "release", "reserve", "settle"]

_ACTIVE_JOB = "status IN ({})".format(", ".join(f"'{status}'" for status in ACTIVE_JOB_STATUSES))
# Constants only in the text (statuses, the column's largest amount); every value is a bound parameter.
_CONSTANTS = {"active_job": _ACTIVE_JOB, "active": HoldStatus.ACTIVE.value, "max": str(MAX_MONEY)}
# The job (aliased ``jobs``) has no open hold past its term; the lazy expiry is the locked path's work.
_NO_STALE_HOLD = """NOT EXISTS (
        SELECT 1 FROM job_cost_holds s
        WHERE s.job_id = jobs.id AND s.status = '{active}' AND s.created_at <= %(cutoff)s)"""

_RESERVE = """
WITH j AS (
    UPDATE jobs SET reserved_cost = reserved_cost + %(amount)s
    WHERE id = %(job)s AND {active_job}
      AND total_cost + reserved_cost + %(amount)s <= {limit}
      AND reserved_cost + %(amount)s <= {max}
      AND {no_stale_hold}
    RETURNING id
), h AS (
    INSERT INTO job_cost_holds (id, job_id, stage_name, api_name, amount, status, created_at)
    SELECT %(id)s, j.id, %(stage)s, %(api)s, %(amount)s, '{active}', %(now)s FROM j
    RETURNING id
)
SELECT h.id FROM h
"""

# The job row locked first, then the hold (the lock order of every cost operation); the hold's
# job_id never changes, so reading it from the snapshot is exact. The final UPDATE of the job finds
# its row by id, never by the ctid ``j`` locked: a version committed after the statement's snapshot is
# invisible to a TID scan, while an update reached through the index follows the row's update chain
# to the newest version (the one locked), as READ COMMITTED updates do.
_CLOSE = """
WITH j AS (
    SELECT id, total_cost, reserved_cost FROM jobs
    WHERE id = (SELECT job_id FROM job_cost_holds WHERE id = %(hold)s) AND {no_stale_hold}
    FOR NO KEY UPDATE
), h AS (
    UPDATE job_cost_holds SET status = %(status)s, closed_at = %(now)s{settled}
    FROM j
    WHERE job_cost_holds.id = %(hold)s AND job_cost_holds.job_id = j.id
      AND job_cost_holds.status = '{active}' AND job_cost_holds.created_at > %(cutoff)s
      AND j.reserved_cost >= job_cost_holds.amount{fits}
    RETURNING job_cost_holds.job_id, job_cost_holds.stage_name, job_cost_holds.api_name,
              job_cost_holds.amount, job_cost_holds.created_at
){then}
"""
_SETTLE_THEN = """, c AS (
    INSERT INTO job_costs (id, job_id, stage_name, api_name, cost, timestamp, idempotency_key)
    SELECT %(cost_id)s, h.job_id, h.stage_name, h.api_name, %(cost)s, %(now)s, %(key)s FROM h
    RETURNING 1
), u AS (
    UPDATE jobs SET total_cost = jobs.total_cost + %(cost)s, reserved_cost = jobs.reserved_cost - h.amount
    FROM h WHERE jobs.id = h.job_id
    RETURNING jobs.total_cost, jobs.budget_limit, jobs.status
)
SELECT h.job_id, h.stage_name, h.api_name, h.amount, u.total_cost, u.budget_limit, u.status FROM h, u, c"""
_RELEASE_THEN = """, u AS (
    UPDATE jobs SET reserved_cost = jobs.reserved_cost - h.amount FROM h WHERE jobs.id = h.job_id
    RETURNING 1
)
SELECT h.job_id, h.stage_name, h.api_name, h.amount, h.created_at FROM h, u"""


def _sql(template: str, **parts: str) -> str:
    no_stale_hold = _NO_STALE_HOLD.format(**_CONSTANTS)
    return template.format(**_CONSTANTS, no_stale_hold=no_stale_hold, **parts)


RESERVE_SQL = {limited: _sql(_RESERVE, limit="%(limit)s" if limited else "budget_limit") for limited in (False, True)}
SETTLE_SQL = _sql(
    _CLOSE,
    settled=", job_cost_id = %(cost_id)s",
    fits=f" AND j.total_cost + %(cost)s <= {MAX_MONEY}",
    then=_SETTLE_THEN,
)
RELEASE_SQL = _sql(_CLOSE, settled="", fits="", then=_RELEASE_THEN)


def _loaded(instance: M, conn: BaseDatabaseWrapper) -> M:
    """Mark a model instance built from a statement's result as a saved row."""
    instance._state.adding = False
    instance._state.db = conn.alias
    return instance


def reserve(
    conn: BaseDatabaseWrapper,
    *,
    job_id: UUID,
    stage: str,
    api_name: str,
    amount: Decimal,
    limit: Decimal | None,
    now: datetime,
    cutoff: datetime,
) -> JobCostHold | None:
    """Hold ``amount`` in one statement; ``None`` when the statement did not (decide on the locked path)."""
    hold_id = uuid.uuid4()
    params: dict[str, Any] = {
        "amount": amount,
        "job": job_id,
        "id": hold_id,
        "stage": stage,
        "api": api_name,
        "now": now,
        "cutoff": cutoff,
    }
    if limit is not None:
        params["limit"] = limit
    if run_prepared(conn, RESERVE_SQL[limit is not None], params) is None:
        return None
    # Positional, in the model's field order (id, job, stage, api, amount, status, created_at, closed_at,
    # settled_cost): about half the cost of keyword arguments, on the hot path.
    hold = JobCostHold(hold_id, job_id, stage, api_name, amount, HoldStatus.ACTIVE, now, None, None)  # type: ignore[misc]
    return _loaded(hold, conn)


def settle(
    conn: BaseDatabaseWrapper, *, hold_id: UUID, cost: Decimal, now: datetime, cutoff: datetime
) -> tuple[JobCost, Decimal, Decimal, Decimal, str] | None:
    """Close an active hold and record its cost in one statement.

    Returns the ledger row, the amount held, the job's new total, its budget and status; ``None``
    when the statement did nothing (decide on the locked path).
    """
    cost_id = uuid.uuid4()
    key = f"hold:{hold_id}"
    params = {
        "hold": hold_id,
        "status": HoldStatus.SETTLED.value,
        "cost_id": cost_id,
        "cost": cost,
        "now": now,
        "cutoff": cutoff,
        "key": key,
    }
    result = run_prepared(conn, SETTLE_SQL, params)
    if result is None:
        return None
    job_id, stage, api_name, held, total, budget, status = result
    # Positional, in the model's field order (id, job, stage, api, cost, timestamp, key, quantity, unit, unit_price).
    row = JobCost(cost_id, job_id, stage, api_name, cost, now, key, None, None, None)  # type: ignore[misc]
    return _loaded(row, conn), held, total, budget, status


def release(conn: BaseDatabaseWrapper, *, hold_id: UUID, now: datetime, cutoff: datetime) -> JobCostHold | None:
    """Release an active hold in one statement; ``None`` when the statement did nothing (the locked path decides)."""
    params = {"hold": hold_id, "status": HoldStatus.RELEASED.value, "now": now, "cutoff": cutoff}
    result = run_prepared(conn, RELEASE_SQL, params)
    if result is None:
        return None
    job_id, stage, api_name, amount, created_at = result
    hold = JobCostHold(
        id=hold_id,
        job_id=job_id,
        stage_name=stage,
        api_name=api_name,
        amount=amount,
        status=HoldStatus.RELEASED,
        created_at=created_at,
        closed_at=now,
    )
    return _loaded(hold, conn)
