"""A job's budget state for the console: ``ok``, ``near`` or ``over``, as a Python test and as SQL.

* ``over``: spent more than the budget, or stopped by it (failed with ``BUDGET_EXCEEDED``: the charge
  that would have crossed the line was refused, so the job may sit just under its budget);
* ``near``: not over, a budget above zero, and spent at or above the first (lowest) warning threshold
  of ``BUDGET_WARNING_THRESHOLDS`` (0.80 by default), the share ``budget_report`` flags as near;
* ``ok``: everything else.

Spent is ``jobs.total_cost`` (the ledger's sum), as in ``budget_report``; open holds are shown beside it
on the job page but do not move a job between states.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from django.db.models import DecimalField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import NullIf

from common.conf import app_settings
from common.errors import BudgetExceededError
from common.models import Job, JobStatus
from common.money import MONEY_DIGITS

__all__ = ["BUDGET_STATES", "BudgetState", "budget_share_expression", "budget_state", "near_share", "state_q"]

BudgetState = Literal["ok", "near", "over"]
BUDGET_STATES: tuple[BudgetState, ...] = ("ok", "near", "over")
STOPPED_BY_BUDGET = BudgetExceededError.default_code


def near_share() -> Decimal:
    """The share of a budget from which a job is ``near``: the lowest warning threshold (read at call time)."""
    thresholds = [Decimal(str(t)) for t in app_settings.BUDGET_WARNING_THRESHOLDS]
    return min(thresholds) if thresholds else Decimal("0.8")


def budget_state(job: Job, *, near: Decimal | None = None) -> BudgetState:
    """``job``'s state from its row (no query); ``near`` defaults to :func:`near_share`."""
    if job.total_cost > job.budget_limit or (job.status == JobStatus.FAILED and job.error_code == STOPPED_BY_BUDGET):
        return "over"
    mark = near_share() if near is None else near
    if job.budget_limit > 0 and job.total_cost >= job.budget_limit * mark:
        return "near"
    return "ok"


def _over() -> Q:
    return Q(total_cost__gt=F("budget_limit")) | Q(status=JobStatus.FAILED, error_code=STOPPED_BY_BUDGET)


def _near(near: Decimal) -> Q:
    return Q(budget_limit__gt=0, total_cost__gte=F("budget_limit") * Value(near)) & ~_over()


def state_q(state: BudgetState, *, near: Decimal | None = None) -> Q:
    """A ``Q`` on ``Job`` selecting the jobs in ``state`` (the same rule as :func:`budget_state`)."""
    mark = near_share() if near is None else near
    if state == "over":
        return _over()
    if state == "near":
        return _near(mark)
    return ~_over() & ~_near(mark)


def budget_share_expression() -> ExpressionWrapper:
    """``total_cost / budget_limit`` in SQL (NULL for a zero budget), to sort the changelist by share used."""
    return ExpressionWrapper(
        F("total_cost") / NullIf(F("budget_limit"), Value(Decimal(0))),
        output_field=DecimalField(max_digits=MONEY_DIGITS + 6, decimal_places=6),
    )
