"""The shared base: forbidden extras, frozen payloads, Money, aware datetimes, exact JSON round trips."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticValidationError

from common.schemas import PAYLOADS, JobCost, Payload
from tests.schemas import payloads as p
from tests.schemas.conftest import assert_invalid


def test_every_payload_derives_from_the_shared_base():
    assert all(issubclass(model, Payload) for model in PAYLOADS)
    assert len(PAYLOADS) == len(set(PAYLOADS)) == 27


def test_unknown_keys_are_rejected_with_their_name():
    assert_invalid(JobCost, {**p.job_cost(), "coast": "1"}, "coast", "Extra inputs are not permitted")


def test_payloads_are_frozen():
    cost = JobCost.model_validate(p.job_cost())
    with pytest.raises(PydanticValidationError, match="frozen"):
        cost.cost = Decimal("1")  # type: ignore[misc]


@pytest.mark.parametrize("good", ["0", "0.0055", "12.345678", 3, Decimal("99999999.999999")])
def test_money_accepts_exact_non_negative_amounts(good):
    assert JobCost.model_validate({**p.job_cost(), "cost": good}).cost == Decimal(str(good))


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (0.1, "not the float 0.1 (floats are inexact)"),
        ("-0.01", "must not be negative, got -0.01"),
        (-1, "must not be negative"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("0.0000001", "no more than 6 decimal places"),
        ("123456789.0", "no more than 8 digits before the decimal point"),
        ("ten", "valid decimal"),
        (True, "not a boolean"),
    ],
)
def test_money_rejects_inexact_negative_or_non_finite_amounts(bad, fragment):
    assert_invalid(JobCost, {**p.job_cost(), "cost": bad}, "cost", fragment)


def test_money_is_a_string_in_json_and_round_trips_exactly():
    cost = JobCost.model_validate({**p.job_cost(), "cost": "0.005500", "unit_price": "0.0055"})
    data = json.loads(cost.model_dump_json())
    assert data["cost"] == "0.005500"
    assert data["unit_price"] == "0.0055"
    back = JobCost.model_validate_json(cost.model_dump_json())
    assert back == cost
    assert str(back.cost) == "0.005500"


def test_json_number_money_is_refused_but_integer_accepted():
    raw = json.loads(JobCost.model_validate(p.job_cost()).model_dump_json())
    with pytest.raises(PydanticValidationError, match="floats are inexact"):
        JobCost.model_validate_json(json.dumps({**raw, "cost": 0.5}))
    assert JobCost.model_validate_json(json.dumps({**raw, "cost": 2})).cost == Decimal(2)


def test_naive_datetimes_are_rejected():
    naive = dt.datetime(2026, 1, 1, 12, 0)
    assert_invalid(JobCost, {**p.job_cost(), "timestamp": naive}, "timestamp", "timezone")
    assert_invalid(JobCost, {**p.job_cost(), "timestamp": "2026-01-01T12:00:00"}, "timestamp", "timezone")


def test_datetimes_keep_their_offset_through_json():
    moment = dt.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    cost = JobCost.model_validate({**p.job_cost(), "timestamp": moment})
    back = JobCost.model_validate_json(cost.model_dump_json())
    assert back.timestamp == moment
    assert back.timestamp.utcoffset() == dt.timedelta(hours=2)


def test_bad_uuids_are_rejected():
    assert_invalid(JobCost, {**p.job_cost(), "job_id": "not-a-uuid"}, "job_id", "UUID")


def test_the_json_schema_says_money_is_a_string():
    validation = JobCost.model_json_schema()["properties"]["cost"]
    serialization = JobCost.model_json_schema(mode="serialization")["properties"]["cost"]
    assert serialization["type"] == "string"
    assert {"type": "string", "pattern": r"^\d+(\.\d{1,6})?$"} in validation["anyOf"]
    assert JobCost.model_json_schema()["additionalProperties"] is False


money = st.decimals(min_value=0, max_value=Decimal("99999999.999999"), places=6, allow_nan=False, allow_infinity=False)
aware = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC))


@given(
    cost=money,
    unit_price=st.none() | money,
    quantity=st.none() | st.decimals(min_value=0, max_value=Decimal("9999999999.9999"), places=4),
    timestamp=aware,
    key=st.none() | st.text(max_size=40),
)
def test_job_cost_json_round_trip_is_exact(cost, unit_price, quantity, timestamp, key):
    payload = {
        **p.job_cost(),
        "cost": cost,
        "unit_price": unit_price,
        "quantity": quantity,
        "timestamp": timestamp,
        "idempotency_key": key,
    }
    model = JobCost.model_validate(payload)
    back = JobCost.model_validate_json(model.model_dump_json())
    assert back == model
    assert str(back.cost) == str(cost)
    assert back.timestamp == timestamp


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float_money_is_refused(value):
    with pytest.raises(PydanticValidationError, match="floats are inexact"):
        JobCost.model_validate({**p.job_cost(), "cost": value})
