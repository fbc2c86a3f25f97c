"""Input validation: audio uploads (decided by their content), prompts and file sizes.

Every rejection is a :class:`~common.errors.ValidationError` with a stable
``code`` and ``details`` saying what was wrong, so a caller needs one
``except`` clause and an API can answer with ``error.to_dict()``.

:func:`validate_audio_file` never trusts a file name or a client-sent MIME type:
it takes bytes, a path or a file object, checks its size, and lets
:func:`common.media.read_audio_format` read the first bytes (at most
:data:`MAX_HEADER_BYTES`, whatever the file size) to recognise MP3, WAV and FLAC.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import ValidationError
from common.media import MAX_HEADER_BYTES, AudioFormat, read_audio_format

__all__ = [
    "MAX_HEADER_BYTES",
    "AudioFormat",
    "validate_audio_file",
    "validate_file_size",
    "validate_prompt",
]

MB = 1024 * 1024

# Stable error codes (see common.errors.get_user_friendly_message); common.media raises INVALID_AUDIO.
EMPTY_FILE = "EMPTY_FILE"
FILE_TOO_LARGE = "FILE_TOO_LARGE"
UNREADABLE_FILE = "UNREADABLE_FILE"
FILE_NOT_FOUND = "NOT_FOUND"
INVALID_FILE_SIZE = "INVALID_FILE_SIZE"
INVALID_PROMPT = "INVALID_PROMPT"


# --------------------------------------------------------------------------- sizes


def _format_size(size: int | float) -> str:
    """Return ``size`` bytes as a short human string (``"12.5 MB"``); absurd sizes in bytes."""
    if size < 1024:
        return f"{int(size)} bytes"
    if size < MB:
        return f"{size / 1024:.1f} KB"
    if size < 1024**6:  # a float can hold it
        return f"{size / MB:.1f} MB".replace(".0 MB", " MB")
    return f"{int(size)} bytes"


def _bad_argument(field: str, value: object, expected: str) -> ValidationError:
    """The error for an argument (a limit, a bound) that is not what the function takes."""
    return ValidationError(
        f"{field} must be {expected}, got {value!r:.100}.", details={"field": field, "value": repr(value)}
    )


def validate_file_size(size_bytes: int, max_size_bytes: int) -> None:
    """Check that ``size_bytes`` is a non-negative integer no larger than ``max_size_bytes``.

    Raises:
        ValidationError: ``INVALID_FILE_SIZE`` for a negative, non-integer or bool size;
            ``FILE_TOO_LARGE`` when it exceeds the limit; ``VALIDATION_ERROR``
            (``details["field"] == "max_size_bytes"``) when the limit itself is not a
            non-negative integer (a float, even ``inf``, is refused).
    """
    if isinstance(max_size_bytes, bool) or not isinstance(max_size_bytes, int) or max_size_bytes < 0:
        raise _bad_argument("max_size_bytes", max_size_bytes, "a non-negative whole number of bytes")
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int):
        raise ValidationError(
            f"File size must be a whole number of bytes, got {type(size_bytes).__name__}.",
            code=INVALID_FILE_SIZE,
            details={"reason": "not_an_integer", "type": type(size_bytes).__name__},
        )
    if size_bytes < 0:
        raise ValidationError(
            f"File size must not be negative, got {size_bytes}.",
            code=INVALID_FILE_SIZE,
            details={"reason": "negative", "size_bytes": size_bytes},
        )
    if size_bytes > max_size_bytes:
        raise ValidationError(
            f"File is {_format_size(size_bytes)}; the limit is {_format_size(max_size_bytes)}.",
            code=FILE_TOO_LARGE,
            details={"size_bytes": size_bytes, "max_size_bytes": max_size_bytes},
        )


# --------------------------------------------------------------------------- prompts

_ALLOWED_CONTROL = frozenset("\n\t")


def validate_prompt(prompt: object, min_length: int = 50, max_length: int = 500) -> str:
    r"""Return the stripped prompt when its length is within bounds and it holds no control characters.

    Windows (``\r\n``) and old Mac (``\r``) line breaks are normalised to ``\n``
    first (browsers send textarea line breaks as ``\r\n``); newline and tab are
    allowed, NUL and every other control character are rejected. Length is
    counted in characters after stripping.

    Raises:
        ValidationError: ``INVALID_PROMPT`` with ``details["reason"]`` one of
            ``not_a_string``, ``empty``, ``too_short``, ``too_long``,
            ``control_character``, ``invalid_unicode``; ``VALIDATION_ERROR`` for bad
            bounds (not integers, negative, or ``min_length > max_length``).
    """
    if (
        any(isinstance(b, bool) or not isinstance(b, int) for b in (min_length, max_length))
        or min_length < 0
        or max_length < 0
        or min_length > max_length
    ):
        raise ValidationError(
            f"bad prompt bounds: min_length={min_length!r:.50}, max_length={max_length!r:.50} "
            "(whole numbers, 0 <= min_length <= max_length)",
            details={"field": "min_length/max_length", "value": f"{min_length!r:.50}, {max_length!r:.50}"},
        )
    if not isinstance(prompt, str):
        raise ValidationError(
            f"Prompt must be text, got {type(prompt).__name__}.",
            code=INVALID_PROMPT,
            details={"reason": "not_a_string", "type": type(prompt).__name__},
        )
    text = prompt.replace("\r\n", "\n").replace("\r", "\n").strip()
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cc" and char not in _ALLOWED_CONTROL:
            name = "NUL" if char == "\x00" else f"U+{ord(char):04X}"
            raise ValidationError(
                f"Prompt contains a control character ({name}) at position {index}; "
                "only letters, punctuation, spaces, tabs and line breaks are allowed.",
                code=INVALID_PROMPT,
                details={"reason": "control_character", "character": name, "position": index},
            )
        if category == "Cs":
            raise ValidationError(
                f"Prompt contains invalid Unicode (a lone surrogate U+{ord(char):04X}) at position {index}.",
                code=INVALID_PROMPT,
                details={"reason": "invalid_unicode", "character": f"U+{ord(char):04X}", "position": index},
            )
    length = len(text)
    bounds = {"length": length, "min_length": min_length, "max_length": max_length}
    if length == 0 and min_length > 0:
        raise ValidationError(
            f"Prompt is empty; write between {min_length} and {max_length} characters.",
            code=INVALID_PROMPT,
            details={"reason": "empty", **bounds},
        )
    if length < min_length:
        raise ValidationError(
            f"Prompt is {length} characters long; it must be at least {min_length}.",
            code=INVALID_PROMPT,
            details={"reason": "too_short", **bounds},
        )
    if length > max_length:
        raise ValidationError(
            f"Prompt is {length} characters long; it must be at most {max_length}.",
            code=INVALID_PROMPT,
            details={"reason": "too_long", **bounds},
        )
    return text


# --------------------------------------------------------------------------- audio uploads


def _check_limit(max_size_mb: float) -> int:
    """The limit in bytes; ``max_size_mb`` must be a positive, finite int or float (any magnitude)."""
    if (
        isinstance(max_size_mb, bool)
        or not isinstance(max_size_mb, (int, float))
        or (isinstance(max_size_mb, float) and not math.isfinite(max_size_mb))
        or max_size_mb <= 0
    ):
        raise _bad_argument("max_size_mb", max_size_mb, "a positive, finite number of mebibytes")
    if isinstance(max_size_mb, int):
        return max_size_mb * MB
    whole = int(max_size_mb)  # exact for any finite float; the product in floats could overflow to inf
    return whole * MB + int((max_size_mb - whole) * MB)


def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ValidationError("The audio file is empty.", code=EMPTY_FILE, details={"size_bytes": 0})
    if size > max_bytes:
        raise ValidationError(
            f"The audio file is {_format_size(size)}; the limit is {_format_size(max_bytes)}.",
            code=FILE_TOO_LARGE,
            details={"size_bytes": size, "max_size_bytes": max_bytes},
        )


def _unreadable(message: str, **details: Any) -> ValidationError:
    return ValidationError(message, code=UNREADABLE_FILE, details=details)


def validate_audio_file(file: object, max_size_mb: float = 10) -> AudioFormat:
    """Return the format (MP3, WAV or FLAC) of an audio upload, decided from its magic bytes.

    ``file`` is a binary file object (a Django ``UploadedFile``, an open file,
    ``io.BytesIO``), the content as ``bytes``/``bytearray``/``memoryview``, or a
    path (``str`` or ``os.PathLike``). A file object is inspected from its start
    and left at the position it had. Only the header is read (at most
    :data:`MAX_HEADER_BYTES`).

    Raises:
        ValidationError: ``EMPTY_FILE``, ``FILE_TOO_LARGE`` (over ``max_size_mb``
            mebibytes), ``INVALID_AUDIO`` (anything else, truncated headers
            included; ``details["found"]`` says what the content looks like),
            ``NOT_FOUND`` (a path that does not exist) or ``UNREADABLE_FILE``
            (a directory, a path that cannot name a file, a text-mode or unseekable
            stream, a stream whose read or seek fails, an unsupported type);
            ``VALIDATION_ERROR`` when ``max_size_mb`` is not a positive, finite number.
    """
    max_bytes = _check_limit(max_size_mb)
    if isinstance(file, (bytes, bytearray, memoryview)):
        data = memoryview(file).cast("B")
        _check_size(len(data), max_bytes)
        return read_audio_format(lambda offset, length: bytes(data[offset : offset + length]), len(data))
    if isinstance(file, (str, os.PathLike)):
        return _validate_path(file, max_bytes)
    if callable(getattr(file, "read", None)) and callable(getattr(file, "seek", None)):
        return _validate_stream(file, max_bytes)
    raise _unreadable(
        f"Expected a binary file object, bytes or a path, got {type(file).__name__}.",
        reason="unsupported_type",
        type=type(file).__name__,
    )


def _validate_path(file: str | os.PathLike[Any], max_bytes: int) -> AudioFormat:
    try:
        path = Path(file)
        stat = path.stat()
    except (ValueError, TypeError) as exc:  # NUL, a lone surrogate, a PathLike giving bytes
        raise _unreadable(
            f"{file!r:.200} cannot name a file ({exc}).", reason="invalid_path", path=repr(file)
        ) from None
    except FileNotFoundError:
        raise ValidationError(
            f"The audio file {path.name!r} does not exist.", code=FILE_NOT_FOUND, details={"path": str(path)}
        ) from None
    except OSError as exc:
        raise _unreadable(
            f"The audio file {path.name!r} cannot be read: {exc.strerror or exc}.", reason="os_error", path=str(path)
        ) from exc
    if not path.is_file():
        raise _unreadable(f"{str(path)!r} is not a regular file.", reason="not_a_file", path=str(path))
    _check_size(stat.st_size, max_bytes)
    try:
        with path.open("rb") as handle:
            return read_audio_format(_stream_reader(handle), stat.st_size)
    except OSError as exc:
        raise _unreadable(
            f"The audio file {path.name!r} cannot be read: {exc.strerror or exc}.", reason="os_error", path=str(path)
        ) from exc


# What a careless file object may raise from read/seek/tell (io.UnsupportedOperation is both of the first two).
_STREAM_ERRORS = (OSError, ValueError, TypeError, AttributeError)


def _stream_reader(stream: Any) -> Callable[[int, int], bytes]:
    def read_at(offset: int, length: int) -> bytes:
        try:
            stream.seek(offset)
            data = stream.read(length)
        except _STREAM_ERRORS as exc:
            raise _unreadable(
                f"The file could not be read: {exc}.", reason="read_failed", error=type(exc).__name__
            ) from exc
        if isinstance(data, str):
            raise _unreadable("The file is open in text mode; open it in binary mode ('rb').", reason="text_mode")
        if data is None:
            return b""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _unreadable(
                f"The file's read() returned {type(data).__name__}, not bytes.",
                reason="read_failed",
                error=type(data).__name__,
            )
        return bytes(data[:length])

    return read_at


def _validate_stream(stream: Any, max_bytes: int) -> AudioFormat:
    seekable = getattr(stream, "seekable", None)
    try:
        if callable(seekable) and not seekable():
            raise io.UnsupportedOperation("not seekable")
        position = stream.tell()
        size = stream.seek(0, io.SEEK_END)
        if not isinstance(size, int):  # some wrappers return None from seek()
            size = stream.tell()
        if not isinstance(position, int) or not isinstance(size, int) or isinstance(size, bool):
            raise TypeError("tell() did not return an integer")
    except _STREAM_ERRORS as exc:
        raise _unreadable(
            "The file object cannot be inspected: it must be open, binary and seekable.",
            reason="unseekable",
            error=type(exc).__name__,
        ) from None
    try:
        _check_size(size, max_bytes)
        result = read_audio_format(_stream_reader(stream), size)
    except BaseException:
        with contextlib.suppress(*_STREAM_ERRORS):  # the first problem is the one to report
            stream.seek(position)
        raise
    try:
        stream.seek(position)
    except _STREAM_ERRORS as exc:
        raise _unreadable(
            f"The file's position could not be restored after inspection: {exc}.",
            reason="restore_failed",
            error=type(exc).__name__,
        ) from exc
    return result
