"""The seeds' cost-tracking calls (``shared.cost_tracking``), kept working over the new rooms.

This module holds no logic of its own: each name is a thin, compatible front for the service
or selector that does the work, so code written against the seeds (and this app's earlier
releases) keeps working unchanged:

==============================================  ==============================================
seed call form (positional arguments kept)      does the work
==============================================  ==============================================
``track_cost(job_id, stage, api_name, cost)``   :func:`common.services.charges.charge_record`
``reserve`` / ``settle`` / ``release``          :mod:`common.services.holds` (``hold_reserve`` ...)
``renew_hold`` / ``release_job_holds``          ``hold_renew`` / ``job_holds_release``
``expire_holds``                                ``holds_expire``
``reservation`` / ``areservation``              ``hold_reservation`` / ``ahold_reservation``
``get_total_cost`` / ``check_budget``           :mod:`common.selectors` (``job_total_cost``,
``enforce_budget_limit`` / ``job_cost_summary`` ``job_budget_fits``, ``job_budget_check``,
                                                ``job_cost_summary``)
``estimate_cost`` / ``get_price`` ...           :mod:`common.services.prices`
``validate_money`` / ``format_money`` ...       :mod:`common.money`
``cost_tracker`` (``CostTracker``)              the async forms of all of the above
==============================================  ==============================================

New code should call the keyword-only ``<entity>_<action>`` functions of those modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from typing import Any
from uuid import UUID

from common import selectors
from common.db import async_twin, boundary
from common.models import JobCost, JobCostHold
from common.money import format_money, money_from_sum, money_sum, validate_money
from common.selectors.costs import CostSummary
from common.services import charges, holds, prices
from common.services.holds import Reservation, release_holds_on_finish
from common.services.prices import DEFAULT_API_PRICES, ApiPrice

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

Amount = Decimal | int


@boundary
def track_cost(job_id: UUID | str, stage: str, api_name: str, cost: Amount | None, **options: Any) -> JobCost:
    """Record one paid API call (see :func:`~common.services.charges.charge_record` for ``options``).

    ``options``: ``idempotency_key``, ``quantity``, ``unit``, ``enforce``, ``limit``.
    """
    return charges.charge_record(job_id=job_id, stage=stage, api_name=api_name, cost=cost, **options)


atrack_cost = async_twin(track_cost)


@boundary
def get_total_cost(job_id: UUID | str) -> Decimal:
    """What the job has spent (see :func:`~common.selectors.job_total_cost`)."""
    return selectors.job_total_cost(job_id=job_id)


aget_total_cost = async_twin(get_total_cost)


@boundary
def check_budget(job_id: UUID | str, new_cost: Amount, limit: Amount | None = None) -> bool:
    """True when ``new_cost`` still fits, advisory (see :func:`~common.selectors.job_budget_fits`)."""
    return selectors.job_budget_fits(job_id=job_id, new_cost=new_cost, limit=limit)


acheck_budget = async_twin(check_budget)


@boundary
def enforce_budget_limit(job_id: UUID | str, limit: Amount | None = None) -> None:
    """Raise ``BudgetExceededError`` when over (see :func:`~common.selectors.job_budget_check`)."""
    selectors.job_budget_check(job_id=job_id, limit=limit)


aenforce_budget_limit = async_twin(enforce_budget_limit)


@boundary
def job_cost_summary(job_id: UUID | str) -> CostSummary:
    """The job's cost summary (see :func:`~common.selectors.job_cost_summary`)."""
    return selectors.job_cost_summary(job_id=job_id)


ajob_cost_summary = async_twin(job_cost_summary)


@boundary
def reserve(
    job_id: UUID | str, stage: str, api_name: str, estimate: Amount, *, limit: Amount | None = None
) -> JobCostHold:
    """Hold budget before an expensive call (see :func:`~common.services.holds.hold_reserve`)."""
    return holds.hold_reserve(job_id=job_id, stage=stage, api_name=api_name, estimate=estimate, limit=limit)


areserve = async_twin(reserve)


@boundary
def settle(hold: JobCostHold | UUID | str, actual_cost: Amount) -> JobCost:
    """Record a held call's actual cost (see :func:`~common.services.holds.hold_settle`)."""
    return holds.hold_settle(hold=hold, actual_cost=actual_cost)


asettle = async_twin(settle)


@boundary
def release(hold: JobCostHold | UUID | str) -> JobCostHold:
    """Give a hold back (see :func:`~common.services.holds.hold_release`)."""
    return holds.hold_release(hold=hold)


arelease = async_twin(release)


