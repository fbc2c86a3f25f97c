"""JSON-safe values for log lines: conversions that never raise past a placeholder, valid UTF-8 lines.

Used by :class:`common.log.JsonFormatter` (and by the job services, which store error details JSON-safe).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

# Containers deeper than this, or cycles, are cut (a self-referencing dict must not loop or blow the stack).
_MAX_DEPTH = 32
# json.dumps refuses ints of more than 4300 digits; anything this large is shown by its size.
_BIG_INT = 1 << 4096


def _safe_str(value: Any) -> str:
    """``str(value)``, or a placeholder when its ``__str__`` raises."""
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break logging
        return f"<unrepresentable {type(value).__name__}>"


def _safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when its ``__repr__`` raises (a tuple shows each item)."""
    if type(value) is tuple:
        items = ", ".join(_safe_repr(item) for item in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break logging
        return f"<unrepresentable {type(value).__name__}>"


def _to_jsonable(value: Any, path: tuple[int, ...] = ()) -> Any:
    """Convert common non-JSON types; anything else falls back to ``repr``. May raise (callers guard)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_BIG_INT < value < _BIG_INT else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf', '-inf': strict JSON has none
    if isinstance(value, (Decimal, UUID, Path)):
        return str(value)
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return _to_jsonable(value.value, path)
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in path:
            return f"<recursive {type(value).__name__}>"
        if len(path) >= _MAX_DEPTH:
            return f"<{type(value).__name__} nested deeper than {_MAX_DEPTH}>"
        inner = (*path, id(value))
        if isinstance(value, dict):
            return {_key(k): _to_jsonable(v, inner) for k, v in value.items()}
        return [_to_jsonable(v, inner) for v in value]
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        try:
            return _to_jsonable(model_dump(mode="json"), path)
        except Exception:  # noqa: BLE001, S110 - fall through to repr below
            pass
    return _safe_repr(value)


def _key(key: Any) -> str:
    """A JSON object key for ``key`` (extra keys and dict keys need not be strings)."""
    return key if isinstance(key, str) else _safe_str(key)


def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    r"""``\xNN`` for a byte Python could not decode (a surrogate escape), ``\uNNNN`` for any other lone surrogate."""
    code = ord(match[0])
    return f"\\\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\\\u{code:04x}"


def _valid_utf8(line: str) -> str:
    r"""``line`` with lone surrogates (a non-UTF-8 file name, ``os.fsdecode``) spelled out, so it encodes as UTF-8.

    Inside the JSON strings the byte 0xff of a file name becomes the four characters ``\xff``: readable,
    and a UTF-8 log file or pipe takes the line instead of dropping it with a "Logging error".
    """
    if line.isascii():
        return line
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape_surrogate, line)
    return line
