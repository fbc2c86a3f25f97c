"""A job's budget state, ``ok``, ``near`` or ``over``: the one rule, in Python and as an SQL expression.

``over``: the job spent more than its budget, or was stopped with ``BUDGET_EXCEEDED`` (enforcement
refuses the charge that would cross the budget, so such a job's spend stays at or under it);
``near``: it spent at least :func:`near_share` of a non-zero budget (the first, lowest, of
``BUDGET_WARNING_THRESHOLDS``); else ``ok``. ``budget_report``, the spend selectors
(:mod:`common.selectors.spend`) and the admin read it from here. No function here runs a query.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Case, CharField, F, Q, Value, When

from common.conf import app_settings

__all__ = ["BUDGET_EXCEEDED", "STATES", "budget_state", "budget_state_expr", "near_share"]

BUDGET_EXCEEDED = "BUDGET_EXCEEDED"  # the error code of a job stopped by its budget: it counts as over
STATES = ("ok", "near", "over")


def near_share() -> Decimal:
    """The share of its budget at which a job is ``near``: the first (lowest) warning threshold, 0.8 by default."""
    thresholds = [Decimal(t) for t in app_settings.BUDGET_WARNING_THRESHOLDS]
    return min(thresholds) if thresholds else Decimal("0.8")


def budget_state(*, spent: Decimal, budget: Decimal, error_code: str | None, near: Decimal | None = None) -> str:
    """``"over"``, ``"near"`` or ``"ok"`` for a job (see the module docstring); ``near``: :func:`near_share`."""
    if spent > budget or error_code == BUDGET_EXCEEDED:
        return "over"
    if budget and spent >= budget * (near_share() if near is None else near):
        return "near"
    return "ok"


def budget_state_expr(*, near: Decimal | None = None, prefix: str = "") -> Case:
    """:func:`budget_state` as an SQL expression over a ``Job`` queryset (``prefix="job__"`` from the ledger).

    ``Job.objects.annotate(state=budget_state_expr()).filter(state="near")``.
    """
    share = near_share() if near is None else near
    budget = F(f"{prefix}budget_limit")
    over = Q(**{f"{prefix}total_cost__gt": budget}) | Q(**{f"{prefix}error_code": BUDGET_EXCEEDED})
    near_q = Q(**{f"{prefix}budget_limit__gt": 0}) & Q(**{f"{prefix}total_cost__gte": budget * Value(share)})
    return Case(
        When(over, then=Value("over")),
        When(near_q, then=Value("near")),
        default=Value("ok"),
        output_field=CharField(),
    )
