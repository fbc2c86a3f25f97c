"""Spend across jobs (common.selectors.spend): figures equal to the ledger, holds, days, states, query counts."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from common.budget import budget_state, near_share
from common.errors import BudgetExceededError, ValidationError
from common.models import Job, JobCost, JobCostHold, JobStatus
from common.selectors import spend
from common.selectors.spend import JobScope
from common.services.charges import charge_record
from common.services.holds import hold_release, hold_reserve, hold_settle
from common.services.jobs import job_fail
from tests.services.costs_helpers import make_job

pytestmark = pytest.mark.django_db

D = Decimal
UTC = dt.UTC


def charge(job: Job, amount: str, *, stage: str = "video_generation", api: str = "svd", at=None) -> JobCost:
    """Record a charge; ``at`` moves its timestamp (the ledger is append-only through the ORM, so with SQL)."""
    row = charge_record(job_id=job.id, stage=stage, api_name=api, cost=D(amount))
    if at is not None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE job_costs SET timestamp = %s WHERE id = %s", [at, row.id.hex])
    return row


def ledger_sum(rows) -> Decimal:
    return sum((r.cost for r in rows), D(0))


@pytest.fixture
def world():
    """Two users, four jobs, charges over three days (one day in the middle without spend), holds of each kind."""
    alice, bob = uuid.UUID(int=1), uuid.UUID(int=2)
    today = timezone.now().astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    big = make_job("10.00", user_id=alice, status=JobStatus.PROCESSING)
    charge(big, "1.25", at=today)
    charge(big, "0.0055", stage="reference_generation", api="sdxl", at=today)
    charge(big, "2.50", at=today - dt.timedelta(days=3))
    small = make_job("1.00", user_id=bob, status=JobStatus.COMPLETED)
    charge(small, "0.063", stage="audio_analysis", api="whisper", at=today - dt.timedelta(days=1))
    charge(small, "0.30", stage="scene_planning", api="gpt-4o", at=today - dt.timedelta(days=1))
    idle = make_job("5.00", user_id=bob, status=JobStatus.QUEUED)
    # Holds: one open, one released (refunded), one settled (now a charge), one expired.
    hold_reserve(job_id=idle.id, stage="video_generation", api_name="svd", estimate=D("0.40"))
    released = hold_reserve(job_id=idle.id, stage="video_generation", api_name="svd", estimate=D("0.70"))
    hold_release(hold=released)
    settled = hold_reserve(job_id=big.id, stage="video_generation", api_name="svd", estimate=D("0.20"))
    hold_settle(hold=settled, actual_cost=D("0.15"))
    expired = hold_reserve(job_id=big.id, stage="video_generation", api_name="svd", estimate=D("0.90"))
    JobCostHold.objects.filter(id=expired.id).update(created_at=timezone.now() - dt.timedelta(days=1))
    return {"alice": alice, "bob": bob, "today": today, "big": big, "small": small, "idle": idle}


def test_totals_equal_the_ledger(world):
    totals = spend.spend_totals()
    assert totals.spent == ledger_sum(JobCost.objects.all()) == D("4.2685")
    assert totals.charges == JobCost.objects.count() == 6
    assert totals.jobs == 2


def test_totals_in_a_half_open_window(world):
    today = world["today"].replace(hour=0)
    assert spend.spend_totals(since=today).spent == D("1.4055")  # today's two charges and the settled hold
    yesterday = spend.spend_totals(since=today - dt.timedelta(days=1), until=today)
    assert (yesterday.spent, yesterday.charges, yesterday.jobs) == (D("0.363"), 2, 1)
    # The bound itself: a charge at ``until`` is out, at ``since`` is in.
    at = world["today"] - dt.timedelta(days=1)
    assert spend.spend_totals(since=at, until=at + dt.timedelta(microseconds=1)).charges == 2
    assert spend.spend_totals(since=at - dt.timedelta(seconds=1), until=at).charges == 0


def test_totals_by_status(world):
    assert spend.spend_totals(statuses=["completed"]).spent == D("0.363")
    assert spend.spend_totals(statuses=["queued", "cancelled"]).spent == D("0.000000")


def test_open_holds_count_only_active_unexpired(world):
    holds = spend.spend_holds()
    assert holds.reserved == D("0.40")  # not the released 0.70, the settled 0.20 or the expired 0.90
    assert (holds.holds, holds.jobs) == (1, 1)
    assert spend.spend_holds(statuses=["processing"]).reserved == D("0.000000")


def test_by_stage_api_user_equal_the_ledger(world):
    by_stage = {r.key: (r.charges, r.spent) for r in spend.spend_by(by="stage")}
    assert by_stage == {
        "audio_analysis": (1, D("0.063")),
        "reference_generation": (1, D("0.0055")),
        "scene_planning": (1, D("0.30")),
        "video_generation": (3, D("3.90")),
    }
    by_api = {r.key: r.spent for r in spend.spend_by(by="api")}
    assert by_api == {"gpt-4o": D("0.30"), "sdxl": D("0.0055"), "svd": D("3.90"), "whisper": D("0.063")}
    by_user = {r.key: r.spent for r in spend.spend_by(by="user")}
    assert by_user == {str(world["alice"]): D("3.9055"), str(world["bob"]): D("0.363")}
    for by in ("stage", "api", "user"):
        assert sum(r.spent for r in spend.spend_by(by=by)) == ledger_sum(JobCost.objects.all())


def test_per_day_includes_days_without_spend(world):
    days = spend.spend_per_day(days=5, end=world["today"].date())
    assert [d.day for d in days] == [world["today"].date() - dt.timedelta(days=i) for i in (4, 3, 2, 1, 0)]
    assert [(d.charges, d.spent) for d in days] == [
        (0, D("0.000000")),
        (1, D("2.50")),
        (0, D("0.000000")),
        (2, D("0.363")),
        (3, D("1.4055")),  # with the settled hold's charge
    ]
    # spend_by_day leaves the empty days out; the same query.
    assert [d.day for d in spend.spend_by_day()] == [d.day for d in days if d.charges]


def test_top_jobs_and_users(world):
    top = spend.spend_top_jobs(limit=1)
    assert len(top) == 1
    assert top[0].job.job_id == world["big"].id
    assert top[0].spent == D("3.9055")
    assert top[0].charges == 4
    assert top[0].job.spent == D("3.9055")
    assert top[0].job.budget == D("10.00")
    windowed = spend.spend_top_jobs(since=world["today"] - dt.timedelta(days=2), until=world["today"])
    assert [(r.job.job_id, r.spent) for r in windowed] == [(world["small"].id, D("0.363"))]
    users = spend.spend_top_users()
    assert [(u.key, u.spent) for u in users] == [(str(world["alice"]), D("3.9055")), (str(world["bob"]), D("0.363"))]
    reserved = spend.spend_top_jobs(limit=10, statuses=["queued"])
    assert reserved == []  # the idle job holds money but spent nothing


def test_budget_states_at_their_thresholds():
    share = near_share()
    assert share == D("0.80")
    below = make_job("1.00")
    charge(below, "0.799999")
    at = make_job("1.00")
    charge(at, "0.80")
    over = make_job("1.00")
    charge(over, "1.000001")
    make_job("0")  # a zero budget is never near
    stopped = make_job("1.00", status=JobStatus.PROCESSING)
    charge(stopped, "0.10")
    with pytest.raises(BudgetExceededError):
        charge_record(job_id=stopped.id, stage="video_generation", api_name="svd", cost=D("1.00"), enforce=True)
    job_fail(job_id=stopped.id, error=BudgetExceededError("spent", job_id=stopped.id))
    assert Job.objects.get(id=stopped.id).error_code == "BUDGET_EXCEEDED"
    states = {j.job_id: j.state for j in spend.jobs_budget_states(states=["ok", "near", "over"])}
    assert states[below.id] == "ok"
    assert states[at.id] == "near"
    assert states[over.id] == "over"
    assert states[stopped.id] == "over"  # stopped at 10 % of its budget, but by the budget
    listed = spend.jobs_budget_states()
    assert [j.job_id for j in listed][:2] == [over.id, stopped.id]  # over first, by share used
    assert {j.job_id for j in listed} == {over.id, stopped.id, at.id}
    assert budget_state(spent=D("0.8"), budget=D(1), error_code=None, near=D("0.9")) == "ok"


def test_budget_states_filters(world):
    charge(world["small"], "0.60")  # 0.963 of 1.00: near
    assert [j.job_id for j in spend.jobs_budget_states(statuses=["completed"])] == [world["small"].id]
    assert spend.jobs_budget_states(statuses=["processing"]) == []
    assert spend.jobs_budget_states(since=timezone.now() + dt.timedelta(seconds=5)) == []
    job = spend.jobs_budget_states()[0]
    assert (job.spent, job.reserved, job.share_used, job.state) == (D("0.963"), D("0.000000"), D("0.9630"), "near")


def test_job_scope_narrows_every_query(world):
    scope = JobScope(user_id=world["bob"])
    assert spend.spend_totals(scope=scope).spent == D("0.363")
    assert spend.spend_holds(scope=scope).reserved == D("0.40")
    assert spend.spend_totals(scope=JobScope(job_ids=(world["big"].id,))).charges == 4
    assert spend.spend_totals(scope=JobScope(min_share=D("0.38"))).spent == D("3.9055")
    assert spend.spend_totals(scope=JobScope(over_budget=True)).charges == 0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: spend.spend_totals(statuses=["running"]), "statuses"),
        (lambda: spend.spend_totals(since=dt.datetime(2026, 1, 1)), "since"),  # naive
        (
            lambda: spend.spend_totals(
                since=dt.datetime(2026, 2, 1, tzinfo=UTC), until=dt.datetime(2026, 1, 1, tzinfo=UTC)
            ),
            "since",
        ),
        (lambda: spend.spend_by(by="colour"), "by"),
        (lambda: spend.spend_per_day(days=0), "days"),
        (lambda: spend.spend_per_day(end=timezone.now()), "end"),
        (lambda: spend.spend_top_jobs(limit=-1), "limit"),
        (lambda: spend.jobs_budget_states(states=["fine"]), "states"),
    ],
)
def test_bad_arguments_are_named(call, field):
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.details["field"] == field


def _populate(n: int) -> None:
    users = [uuid.uuid4() for _ in range(7)]
    jobs = [
        Job(user_id=users[i % 7], audio_url="a", user_prompt="p", budget_limit=D("1.00"), total_cost=D("0.85"))
        for i in range(n)
    ]
    Job.objects.bulk_create(jobs)
    JobCost.objects.bulk_create(
        JobCost(job=job, stage_name=f"stage{i % 3}", api_name=f"api{i % 4}", cost=D("0.85"))
        for i, job in enumerate(jobs)
    )
    JobCostHold.objects.bulk_create(
        JobCostHold(job=job, stage_name="s", api_name="a", amount=D("0.10")) for job in jobs[::2]
    )


CALLS = {
    "totals": lambda: spend.spend_totals(),
    "holds": lambda: spend.spend_holds(),
    "by_stage": lambda: spend.spend_by(by="stage"),
    "by_api": lambda: spend.spend_by(by="api"),
    "by_user": lambda: spend.spend_by(by="user", statuses=["queued"]),
    "by_day": lambda: spend.spend_by_day(),
    "per_day": lambda: spend.spend_per_day(days=30),
    "top_jobs": lambda: spend.spend_top_jobs(limit=50),
    "top_users": lambda: spend.spend_top_users(),
    "states": lambda: spend.jobs_budget_states(limit=500),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_constant_number_of_queries(name, django_assert_num_queries):
    _populate(10)
    with django_assert_num_queries(1):
        small = CALLS[name]()
    _populate(190)
    with django_assert_num_queries(1):
        large = CALLS[name]()
    if isinstance(large, list) and name not in ("per_day", "by_day"):
        assert len(large) >= len(small)
    if name == "states":
        assert len(large) == 200  # every job is near (0.85 of 1.00): all listed, one query


@pytest.mark.django_db(transaction=True)
async def test_async_twins_agree():
    from asgiref.sync import sync_to_async

    job = await sync_to_async(make_job)("1.00")
    await sync_to_async(charge)(job, "0.25")
    assert (await spend.aspend_totals()).spent == D("0.25")
    assert [r.key for r in await spend.aspend_by(by="api")] == ["svd"]
    await sync_to_async(lambda: connection.close())()  # the twins' thread's connection, before the test database goes
