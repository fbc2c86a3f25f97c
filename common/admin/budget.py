"""The console's view of a job's budget: its state from the row, and its share used in SQL.

The rule itself is :mod:`common.budget`'s; the share expression sorts the jobs changelist.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import DecimalField, ExpressionWrapper, F, Value
from django.db.models.functions import NullIf

from common.budget import budget_state
from common.models import Job
from common.money import MONEY_DIGITS

__all__ = ["budget_share_expression", "job_state"]


def job_state(job: Job, *, near: Decimal | None = None) -> str:
    """``ok`` / ``near`` / ``over`` for a loaded job (no query): :func:`common.budget.budget_state` of its row."""
    return budget_state(spent=job.total_cost, budget=job.budget_limit, error_code=job.error_code, near=near)


def budget_share_expression() -> ExpressionWrapper:
    """``total_cost / budget_limit`` in SQL (NULL for a zero budget), to sort the changelist by share used."""
    return ExpressionWrapper(
        F("total_cost") / NullIf(F("budget_limit"), Value(Decimal(0))),
        output_field=DecimalField(max_digits=MONEY_DIGITS + 6, decimal_places=6),
    )
