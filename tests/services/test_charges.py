"""The ledger (common.services.charges): enforced, idempotent charges, one caller at a time.

Concurrency is in test_costs_concurrency.py; the budget's edges (expired holds, finished jobs) in
test_costs_rules.py; the seeds' call forms in test_costs.py.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings

from common.errors import BudgetExceededError, ValidationError
from common.models import JobCost
from common.selectors import job_budget_check, job_total_cost
from common.services.charges import charge_record
from tests.services.costs_helpers import make_job, reload

pytestmark = pytest.mark.django_db


def test_a_charge_appends_one_ledger_row_and_raises_the_total():
    job = make_job()
    row = charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"))
    stored = JobCost.objects.filter(job=job).values("id", "stage_name", "api_name", "cost", "idempotency_key", "unit")
    assert list(stored) == [
        {
            "id": row.id,
            "stage_name": "video_generation",
            "api_name": "svd",
            "cost": Decimal("0.06"),
            "idempotency_key": None,
            "unit": None,
        }
    ]
    charge_record(job_id=str(job.id).upper(), stage="composition", api_name="ffmpeg", cost=1)
    assert (job_total_cost(job_id=job.id), reload(job).total_cost) == (Decimal("1.06"), Decimal("1.06"))


def test_quantity_prices_from_table_and_stores_unit():
    job = make_job()
    row = charge_record(job_id=job.id, stage="reference_generation", api_name="sdxl", cost=None, quantity=4)
    assert row.cost == Decimal("0.022")
    assert row.unit == "image"
    assert row.unit_price == Decimal("0.0055")
    assert row.quantity == Decimal(4)
    explicit = charge_record(
        job_id=job.id, stage="audio_analysis", api_name="whisper", cost=Decimal("0.02"), quantity=Decimal("3.5")
    )
    assert explicit.unit == "minute"
    custom = charge_record(
        job_id=job.id, stage="composition", api_name="ffmpeg", cost=Decimal("0"), quantity=1, unit="call"
    )
    assert custom.unit == "call"
    assert custom.unit_price is None


def test_cost_or_quantity_is_required():
    job = make_job()
    with pytest.raises(ValidationError, match="cost is required"):
        charge_record(job_id=job.id, stage="composition", api_name="svd", cost=None)
    with pytest.raises(ValidationError, match="'dall-e-9'") as info:
        charge_record(job_id=job.id, stage="composition", api_name="dall-e-9", cost=None, quantity=1)
    assert info.value.code == "UNKNOWN_API"
    assert not JobCost.objects.filter(job=job).exists()


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
        charge_record(
            job_id=job.id, stage="video_generation", api_name="svd", cost=value, quantity=None if value is None else 1
        )
    if fragment:
        assert fragment in str(info.value)
    assert info.value.code == "VALIDATION_ERROR"
    assert not JobCost.objects.filter(job=job).exists()
    assert reload(job).total_cost == 0


def test_trailing_zeros_beyond_six_places_are_fine():
    job = make_job()
    row = charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.060000000"))
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
        charge_record(job_id=job.id, stage=stage, api_name=api, cost=Decimal("0.06"), **args)


@pytest.mark.parametrize("enforce", [False, True])
def test_unknown_job_is_a_clear_error(enforce):
    missing = uuid.uuid4()
    with pytest.raises(ValidationError) as info:
        charge_record(job_id=missing, stage="video_generation", api_name="svd", cost=Decimal("0.06"), enforce=enforce)
    assert info.value.code == "JOB_NOT_FOUND"
    assert str(missing) in str(info.value)


def test_malformed_job_id_is_named():
    with pytest.raises(ValidationError, match="'job-42' is not a valid job id") as bad:
        charge_record(job_id="job-42", stage="video_generation", api_name="svd", cost=Decimal("0.06"))
    assert bad.value.code == "INVALID_JOB_ID"


def test_enforced_charge_refused_with_details_and_records_nothing():
    job = make_job("1.00")
    charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.95"), enforce=True)
    with pytest.raises(BudgetExceededError) as info:
        charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"), enforce=True)
    err = info.value
    assert err.code == "BUDGET_EXCEEDED"
    assert err.job_id == job.id
    assert err.details == {"spent": "0.95", "reserved": "0.00", "attempted": "0.06", "limit": "1.00"}
    assert "exceeds the limit 1.00" in str(err)
    assert reload(job).total_cost == Decimal("0.95")
    assert JobCost.objects.filter(job=job).count() == 1
    # Exactly at the limit is allowed.
    charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.05"), enforce=True)
    assert reload(job).total_cost == Decimal("1.00")


def test_unenforced_charge_may_go_over_the_budget():
    job = make_job("0.10")
    charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.20"))
    assert reload(job).total_cost == Decimal("0.20")
    with pytest.raises(BudgetExceededError):
        job_budget_check(job_id=job.id)


def test_explicit_limit_overrides_budget_and_implies_enforce():
    job = make_job("20.00")
    charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.50"), limit=Decimal("0.50"))
    with pytest.raises(BudgetExceededError) as info:
        charge_record(
            job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.01"), limit=Decimal("0.50")
        )
    assert info.value.details["limit"] == "0.50"


def test_idempotency_key_returns_first_row_and_charges_once():
    job = make_job()
    first = charge_record(
        job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"), idempotency_key="clip-1"
    )
    again = charge_record(
        job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"), idempotency_key="clip-1"
    )
    assert again.id == first.id
    assert reload(job).total_cost == Decimal("0.06")
    other = make_job()
    elsewhere = charge_record(
        job_id=other.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"), idempotency_key="clip-1"
    )
    assert elsewhere.id != first.id


def test_idempotent_duplicate_inside_callers_transaction_keeps_it_usable():
    job = make_job()
    clip = {"job_id": job.id, "stage": "video_generation", "api_name": "svd", "cost": Decimal("0.06")}
    with transaction.atomic():
        first = charge_record(**clip, idempotency_key="k", enforce=True)
        again = charge_record(**clip, idempotency_key="k", enforce=True)
        assert again.id == first.id
        charge_record(job_id=job.id, stage="composition", api_name="gpt-4-turbo", cost=Decimal("0.01"))
    assert reload(job).total_cost == Decimal("0.07")


def test_charge_inside_rolled_back_transaction_leaves_nothing():
    job = make_job()

    def crash() -> None:
        with transaction.atomic():
            charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=Decimal("0.06"), enforce=True)
            raise RuntimeError("worker crashed")

    with pytest.raises(RuntimeError):
        crash()
    assert reload(job).total_cost == 0
    assert not JobCost.objects.filter(job=job).exists()


def crossings(caplog):
    return [r for r in caplog.records if getattr(r, "event", None) == "budget_threshold_crossed"]


def test_threshold_warning_once_with_figures(caplog, django_capture_on_commit_callbacks):
    job = make_job("1.00")
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("0.10"))
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
        charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("0.95"))
        charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("0.10"))
    assert sorted(r.threshold for r in crossings(caplog)) == ["0.5", "0.9"]


def test_no_threshold_warning_for_zero_budget_or_rolled_back_charge(caplog, django_capture_on_commit_callbacks):
    free = make_job("0")
    job = make_job("1.00")
    with caplog.at_level(logging.WARNING, logger="common.costs"), django_capture_on_commit_callbacks(execute=True):
        charge_record(job_id=free.id, stage="s", api_name="svd", cost=Decimal("1"))
        try:
            with transaction.atomic():
                charge_record(job_id=job.id, stage="s", api_name="svd", cost=Decimal("0.90"))
                raise RuntimeError
        except RuntimeError:
            pass
    assert crossings(caplog) == []


def test_a_priced_charge_uses_the_price_table_of_the_moment():
    """cost=None prices the quantity from the table read at call time; the row says which price it used."""
    job = make_job()
    prices = {"API_PRICES": {"sdxl": {"unit": "image", "price": Decimal("0.0071")}}}
    with override_settings(VIDEOGEN_COMMON=prices):
        row = charge_record(job_id=job.id, stage="reference_generation", api_name="sdxl", quantity=3)
    assert (row.cost, row.unit, row.unit_price, row.quantity) == (Decimal("0.0213"), "image", Decimal("0.0071"), 3)
    again = charge_record(job_id=job.id, stage="reference_generation", api_name="sdxl", quantity=3)
    assert (again.cost, again.unit_price) == (Decimal("0.0165"), Decimal("0.0055"))
    stored = JobCost.objects.get(id=row.id)
    assert stored.cost == stored.unit_price * stored.quantity
    assert reload(job).total_cost == Decimal("0.0378")


def test_a_priced_charge_is_rounded_up_to_whole_micro_dollars():
    job = make_job()
    row = charge_record(job_id=job.id, stage="scene_planning", api_name="gpt-4o-mini", quantity=Decimal("0.001"))
    assert row.cost == Decimal("0.000001")  # 0.00000015 rounded up: a charge never undercounts


def test_the_verb_is_keyword_only():
    job = make_job()
    with pytest.raises(TypeError):
        charge_record(job.id, "s", "svd", Decimal("0.06"))  # type: ignore[misc]
    assert job_total_cost(job_id=job.id) == 0
    job_budget_check(job_id=job.id)
