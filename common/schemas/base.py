"""The shared base model and field types of every pipeline payload.

``Payload`` forbids unknown keys (a misspelt field fails loudly instead of being
dropped), is frozen (a payload handed to the next module is a value: nobody
downstream can change what an upstream module reported), rejects NaN and
infinity, and strips surrounding whitespace from strings. ``Money`` is a
non-negative, finite ``Decimal`` that fits the database columns
(14 digits, 6 places) and is written to JSON as a string, so a round trip is exact.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from common.money import MONEY_DIGITS, MONEY_PLACES, QUANTITY_DIGITS, QUANTITY_PLACES

__all__ = [
    "DURATION_TOLERANCE",
    "HexColor",
    "Money",
    "NonEmptyStr",
    "Payload",
    "Quantity",
    "Seconds",
    "check_duration",
    "check_span",
]

# Seconds of slack allowed when a duration is compared with end - start (float rounding, frame edges).
DURATION_TOLERANCE = 0.05


class Payload(BaseModel):
    """Base of every payload: unknown keys forbidden, immutable, finite numbers only."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        str_strip_whitespace=True,
        validate_default=True,
    )


def _money_before(value: Any) -> Any:
    """Refuse floats (inexact) before pydantic turns them into a Decimal."""
    if isinstance(value, bool):
        raise ValueError("expected a Decimal, an int or a decimal string, not a boolean")
    if isinstance(value, float):
        raise ValueError(
            f"expected a Decimal, an int or a decimal string, not the float {value!r} (floats are inexact)"
        )
    return value


def _money_after(value: Decimal) -> Decimal:
    # NaN and infinity never get here: pydantic's Decimal refuses them (allow_inf_nan is off).
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def _exact_str(value: Decimal) -> str:
    return str(value)


def _decimal_json_schema(places: int) -> WithJsonSchema:
    # What a non-Python module must send: a decimal string (floats are refused) or a whole number.
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": rf"^\d+(\.\d{{1,{places}}})?$"},
                {"type": "integer", "minimum": 0},
            ],
            "description": f"A non-negative decimal amount with at most {places} places, as a string",
        },
        mode="validation",
    )


Money = Annotated[
    Decimal,
    BeforeValidator(_money_before),
    Field(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES),
    AfterValidator(_money_after),
    PlainSerializer(_exact_str, return_type=str, when_used="json"),
    _decimal_json_schema(MONEY_PLACES),
]
"""A non-negative, finite ``Decimal`` with at most 6 places, serialised to JSON as a string."""

Quantity = Annotated[
    Decimal,
    BeforeValidator(_money_before),
    Field(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES),
    AfterValidator(_money_after),
    PlainSerializer(_exact_str, return_type=str, when_used="json"),
    _decimal_json_schema(QUANTITY_PLACES),
]
"""How much of a unit was bought (tokens, images, seconds): like ``Money`` with 4 places."""

Seconds = Annotated[float, Field(ge=0)]
"""A non-negative, finite number of seconds."""

NonEmptyStr = Annotated[str, Field(min_length=1)]
"""A string that is not empty (after stripping whitespace)."""

HexColor = Annotated[
    str,
    Field(pattern=r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", examples=["#1a2b3c", "#fff"]),
]
"""A CSS hex colour: ``#rgb`` or ``#rrggbb``."""


def check_span(start: float, end: float, what: str) -> None:
    """Raise ``ValueError`` unless ``start < end``."""
    if not start < end:
        raise ValueError(f"{what}: start ({start}) must be before end ({end})")


def check_duration(start: float, end: float, duration: float, what: str) -> None:
    """Raise ``ValueError`` unless ``duration`` equals ``end - start`` within :data:`DURATION_TOLERANCE`."""
    expected = end - start
    if abs(duration - expected) > DURATION_TOLERANCE:
        raise ValueError(
            f"{what}: duration ({duration}) must equal end - start ({expected:.3f}) within {DURATION_TOLERANCE} s"
        )
