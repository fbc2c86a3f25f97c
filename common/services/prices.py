"""The price table of the paid APIs, and cost estimates from it (no database access).

``DEFAULT_API_PRICES`` holds the known list prices (USD); ``VIDEOGEN_COMMON["API_PRICES"]``
overrides or extends them and is read at call time. An estimate is rounded up to whole
micro-dollars, so a hold never undercounts the call it is for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from common.conf import app_settings
from common.errors import ValidationError
from common.models import clean_text
from common.money import parse_money, parse_quantity, round_money

__all__ = [
    "DEFAULT_API_PRICES",
    "UNITS",
    "ApiPrice",
    "price_estimate",
    "price_get",
    "price_of",
    "price_table",
]

UNITS = ("call", "image", "second", "1k_tokens", "clip", "minute")


@dataclasses.dataclass(frozen=True)
class ApiPrice:
    """The price of one unit of a paid API."""

    api_name: str
    unit: str
    price: Decimal


# Known list prices (USD). ``VIDEOGEN_COMMON["API_PRICES"]`` entries override or extend these.
DEFAULT_API_PRICES: dict[str, dict[str, Any]] = {
    "whisper": {"unit": "minute", "price": Decimal("0.006")},
    "gpt-4-turbo": {"unit": "call", "price": Decimal("0.01")},
    "gpt-4o": {"unit": "1k_tokens", "price": Decimal("0.0025")},
    "gpt-4o-output": {"unit": "1k_tokens", "price": Decimal("0.01")},
    "gpt-4o-mini": {"unit": "1k_tokens", "price": Decimal("0.00015")},
    "sdxl": {"unit": "image", "price": Decimal("0.0055")},
    "svd": {"unit": "clip", "price": Decimal("0.06")},
    "zeroscope": {"unit": "clip", "price": Decimal("0.10")},
    "animatediff": {"unit": "clip", "price": Decimal("0.20")},
    "musicgen": {"unit": "call", "price": Decimal("0.15")},
    "runway-gen3-turbo": {"unit": "second", "price": Decimal("0.05")},
}


def price_table() -> dict[str, ApiPrice]:
    """The price table: the defaults merged with ``API_PRICES`` from the app settings.

    Raises:
        ValidationError: an entry with an unknown unit or a price that is not a valid amount.
    """
    merged: Mapping[str, Any] = {**DEFAULT_API_PRICES, **(app_settings.API_PRICES or {})}
    table = {}
    for api_name, entry in merged.items():
        unit = entry.get("unit") if isinstance(entry, Mapping) else None
        price = entry.get("price") if isinstance(entry, Mapping) else None
        if unit not in UNITS:
            raise ValidationError(f"API_PRICES[{api_name!r}] has unit {unit!r}; use one of {', '.join(UNITS)}")
        table[api_name] = ApiPrice(api_name, unit, parse_money(price, name=f"API_PRICES[{api_name!r}] price"))
    return table


def price_get(*, api_name: str, table: Mapping[str, ApiPrice] | None = None) -> ApiPrice:
    """The price of ``api_name`` (from ``table`` when the caller has built it already).

    Raises:
        ValidationError: (code ``UNKNOWN_API``) the API is not in the price table (the message lists the known ones).
    """
    api_name = clean_text(api_name, field="api_name", max_length=64)
    prices = price_table() if table is None else table
    try:
        return prices[api_name]
    except KeyError:
        raise ValidationError(
            f"unknown API {api_name!r}: no price known; known APIs are {', '.join(sorted(prices))}",
            code="UNKNOWN_API",
            details={"api_name": api_name, "known": sorted(prices)},
        ) from None


def price_of(price: ApiPrice, quantity: Decimal) -> Decimal:
    """What ``quantity`` units cost at ``price``, rounded up to 6 places."""
    return round_money(price.price * quantity, up=True)


def price_estimate(*, api_name: str, quantity: Decimal | int = 1) -> Decimal:
    """The cost of ``quantity`` units of ``api_name`` from the price table, rounded up to 6 places.

    Raises:
        ValidationError: an unknown API (``UNKNOWN_API``), or a quantity that is missing or not a
            finite, non-negative ``Decimal``/``int`` with at most 4 places.
    """
    price = price_get(api_name=api_name)
    amount = parse_quantity(quantity)
    if amount is None:
        raise ValidationError("quantity is required to estimate a cost")
    return price_of(price, amount)
