"""The ledger: one paid API call recorded against its job, enforced against its budget, idempotent.

:func:`charge_record` appends one ``job_costs`` row and raises ``jobs.total_cost`` in the same
atomic step. With ``enforce=True`` the budget check is part of that step, so whatever the
interleaving of threads, processes or machines, accepted charges never sum above the limit.

How the guarantee is kept:

* Every budget-changing operation (charge, reserve, settle, release) is serialised per job on
  the ``jobs`` row: on PostgreSQL a charge is one statement whose conditional ``UPDATE jobs ...
  WHERE total_cost + reserved_cost + cost <= limit`` takes the row lock, and PostgreSQL
  re-checks that condition against the newest row version after waiting for the lock (READ
  COMMITTED), so no update is lost and no check is stale. Only columns of the locked row are in
  the condition, never a subquery (a subquery would read the snapshot taken before the wait).
  The open holds are therefore summed into ``jobs.reserved_cost`` by the (locked) hold operations.
* When that statement matches no row (over budget, expired holds still counted, unknown job),
  the slow path locks the row, expires holds older than ``RESERVATION_TTL_SECONDS``, recomputes
  the reserved sum with fresh statements, and decides exactly.
* SQLite serialises writers at ``BEGIN IMMEDIATE``; the arithmetic is done in Python ``Decimal``
  inside that transaction (SQLite stores decimals as floats), and "database is locked" is retried
  (:func:`common.db.retry_locked`) rather than surfacing to the caller.
* Idempotency keys are guarded by the unique index on ``(job_id, idempotency_key)``: a racing
  duplicate's statement fails as a whole (so it charges nothing) and the first row is returned.
* The guarantee's exact edge: enforced charges and reservations never take a job over its
  budget; a job ends over it only when a call already made cost more than was held for it (a
  settle above its estimate, a settle of an expired hold, or an unenforced charge). That spend is
  recorded and logged at ERROR (``budget_overrun``). A finished job refuses enforced charges
  (``JOB_FINISHED``); its late unenforced charges are recorded with a ``late_charge`` warning.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from common.db import async_twin, boundary, retry_locked
from common.errors import ValidationError
from common.ids import parse_job_id
from common.models import ACTIVE_JOB_STATUSES, Job, JobCost
from common.money import MAX_MONEY, parse_money, parse_quantity
from common.services import _budget
from common.services._statements import CURSORS, run_prepared
from common.services.prices import price_get, price_of, price_table

__all__ = ["IDEMPOTENCY_CONSTRAINT", "acharge_record", "charge_record"]

IDEMPOTENCY_CONSTRAINT = "job_costs_unique_idempotency_key"

# One statement: lock + check + raise the total, then the ledger row. Only columns of the locked
# row are in the condition, so PostgreSQL's re-check after a lock wait sees the newest values.
_PG_CHARGE = """
WITH j AS (
    UPDATE jobs SET total_cost = total_cost + %(cost)s
    WHERE id = %(job)s{condition}
    RETURNING total_cost, budget_limit, status
), i AS (
    INSERT INTO job_costs (id, job_id, stage_name, api_name, cost, timestamp{columns})
    SELECT %(id)s, %(job)s, %(stage)s, %(api)s, %(cost)s, %(ts)s{values} FROM j
    RETURNING 1
)
SELECT j.total_cost, j.budget_limit, j.status FROM j, i
"""
# A row that does not match goes to the slow path, which says why (over budget, finished job, overflow).
_ACTIVE_SQL = " AND status IN ({})".format(", ".join(f"'{status}'" for status in ACTIVE_JOB_STATUSES))
_PG_CONDITIONS = {
    "plain": f" AND total_cost + %(cost)s <= {MAX_MONEY}",
    "budget": " AND total_cost + reserved_cost + %(cost)s <= budget_limit" + _ACTIVE_SQL,
    "limit": " AND total_cost + reserved_cost + %(cost)s <= %(limit)s" + _ACTIVE_SQL,
}
_PG_EXTRAS = {
    False: ("", ""),
    True: (
        ", idempotency_key, quantity, unit, unit_price",
        ", %(key)s, %(quantity)s::numeric, %(unit)s, %(unit_price)s::numeric",
    ),
}
# The statement cursor of each Django connection (shared with the holds' statements, see _statements).
_CURSORS = CURSORS

_PG_CHARGE_SQL = {
    (mode, extras): _PG_CHARGE.format(condition=condition, columns=columns, values=values)
    for mode, condition in _PG_CONDITIONS.items()
    for extras, (columns, values) in _PG_EXTRAS.items()
}


def _existing(job_id: UUID, key: str) -> JobCost | None:
    return JobCost.objects.filter(job_id=job_id, idempotency_key=key).first()


def _charge_fast(
    conn: BaseDatabaseWrapper, row: JobCost, enforce: bool, limit: Decimal | None
) -> tuple[Decimal, Decimal, str] | None:
    """PostgreSQL: charge in one statement; ``None`` when it matched no row (decide on the slow path)."""
    params: dict[str, Any] = {
        "cost": row.cost,
        "job": row.job_id,
        "id": row.id,
        "stage": row.stage_name,
        "api": row.api_name,
        "ts": row.timestamp,
    }
    extras = not (row.idempotency_key is None and row.quantity is None and row.unit is None)
    if extras:
        params.update(key=row.idempotency_key, quantity=row.quantity, unit=row.unit, unit_price=row.unit_price)
    mode = "plain" if not enforce else "budget" if limit is None else "limit"
    if mode == "limit":
        params["limit"] = limit
    # One prepared statement on the raw connection, so the hot path skips parsing and planning:
    # bench/costs.py measures about 1.5x (one job) and 1.9x (one job per thread) more charges per
    # second than with COST_PREPARED_STATEMENTS off, one round trip per charge (see _statements).
    result = run_prepared(conn, _PG_CHARGE_SQL[mode, extras], params)
    return None if result is None else (result[0], result[1], result[2])


def _charge_locked(row: JobCost, enforce: bool, limit: Decimal | None) -> JobCost:
    """Charge under the job row lock with exact figures (SQLite, and PostgreSQL's slow path)."""
    now = timezone.now()
    state = _budget.lock_job(row.job_id, now)
    if row.idempotency_key is not None:
        existing = _existing(row.job_id, row.idempotency_key)
        if existing is not None:
            return existing
    if enforce and state.finished:
        raise _budget.finished_error(row.job_id, state.status, "charge")
    effective_limit = state.budget if limit is None else limit
    if enforce and state.total + state.reserved + row.cost > effective_limit:
        raise _budget.refusal(row.job_id, state.total, state.reserved, row.cost, effective_limit, "charge")
    new_total = _budget.new_total(row.job_id, state.total, row.cost)
    Job.objects.filter(id=row.job_id).update(total_cost=new_total, reserved_cost=state.reserved)
    row.save(force_insert=True)
    _budget.after_spend(
        row.job_id,
        old_total=state.total,
        new_total=new_total,
        budget=state.budget,
        status=state.status,
        cost=row.cost,
        what="charge",
    )
    return row


def _insert_charge(row: JobCost, enforce: bool, limit: Decimal | None) -> JobCost:
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor == "postgresql":
        try:
            if conn.in_atomic_block:
                with transaction.atomic():  # a savepoint, so a duplicate key leaves the caller's transaction usable
                    result = _charge_fast(conn, row, enforce, limit)
            else:
                result = _charge_fast(conn, row, enforce, limit)  # autocommit: the statement is the transaction
        except IntegrityError as exc:
            constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
            if row.idempotency_key is None or constraint != IDEMPOTENCY_CONSTRAINT:
                raise ValidationError(f"the charge was refused by the database: {exc}", job_id=row.job_id) from exc
            existing = _existing(row.job_id, row.idempotency_key)
            if existing is None:  # pragma: no cover - the unique index said it exists
                raise
            return existing
        if result is not None:
            new_total, budget, status = result
            row._state.adding = False
            row._state.db = conn.alias
            old_total = new_total - row.cost
            _budget.after_spend(
                row.job_id,
                old_total=old_total,
                new_total=new_total,
                budget=budget,
                status=status,
                cost=row.cost,
                what="charge",
            )
            return row
    return retry_locked(lambda: _charge_locked(row, enforce, limit))


@boundary
def charge_record(
    *,
    job_id: UUID | str,
    stage: str,
    api_name: str,
    cost: Decimal | int | None = None,
    idempotency_key: str | None = None,
    quantity: Decimal | int | None = None,
    unit: str | None = None,
    enforce: bool = False,
    limit: Decimal | int | None = None,
) -> JobCost:
    """Record one paid API call against a job and raise ``jobs.total_cost`` atomically; return the row.

    Args:
        job_id: the job to charge.
        stage: the pipeline stage that made the call.
        api_name: the API called (a price-table name when ``quantity`` is given without ``cost``).
        cost: the amount (``Decimal`` or ``int``); ``None`` prices ``quantity`` from the price table.
        idempotency_key: a second call with the same key for the job returns the first row, charging nothing.
        quantity: units consumed (images, seconds, 1k tokens ...), stored with the row.
        unit: the unit of ``quantity`` (defaults to the price table's unit for known APIs).
        enforce: refuse the charge atomically when spent + reserved + cost would exceed the limit.
        limit: the limit to enforce instead of the job's ``budget_limit`` (implies ``enforce``).

    Raises:
        BudgetExceededError: enforced and over the limit; nothing was recorded.
        ValidationError: a bad amount, name or key, an unknown job, or (code ``JOB_FINISHED``) an
            enforced charge on a finished job.
    """
    job_uuid = parse_job_id(job_id)
    stage = _budget.name(stage, "stage", 64)
    api_name = _budget.name(api_name, "api_name", 64)
    amount = parse_quantity(quantity)
    unit = _budget.optional_name(unit, "unit", 32)
    key = _budget.optional_name(idempotency_key, "idempotency_key", 255)
    unit_price = None
    table = None if amount is None else price_table()  # built once per call
    price = None if table is None else table.get(api_name)
    if cost is None:
        if table is None or amount is None:
            raise ValidationError("cost is required (or give quantity of a priced API)", job_id=job_uuid)
        cost = price_of(price or price_get(api_name=api_name, table=table), amount)  # price_get: UNKNOWN_API
    cost = parse_money(cost)
    if price is not None and unit in (None, price.unit):
        unit, unit_price = price.unit, price.price
    checked_limit = None if limit is None else parse_money(limit, name="limit")
    # Positional, in the model's field order: the cheapest way to build an instance (the hot path).
    row = JobCost(uuid.uuid4(), job_uuid, stage, api_name, cost, timezone.now(), key, amount, unit, unit_price)  # type: ignore[misc]
    return _insert_charge(row, enforce or checked_limit is not None, checked_limit)


acharge_record = async_twin(charge_record)
