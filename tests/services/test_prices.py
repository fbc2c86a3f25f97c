"""The price table and estimates (common.services.prices): no database involved."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings

from common.errors import ValidationError
from common.services.prices import DEFAULT_API_PRICES, UNITS, price_estimate, price_get, price_of, price_table


def test_estimate_cost_from_price_table():
    assert price_estimate(api_name="sdxl", quantity=10) == Decimal("0.055")
    assert price_estimate(api_name="svd") == Decimal("0.06")
    assert price_estimate(api_name="gpt-4o", quantity=Decimal("1.5")) == Decimal("0.00375")
    assert price_estimate(api_name="whisper", quantity=Decimal("3.25")) == Decimal("0.0195")
    # Rounded up to whole micro-dollars.
    assert price_estimate(api_name="gpt-4o-mini", quantity=Decimal("0.001")) == Decimal("0.000001")


@pytest.mark.parametrize(
    ("name", "price"),
    [("sdxl", "0.0055"), ("svd", "0.06"), ("gpt-4-turbo", "0.01"), ("zeroscope", "0.10"), ("animatediff", "0.20"),
     ("musicgen", "0.15")],
)  # fmt: skip
def test_list_prices(name, price):
    assert price_get(api_name=name).price == Decimal(price)


def test_unknown_api_lists_known_ones():
    with pytest.raises(ValidationError) as info:
        price_estimate(api_name="dall-e-9", quantity=1)
    message = str(info.value)
    assert "'dall-e-9'" in message
    assert "sdxl" in message
    assert "svd" in message
    assert info.value.code == "UNKNOWN_API"
    with pytest.raises(ValidationError, match="quantity is required"):
        price_estimate(api_name="svd", quantity=None)  # type: ignore[arg-type]


def test_price_table_override_and_bad_entry():
    with override_settings(VIDEOGEN_COMMON={"API_PRICES": {"svd": {"unit": "second", "price": Decimal("0.02")}}}):
        assert price_estimate(api_name="svd", quantity=3) == Decimal("0.06")
        assert price_estimate(api_name="sdxl", quantity=1) == Decimal("0.0055")
    with (
        override_settings(VIDEOGEN_COMMON={"API_PRICES": {"x": {"unit": "parsec", "price": Decimal(1)}}}),
        pytest.raises(ValidationError, match="unit 'parsec'"),
    ):
        price_table()
    with (
        override_settings(VIDEOGEN_COMMON={"API_PRICES": {"x": {"unit": "call", "price": 0.5}}}),
        pytest.raises(ValidationError, match="price must be a Decimal"),
    ):
        price_table()


def test_the_table_is_read_at_call_time_and_every_default_is_valid():
    table = price_table()
    assert set(DEFAULT_API_PRICES) <= set(table)
    assert all(price.unit in UNITS and price.price > 0 for price in table.values())
    with override_settings(VIDEOGEN_COMMON={"API_PRICES": {"new-model": {"unit": "image", "price": Decimal("0.5")}}}):
        assert price_get(api_name="new-model").price == Decimal("0.5")
    with pytest.raises(ValidationError) as info:
        price_get(api_name="new-model")
    assert info.value.code == "UNKNOWN_API"


def test_price_of_rounds_up():
    sdxl = price_get(api_name="sdxl")
    assert price_of(sdxl, Decimal("0.0001")) == Decimal("0.000001")
    assert price_of(sdxl, Decimal(4)) == Decimal("0.022")


@pytest.mark.parametrize("api_name", ["", "x" * 65, "a\x00b", None, 3])
def test_a_bad_api_name_is_named(api_name):
    with pytest.raises(ValidationError, match="api_name"):
        price_get(api_name=api_name)
