"""The cost tracker's behaviour, one caller at a time (concurrency is in test_costs_concurrency.py)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import OperationalError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from common.errors import BudgetExceededError, ServiceUnavailableError, ValidationError
from common.models import HoldStatus, Job, JobCost, JobCostHold
from common.services import costs
from tests.services.costs_helpers import make_job

pytestmark = pytest.mark.django_db


def reload(job: Job) -> Job:
    job.refresh_from_db()
    return job


# --------------------------------------------------------------------------- charging


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


def test_quantity_prices_from_table_and_stores_unit():
    job = make_job()
    row = costs.track_cost(job.id, "reference_generation", "sdxl", None, quantity=4)
    assert row.cost == Decimal("0.022")
    assert row.unit == "image"
    assert row.unit_price == Decimal("0.0055")
    assert row.quantity == Decimal(4)
    explicit = costs.track_cost(job.id, "audio_analysis", "whisper", Decimal("0.02"), quantity=Decimal("3.5"))
    assert explicit.unit == "minute"
    custom = costs.track_cost(job.id, "composition", "ffmpeg", Decimal("0"), quantity=1, unit="call")
    assert custom.unit == "call"
    assert custom.unit_price is None


def test_cost_or_quantity_is_required():
    job = make_job()
    with pytest.raises(ValidationError, match="cost is required"):
        costs.track_cost(job.id, "composition", "svd", None)
    with pytest.raises(ValidationError, match="'dall-e-9'") as info:
        costs.track_cost(job.id, "composition", "dall-e-9", None, quantity=1)
    assert info.value.code == "UNKNOWN_API"
    assert not JobCost.objects.filter(job=job).exists()


def test_priced_charge_builds_the_price_table_once():
    job = make_job()
    with mock.patch.object(costs, "get_price_table", wraps=costs.get_price_table) as table:
        assert costs.track_cost(job.id, "reference_generation", "sdxl", None, quantity=4).cost == Decimal("0.022")
    assert table.call_count == 1


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0.06, "got float 0.06"),
        ("0.06", "got str '0.06'"),
        (True, "got bool True"),
        (None, None),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (Decimal("-Infinity"), "finite"),
        (Decimal("-0.01"), "must not be negative, got -0.01"),
        (-1, "must not be negative"),
        (Decimal("0.0000001"), "0.0000001 has more than 6 decimal places"),
        (Decimal("1E+9"), "larger than"),
    ],
)
def test_bad_amounts_are_refused_and_record_nothing(value, fragment):
    job = make_job()
    with pytest.raises(ValidationError) as info:
        costs.track_cost(job.id, "video_generation", "svd", value, quantity=None if value is None else 1)
    if fragment:
        assert fragment in str(info.value)
    assert info.value.code == "VALIDATION_ERROR"
    assert not JobCost.objects.filter(job=job).exists()
    assert reload(job).total_cost == 0


def test_trailing_zeros_beyond_six_places_are_fine():
    job = make_job()
    row = costs.track_cost(job.id, "video_generation", "svd", Decimal("0.060000000"))
    assert row.cost == Decimal("0.06")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"stage": ""}, "stage must be a non-empty string"),
        ({"api_name": None}, "api_name must be a non-empty string"),
        ({"api_name": "x" * 65}, "api_name is longer than 64"),
        ({"idempotency_key": ""}, "idempotency_key must be a non-empty string"),
        ({"quantity": 1.5}, "quantity must be a Decimal or int, got float 1.5"),
        ({"quantity": Decimal("-1")}, "quantity must be a finite amount"),
        ({"quantity": Decimal("0.00001")}, "more than 4 decimal places"),
        ({"limit": 20.0}, "limit must be a Decimal, got float 20.0"),
    ],
)
def test_bad_arguments_are_named(kwargs, fragment):
    job = make_job()
    args = {"stage": "video_generation", "api_name": "svd", **kwargs}
    stage, api = args.pop("stage"), args.pop("api_name")
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(")):
        costs.track_cost(job.id, stage, api, Decimal("0.06"), **args)


def test_unknown_job_is_a_clear_error():
    missing = uuid.uuid4()
    for enforce in (False, True):
        with pytest.raises(ValidationError) as info:
            costs.track_cost(missing, "video_generation", "svd", Decimal("0.06"), enforce=enforce)
        assert info.value.code == "JOB_NOT_FOUND"
        assert str(missing) in str(info.value)
    with pytest.raises(ValidationError, match="'job-42' is not a valid job id") as bad:
        costs.track_cost("job-42", "video_generation", "svd", Decimal("0.06"))
    assert bad.value.code == "INVALID_JOB_ID"
    for call in (
        lambda: costs.get_total_cost(missing),
        lambda: costs.check_budget(missing, Decimal(1)),
        lambda: costs.enforce_budget_limit(missing),
        lambda: costs.reserve(missing, "s", "svd", Decimal(1)),
        lambda: costs.job_cost_summary(missing),
    ):
        with pytest.raises(ValidationError, match="does not exist"):
            call()


def test_enforced_charge_refused_with_details_and_records_nothing():
    job = make_job("1.00")
    costs.track_cost(job.id, "video_generation", "svd", Decimal("0.95"), enforce=True)
    with pytest.raises(BudgetExceededError) as info:
        costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"), enforce=True)
    err = info.value
    assert err.code == "BUDGET_EXCEEDED"
    assert err.job_id == job.id
    assert err.details == {"spent": "0.95", "reserved": "0.00", "attempted": "0.06", "limit": "1.00"}
    assert "exceeds the limit 1.00" in str(err)
    assert reload(job).total_cost == Decimal("0.95")
    assert JobCost.objects.filter(job=job).count() == 1
    # Exactly at the limit is allowed.
    costs.track_cost(job.id, "video_generation", "svd", Decimal("0.05"), enforce=True)
    assert reload(job).total_cost == Decimal("1.00")


def test_unenforced_charge_may_go_over_the_budget():
    job = make_job("0.10")
    costs.track_cost(job.id, "video_generation", "svd", Decimal("0.20"))
    assert reload(job).total_cost == Decimal("0.20")
    with pytest.raises(BudgetExceededError):
        costs.enforce_budget_limit(job.id)


def test_explicit_limit_overrides_budget_and_implies_enforce():
    job = make_job("20.00")
    costs.track_cost(job.id, "video_generation", "svd", Decimal("0.50"), limit=Decimal("0.50"))
    with pytest.raises(BudgetExceededError) as info:
        costs.track_cost(job.id, "video_generation", "svd", Decimal("0.01"), limit=Decimal("0.50"))
    assert info.value.details["limit"] == "0.50"


def test_idempotency_key_returns_first_row_and_charges_once():
    job = make_job()
    first = costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"), idempotency_key="clip-1")
    again = costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"), idempotency_key="clip-1")
    assert again.id == first.id
    assert reload(job).total_cost == Decimal("0.06")
    other = make_job()
    elsewhere = costs.track_cost(other.id, "video_generation", "svd", Decimal("0.06"), idempotency_key="clip-1")
    assert elsewhere.id != first.id


def test_idempotent_duplicate_inside_callers_transaction_keeps_it_usable():
    job = make_job()
    with transaction.atomic():
        first = costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"), idempotency_key="k", enforce=True)
        again = costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"), idempotency_key="k", enforce=True)
        assert again.id == first.id
        costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.01"))
    assert reload(job).total_cost == Decimal("0.07")


def test_charge_inside_rolled_back_transaction_leaves_nothing():
    job = make_job()

    def crash() -> None:
        with transaction.atomic():
            costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"), enforce=True)
            raise RuntimeError("worker crashed")

    with pytest.raises(RuntimeError):
        crash()
    assert reload(job).total_cost == 0
    assert not JobCost.objects.filter(job=job).exists()


# --------------------------------------------------------------------------- reads


def test_check_budget_counts_spend_and_holds():
    job = make_job("1.00")
    costs.track_cost(job.id, "s", "svd", Decimal("0.50"))
    assert costs.check_budget(job.id, Decimal("0.50")) is True
    assert costs.check_budget(job.id, Decimal("0.51")) is False
    assert costs.check_budget(job.id, Decimal("0.51"), limit=Decimal("2")) is True
    costs.reserve(job.id, "s", "svd", Decimal("0.40"))
    assert costs.check_budget(job.id, Decimal("0.11")) is False
    costs.enforce_budget_limit(job.id)
    with pytest.raises(BudgetExceededError) as info:
        costs.enforce_budget_limit(job.id, limit=Decimal("0.80"))
    assert info.value.details["reserved"] == "0.40"


def test_job_cost_summary_breaks_down_by_stage_and_api():
    job = make_job("2.00")
    costs.track_cost(job.id, "reference_generation", "sdxl", Decimal("0.0055"))
    costs.track_cost(job.id, "reference_generation", "sdxl", Decimal("0.0055"))
    costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"))
    costs.reserve(job.id, "video_generation", "svd", Decimal("0.06"))
    summary = costs.job_cost_summary(job.id)
    assert summary.total == Decimal("0.071")
    assert summary.ledger_total == summary.total
    assert summary.reserved == Decimal("0.06")
    assert summary.remaining == Decimal("1.869")
    assert summary.charges == 3
    assert summary.by_stage == {"reference_generation": Decimal("0.011"), "video_generation": Decimal("0.06")}
    assert summary.by_api == {"sdxl": Decimal("0.011"), "svd": Decimal("0.06")}
    data = summary.to_dict()
    assert data["total"] == "0.071"
    assert data["by_api"]["sdxl"] == "0.011"
    assert data["share_used"] == "0.0355"


# --------------------------------------------------------------------------- reservations


def test_reserve_holds_budget_and_settle_records_actual():
    job = make_job("1.00")
    hold = costs.reserve(job.id, "video_generation", "animatediff", Decimal("0.80"))
    assert hold.status == HoldStatus.ACTIVE
    assert reload(job).reserved_cost == Decimal("0.80")
    with pytest.raises(BudgetExceededError) as info:
        costs.track_cost(job.id, "video_generation", "svd", Decimal("0.21"), enforce=True)
    assert info.value.details["reserved"] == "0.80"
    with pytest.raises(BudgetExceededError):
        costs.reserve(job.id, "video_generation", "svd", Decimal("0.21"))
    row = costs.settle(hold, Decimal("0.75"))
    assert row.cost == Decimal("0.75")
    assert row.idempotency_key == f"hold:{hold.id}"
    job = reload(job)
    assert job.total_cost == Decimal("0.75")
    assert job.reserved_cost == 0
    hold.refresh_from_db()
    assert hold.status == HoldStatus.SETTLED
    assert hold.settled_cost_id == row.id
    assert hold.closed_at is not None
    # Settling again returns the same row and charges nothing.
    assert costs.settle(hold.id, Decimal("0.75")).id == row.id
    assert reload(job).total_cost == Decimal("0.75")
    # Release of a settled hold does nothing.
    assert costs.release(hold).status == HoldStatus.SETTLED


def test_settle_records_even_over_budget_and_logs(caplog, django_capture_on_commit_callbacks):
    job = make_job("1.00")
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.90"))
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        costs.settle(hold, Decimal("1.20"))
    assert reload(job).total_cost == Decimal("1.20")
    assert any(getattr(r, "event", None) == "budget_overrun" for r in caplog.records)


def test_release_gives_budget_back():
    job = make_job("1.00")
    hold = costs.reserve(job.id, "s", "svd", Decimal("1.00"))
    released = costs.release(str(hold.id))
    assert released.status == HoldStatus.RELEASED
    job = reload(job)
    assert job.reserved_cost == 0
    assert job.total_cost == 0
    costs.track_cost(job.id, "s", "svd", Decimal("1.00"), enforce=True)


def test_unknown_and_malformed_holds():
    with pytest.raises(ValidationError, match="does not exist") as info:
        costs.settle(uuid.uuid4(), Decimal("0.1"))
    assert info.value.code == "HOLD_NOT_FOUND"
    with pytest.raises(ValidationError, match="not a valid hold id"):
        costs.release("nope")


def test_reservation_context_manager_settles_or_releases():
    job = make_job("1.00")
    with costs.reservation(job.id, "video_generation", "svd", Decimal("0.30")) as held:
        assert held.estimate == Decimal("0.30")
        held.settle(Decimal("0.25"))
    assert reload(job).total_cost == Decimal("0.25")

    with pytest.raises(RuntimeError), costs.reservation(job.id, "video_generation", "svd", Decimal("0.30")):
        raise RuntimeError("generation failed")
    job = reload(job)
    assert job.total_cost == Decimal("0.25")
    assert job.reserved_cost == 0
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.RELEASED).count() == 1

    # Left without settling: charged the estimate (the call was made, its cost unknown).
    with costs.reservation(job.id, "video_generation", "svd", Decimal("0.30")):
        pass
    assert reload(job).total_cost == Decimal("0.55")


def test_expired_holds_stop_counting():
    job = make_job("1.00")
    stale = costs.reserve(job.id, "video_generation", "svd", Decimal("1.00"))
    with pytest.raises(BudgetExceededError):
        costs.track_cost(job.id, "s", "svd", Decimal("0.10"), enforce=True)
    JobCostHold.objects.filter(id=stale.id).update(created_at=timezone.now() - timedelta(hours=1))
    assert costs.check_budget(job.id, Decimal("1.00")) is True
    # The enforced charge finds the stale hold, expires it, and goes through.
    costs.track_cost(job.id, "s", "svd", Decimal("0.10"), enforce=True)
    stale.refresh_from_db()
    assert stale.status == HoldStatus.EXPIRED
    job = reload(job)
    assert job.reserved_cost == 0
    assert job.total_cost == Decimal("0.10")
    # A late settlement of the expired hold still records the money spent.
    costs.settle(stale, Decimal("0.50"))
    assert reload(job).total_cost == Decimal("0.60")
    assert reload(job).reserved_cost == 0


def test_ttl_setting_is_read_at_call_time():
    job = make_job("1.00")
    costs.reserve(job.id, "s", "svd", Decimal("1.00"))
    with override_settings(VIDEOGEN_COMMON={"RESERVATION_TTL_SECONDS": 0}):
        costs.reserve(job.id, "s", "svd", Decimal("1.00"))
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.EXPIRED).count() == 1


# --------------------------------------------------------------------------- thresholds


def crossings(caplog):
    return [r for r in caplog.records if getattr(r, "event", None) == "budget_threshold_crossed"]


def test_threshold_warning_once_with_figures(caplog, django_capture_on_commit_callbacks):
    job = make_job("1.00")
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            costs.track_cost(job.id, "s", "svd", Decimal("0.10"))
    found = crossings(caplog)
    assert len(found) == 1
    assert found[0].job_id == str(job.id)
    assert found[0].spent == "0.80"
    assert found[0].budget == "1.00"
    assert found[0].threshold == "0.80"


def test_several_thresholds_and_one_charge_crossing_two(caplog, django_capture_on_commit_callbacks):
    job = make_job("1.00")
    with (
        override_settings(VIDEOGEN_COMMON={"BUDGET_WARNING_THRESHOLDS": (Decimal("0.5"), Decimal("0.9"))}),
        caplog.at_level(logging.WARNING, logger="common.costs"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        costs.track_cost(job.id, "s", "svd", Decimal("0.95"))
        costs.track_cost(job.id, "s", "svd", Decimal("0.10"))
    assert sorted(r.threshold for r in crossings(caplog)) == ["0.5", "0.9"]


def test_no_threshold_warning_for_zero_budget_or_rolled_back_charge(caplog, django_capture_on_commit_callbacks):
    free = make_job("0")
    job = make_job("1.00")
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        costs.track_cost(free.id, "s", "svd", Decimal("1"))
        try:
            with transaction.atomic():
                costs.track_cost(job.id, "s", "svd", Decimal("0.90"))
                raise RuntimeError
        except RuntimeError:
            pass
    assert crossings(caplog) == []


# --------------------------------------------------------------------------- prices


def test_estimate_cost_from_price_table():
    assert costs.estimate_cost("sdxl", 10) == Decimal("0.055")
    assert costs.estimate_cost("svd") == Decimal("0.06")
    assert costs.estimate_cost("gpt-4o", Decimal("1.5")) == Decimal("0.00375")
    assert costs.estimate_cost("whisper", Decimal("3.25")) == Decimal("0.0195")
    # Rounded up to whole micro-dollars.
    assert costs.estimate_cost("gpt-4o-mini", Decimal("0.001")) == Decimal("0.000001")
    for name, price in {
        "sdxl": "0.0055",
        "svd": "0.06",
        "gpt-4-turbo": "0.01",
        "zeroscope": "0.10",
        "animatediff": "0.20",
        "musicgen": "0.15",
    }.items():
        assert costs.get_price(name).price == Decimal(price)


def test_unknown_api_lists_known_ones():
    with pytest.raises(ValidationError) as info:
        costs.estimate_cost("dall-e-9", 1)
    message = str(info.value)
    assert "'dall-e-9'" in message
    assert "sdxl" in message
    assert "svd" in message
    assert info.value.code == "UNKNOWN_API"
    with pytest.raises(ValidationError, match="quantity is required"):
        costs.estimate_cost("svd", None)  # type: ignore[arg-type]


def test_price_table_override_and_bad_entry():
    with override_settings(VIDEOGEN_COMMON={"API_PRICES": {"svd": {"unit": "second", "price": Decimal("0.02")}}}):
        assert costs.estimate_cost("svd", 3) == Decimal("0.06")
        assert costs.estimate_cost("sdxl", 1) == Decimal("0.0055")
    with (
        override_settings(VIDEOGEN_COMMON={"API_PRICES": {"x": {"unit": "parsec", "price": Decimal(1)}}}),
        pytest.raises(ValidationError, match="unit 'parsec'"),
    ):
        costs.get_price_table()
    with (
        override_settings(VIDEOGEN_COMMON={"API_PRICES": {"x": {"unit": "call", "price": 0.5}}}),
        pytest.raises(ValidationError, match="price must be a Decimal"),
    ):
        costs.get_price_table()


def test_format_money():
    assert costs.format_money(Decimal("19.980000")) == "19.98"
    assert costs.format_money(Decimal("0.005500")) == "0.0055"
    assert costs.format_money(Decimal("20")) == "20.00"
    assert costs.format_money(Decimal("1E+1")) == "10.00"
    assert costs.format_money(None) == ""


# --------------------------------------------------------------------------- failures and retries


def test_database_failure_becomes_service_unavailable():
    job = make_job()
    with (
        mock.patch.object(costs, "_figures", side_effect=OperationalError("connection refused")),
        pytest.raises(ServiceUnavailableError, match="database is unavailable"),
    ):
        costs.check_budget(job.id, Decimal(1))


@pytest.mark.django_db(transaction=True)
def test_locked_database_is_retried_inside_the_service():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("database is locked")
        return "done"

    with mock.patch.object(costs.time, "sleep"):
        assert costs._write(flaky) == "done"
    assert len(calls) == 3

    def broken():
        raise OperationalError("disk I/O error")

    with pytest.raises(OperationalError):
        costs._write(broken)


# --------------------------------------------------------------------------- async


@pytest.mark.django_db(transaction=True)
async def test_async_twins_and_cost_tracker():
    from asgiref.sync import sync_to_async

    job = await sync_to_async(make_job)("1.00")
    tracker = costs.cost_tracker
    row = await tracker.track_cost(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"))
    assert row.cost == Decimal("0.06")
    assert await tracker.get_total_cost(job.id) == Decimal("0.06")
    assert await tracker.check_budget(job_id=job.id, new_cost=Decimal("0.10"), limit=Decimal("20.00")) is True
    await tracker.enforce_budget_limit(job.id, limit=Decimal("20.00"))
    with pytest.raises(BudgetExceededError):
        await tracker.enforce_budget_limit(job.id, limit=Decimal("0.01"))
    hold = await tracker.reserve(job.id, "video_generation", "svd", Decimal("0.06"))
    settled = await tracker.settle(hold, Decimal("0.05"))
    assert settled.cost == Decimal("0.05")
    hold2 = await tracker.reserve(job.id, "video_generation", "svd", Decimal("0.06"))
    assert (await tracker.release(hold2)).status == HoldStatus.RELEASED
    async with tracker.reservation(job.id, "video_generation", "svd", Decimal("0.10")) as held:
        await held.asettle(Decimal("0.09"))
    with pytest.raises(RuntimeError):
        async with costs.areservation(job.id, "video_generation", "svd", Decimal("0.10")):
            raise RuntimeError
    async with costs.areservation(job.id, "video_generation", "svd", Decimal("0.10")):
        pass
    assert tracker.estimate_cost("svd", 2) == Decimal("0.12")
    summary = await tracker.get_summary(job.id)
    assert summary.total == Decimal("0.30")
    assert summary.reserved == 0
    await costs.atrack_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.01"), enforce=True)
    assert await costs.aget_total_cost(job.id) == Decimal("0.31")
    # The ORM ran in asgiref's worker thread: close its connection there.
    await sync_to_async(lambda: connection.close())()


def test_release_job_holds_and_finish_receiver():
    job = make_job("1.00")
    costs.reserve(job.id, "video_generation", "svd", Decimal("0.30"))
    costs.reserve(job.id, "video_generation", "svd", Decimal("0.30"))
    assert costs.release_job_holds(job.id) == 2
    job = reload(job)
    assert job.reserved_cost == 0
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.RELEASED).count() == 2
    costs.reserve(job.id, "video_generation", "svd", Decimal("0.30"))
    costs.release_holds_on_finish(Job, job=job, status="failed")
    assert reload(job).reserved_cost == 0


@pytest.mark.parametrize("finish", ["fail", "cancel", "complete"])
def test_finishing_a_job_through_the_lifecycle_releases_its_holds(finish, django_capture_on_commit_callbacks):
    """The receiver is connected in CommonConfig.ready(): no budget stays on hold for a finished job."""
    from common.errors import GenerationError
    from common.services import jobs

    job = make_job("1.00")
    costs.reserve(job.id, "video_generation", "svd", Decimal("0.30"))
    assert reload(job).reserved_cost == Decimal("0.30")
    with django_capture_on_commit_callbacks(execute=True):
        if finish == "fail":
            jobs.job_fail(job_id=job.id, error=GenerationError("clip 3 failed"))
        elif finish == "cancel":
            jobs.job_cancel(job_id=job.id)
        else:
            jobs.stage_start(job_id=job.id, stage_name="composition")  # completing needs a processing job
            jobs.stage_complete(job_id=job.id, stage_name="composition")
            jobs.job_complete(job_id=job.id, video_url="https://example.test/v.mp4")
    assert reload(job).reserved_cost == 0
    assert JobCostHold.objects.filter(job=job, status=HoldStatus.RELEASED).count() == 1