@boundary
def renew_hold(hold: JobCostHold | UUID | str) -> JobCostHold:
    """Keep a hold alive for a long call (see :func:`~common.services.holds.hold_renew`)."""
    return holds.hold_renew(hold=hold)


arenew_hold = async_twin(renew_hold)


@boundary
def release_job_holds(job_id: UUID | str) -> int:
    """Release every open hold of a job (see :func:`~common.services.holds.job_holds_release`)."""
    return holds.job_holds_release(job_id=job_id)


@boundary
def expire_holds(*, job_id: UUID | str | None = None) -> int:
    """The hold sweep (see :func:`~common.services.holds.holds_expire`)."""
    return holds.holds_expire(job_id=job_id)


aexpire_holds = async_twin(expire_holds)


@contextmanager
def reservation(
    job_id: UUID | str, stage: str, api_name: str, estimate: Amount, *, limit: Amount | None = None
) -> Iterator[Reservation]:
    """Hold budget for a ``with`` block (see :func:`~common.services.holds.hold_reservation`)."""
    with holds.hold_reservation(job_id=job_id, stage=stage, api_name=api_name, estimate=estimate, limit=limit) as held:
        yield held


@asynccontextmanager
async def areservation(
    job_id: UUID | str, stage: str, api_name: str, estimate: Amount, *, limit: Amount | None = None
) -> AsyncIterator[Reservation]:
    """Async twin of :func:`reservation`."""
    async with holds.ahold_reservation(
        job_id=job_id, stage=stage, api_name=api_name, estimate=estimate, limit=limit
    ) as held:
        yield held


def estimate_cost(api_name: str, quantity: Amount = 1) -> Decimal:
    """Price ``quantity`` units of ``api_name`` (see :func:`~common.services.prices.price_estimate`)."""
    return prices.price_estimate(api_name=api_name, quantity=quantity)


def get_price(api_name: str) -> ApiPrice:
    """The price of ``api_name`` (see :func:`~common.services.prices.price_get`)."""
    return prices.price_get(api_name=api_name)


def get_price_table() -> dict[str, ApiPrice]:
    """The price table (see :func:`~common.services.prices.price_table`)."""
    return prices.price_table()


class CostTracker:
    """The seed's ``cost_tracker`` object: awaitable methods over the functions of this module."""

    async def track_cost(
        self, job_id: UUID | str, stage: str, api_name: str, cost: Amount | None = None, **options: Any
    ) -> JobCost:
        """Record a charge (see :func:`track_cost`)."""
        return await atrack_cost(job_id, stage, api_name, cost, **options)

    async def get_total_cost(self, job_id: UUID | str) -> Decimal:
        """Return what the job has spent."""
        return await aget_total_cost(job_id)

    async def check_budget(self, job_id: UUID | str, new_cost: Amount, limit: Amount | None = None) -> bool:
        """True when ``new_cost`` still fits (advisory)."""
        return await acheck_budget(job_id, new_cost, limit)

    async def enforce_budget_limit(self, job_id: UUID | str, limit: Amount | None = None) -> None:
        """Raise ``BudgetExceededError`` when the job is over its limit."""
        await aenforce_budget_limit(job_id, limit)

    async def reserve(
        self, job_id: UUID | str, stage: str, api_name: str, estimate: Amount, **options: Any
    ) -> JobCostHold:
        """Hold budget before an expensive call."""
        return await areserve(job_id, stage, api_name, estimate, **options)

    async def settle(self, hold: JobCostHold | UUID | str, actual_cost: Amount) -> JobCost:
        """Record a held call's actual cost."""
        return await asettle(hold, actual_cost)

    async def release(self, hold: JobCostHold | UUID | str) -> JobCostHold:
        """Give a hold back."""
        return await arelease(hold)

    async def renew_hold(self, hold: JobCostHold | UUID | str) -> JobCostHold:
        """Keep a hold alive for a long call."""
        return await arenew_hold(hold)

    def reservation(self, job_id: UUID | str, stage: str, api_name: str, estimate: Amount, **options: Any) -> Any:
        """``async with cost_tracker.reservation(...) as held:`` (see :func:`areservation`)."""
        return areservation(job_id, stage, api_name, estimate, **options)

    def estimate_cost(self, api_name: str, quantity: Amount = 1) -> Decimal:
        """Price ``quantity`` units of ``api_name`` (no database access)."""
        return estimate_cost(api_name, quantity)

    async def get_summary(self, job_id: UUID | str) -> CostSummary:
        """Return the job's cost summary."""
        return await ajob_cost_summary(job_id)


cost_tracker = CostTracker()
