"""Cost tracking: the ``job_costs`` ledger, budgets that hold under parallel workers, reservations, prices.

Every paid API call is recorded with :func:`track_cost`, which appends one ledger
row and raises ``jobs.total_cost`` in the same atomic step. With ``enforce=True``
the budget check is part of that step, so whatever the interleaving of threads,
processes or machines, accepted charges never sum above the limit.

How the guarantee is kept:

* Every budget-changing operation (charge, reserve, settle, release) is
  serialised per job on the ``jobs`` row: on PostgreSQL a charge is one
  statement whose conditional ``UPDATE jobs ... WHERE total_cost +
  reserved_cost + cost <= limit`` takes the row lock, and PostgreSQL re-checks
  that condition against the newest row version after waiting for the lock
  (READ COMMITTED), so no update is lost and no check is stale. Only columns of
  the locked row are in the condition, never a subquery (a subquery would read
  the snapshot taken before the wait). The open holds are therefore summed into
  ``jobs.reserved_cost`` by the (locked) hold operations.
* When that statement matches no row (over budget, expired holds still counted,
  unknown job), the slow path locks the row (``SELECT ... FOR UPDATE``), expires
  holds older than ``RESERVATION_TTL_SECONDS``, recomputes ``reserved_cost`` from
  the open holds with fresh statements, and decides exactly.
* SQLite serialises writers at ``BEGIN IMMEDIATE``; the arithmetic is done in
  Python ``Decimal`` inside that transaction (SQLite stores decimals as floats),
  and "database is locked" is retried here rather than surfacing to the caller.
* Idempotency keys are guarded by the unique index on ``(job_id,
  idempotency_key)``: a racing duplicate's statement fails as a whole (so it
  charges nothing) and the first row is returned.
* The guarantee's exact edge: enforced charges and reservations never take a job over
  its budget; a job ends over it only when a call already made cost more than was
  held for it (a settle above its estimate, a settle of an expired hold, which holds
  nothing, or an unenforced charge). That spend is recorded and logged at ERROR
  (``budget_overrun``); the job then fits no enforced charge until its budget is
  raised. :func:`renew_hold` keeps a long call's hold from expiring. A finished job
  refuses reservations and enforced charges (``JOB_FINISHED``); its late unenforced
  charges and settles are recorded with a ``late_charge`` warning.
* Threshold warnings need no extra state: charges on one job are serialised, so
  exactly one charge moves the total from below ``t * budget`` to at or above it,
  and that charge logs the warning (once per job and threshold, across processes).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Aggregate, BigIntegerField, Count, F, Sum
from django.db.models.functions import Cast, Round
from django.utils import timezone

from common.conf import app_settings
from common.db import boundary
from common.errors import BudgetExceededError, ValidationError
from common.log import get_logger
from common.models import (
    ACTIVE_JOB_STATUSES,
    MAX_MONEY,
    HoldStatus,
    Job,
    JobCost,
    JobCostHold,
    clean_text,
)
from common.selectors import job_not_found, parse_job_id

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "DEFAULT_API_PRICES",
    "ApiPrice",
    "CostSummary",
    "CostTracker",
    "Reservation",
    "acheck_budget",
    "aenforce_budget_limit",
    "aexpire_holds",
    "aget_total_cost",
    "ajob_cost_summary",
    "arelease",
    "arenew_hold",
    "areservation",
    "areserve",
    "asettle",
    "atrack_cost",
    "check_budget",
    "cost_tracker",
    "enforce_budget_limit",
    "estimate_cost",
    "expire_holds",
    "format_money",
    "get_price",
    "get_price_table",
    "get_total_cost",
    "job_cost_summary",
    "money_from_sum",
    "money_sum",
    "release",
    "release_holds_on_finish",
    "release_job_holds",
    "renew_hold",
    "reservation",
    "reserve",
    "settle",
    "track_cost",
    "validate_money",
]

logger = get_logger("common.costs")

T = TypeVar("T")
P = ParamSpec("P")

MONEY_PLACES = 6
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
QUANTITY_PLACES = 4
MAX_QUANTITY = Decimal("9999999999.9999")  # DecimalField(14, 4)
ZERO = Decimal(0)
MICRO = 10**MONEY_PLACES
UNITS = ("call", "image", "second", "1k_tokens", "clip", "minute")
IDEMPOTENCY_CONSTRAINT = "job_costs_unique_idempotency_key"
JOB_FINISHED = "JOB_FINISHED"
HOLD_EXPIRED = "HOLD_EXPIRED"
HOLD_CLOSED = "HOLD_CLOSED"
LOCKED_RETRY_SECONDS = 30.0  # how long a SQLite writer keeps retrying "database is locked"


# --------------------------------------------------------------------------- price table


@dataclasses.dataclass(frozen=True)
class ApiPrice:
    """The price of one unit of a paid API."""

    api_name: str
    unit: str
    price: Decimal


# Known list prices (USD). ``VIDEOGEN_COMMON["API_PRICES"]`` entries override or extend these.
DEFAULT_API_PRICES: dict[str, dict[str, Any]] = {
    "whisper": {"unit": "minute", "price": Decimal("0.006")},
    "gpt-4-turbo": {"unit": "call", "price": Decimal("0.01")},
    "gpt-4o": {"unit": "1k_tokens", "price": Decimal("0.0025")},
    "gpt-4o-output": {"unit": "1k_tokens", "price": Decimal("0.01")},
    "gpt-4o-mini": {"unit": "1k_tokens", "price": Decimal("0.00015")},
    "sdxl": {"unit": "image", "price": Decimal("0.0055")},
    "svd": {"unit": "clip", "price": Decimal("0.06")},
    "zeroscope": {"unit": "clip", "price": Decimal("0.10")},
    "animatediff": {"unit": "clip", "price": Decimal("0.20")},
    "musicgen": {"unit": "call", "price": Decimal("0.15")},
    "runway-gen3-turbo": {"unit": "second", "price": Decimal("0.05")},
}


def get_price_table() -> dict[str, ApiPrice]:
    """Return the price table: the defaults merged with ``API_PRICES`` from the app settings."""
    merged: Mapping[str, Any] = {**DEFAULT_API_PRICES, **(app_settings.API_PRICES or {})}
    table = {}
    for name, entry in merged.items():
        unit = entry.get("unit") if isinstance(entry, Mapping) else None
        price = entry.get("price") if isinstance(entry, Mapping) else None
        if unit not in UNITS:
            raise ValidationError(f"API_PRICES[{name!r}] has unit {unit!r}; use one of {', '.join(UNITS)}")
        table[name] = ApiPrice(name, unit, validate_money(price, name=f"API_PRICES[{name!r}] price"))
    return table


def get_price(api_name: str) -> ApiPrice:
    """Return the price of ``api_name``.

    Raises:
        ValidationError: the API is not in the price table (the message lists the known ones).
    """
    api_name = _name(api_name, "api_name", 64)
    table = get_price_table()
    try:
        return table[api_name]
    except KeyError:
        raise ValidationError(
            f"unknown API {api_name!r}: no price known; known APIs are {', '.join(sorted(table))}",
            code="UNKNOWN_API",
            details={"api_name": api_name, "known": sorted(table)},
        ) from None


def estimate_cost(api_name: str, quantity: Decimal | int = 1) -> Decimal:
    """Return the cost of ``quantity`` units of ``api_name`` from the price table, rounded up to 6 places."""
    price = get_price(api_name)
    amount = _quantity(quantity)
    if amount is None:
        raise ValidationError("quantity is required to estimate a cost")
    return _priced(price, amount)


def _priced(price: ApiPrice, quantity: Decimal) -> Decimal:
    return (price.price * quantity).quantize(MONEY_QUANTUM, rounding=ROUND_CEILING)


# --------------------------------------------------------------------------- validation


def validate_money(value: object, *, name: str = "cost") -> Decimal:
    """Return ``value`` as a 6-place ``Decimal``, or raise ``ValidationError`` naming the bad value.

    Accepts ``Decimal`` and ``int`` only: floats (inexact), strings, NaN,
    infinities, negative amounts, more than 6 decimal places and amounts too
    large for the money columns are refused.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        hint = f" (use Decimal({str(value)!r}))" if isinstance(value, (float, str)) else ""
        raise ValidationError(
            f"{name} must be a Decimal, got {type(value).__name__} {value!r}{hint}",
            details={"field": name, "value": repr(value)},
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValidationError(f"{name} must be a finite amount, got {value!r}", details={"field": name})
    if amount < 0:
        raise ValidationError(f"{name} must not be negative, got {amount}", details={"field": name})
    if amount > MAX_MONEY:
        raise ValidationError(f"{name} {amount} is larger than {MAX_MONEY}", details={"field": name})
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_PLACES and amount != amount.quantize(MONEY_QUANTUM):
        raise ValidationError(f"{name} {amount:f} has more than {MONEY_PLACES} decimal places", details={"field": name})
    return amount.quantize(MONEY_QUANTUM) + 0  # + 0: -0 becomes 0


def _quantity(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValidationError(f"quantity must be a Decimal or int, got {type(value).__name__} {value!r}")
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0 or amount > MAX_QUANTITY:
        raise ValidationError(f"quantity must be a finite amount from 0 to {MAX_QUANTITY}, got {value!r}")
    try:
        quantized = amount.quantize(Decimal(1).scaleb(-QUANTITY_PLACES))
    except InvalidOperation:  # pragma: no cover - bounded above
        raise ValidationError(f"quantity {value!r} is out of range") from None
    if quantized != amount:
        raise ValidationError(f"quantity {amount:f} has more than {QUANTITY_PLACES} decimal places")
    return quantized + 0  # -0 becomes 0


def _name(value: object, field: str, max_length: int) -> str:
    return clean_text(value, field=field, max_length=max_length)


def _optional_name(value: object, field: str, max_length: int) -> str | None:
    return None if value is None else _name(value, field, max_length)


def format_money(value: Decimal | None) -> str:
    """Format an amount exactly, with at least two decimal places (``Decimal('19.980000')`` -> ``'19.98'``)."""
    if value is None:
        return ""
    text = str(value)  # fast, and plain notation for the usual 6-place amounts
    if "E" in text:
        text = f"{value:f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction:0<2}"


# --------------------------------------------------------------------------- database plumbing


def _db_boundary(func: Callable[P, T]) -> Callable[P, T]:
    """The shared database boundary (:func:`common.db.boundary`): every database error becomes a PipelineError."""
    return boundary(func)


def _is_locked(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def _write(func: Callable[[], T], *, atomic: bool = True) -> T:
    """Run ``func`` in a transaction; on SQLite retry "database is locked" with backoff for up to a deadline.

    With ``atomic=False`` (reads) ``func`` runs as is, with the same retries.
    """
    deadline = time.monotonic() + LOCKED_RETRY_SECONDS
    attempt = 0
    while True:
        try:
            if not atomic:
                return func()
            with transaction.atomic():
                return func()
        except OperationalError as exc:
            # Inside a caller's transaction a retry cannot start over: let it fail there.
            if connection.in_atomic_block or not _is_locked(exc) or time.monotonic() >= deadline:
                raise
            attempt += 1
            time.sleep(min(0.001 * 2**attempt, 0.05) * (0.5 + random.random()))  # noqa: S311 - jitter


def _read(func: Callable[[], T]) -> T:
    """Run a read, retrying SQLite's "database table is locked" (shared-cache databases)."""
    return _write(func, atomic=False)


@dataclasses.dataclass
class _Locked:
    total: Decimal
    reserved: Decimal
    budget: Decimal
    status: str

    @property
    def finished(self) -> bool:
        """True for a completed, failed or cancelled job."""
        return self.status not in ACTIVE_JOB_STATUSES


def _lock_job(job_id: UUID, now: datetime) -> _Locked:
    """Lock the job row, expire stale holds and recompute the reserved sum, with fresh statements."""
    row = Job.objects.select_for_update().filter(id=job_id).values_list("total_cost", "budget_limit", "status").first()
    if row is None:
        raise job_not_found(job_id)
    cutoff = now - timedelta(seconds=float(app_settings.RESERVATION_TTL_SECONDS))
    open_holds = JobCostHold.objects.filter(job_id=job_id, status=HoldStatus.ACTIVE)
    expired = open_holds.filter(created_at__lte=cutoff).update(status=HoldStatus.EXPIRED, closed_at=now)
    # Summed in Python: SQLite would add floats.
    reserved = sum(open_holds.values_list("amount", flat=True), ZERO)
    if expired:  # a path that returns early (releasing a closed hold) must not leave them in reserved_cost
        Job.objects.filter(id=job_id).update(reserved_cost=reserved)
    return _Locked(total=row[0], reserved=reserved, budget=row[1], status=row[2])


def _finished(job_id: UUID, status: str, what: str) -> ValidationError:
    """The refusal of a reservation or enforced charge on a completed, failed or cancelled job."""
    return ValidationError(
        f"{what} refused for job {job_id}: the job is {status}, and a finished job takes no new reservations"
        " or enforced charges (record a call that was already made with enforce=False)",
        job_id=job_id,
        code=JOB_FINISHED,
        details={"status": status},
    )


def _new_total(job_id: UUID, total: Decimal, cost: Decimal) -> Decimal:
    """``total + cost``, refused when it would not fit the money column (numeric(14, 6))."""
    new_total = total + cost
    if new_total > MAX_MONEY:
        raise ValidationError(
            f"{format_money(cost)} refused for job {job_id}: total_cost would be {format_money(new_total)}, more"
            f" than the largest amount the column holds ({MAX_MONEY})",
            job_id=job_id,
            details={"field": "total_cost", "total": format_money(total), "attempted": format_money(cost)},
        )
    return new_total


def _spent_logs(
    job_id: UUID,
    *,
    old_total: Decimal,
    new_total: Decimal,
    budget: Decimal,
    status: str,
    cost: Decimal,
    what: str,
    held: Decimal | None = None,
    hold_status: str | None = None,
) -> None:
    """After commit: ERROR when recorded spend took the job over its budget, WARNING for a finished job's charge.

    Enforced charges and reservations never get here over budget (unless a ``limit=`` above
    the budget was passed); what does is a call already made that cost more than its hold:
    a settle above its estimate, a settle of an expired hold, or an unenforced charge.
    """
    over = new_total > budget and new_total > old_total
    late = status not in ACTIVE_JOB_STATUSES
    if not (over or late):
        return
    held_text = format_money(held if held is not None else ZERO)

    def log() -> None:
        if over:
            logger.error(
                "job %s is over its budget after a %s: the call cost %s against %s held; spent %s of %s",
                job_id,
                what,
                format_money(cost),
                held_text,
                format_money(new_total),
                format_money(budget),
                extra={
                    "job_id": str(job_id),
                    "event": "budget_overrun",
                    "source": what,
                    "actual": format_money(cost),
                    "held": held_text,
                    "hold_status": hold_status,
                    "spent": format_money(new_total),
                    "budget": format_money(budget),
                    "overspend": format_money(new_total - budget),
                },
            )
        if late:
            logger.warning(
                "job %s is already %s: %s of %s recorded after the job ended",
                job_id,
                status,
                what,
                format_money(cost),
                extra={
                    "job_id": str(job_id),
                    "event": "late_charge",
                    "source": what,
                    "job_status": status,
                    "cost": format_money(cost),
                },
            )

    transaction.on_commit(log)


def _crossed_thresholds(job_id: UUID, old_total: Decimal, new_total: Decimal, budget: Decimal) -> None:
    """Log one warning for each configured budget share this change crossed (after commit)."""
    if budget <= 0 or new_total <= old_total:
        return
    crossed = []
    for threshold in app_settings.BUDGET_WARNING_THRESHOLDS:
        share = Decimal(threshold)
        mark = share * budget
        if old_total < mark <= new_total:
            crossed.append(share)
    if not crossed:
        return

    def log() -> None:
        for share in crossed:
            logger.warning(
                "job %s has spent %s of its %s budget, crossing %s%%",
                job_id,
                format_money(new_total),
                format_money(budget),
                format_money(share * 100),
                extra={
                    "job_id": str(job_id),
                    "event": "budget_threshold_crossed",
                    "threshold": str(share),
                    "spent": format_money(new_total),
                    "budget": format_money(budget),
                    "share_used": str((new_total / budget).quantize(Decimal("0.0001"))),
                },
            )

    transaction.on_commit(log)


def _refusal(
    job_id: UUID, spent: Decimal, reserved: Decimal, attempted: Decimal, limit: Decimal, what: str
) -> BudgetExceededError:
    return BudgetExceededError(
        f"{what} of {format_money(attempted)} refused for job {job_id}: spent {format_money(spent)}"
        f" + reserved {format_money(reserved)} + {format_money(attempted)} exceeds the limit {format_money(limit)}",
        job_id=job_id,
        details={
            "spent": format_money(spent),
            "reserved": format_money(reserved),
            "attempted": format_money(attempted),
            "limit": format_money(limit),
        },
    )


# --------------------------------------------------------------------------- charging

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
# The charge cursor of each Django connection (per thread), for its current raw psycopg connection.
# Keyed on the Django wrapper, not on the raw connection: the cursor references its raw connection,
# so a raw key would never be dropped (closed or pool-recycled connections would pile up).
_CURSORS: weakref.WeakKeyDictionary[BaseDatabaseWrapper, psycopg.Cursor[Any]] = weakref.WeakKeyDictionary()

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
    conn.ensure_connection()
    # A server-binding psycopg cursor on the raw connection and a prepared statement, so the hot path
    # skips parsing and planning. Django opens connections with prepare_threshold=None (preparing off,
    # for poolers such as pgbouncer); it is switched on for this one statement only, unless
    # COST_PREPARED_STATEMENTS is off. Django's own cursors bind client-side and never prepare.
    import psycopg  # here, not at module level: on SQLite the import (~80 ms) would be start-up time for nothing

    raw = conn.connection
    cursor = _CURSORS.get(conn)
    if cursor is None or cursor.closed or cursor.connection is not raw:
        cursor = _CURSORS[conn] = psycopg.Cursor(raw)  # one per connection, reused: no set-up per charge
    prepare = bool(app_settings.COST_PREPARED_STATEMENTS)
    threshold = raw.prepare_threshold
    if prepare:
        raw.prepare_threshold = 0
    try:
        with conn.wrap_database_errors:
            cursor.execute(_PG_CHARGE_SQL[mode, extras], params, prepare=prepare)
            result = cursor.fetchone()
    finally:
        raw.prepare_threshold = threshold
    return None if result is None else (result[0], result[1], result[2])


def _charge_locked(row: JobCost, enforce: bool, limit: Decimal | None) -> tuple[JobCost, bool]:
    """Charge under the job row lock with exact figures (SQLite, and PostgreSQL's slow path)."""
    now = timezone.now()
    state = _lock_job(row.job_id, now)
    if row.idempotency_key is not None:
        existing = _existing(row.job_id, row.idempotency_key)
        if existing is not None:
            return existing, False
    if enforce and state.finished:
        raise _finished(row.job_id, state.status, "charge")
    effective_limit = state.budget if limit is None else limit
    if enforce and state.total + state.reserved + row.cost > effective_limit:
        raise _refusal(row.job_id, state.total, state.reserved, row.cost, effective_limit, "charge")
    new_total = _new_total(row.job_id, state.total, row.cost)
    Job.objects.filter(id=row.job_id).update(total_cost=new_total, reserved_cost=state.reserved)
    row.save(force_insert=True)
    _crossed_thresholds(row.job_id, state.total, new_total, state.budget)
    _spent_logs(
        row.job_id,
        old_total=state.total,
        new_total=new_total,
        budget=state.budget,
        status=state.status,
        cost=row.cost,
        what="charge",
    )
    return row, True


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
            _crossed_thresholds(row.job_id, old_total, new_total, budget)
            _spent_logs(
                row.job_id,
                old_total=old_total,
                new_total=new_total,
                budget=budget,
                status=status,
                cost=row.cost,
                what="charge",
            )
            return row
    recorded, _created = _write(lambda: _charge_locked(row, enforce, limit))
    return recorded


@_db_boundary
def track_cost(
    job_id: UUID | str,
    stage: str,
    api_name: str,
    cost: Decimal | int | None,
    *,
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
        ValidationError: a bad amount, name or key, or an unknown job.
    """
    job_uuid = parse_job_id(job_id)
    stage = _name(stage, "stage", 64)
    api_name = _name(api_name, "api_name", 64)
    amount = _quantity(quantity)
    unit = _optional_name(unit, "unit", 32)
    key = _optional_name(idempotency_key, "idempotency_key", 255)
    unit_price = None
    price = None if amount is None else get_price_table().get(api_name)  # the table is built once per call
    if cost is None:
        if amount is None:
            raise ValidationError("cost is required (or give quantity of a priced API)", job_id=job_uuid)
        cost = _priced(price or get_price(api_name), amount)  # get_price raises UNKNOWN_API
    cost = validate_money(cost)
    if price is not None and unit in (None, price.unit):
        unit, unit_price = price.unit, price.price
    checked_limit = None if limit is None else validate_money(limit, name="limit")
    # Positional, in the model's field order: the cheapest way to build an instance (the hot path).
    row = JobCost(uuid.uuid4(), job_uuid, stage, api_name, cost, timezone.now(), key, amount, unit, unit_price)  # type: ignore[misc]
    return _insert_charge(row, enforce or checked_limit is not None, checked_limit)


# --------------------------------------------------------------------------- reading


@_db_boundary
def get_total_cost(job_id: UUID | str) -> Decimal:
    """Return what the job has spent (``jobs.total_cost``)."""
    job_uuid = parse_job_id(job_id)
    total = _read(lambda: Job.objects.filter(id=job_uuid).values_list("total_cost", flat=True).first())
    if total is None:
        raise job_not_found(job_uuid)
    return total


def _reserved_now(job_id: UUID) -> Decimal:
    cutoff = timezone.now() - timedelta(seconds=float(app_settings.RESERVATION_TTL_SECONDS))
    amounts = JobCostHold.objects.filter(job_id=job_id, status=HoldStatus.ACTIVE, created_at__gt=cutoff)
    return sum(amounts.values_list("amount", flat=True), ZERO).quantize(MONEY_QUANTUM)


def _figures(job_id: UUID) -> tuple[Decimal, Decimal, Decimal]:
    def read() -> tuple[Decimal, Decimal, Decimal]:
        row = Job.objects.filter(id=job_id).values_list("total_cost", "budget_limit").first()
        if row is None:
            raise job_not_found(job_id)
        return row[0], _reserved_now(job_id), row[1]

    return _read(read)


@_db_boundary
def check_budget(job_id: UUID | str, new_cost: Decimal | int, limit: Decimal | int | None = None) -> bool:
    """True when spent + open holds + ``new_cost`` fits the limit (advisory: use ``enforce``/``reserve`` to act)."""
    job_uuid = parse_job_id(job_id)
    amount = validate_money(new_cost, name="new_cost")
    spent, reserved, budget = _figures(job_uuid)
    effective = budget if limit is None else validate_money(limit, name="limit")
    return spent + reserved + amount <= effective


@_db_boundary
def enforce_budget_limit(job_id: UUID | str, limit: Decimal | int | None = None) -> None:
    """Raise ``BudgetExceededError`` when the job's spend plus open holds is over its limit."""
    job_uuid = parse_job_id(job_id)
    spent, reserved, budget = _figures(job_uuid)
    effective = budget if limit is None else validate_money(limit, name="limit")
    if spent + reserved > effective:
        raise BudgetExceededError(
            f"job {job_uuid} is over its budget: spent {format_money(spent)} + reserved"
            f" {format_money(reserved)} exceeds the limit {format_money(effective)}",
            job_id=job_uuid,
            details={
                "spent": format_money(spent),
                "reserved": format_money(reserved),
                "attempted": "0.00",
                "limit": format_money(effective),
            },
        )


@dataclasses.dataclass(frozen=True)
class CostSummary:
    """A job's spend: totals, open holds, and the ledger grouped by stage and by API."""

    job_id: UUID
    total: Decimal
    budget: Decimal
    reserved: Decimal
    remaining: Decimal
    share_used: Decimal | None
    charges: int
    ledger_total: Decimal
    by_stage: dict[str, Decimal]
    by_api: dict[str, Decimal]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (amounts as exact strings)."""
        return {
            "job_id": str(self.job_id),
            "total": format_money(self.total),
            "budget": format_money(self.budget),
            "reserved": format_money(self.reserved),
            "remaining": format_money(self.remaining),
            "share_used": None if self.share_used is None else str(self.share_used),
            "charges": self.charges,
            "ledger_total": format_money(self.ledger_total),
            "by_stage": {k: format_money(v) for k, v in self.by_stage.items()},
            "by_api": {k: format_money(v) for k, v in self.by_api.items()},
        }


def money_sum(field: str = "cost", **extra: Any) -> Aggregate:
    """An exact SQL sum of a money column: ``SUM`` on PostgreSQL; whole micro-dollars on SQLite.

    SQLite stores decimals as floats and would add them as floats, so there each
    amount is rounded to an integer number of micro-dollars before summing.
    Read the result with :func:`money_from_sum`.
    """
    if connection.vendor == "sqlite":
        micro = Cast(Round(F(field) * MICRO), BigIntegerField())
        return Sum(micro, **extra)
    return Sum(field, **extra)


def money_from_sum(value: Decimal | int | float | None) -> Decimal:
    """Turn a :func:`money_sum` result into a 6-place ``Decimal`` (``0`` for no rows)."""
    if value is None:
        return ZERO.quantize(MONEY_QUANTUM)
    if connection.vendor == "sqlite":
        return (Decimal(int(value)) / MICRO).quantize(MONEY_QUANTUM)
    return Decimal(value).quantize(MONEY_QUANTUM)


@_db_boundary
def job_cost_summary(job_id: UUID | str) -> CostSummary:
    """Return the job's spend, budget, remaining, open holds and the breakdown by stage and API."""
    job_uuid = parse_job_id(job_id)
    return _read(lambda: _summary(job_uuid))


def _summary(job_uuid: UUID) -> CostSummary:
    spent, reserved, budget = _figures(job_uuid)
    ledger = JobCost.objects.filter(job_id=job_uuid)
    totals = ledger.aggregate(total=money_sum(), n=Count("id"))
    by_stage = {
        r["stage_name"]: money_from_sum(r["total"])
        for r in ledger.order_by("stage_name").values("stage_name").annotate(total=money_sum())
    }
    by_api = {
        r["api_name"]: money_from_sum(r["total"])
        for r in ledger.order_by("api_name").values("api_name").annotate(total=money_sum())
    }
    return CostSummary(
        job_id=job_uuid,
        total=spent,
        budget=budget,
        reserved=reserved,
        remaining=max(budget - spent - reserved, ZERO).quantize(MONEY_QUANTUM),
        share_used=(spent / budget).quantize(Decimal("0.0001")) if budget else None,
        charges=totals["n"],
        ledger_total=money_from_sum(totals["total"]),
        by_stage=by_stage,
        by_api=by_api,
    )


# --------------------------------------------------------------------------- reservations


@_db_boundary
def reserve(
    job_id: UUID | str,
    stage: str,
    api_name: str,
    estimate: Decimal | int,
    *,
    limit: Decimal | int | None = None,
) -> JobCostHold:
    """Hold ``estimate`` of the job's budget before an expensive call; refused atomically when it does not fit.

    Raises:
        BudgetExceededError: spent + open holds + estimate would exceed the limit; nothing was held.
    """
    job_uuid = parse_job_id(job_id)
    stage = _name(stage, "stage", 64)
    api_name = _name(api_name, "api_name", 64)
    amount = validate_money(estimate, name="estimate")
    checked_limit = None if limit is None else validate_money(limit, name="limit")

    def hold() -> JobCostHold:
        now = timezone.now()
        state = _lock_job(job_uuid, now)
        if state.finished:
            raise _finished(job_uuid, state.status, "reservation")
        effective = state.budget if checked_limit is None else checked_limit
        if state.total + state.reserved + amount > effective:
            raise _refusal(job_uuid, state.total, state.reserved, amount, effective, "reservation")
        created = JobCostHold.objects.create(
            job_id=job_uuid, stage_name=stage, api_name=api_name, amount=amount, created_at=now
        )
        Job.objects.filter(id=job_uuid).update(reserved_cost=state.reserved + amount)
        return created

    return _write(hold)


def _hold_id(hold: JobCostHold | UUID | str) -> UUID:
    if isinstance(hold, JobCostHold):
        return hold.id
    try:
        return UUID(str(hold))
    except ValueError:
        raise ValidationError(f"hold {hold!r} is not a valid hold id") from None


def _hold_job(hold_id: UUID) -> UUID:
    job_id = JobCostHold.objects.filter(id=hold_id).values_list("job_id", flat=True).first()
    if job_id is None:
        raise ValidationError(f"hold {hold_id} does not exist", code="HOLD_NOT_FOUND")
    return job_id


@_db_boundary
def settle(hold: JobCostHold | UUID | str, actual_cost: Decimal | int) -> JobCost:
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
    cost = validate_money(actual_cost, name="actual_cost")

    def close() -> JobCost:
        now = timezone.now()
        job_id = _hold_job(hold_id)
        # Lock order: the job row, then its holds (every operation does the same).
        state = _lock_job(job_id, now)
        current = JobCostHold.objects.get(id=hold_id)
        if current.status == HoldStatus.SETTLED and current.settled_cost_id is not None:
            return JobCost.objects.get(id=current.settled_cost_id)
        reserved = state.reserved - current.amount if current.status == HoldStatus.ACTIVE else state.reserved
        new_total = _new_total(job_id, state.total, cost)
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
        _crossed_thresholds(job_id, state.total, new_total, state.budget)
        _spent_logs(
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

    return _write(close)


@_db_boundary
def release(hold: JobCostHold | UUID | str) -> JobCostHold:
    """Give a hold's budget back without charging (the call was not made); closing a closed hold does nothing."""
    hold_id = _hold_id(hold)

    def give_back() -> JobCostHold:
        now = timezone.now()
        job_id = _hold_job(hold_id)
        state = _lock_job(job_id, now)
        current = JobCostHold.objects.get(id=hold_id)
        if current.status != HoldStatus.ACTIVE:
            return current
        JobCostHold.objects.filter(id=hold_id).update(status=HoldStatus.RELEASED, closed_at=now)
        Job.objects.filter(id=job_id).update(reserved_cost=state.reserved - current.amount)
        current.refresh_from_db()
        return current

    return _write(give_back)


@_db_boundary
def renew_hold(hold: JobCostHold | UUID | str) -> JobCostHold:
    """Keep a hold alive for a long call: its term (``created_at``) restarts now; return the hold.

    Call it at least every ``RESERVATION_TTL_SECONDS`` (say, every third of it) while the call
    runs. A hold that has already expired is held again when its amount still fits the budget.

    Raises:
        BudgetExceededError: (code ``HOLD_EXPIRED``) the hold expired and the budget it held has been
            used meanwhile; nothing changed. Abort the call if you can; a call already made is still
            recorded by :func:`settle` (and logged as an overrun if it takes the job over budget).
        ValidationError: (code ``HOLD_CLOSED``) the hold was settled or released (for instance
            because the job finished): stop the call; (``JOB_FINISHED``) the job has finished;
            (``HOLD_NOT_FOUND``) no such hold.
    """
    hold_id = _hold_id(hold)

    def renew() -> JobCostHold:
        now = timezone.now()
        job_id = _hold_job(hold_id)
        state = _lock_job(job_id, now)  # expires this hold too when its term is over
        current = JobCostHold.objects.get(id=hold_id)
        if current.status in (HoldStatus.SETTLED, HoldStatus.RELEASED):
            raise ValidationError(
                f"hold {hold_id} of job {job_id} is already {current.status}: there is nothing to keep alive",
                job_id=job_id,
                code=HOLD_CLOSED,
                details={"status": str(current.status)},
            )
        if state.finished:
            raise _finished(job_id, state.status, "keeping a hold alive")
        if current.status == HoldStatus.ACTIVE:
            JobCostHold.objects.filter(id=hold_id).update(created_at=now)
        else:  # expired: hold the amount again if it still fits
            if state.total + state.reserved + current.amount > state.budget:
                refusal = _refusal(job_id, state.total, state.reserved, current.amount, state.budget, "renewal")
                refusal.code = HOLD_EXPIRED
                refusal.message = f"hold {hold_id} expired and cannot be held again: {refusal.message}"
                raise refusal
            JobCostHold.objects.filter(id=hold_id).update(status=HoldStatus.ACTIVE, created_at=now, closed_at=None)
            Job.objects.filter(id=job_id).update(reserved_cost=state.reserved + current.amount)
        current.refresh_from_db()
        return current

    return _write(renew)


@_db_boundary
def release_job_holds(job_id: UUID | str) -> int:
    """Release every open hold of a job (e.g. when it finishes); return how many were released."""
    job_uuid = parse_job_id(job_id)

    def give_back() -> int:
        now = timezone.now()
        _lock_job(job_uuid, now)
        released = JobCostHold.objects.filter(job_id=job_uuid, status=HoldStatus.ACTIVE).update(
            status=HoldStatus.RELEASED, closed_at=now
        )
        Job.objects.filter(id=job_uuid).update(reserved_cost=ZERO)
        return released

    return _write(give_back)


def _expire_job_holds(job_id: UUID) -> int:
    """Under the job row lock: close the job's expired holds and set ``reserved_cost`` to its open holds."""
    now = timezone.now()
    # Lock order: the job row, then its holds (every operation does the same).
    reserved_before = Job.objects.select_for_update().filter(id=job_id).values_list("reserved_cost", flat=True).first()
    if reserved_before is None:
        return 0
    cutoff = now - timedelta(seconds=float(app_settings.RESERVATION_TTL_SECONDS))
    open_holds = JobCostHold.objects.filter(job_id=job_id, status=HoldStatus.ACTIVE)
    expired = open_holds.filter(created_at__lte=cutoff).update(status=HoldStatus.EXPIRED, closed_at=now)
    reserved = sum(open_holds.values_list("amount", flat=True), ZERO)  # in Python: SQLite would add floats
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


@_db_boundary
def expire_holds(*, job_id: UUID | str | None = None) -> int:
    """Close the open holds older than ``RESERVATION_TTL_SECONDS`` (status ``expired``); return how many.

    Each affected job's ``reserved_cost`` becomes the sum of its remaining open holds, so the admin, the
    ``Job`` payload and the budget checks agree again. One short transaction per job, locking the job row
    before its holds as every cost operation does: safe beside charges, settles and other sweeps, and
    from cron (``manage.py recover_jobs``). ``job_id`` limits the sweep to one job.
    """
    job_uuid = None if job_id is None else parse_job_id(job_id)

    def candidates() -> list[UUID]:
        cutoff = timezone.now() - timedelta(seconds=float(app_settings.RESERVATION_TTL_SECONDS))
        holds = JobCostHold.objects.filter(status=HoldStatus.ACTIVE, created_at__lte=cutoff)
        if job_uuid is not None:
            holds = holds.filter(job_id=job_uuid)
        return list(holds.order_by("job_id").values_list("job_id", flat=True).distinct())

    expired = 0
    for candidate in _read(candidates):
        expired += _write(functools.partial(_expire_job_holds, candidate))
    return expired


def release_holds_on_finish(sender: object, *, job: Job, **kwargs: Any) -> None:
    """``job_finished`` receiver: a completed, failed or cancelled job keeps no budget on hold."""
    release_job_holds(job.id)


class Reservation:
    """A hold in a ``with reservation(...)`` block: call :meth:`settle` with the actual cost."""

    def __init__(self, hold: JobCostHold) -> None:
        self.hold = hold
        self.cost: JobCost | None = None

    @property
    def estimate(self) -> Decimal:
        """The amount held."""
        return self.hold.amount

    def settle(self, actual_cost: Decimal | int) -> JobCost:
        """Record the actual cost and close the hold."""
        self.cost = settle(self.hold, actual_cost)
        return self.cost

    async def asettle(self, actual_cost: Decimal | int) -> JobCost:
        """Async twin of :meth:`settle`."""
        self.cost = await asettle(self.hold, actual_cost)
        return self.cost

    def keep_alive(self) -> JobCostHold:
        """Restart the hold's term while a long call runs (see :func:`renew_hold`)."""
        self.hold = renew_hold(self.hold)
        return self.hold

    async def akeep_alive(self) -> JobCostHold:
        """Async twin of :meth:`keep_alive`."""
        self.hold = await arenew_hold(self.hold)
        return self.hold


@contextmanager
def reservation(
    job_id: UUID | str, stage: str, api_name: str, estimate: Decimal | int, *, limit: Decimal | int | None = None
) -> Iterator[Reservation]:
    """Hold budget for the block; released when the block raises, settled at the estimate if never settled."""
    held = Reservation(reserve(job_id, stage, api_name, estimate, limit=limit))
    try:
        yield held
    except BaseException:
        if held.cost is None:
            release(held.hold)
        raise
    if held.cost is None:
        held.settle(held.estimate)


@asynccontextmanager
async def areservation(
    job_id: UUID | str, stage: str, api_name: str, estimate: Decimal | int, *, limit: Decimal | int | None = None
) -> AsyncIterator[Reservation]:
    """Async twin of :func:`reservation`."""
    held = Reservation(await areserve(job_id, stage, api_name, estimate, limit=limit))
    try:
        yield held
    except BaseException:
        if held.cost is None:
            await arelease(held.hold)
        raise
    if held.cost is None:
        await held.asettle(held.estimate)


# --------------------------------------------------------------------------- async twins


async def atrack_cost(
    job_id: UUID | str,
    stage: str,
    api_name: str,
    cost: Decimal | int | None,
    *,
    idempotency_key: str | None = None,
    quantity: Decimal | int | None = None,
    unit: str | None = None,
    enforce: bool = False,
    limit: Decimal | int | None = None,
) -> JobCost:
    """Async twin of :func:`track_cost`."""
    return await sync_to_async(track_cost)(
        job_id,
        stage,
        api_name,
        cost,
        idempotency_key=idempotency_key,
        quantity=quantity,
        unit=unit,
        enforce=enforce,
        limit=limit,
    )


async def aget_total_cost(job_id: UUID | str) -> Decimal:
    """Async twin of :func:`get_total_cost`."""
    return await sync_to_async(get_total_cost)(job_id)


async def acheck_budget(job_id: UUID | str, new_cost: Decimal | int, limit: Decimal | int | None = None) -> bool:
    """Async twin of :func:`check_budget`."""
    return await sync_to_async(check_budget)(job_id, new_cost, limit)


async def aenforce_budget_limit(job_id: UUID | str, limit: Decimal | int | None = None) -> None:
    """Async twin of :func:`enforce_budget_limit`."""
    await sync_to_async(enforce_budget_limit)(job_id, limit)


async def ajob_cost_summary(job_id: UUID | str) -> CostSummary:
    """Async twin of :func:`job_cost_summary`."""
    return await sync_to_async(job_cost_summary)(job_id)


async def aexpire_holds(*, job_id: UUID | str | None = None) -> int:
    """Async twin of :func:`expire_holds`."""
    return await sync_to_async(expire_holds)(job_id=job_id)


async def areserve(
    job_id: UUID | str, stage: str, api_name: str, estimate: Decimal | int, *, limit: Decimal | int | None = None
) -> JobCostHold:
    """Async twin of :func:`reserve`."""
    return await sync_to_async(reserve)(job_id, stage, api_name, estimate, limit=limit)


async def asettle(hold: JobCostHold | UUID | str, actual_cost: Decimal | int) -> JobCost:
    """Async twin of :func:`settle`."""
    return await sync_to_async(settle)(hold, actual_cost)


async def arelease(hold: JobCostHold | UUID | str) -> JobCostHold:
    """Async twin of :func:`release`."""
    return await sync_to_async(release)(hold)


async def arenew_hold(hold: JobCostHold | UUID | str) -> JobCostHold:
    """Async twin of :func:`renew_hold`."""
    return await sync_to_async(renew_hold)(hold)


class CostTracker:
    """The seed's ``cost_tracker`` object: awaitable methods over the functions of this module."""

    async def track_cost(
        self,
        job_id: UUID | str,
        stage: str,
        api_name: str,
        cost: Decimal | int | None = None,
        **options: Any,
    ) -> JobCost:
        """Record a charge (see :func:`track_cost`)."""
        return await atrack_cost(job_id, stage, api_name, cost, **options)

    async def get_total_cost(self, job_id: UUID | str) -> Decimal:
        """Return what the job has spent."""
        return await aget_total_cost(job_id)

    async def check_budget(
        self, job_id: UUID | str, new_cost: Decimal | int, limit: Decimal | int | None = None
    ) -> bool:
        """True when ``new_cost`` still fits (advisory)."""
        return await acheck_budget(job_id, new_cost, limit)

    async def enforce_budget_limit(self, job_id: UUID | str, limit: Decimal | int | None = None) -> None:
        """Raise ``BudgetExceededError`` when the job is over its limit."""
        await aenforce_budget_limit(job_id, limit)

    async def reserve(
        self, job_id: UUID | str, stage: str, api_name: str, estimate: Decimal | int, **options: Any
    ) -> JobCostHold:
        """Hold budget before an expensive call."""
        return await areserve(job_id, stage, api_name, estimate, **options)

    async def settle(self, hold: JobCostHold | UUID | str, actual_cost: Decimal | int) -> JobCost:
        """Record a held call's actual cost."""
        return await asettle(hold, actual_cost)

    async def release(self, hold: JobCostHold | UUID | str) -> JobCostHold:
        """Give a hold back."""
        return await arelease(hold)

    async def renew_hold(self, hold: JobCostHold | UUID | str) -> JobCostHold:
        """Keep a hold alive for a long call."""
        return await arenew_hold(hold)

    def reservation(
        self, job_id: UUID | str, stage: str, api_name: str, estimate: Decimal | int, **options: Any
    ) -> Any:
        """``async with cost_tracker.reservation(...) as held:`` (see :func:`areservation`)."""
        return areservation(job_id, stage, api_name, estimate, **options)

    def estimate_cost(self, api_name: str, quantity: Decimal | int = 1) -> Decimal:
        """Price ``quantity`` units of ``api_name`` (no database access)."""
        return estimate_cost(api_name, quantity)

    async def get_summary(self, job_id: UUID | str) -> CostSummary:
        """Return the job's cost summary."""
        return await ajob_cost_summary(job_id)


cost_tracker = CostTracker()
