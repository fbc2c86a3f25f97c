"""The budget rules every cost write shares (private to :mod:`.charges` and :mod:`.holds`).

* :func:`lock_job`: the job row locked, its stale holds expired and what it has reserved
  recomputed, with fresh statements after the lock (see :mod:`common.selectors.costs`).
* The refusals (over budget, a finished job, a total the column cannot hold) and the logs of
  spend that crossed a warning threshold or took the job over its budget.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.db import transaction

from common.conf import app_settings
from common.errors import BudgetExceededError, ValidationError
from common.log import get_logger
from common.models import ACTIVE_JOB_STATUSES, HoldStatus, Job, JobCostHold, clean_text
from common.money import MAX_MONEY, ZERO, format_money, money_from_sum, money_sum, round_share
from common.selectors.costs import hold_cutoff, holds_open
from common.selectors.jobs import job_not_found

JOB_FINISHED = "JOB_FINISHED"
HOLD_EXPIRED = "HOLD_EXPIRED"
HOLD_CLOSED = "HOLD_CLOSED"

logger = get_logger("common.costs")


def name(value: object, field: str, max_length: int) -> str:
    """A name column's value (stage, API, unit, key), refused by name when a column cannot hold it."""
    return clean_text(value, field=field, max_length=max_length)


def optional_name(value: object, field: str, max_length: int) -> str | None:
    """:func:`name`, or ``None``."""
    return None if value is None else name(value, field, max_length)


@dataclasses.dataclass
class Locked:
    """A job's figures read under its row lock."""

    total: Decimal
    reserved: Decimal
    budget: Decimal
    status: str

    @property
    def finished(self) -> bool:
        """True for a completed, failed or cancelled job."""
        return self.status not in ACTIVE_JOB_STATUSES


def expire_and_sum(job_id: UUID, now: datetime) -> tuple[int, Decimal]:
    """Under the job row lock: close the job's holds past their term; return how many, and what stays reserved."""
    expired = JobCostHold.objects.filter(
        job_id=job_id, status=HoldStatus.ACTIVE, created_at__lte=hold_cutoff(now)
    ).update(status=HoldStatus.EXPIRED, closed_at=now)
    # The selector's definition, in a statement of its own (after the lock wait, so it sees every hold).
    reserved = holds_open(now=now).filter(job_id=job_id).aggregate(total=money_sum("amount"))["total"]
    return expired, money_from_sum(reserved)


def lock_job(job_id: UUID, now: datetime) -> Locked:
    """Lock the job row, expire stale holds and recompute the reserved sum, with fresh statements."""
    row = Job.objects.select_for_update().filter(id=job_id).values_list("total_cost", "budget_limit", "status").first()
    if row is None:
        raise job_not_found(job_id)
    expired, reserved = expire_and_sum(job_id, now)
    if expired:  # a path that returns early (releasing a closed hold) must not leave them in reserved_cost
        Job.objects.filter(id=job_id).update(reserved_cost=reserved)
    return Locked(total=row[0], reserved=reserved, budget=row[1], status=row[2])


def finished_error(job_id: UUID, status: str, what: str) -> ValidationError:
    """The refusal of a reservation or enforced charge on a completed, failed or cancelled job."""
    return ValidationError(
        f"{what} refused for job {job_id}: the job is {status}, and a finished job takes no new reservations"
        " or enforced charges (record a call that was already made with enforce=False)",
        job_id=job_id,
        code=JOB_FINISHED,
        details={"status": status},
    )


def new_total(job_id: UUID, total: Decimal, cost: Decimal) -> Decimal:
    """``total + cost``, refused when it would not fit the money column (numeric(14, 6))."""
    result = total + cost
    if result > MAX_MONEY:
        raise ValidationError(
            f"{format_money(cost)} refused for job {job_id}: total_cost would be {format_money(result)}, more"
            f" than the largest amount the column holds ({MAX_MONEY})",
            job_id=job_id,
            details={"field": "total_cost", "total": format_money(total), "attempted": format_money(cost)},
        )
    return result


def refusal(
    job_id: UUID, spent: Decimal, reserved: Decimal, attempted: Decimal, limit: Decimal, what: str
) -> BudgetExceededError:
    """The refusal of a charge, hold or renewal that does not fit: the figures in the message and the details."""
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


def after_spend(
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
    """Everything a recorded spend logs after commit: thresholds crossed, overruns and late charges.

    One WARNING per warning threshold the spend crossed, then an ERROR when it took the job over its
    budget and a WARNING for a finished job's charge.

    Enforced charges and reservations never get here over budget (unless a ``limit=`` above
    the budget was passed); what does is a call already made that cost more than its hold:
    a settle above its estimate, a settle of an expired hold, or an unenforced charge.
    """
    crossed_thresholds(job_id, old_total, new_total, budget)
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


def crossed_thresholds(job_id: UUID, old_total: Decimal, new_total: Decimal, budget: Decimal) -> None:
    """Log one warning for each configured budget share this change crossed (after commit).

    Charges on one job are serialised, so exactly one charge moves the total from below
    ``t * budget`` to at or above it: once per job and threshold, across processes, with no state.
    """
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
                    "share_used": str(round_share(new_total / budget)),
                },
            )

    transaction.on_commit(log)
