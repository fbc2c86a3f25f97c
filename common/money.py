"""Money, in one place: parse and validate, the columns' digits, rounding, display, and exact SQL sums.

Money is a ``Decimal`` with at most 6 decimal places and 8 integer digits (the ``numeric(14, 6)``
columns), never negative, never a float. One rule decides what an amount is
(:func:`parse_money`); the callers differ only in the Python types they take:

* the cost tracker's amounts (costs, estimates, limits, prices) are ``Decimal`` or ``int`` only,
  as the README documents: a float is inexact and a string usually means an amount parsed
  somewhere else, with its own rules;
* a job's budget (``job_create``, ``job_set_budget``) also takes a decimal string
  (``text=True``), as a budget arrives from a form, the API or a configuration file.

Nothing else in ``common`` rounds (``quantize``) money, shares or quantities itself.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import cast

from django.db import connection
from django.db.models import Aggregate, BigIntegerField, F, Sum
from django.db.models.functions import Cast, Round

from common.errors import ValidationError

__all__ = [
    "MAX_MONEY",
    "MAX_QUANTITY",
    "MONEY_DIGITS",
    "MONEY_PLACES",
    "QUANTITY_DIGITS",
    "QUANTITY_PLACES",
    "ZERO",
    "format_dollars",
    "format_money",
    "format_share",
    "money_from_sum",
    "money_sum",
    "parse_money",
    "parse_quantity",
    "round_money",
    "round_share",
    "share_of",
    "validate_money",
]

MONEY_DIGITS = 14  # numeric(14, 6): every money column (costs, totals, budgets, holds, prices)
MONEY_PLACES = 6
MAX_MONEY = Decimal("99999999.999999")  # the largest numeric(14, 6)
QUANTITY_DIGITS = 14  # numeric(14, 4): units bought (images, seconds, 1k tokens ...)
QUANTITY_PLACES = 4
MAX_QUANTITY = Decimal("9999999999.9999")
SHARE_PLACES = 4  # a share of a budget: 0.8123
ZERO = Decimal(0)

_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
_QUANTITY_QUANTUM = Decimal(1).scaleb(-QUANTITY_PLACES)
_SHARE_QUANTUM = Decimal(1).scaleb(-SHARE_PLACES)
_PERCENT_QUANTUM = Decimal("0.1")
_CENT_QUANTUM = Decimal("0.01")
_MICRO = 10**MONEY_PLACES


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _plain(amount: Decimal) -> str:
    """``amount`` in plain notation for a message (scientific when that would be very long), cut at 60 characters."""
    exponent = amount.as_tuple().exponent
    text = f"{amount:f}" if isinstance(exponent, int) and -40 < exponent < 40 else str(amount)
    return text if len(text) <= 60 else f"{text[:57]}..."


def parse_money(value: object, *, name: str = "cost", text: bool = False) -> Decimal:
    """Return ``value`` as a 6-place ``Decimal``, or raise ``ValidationError`` naming ``name`` and the problem.

    Accepted: ``Decimal`` and ``int`` (and, with ``text=True``, decimal strings such as ``"12.50"``)
    that are finite, not negative, at most ``MAX_MONEY`` and have at most 6 decimal places
    (trailing zeros beyond them are fine). ``-0`` becomes ``0``. Floats and booleans are always refused.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str) if text else (Decimal, int)):
        if text:
            expected = "a Decimal, an int or a decimal string"
            hint = ""
        else:
            expected = "a Decimal"
            hint = f" (use Decimal({str(value)!r}))" if isinstance(value, (float, str)) else ""
        raise ValidationError(
            f"{name} must be {expected}, got {type(value).__name__} {_shown(value)}{hint}",
            details={"field": name, "value": _shown(value)},
        )
    try:
        amount = Decimal(cast(Decimal | int | str, value))
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationError(f"{name} {_shown(value)} is not a decimal amount", details={"field": name}) from None
    if not amount.is_finite():
        raise ValidationError(f"{name} must be a finite amount, got {_shown(value)}", details={"field": name})
    if amount < 0:
        raise ValidationError(f"{name} must not be negative, got {_plain(amount)}", details={"field": name})
    if amount > MAX_MONEY:  # before quantizing: 1e999999999 cannot be quantized
        raise ValidationError(
            f"{name} {_plain(amount)} is larger than {MAX_MONEY} (8 integer digits at most)", details={"field": name}
        )
    rounded = amount.quantize(_MONEY_QUANTUM)
    if rounded != amount:
        raise ValidationError(
            f"{name} {_plain(amount)} has more than {MONEY_PLACES} decimal places", details={"field": name}
        )
    return rounded + 0  # + 0: -0 becomes 0


