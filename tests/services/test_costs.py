"""The seeds' call forms (common.services.costs and cost_tracker) keep working over the new rooms.

What the charges, holds, prices and cost reads do is tested with their modules (test_charges.py,
test_holds.py, test_prices.py, tests/selectors/test_costs.py); here, each seed form reaches them
with its positional arguments and gives the same answers.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

import common
from common import money
from common.errors import BudgetExceededError
from common.models import HoldStatus, JobCost, JobCostHold
from common.services import costs
from tests.services.costs_helpers import make_job, reload

pytestmark = pytest.mark.django_db


def test_track_cost_records_row_and_raises_total():
    job = make_job()
    row = costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"))
    assert isinstance(row, JobCost)
    assert row.cost == Decimal("0.06")
    assert row.stage_name == "video_generation"
    assert row.api_name == "svd"
    stored = JobCost.objects.get(id=row.id)
    assert stored.cost == Decimal("0.06")
    assert reload(job).total_cost == Decimal("0.06")
    costs.track_cost(str(job.id), "video_generation", "svd", 1)
    assert costs.get_total_cost(job.id) == Decimal("1.06")


def test_track_cost_options_and_refusals():
    job = make_job("1.00")
    priced = costs.track_cost(job.id, "reference_generation", "sdxl", None, quantity=4)
    assert (priced.cost, priced.unit) == (Decimal("0.022"), "image")
    first = costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"), idempotency_key="clip-1")
    assert costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"), idempotency_key="clip-1") == first
    with pytest.raises(BudgetExceededError) as info:
        costs.track_cost(job.id, "video_generation", "svd", Decimal("0.95"), enforce=True)
    assert info.value.details == {"spent": "0.082", "reserved": "0.00", "attempted": "0.95", "limit": "1.00"}
    with pytest.raises(BudgetExceededError):
        costs.track_cost(job.id, "video_generation", "svd", Decimal("0.02"), limit=Decimal("0.10"))
    assert reload(job).total_cost == Decimal("0.082")


def test_budget_reads():
    job = make_job("1.00")
    costs.track_cost(job.id, "s", "svd", Decimal("0.50"))
    costs.reserve(job.id, "s", "svd", Decimal("0.40"))
    assert costs.check_budget(job.id, Decimal("0.10")) is True
    assert costs.check_budget(job.id, Decimal("0.11")) is False
    assert costs.check_budget(job.id, Decimal("0.11"), Decimal("2")) is True
    costs.enforce_budget_limit(job.id)
    with pytest.raises(BudgetExceededError) as info:
        costs.enforce_budget_limit(job.id, Decimal("0.80"))
    assert info.value.details["reserved"] == "0.40"
    summary = costs.job_cost_summary(job.id)
    assert (summary.total, summary.reserved, summary.remaining) == (Decimal("0.50"), Decimal("0.40"), Decimal("0.10"))
    assert isinstance(summary, costs.CostSummary)


def test_reserve_settle_release_renew_positionally():
    job = make_job("1.00")
    hold = costs.reserve(job.id, "video_generation", "animatediff", Decimal("0.80"))
    assert costs.renew_hold(hold).status == HoldStatus.ACTIVE
    row = costs.settle(hold, Decimal("0.75"))
    assert row.idempotency_key == f"hold:{hold.id}"
    assert costs.settle(str(hold.id), Decimal("0.75")).id == row.id
    other = costs.reserve(job.id, "video_generation", "svd", Decimal("0.10"), limit=Decimal("1.00"))
    assert costs.release(other.id).status == HoldStatus.RELEASED
    costs.reserve(job.id, "video_generation", "svd", Decimal("0.10"))
    assert costs.release_job_holds(job.id) == 1
    assert costs.expire_holds(job_id=job.id) == 0
    job = reload(job)
    assert (job.total_cost, job.reserved_cost) == (Decimal("0.75"), 0)


def test_reservation_context_manager_settles_or_releases():
    job = make_job("1.00")
    with costs.reservation(job.id, "video_generation", "svd", Decimal("0.30")) as held:
        assert isinstance(held, costs.Reservation)
        held.settle(Decimal("0.25"))
    with pytest.raises(RuntimeError), costs.reservation(job.id, "video_generation", "svd", Decimal("0.30")):
        raise RuntimeError("generation failed")
    with costs.reservation(job.id, "video_generation", "svd", Decimal("0.30"), limit=Decimal("1")):
        pass  # left without settling: charged the estimate
    job = reload(job)
    assert (job.total_cost, job.reserved_cost) == (Decimal("0.55"), 0)
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.RELEASED).count() == 1


def test_prices_and_money_helpers():
    assert costs.estimate_cost("sdxl", 10) == Decimal("0.055")
    assert costs.estimate_cost("svd") == Decimal("0.06")
    assert costs.get_price("svd") == costs.get_price_table()["svd"] == costs.ApiPrice("svd", "clip", Decimal("0.06"))
    assert costs.DEFAULT_API_PRICES["svd"]["price"] == Decimal("0.06")
    assert (costs.format_money, costs.validate_money) == (money.format_money, money.validate_money)
    assert (costs.money_sum, costs.money_from_sum) == (money.money_sum, money.money_from_sum)


def test_the_short_imports_still_resolve():
    """``from common import cost_tracker, track_cost, ...`` (the seeds' names) reach this module's functions."""
    seed_names = [name for name, module in common._LAZY.items() if module == "common.services.costs"]
    assert {"cost_tracker", "track_cost", "check_budget", "enforce_budget_limit", "get_total_cost"} <= set(seed_names)
    for name in seed_names:
        assert getattr(common, name) is getattr(costs, name)
    assert set(costs.__all__) <= set(dir(costs))


# --------------------------------------------------------------------------- async: the seed's cost_tracker


@pytest.fixture
def close_worker_connection():
    """The ORM ran in asgiref's worker thread: close its connection there."""
    yield
    from asgiref.sync import async_to_sync

    async_to_sync(sync_to_async(lambda: connection.close()))()


@pytest.mark.django_db(transaction=True)
async def test_cost_tracker_records_and_reads(close_worker_connection):
    job = await sync_to_async(make_job)("1.00")
    tracker = costs.cost_tracker
    row = await tracker.track_cost(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"))
    assert row.cost == Decimal("0.06")
    assert await tracker.get_total_cost(job.id) == Decimal("0.06")
    summary = await tracker.get_summary(job.id)
    assert (summary.total, summary.reserved) == (Decimal("0.06"), 0)


@pytest.mark.django_db(transaction=True)
async def test_cost_tracker_checks_the_budget(close_worker_connection):
    job = await sync_to_async(make_job)("1.00")
    tracker = costs.cost_tracker
    await tracker.track_cost(job.id, "video_generation", "svd", Decimal("0.06"))
    assert await tracker.check_budget(job_id=job.id, new_cost=Decimal("0.10"), limit=Decimal("20.00")) is True
    assert await tracker.check_budget(job.id, Decimal("0.95")) is False
    await tracker.enforce_budget_limit(job.id, limit=Decimal("20.00"))
    with pytest.raises(BudgetExceededError):
        await tracker.enforce_budget_limit(job.id, limit=Decimal("0.01"))


@pytest.mark.django_db(transaction=True)
async def test_cost_tracker_holds(close_worker_connection):
    job = await sync_to_async(make_job)("1.00")
    tracker = costs.cost_tracker
    hold = await tracker.reserve(job.id, "video_generation", "svd", Decimal("0.06"))
    assert (await tracker.renew_hold(hold)).status == HoldStatus.ACTIVE
    assert (await tracker.settle(hold, Decimal("0.05"))).cost == Decimal("0.05")
    other = await tracker.reserve(job.id, "video_generation", "svd", Decimal("0.06"))
    assert (await tracker.release(other)).status == HoldStatus.RELEASED
    assert await sync_to_async(lambda: reload(job).total_cost)() == Decimal("0.05")


@pytest.mark.django_db(transaction=True)
async def test_cost_tracker_reservation_blocks(close_worker_connection):
    job = await sync_to_async(make_job)("1.00")
    async with costs.cost_tracker.reservation(job.id, "video_generation", "svd", Decimal("0.10")) as held:
        await held.asettle(Decimal("0.09"))
    with pytest.raises(RuntimeError):
        async with costs.areservation(job.id, "video_generation", "svd", Decimal("0.10")):
            raise RuntimeError
    async with costs.areservation(job.id, "video_generation", "svd", Decimal("0.10")):
        pass
    job = await sync_to_async(reload)(job)
    assert (job.total_cost, job.reserved_cost) == (Decimal("0.19"), 0)


def test_cost_tracker_estimates_without_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert costs.cost_tracker.estimate_cost("svd", 2) == Decimal("0.12")


@pytest.mark.django_db(transaction=True)
async def test_module_async_twins(close_worker_connection):
    job = await sync_to_async(make_job)("1.00")
    await costs.atrack_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.01"), enforce=True)
    assert await costs.aget_total_cost(job.id) == Decimal("0.01")
    assert await costs.acheck_budget(job.id, Decimal("0.99")) is True
    await costs.aenforce_budget_limit(job.id)
    hold = await costs.areserve(job.id, "s", "svd", Decimal("0.10"))
    assert (await costs.arenew_hold(hold)).status == HoldStatus.ACTIVE
    assert (await costs.asettle(hold, Decimal("0.10"))).cost == Decimal("0.10")
    assert (await costs.arelease(hold)).status == HoldStatus.SETTLED
    assert await costs.aexpire_holds(job_id=job.id) == 0
    assert (await costs.ajob_cost_summary(job.id)).total == Decimal("0.11")
