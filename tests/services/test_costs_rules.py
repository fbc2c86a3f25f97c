"""The budget guarantee's edges (issue 10 items 4 and 8): expired holds, keep-alive, finished jobs, hostile input."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from common.errors import BudgetExceededError, GenerationError, ValidationError
from common.models import HoldStatus, Job, JobCost, JobCostHold
from common.services import costs, jobs
from tests.services.costs_helpers import make_job, reload

pytestmark = pytest.mark.django_db

TTL = 60


def age(hold: JobCostHold, seconds: float) -> None:
    """Make the hold look as if it was taken (or last kept alive) ``seconds`` ago."""
    JobCostHold.objects.filter(id=hold.id).update(created_at=timezone.now() - timedelta(seconds=seconds))


def state(job_id) -> tuple:
    """Everything the cost tracker writes for a job, to prove a refusal changed nothing."""
    job = Job.objects.get(pk=job_id)
    ledger = sorted(JobCost.objects.filter(job_id=job_id).values_list("id", "cost"))
    holds = sorted(JobCostHold.objects.filter(job_id=job_id).values_list("id", "status", "amount", "created_at"))
    return job.total_cost, job.reserved_cost, job.budget_limit, job.status, job.updated_at, ledger, holds


def overruns(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "budget_overrun"]


# --------------------------------------------------------------------------- expired holds (item 4)


@override_settings(VIDEOGEN_COMMON={"RESERVATION_TTL_SECONDS": TTL})
def test_the_issue_case_an_expired_hold_settled_late_is_recorded_logged_at_error_and_stops_enforced_charges(
    caplog, django_capture_on_commit_callbacks
):
    """Budget 1.00, hold 0.90, the hold expires, an enforced 0.20 fits, the late settle of 0.90 makes 1.10."""
    job = make_job("1.00")
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.90"))
    age(hold, TTL + 1)
    # An expired hold holds nothing: the budget it held is free again.
    costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.20"), enforce=True)
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        row = costs.settle(hold, Decimal("0.90"))
    assert row.cost == Decimal("0.90")
    job = reload(job)
    assert job.total_cost == Decimal("1.10")  # the money was spent: recorded truthfully
    assert job.reserved_cost == 0
    [record] = overruns(caplog)
    assert record.levelno == logging.ERROR
    assert (record.held, record.actual, record.spent, record.budget, record.hold_status) == (
        "0.90",
        "0.90",
        "1.10",
        "1.00",
        "expired",
    )
    assert "0.90" in record.getMessage()
    assert "1.10" in record.getMessage()
    # No new enforced charge or reservation fits any more, not even a free one.
    for call in (
        lambda: costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0"), enforce=True),
        lambda: costs.reserve(job.id, "composition", "gpt-4-turbo", Decimal("0.01")),
    ):
        with pytest.raises(BudgetExceededError):
            call()
    assert reload(job).total_cost == Decimal("1.10")


@override_settings(VIDEOGEN_COMMON={"RESERVATION_TTL_SECONDS": TTL})
@pytest.mark.parametrize("path", ["lazy", "sweep"])
def test_settling_a_hold_already_marked_expired_counts_it_once(path, caplog, django_capture_on_commit_callbacks):
    job = make_job("1.00")
    kept = costs.reserve(job.id, "video_generation", "svd", Decimal("0.30"))
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.50"))
    age(hold, TTL + 1)
    if path == "sweep":  # what a bulk sweep leaves: the hold closed as expired and reserved_cost already moved
        JobCostHold.objects.filter(id=hold.id).update(status=HoldStatus.EXPIRED, closed_at=timezone.now())
        Job.objects.filter(id=job.id).update(reserved_cost=Decimal("0.30"))
    # Fits only without the expired hold (0.30 + 0.50 + 0.30 > 1.00): on the lazy path it makes the
    # charge lock the row and expire the hold first.
    costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.30"), enforce=True)
    assert JobCostHold.objects.get(id=hold.id).status == HoldStatus.EXPIRED
    assert reload(job).reserved_cost == Decimal("0.30")
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        first = costs.settle(hold.id, Decimal("0.50"))
        again = costs.settle(hold.id, Decimal("0.50"))
    assert first.id == again.id
    job = reload(job)
    assert job.total_cost == Decimal("0.80")
    assert job.reserved_cost == Decimal("0.30")  # the live hold still counts, the expired one not twice
    assert JobCostHold.objects.get(id=hold.id).status == HoldStatus.SETTLED
    assert not overruns(caplog)  # spent 0.80: still within the budget
    costs.settle(kept, Decimal("0.20"))
    assert reload(job).total_cost == Decimal("1.00")


@override_settings(VIDEOGEN_COMMON={"RESERVATION_TTL_SECONDS": TTL})
def test_keep_alive_holds_the_budget_for_a_call_longer_than_the_ttl(caplog, django_capture_on_commit_callbacks):
    job = make_job("1.00")
    with costs.reservation(job.id, "video_generation", "svd", Decimal("0.90")) as held:
        for _ in range(3):  # 3 x 50 s: far past the TTL since the hold was taken, never past it since a renewal
            age(held.hold, 50)
            renewed = held.keep_alive()
            assert renewed.status == HoldStatus.ACTIVE
            assert timezone.now() - renewed.created_at < timedelta(seconds=5)  # a new term starts now
        age(held.hold, 50)  # 200 s since the hold was taken, 50 s since it was last kept alive
        with pytest.raises(BudgetExceededError):
            costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.20"), enforce=True)
        assert costs.check_budget(job.id, Decimal("0.20")) is False
        assert costs.job_cost_summary(job.id).reserved == Decimal("0.90")
        with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
            held.settle(Decimal("0.90"))
    job = reload(job)
    assert (job.total_cost, job.reserved_cost) == (Decimal("0.90"), Decimal(0))
    assert not overruns(caplog)


@override_settings(VIDEOGEN_COMMON={"RESERVATION_TTL_SECONDS": TTL})
def test_keeping_an_expired_hold_alive_holds_again_only_when_it_still_fits():
    job = make_job("1.00")
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.60"))
    age(hold, TTL + 1)
    renewed = costs.renew_hold(hold)  # nobody took the budget meanwhile: held again
    assert renewed.status == HoldStatus.ACTIVE
    assert reload(job).reserved_cost == Decimal("0.60")
    age(hold, TTL + 1)
    costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.50"), enforce=True)  # expires it, takes 0.50
    before = state(job.id)
    with pytest.raises(BudgetExceededError) as info:
        costs.renew_hold(hold.id)
    assert info.value.code == "HOLD_EXPIRED"
    assert "0.60" in info.value.message
    assert state(job.id) == before
    # The call may already have been made: settling still records it truthfully.
    costs.settle(hold, Decimal("0.60"))
    assert reload(job).total_cost == Decimal("1.10")


def test_closed_holds_cannot_be_kept_alive():
    job = make_job("1.00")
    settled = costs.reserve(job.id, "video_generation", "svd", Decimal("0.10"))
    costs.settle(settled, Decimal("0.10"))
    released = costs.release(costs.reserve(job.id, "video_generation", "svd", Decimal("0.10")))
    for hold in (settled, released):
        with pytest.raises(ValidationError) as info:
            costs.renew_hold(hold)
        assert info.value.code == "HOLD_CLOSED"
    with pytest.raises(ValidationError) as info:
        costs.renew_hold(uuid.uuid4())
    assert info.value.code == "HOLD_NOT_FOUND"


@pytest.mark.django_db(transaction=True)
async def test_async_keep_alive():
    job = await sync_to_async(make_job)("1.00")
    async with costs.areservation(job.id, "video_generation", "svd", Decimal("0.40")) as held:
        renewed = await held.akeep_alive()
        assert renewed.status == HoldStatus.ACTIVE
        assert (await costs.arenew_hold(held.hold.id)).id == held.hold.id
        await held.asettle(Decimal("0.40"))
    assert await costs.aget_total_cost(job.id) == Decimal("0.40")
    await sync_to_async(lambda: connection.close())()


def test_settle_above_the_hold_over_budget_logs_both_figures_at_error(caplog, django_capture_on_commit_callbacks):
    job = make_job("1.00")
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.90"))
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        costs.settle(hold, Decimal("1.20"))
    [record] = overruns(caplog)
    assert record.levelno == logging.ERROR
    assert (record.held, record.actual, record.spent, record.budget, record.hold_status) == (
        "0.90",
        "1.20",
        "1.20",
        "1.00",
        "active",
    )


# --------------------------------------------------------------------------- finished jobs (item 4)


def finish(job: Job, how: str) -> None:
    if how == "completed":
        jobs.stage_start(job_id=job.id, stage_name="composition")
        jobs.stage_complete(job_id=job.id, stage_name="composition")
        jobs.job_complete(job_id=job.id, video_url="https://example.test/v.mp4")
    elif how == "failed":
        jobs.job_fail(job_id=job.id, error=GenerationError("clip 3 failed"))
    else:
        jobs.job_cancel(job_id=job.id)


@pytest.mark.parametrize("how", ["completed", "failed", "cancelled"])
def test_finished_jobs_take_no_reservation_or_enforced_charge(how, django_capture_on_commit_callbacks):
    job = make_job("5.00")
    with django_capture_on_commit_callbacks(execute=True):
        finish(job, how)
    before = state(job.id)
    for call in (
        lambda: costs.reserve(job.id, "video_generation", "svd", Decimal("0.10")),
        lambda: costs.track_cost(job.id, "video_generation", "svd", Decimal("0.10"), enforce=True),
        lambda: costs.track_cost(job.id, "video_generation", "svd", Decimal("0.10"), limit=Decimal("9")),
        lambda: costs.track_cost(job.id, "video_generation", "svd", Decimal("0.10"), enforce=True, idempotency_key="k"),
    ):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.code == "JOB_FINISHED"
        assert how in info.value.message
        assert str(job.id) in info.value.message
        assert state(job.id) == before


@pytest.mark.parametrize("how", ["completed", "failed", "cancelled"])
def test_late_unenforced_charges_and_settles_are_recorded_with_a_warning(
    how, caplog, django_capture_on_commit_callbacks
):
    job = make_job("5.00")
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.30"))
    with django_capture_on_commit_callbacks(execute=True):
        finish(job, how)
    assert JobCostHold.objects.get(id=hold.id).status == HoldStatus.RELEASED  # the finish gave it back
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"))  # a call that was already made
        costs.settle(hold, Decimal("0.25"))  # its result arrived after the job ended
    job = reload(job)
    assert job.total_cost == Decimal("0.31")
    assert job.reserved_cost == 0
    late = [r for r in caplog.records if getattr(r, "event", None) == "late_charge"]
    assert [r.levelno for r in late] == [logging.WARNING, logging.WARNING]
    assert {r.job_status for r in late} == {how}
    with pytest.raises(ValidationError) as info:
        costs.renew_hold(hold)
    assert info.value.code == "HOLD_CLOSED"


# --------------------------------------------------------------------------- hostile input (item 8)


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("stage", lambda j: costs.track_cost(j, "video\x00", "svd", Decimal("0.06"))),
        ("api_name", lambda j: costs.track_cost(j, "video_generation", "s\x00vd", Decimal("0.06"))),
        ("idempotency_key", lambda j: costs.track_cost(j, "v", "svd", Decimal(1), idempotency_key="k\x00")),
        ("unit", lambda j: costs.track_cost(j, "v", "svd", Decimal(1), quantity=1, unit="clip\x00")),
        ("stage", lambda j: costs.track_cost(j, "v\ud800", "svd", Decimal("0.06"), enforce=True)),
        ("api_name", lambda j: costs.reserve(j, "video_generation", "\x00", Decimal("0.06"))),
        ("stage", lambda j: costs.reserve(j, "\udfff", "svd", Decimal("0.06"))),
    ],
)
def test_nul_and_surrogates_in_cost_text_are_refused_by_name(field, call):
    job = make_job("5.00")
    before = state(job.id)
    with pytest.raises(ValidationError) as info:
        call(job.id)
    assert field in info.value.message, info.value.message
    assert state(job.id) == before


@pytest.mark.django_db(transaction=True)
async def test_async_twins_refuse_nul_too():
    job = await sync_to_async(make_job)("5.00")
    before = await sync_to_async(state)(job.id)
    for call in (
        lambda: costs.areserve(job.id, "\x00", "svd", Decimal("0.06")),
        lambda: costs.atrack_cost(job.id, "v", "svd", Decimal("0.06"), idempotency_key="\x00"),
        lambda: costs.areservation(job.id, "v", "svd\x00", Decimal("0.06")).__aenter__(),
    ):
        with pytest.raises(ValidationError):
            await call()
    assert await sync_to_async(state)(job.id) == before
    await sync_to_async(lambda: connection.close())()


def test_an_unenforced_charge_that_would_overflow_the_total_is_refused():
    job = make_job("5.00")
    costs.track_cost(job.id, "video_generation", "svd", Decimal("99999999"))
    before = state(job.id)
    with pytest.raises(ValidationError) as info:
        costs.track_cost(job.id, "video_generation", "svd", Decimal("1"))
    assert "total_cost" in info.value.message
    assert "99999999" in info.value.message
    assert state(job.id) == before


def test_a_settle_that_would_overflow_the_total_is_refused():
    job = make_job("99999999")
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("1"))
    costs.track_cost(job.id, "video_generation", "svd", Decimal("99999998.5"))
    before = state(job.id)
    with pytest.raises(ValidationError) as info:
        costs.settle(hold, Decimal("2"))
    assert "total_cost" in info.value.message
    assert state(job.id) == before


def test_negative_zero_is_stored_as_zero():
    job = make_job("5.00")
    row = costs.track_cost(job.id, "video_generation", "svd", Decimal("-0"))
    assert str(row.cost) == "0.000000"
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("-0.0"))
    assert str(hold.amount) == "0.000000"