def validate_money(value: object, *, name: str = "cost") -> Decimal:
    """:func:`parse_money` for the cost tracker's amounts: ``Decimal`` or ``int`` only."""
    return parse_money(value, name=name)


def parse_quantity(value: object, *, name: str = "quantity") -> Decimal | None:
    """Return a quantity of units as a 4-place ``Decimal`` (``None`` stays ``None``), or raise ``ValidationError``.

    ``Decimal`` or ``int`` only, finite, from 0 to ``MAX_QUANTITY``, at most 4 decimal places.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValidationError(f"{name} must be a Decimal or int, got {type(value).__name__} {_shown(value)}")
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0 or amount > MAX_QUANTITY:
        raise ValidationError(f"{name} must be a finite amount from 0 to {MAX_QUANTITY}, got {_shown(value)}")
    rounded = amount.quantize(_QUANTITY_QUANTUM)
    if rounded != amount:
        raise ValidationError(f"{name} {_plain(amount)} has more than {QUANTITY_PLACES} decimal places")
    return rounded + 0  # -0 becomes 0


def round_money(value: Decimal, *, up: bool = False) -> Decimal:
    """``value`` to 6 places: half-even, or up (towards +infinity) for prices, so a charge never undercounts."""
    return value.quantize(_MONEY_QUANTUM, rounding=ROUND_CEILING if up else ROUND_HALF_EVEN)


def round_share(value: Decimal) -> Decimal:
    """A share of a budget to 4 places (``0.8123``)."""
    return value.quantize(_SHARE_QUANTUM)


def share_of(spent: Decimal, budget: Decimal) -> Decimal | None:
    """``spent / budget`` to 4 places, or ``None`` for a zero budget."""
    return (spent / budget).quantize(_SHARE_QUANTUM) if budget else None


def format_money(value: Decimal | None) -> str:
    """Format an amount exactly, with at least two decimal places (``Decimal('19.980000')`` -> ``'19.98'``)."""
    if value is None:
        return ""
    text = str(value)  # fast, and plain notation for the usual 6-place amounts
    if "E" in text:
        text = f"{value:f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction:0<2}"


def format_dollars(value: Decimal | None) -> str:
    """An amount for a person reading a list: dollars, two places, thousands grouped (``'$1,234.57'``).

    Rounded half-even to the cent for display only (the detail pages and exports keep the exact
    6-place figure, :func:`format_money`); ``None`` is ``''``. A non-zero amount under half a cent
    reads ``'<$0.01'`` rather than a misleading ``'$0.00'``.
    """
    if value is None:
        return ""
    cents = value.quantize(_CENT_QUANTUM, rounding=ROUND_HALF_EVEN)
    if not cents and value:
        return "<$0.01"
    return f"${cents:,.2f}"


def format_share(share: Decimal | None) -> str:
    """A share of a budget as a percentage, one place (``Decimal('0.8123')`` -> ``'81.2%'``, ``None`` -> ``'-'``)."""
    return "-" if share is None else f"{(share * 100).quantize(_PERCENT_QUANTUM)}%"


def money_sum(field: str = "cost", **extra: object) -> Aggregate:
    """An exact SQL sum of a money column: ``SUM`` on PostgreSQL; whole micro-dollars on SQLite.

    SQLite stores decimals as floats and would add them as floats, so there each
    amount is rounded to an integer number of micro-dollars before summing.
    Read the result with :func:`money_from_sum`.
    """
    if connection.vendor == "sqlite":
        micro = Cast(Round(F(field) * _MICRO), BigIntegerField())
        return Sum(micro, **extra)  # type: ignore[arg-type]
    return Sum(field, **extra)  # type: ignore[arg-type]


def money_from_sum(value: Decimal | int | float | None) -> Decimal:
    """Turn a :func:`money_sum` result into a 6-place ``Decimal`` (``0`` for no rows)."""
    if value is None:
        return ZERO.quantize(_MONEY_QUANTUM)
    if connection.vendor == "sqlite":
        return (Decimal(int(value)) / _MICRO).quantize(_MONEY_QUANTUM)
    return Decimal(value).quantize(_MONEY_QUANTUM)
