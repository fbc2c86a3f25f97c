"""common.money: the one rule for amounts, rounding, display and exact SQL sums."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from common import money
from common.errors import ValidationError
from common.models import Job, JobCost

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- parse_money


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0.06"), Decimal("0.060000")),
        (3, Decimal("3.000000")),
        (Decimal("0.060000000"), Decimal("0.06")),  # trailing zeros beyond 6 places are fine
        (Decimal("99999999.999999"), Decimal("99999999.999999")),
        (Decimal("1E+2"), Decimal("100")),
    ],
)
def test_parse_money_accepts_exact_amounts_and_rounds_to_six_places(value, expected):
    parsed = money.parse_money(value)
    assert parsed == expected
    assert parsed.as_tuple().exponent == -6


@pytest.mark.parametrize("value", [Decimal("-0"), Decimal("-0.000000"), -0])
def test_minus_zero_becomes_zero(value):
    parsed = money.parse_money(value)
    assert parsed == 0
    assert not parsed.is_signed()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0.06, "cost must be a Decimal, got float 0.06 (use Decimal('0.06'))"),
        ("0.06", "cost must be a Decimal, got str '0.06'"),
        (True, "got bool True"),
        (None, "got NoneType None"),
        (Decimal("NaN"), "cost must be a finite amount"),
        (Decimal("sNaN"), "finite"),
        (Decimal("-Infinity"), "finite"),
        (Decimal("-0.01"), "cost must not be negative, got -0.01"),
        (Decimal("0.0000001"), "cost 0.0000001 has more than 6 decimal places"),
        (Decimal("100000000"), "cost 100000000 is larger than 99999999.999999 (8 integer digits at most)"),
        (Decimal("1E+999999999"), "larger than"),
    ],
)
def test_parse_money_refuses_by_name(value, fragment):
    with pytest.raises(ValidationError) as info:
        money.parse_money(value)
    assert fragment in info.value.message
    assert info.value.code == "VALIDATION_ERROR"
    assert info.value.details["field"] == "cost"


def test_the_name_is_the_callers():
    with pytest.raises(ValidationError, match=r"^estimate must not be negative"):
        money.parse_money(Decimal(-1), name="estimate")


def test_decimal_strings_only_where_the_caller_takes_text():
    assert money.parse_money("12.50", name="budget_limit", text=True) == Decimal("12.5")
    assert money.parse_money(7, name="budget_limit", text=True) == Decimal(7)
    with pytest.raises(ValidationError, match="budget_limit 'lots' is not a decimal amount"):
        money.parse_money("lots", name="budget_limit", text=True)
    with pytest.raises(ValidationError, match="not a decimal amount"):
        money.parse_money("1\x00", name="budget_limit", text=True)
    with pytest.raises(ValidationError, match="must be a Decimal, an int or a decimal string, got float"):
        money.parse_money(1.5, name="budget_limit", text=True)
    # The same rule for the value, whatever its type.
    for bad, fragment in (("-1", "must not be negative"), ("NaN", "finite"), ("0.0000001", "decimal places")):
        with pytest.raises(ValidationError, match=fragment):
            money.parse_money(bad, name="budget_limit", text=True)


def test_a_huge_refused_value_is_shown_short():
    with pytest.raises(ValidationError) as info:
        money.parse_money(Decimal("1E-999999"))
    assert len(info.value.message) < 200
    with pytest.raises(ValidationError) as info:
        money.parse_money("9" * 5000, text=True)
    assert len(info.value.message) < 300


def test_validate_money_is_the_strict_form():
    assert money.validate_money(Decimal("0.0055")) == Decimal("0.0055")
    with pytest.raises(ValidationError, match="got str"):
        money.validate_money("0.0055")


# --------------------------------------------------------------------------- quantities


def test_parse_quantity():
    assert money.parse_quantity(None) is None
    assert money.parse_quantity(4) == Decimal(4)
    assert money.parse_quantity(Decimal("3.5000")) == Decimal("3.5")
    assert not money.parse_quantity(Decimal("-0")).is_signed()
    for bad, fragment in (
        (1.5, "quantity must be a Decimal or int, got float 1.5"),
        (Decimal("-1"), "quantity must be a finite amount"),
        (Decimal("Infinity"), "finite amount"),
        (Decimal("0.00001"), "more than 4 decimal places"),
        (Decimal("10000000000"), "from 0 to 9999999999.9999"),
    ):
        with pytest.raises(ValidationError, match=fragment):
            money.parse_quantity(bad)


# --------------------------------------------------------------------------- rounding and display


def test_round_money_half_even_or_up():
    assert money.round_money(Decimal("0.0000005")) == Decimal("0.000000")
    assert money.round_money(Decimal("0.0000015")) == Decimal("0.000002")
    assert money.round_money(Decimal("0.0000001"), up=True) == Decimal("0.000001")
    assert money.round_money(Decimal("0.054"), up=True) == Decimal("0.054")


def test_shares():
    assert money.share_of(Decimal("0.071"), Decimal("2.00")) == Decimal("0.0355")
    assert money.share_of(Decimal("1"), Decimal("0")) is None
    assert money.round_share(Decimal("0.81234")) == Decimal("0.8123")
    assert money.format_share(Decimal("0.8123")) == "81.2%"
    assert money.format_share(Decimal("1.5")) == "150.0%"
    assert money.format_share(None) == "-"


FORMATTED = {"19.980000": "19.98", "0.005500": "0.0055", "20": "20.00", "1E+1": "10.00", "-0.065500": "-0.0655"}


@pytest.mark.parametrize(("value", "text"), [*((Decimal(k), v) for k, v in FORMATTED.items()), (None, "")])
def test_format_money(value, text):
    assert money.format_money(value) == text


# --------------------------------------------------------------------------- SQL sums


@pytest.mark.django_db
def test_money_sum_is_exact_on_both_databases():
    """Ten thousand micro-amounts: a float sum would drift, the money sum does not (SQLite stores floats)."""
    job = Job.objects.create(user_id=uuid.uuid4(), audio_url="a", user_prompt="p")
    amounts = [Decimal("0.000001"), Decimal("0.1"), Decimal("0.2"), Decimal("0.0055")] * 250
    JobCost.objects.bulk_create(JobCost(job=job, stage_name="s", api_name="a", cost=amount) for amount in amounts)
    total = JobCost.objects.filter(job=job).aggregate(total=money.money_sum())["total"]
    assert money.money_from_sum(total) == sum(amounts, Decimal(0))
    assert money.money_from_sum(total).as_tuple().exponent == -6
    nothing = JobCost.objects.filter(job_id=uuid.uuid4()).aggregate(total=money.money_sum())["total"]
    assert money.money_from_sum(nothing) == 0


def test_nothing_else_rounds_money_itself():
    """The issue's rule: ``.quantize(`` is written in common/money.py only."""
    found = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "common").rglob("*.py")
        if ".quantize(" in path.read_text(encoding="utf-8")
    ]
    assert found == ["common/money.py"]
