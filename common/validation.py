"""Input validation: audio uploads (decided by their content), prompts and file sizes.

Every rejection is a :class:`~common.errors.ValidationError` with a stable
``code`` and ``details`` saying what was wrong, so a caller needs one
``except`` clause and an API can answer with ``error.to_dict()``.

:func:`validate_audio_file` never trusts a file name or a client-sent MIME type:
it reads the first bytes (at most :data:`MAX_HEADER_BYTES`, whatever the file
size) and recognises MP3, WAV and FLAC by their magic bytes.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import unicodedata
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from common.errors import ValidationError

__all__ = [
    "MAX_HEADER_BYTES",
    "AudioFormat",
    "validate_audio_file",
    "validate_file_size",
    "validate_prompt",
]

MB = 1024 * 1024
# The most bytes validate_audio_file reads from one input, however large it is.
MAX_HEADER_BYTES = 64 * 1024
# After an ID3v2 tag some taggers leave NUL padding outside the declared size; look this far for the audio.
_ID3_PADDING_WINDOW = 4096
_MAX_ID3_TAGS = 4
_MAX_WAV_CHUNKS = 32

# Stable error codes (see common.errors.get_user_friendly_message).
EMPTY_FILE = "EMPTY_FILE"
FILE_TOO_LARGE = "FILE_TOO_LARGE"
INVALID_AUDIO = "INVALID_AUDIO"
UNREADABLE_FILE = "UNREADABLE_FILE"
FILE_NOT_FOUND = "NOT_FOUND"
INVALID_FILE_SIZE = "INVALID_FILE_SIZE"
INVALID_PROMPT = "INVALID_PROMPT"


class AudioFormat(StrEnum):
    """An accepted audio container, as detected from the content."""

    MP3 = "mp3"
    WAV = "wav"
    FLAC = "flac"


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


# --------------------------------------------------------------------------- audio: reading


class _Header:
    """Bounded random access to the start of the input; counts what it reads."""

    def __init__(self, read_at: Callable[[int, int], bytes], size: int) -> None:
        self._read_at = read_at
        self.size = size
        self.bytes_read = 0

    def read(self, offset: int, length: int) -> bytes:
        """Return up to ``length`` bytes at ``offset`` (fewer at the end of the input)."""
        length = min(length, self.size - offset)
        if length <= 0:
            return b""
        if self.bytes_read + length > MAX_HEADER_BYTES:
            raise _invalid("its header is too long to inspect", reason="header_too_long")
        data = self._read_at(offset, length)
        self.bytes_read += len(data)
        return data


def _invalid(found: str, *, reason: str = "unsupported", header: bytes = b"", **details: Any) -> ValidationError:
    """Build the INVALID_AUDIO error for content that is not a usable MP3, WAV or FLAC."""
    payload: dict[str, Any] = {"reason": reason, "found": found, **details}
    if header:
        payload["header_hex"] = header[:16].hex()
    return ValidationError(
        f"Not a supported audio file (MP3, WAV or FLAC): {found}.",
        code=INVALID_AUDIO,
        details=payload,
    )


def _truncated(what: str, needed: int, have: int) -> ValidationError:
    return _invalid(
        f"{what} is truncated (its header needs {needed} bytes, the file has {have})",
        reason="truncated",
        format=what.split()[0].lower(),
        needed_bytes=needed,
        size_bytes=have,
    )


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
        return _detect(_Header(lambda offset, length: bytes(data[offset : offset + length]), len(data)))
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
            return _detect(_Header(_stream_reader(handle), stat.st_size))
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
        result = _detect(_Header(_stream_reader(stream), size))
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


# --------------------------------------------------------------------------- audio: formats


def _syncsafe(data: bytes) -> int | None:
    """Decode a 4-byte ID3v2 "syncsafe" integer (7 bits a byte); ``None`` if a byte has its high bit set."""
    if any(b & 0x80 for b in data):
        return None
    return (data[0] << 21) | (data[1] << 14) | (data[2] << 7) | data[3]


def _mpeg_frame(header: bytes) -> str | None:
    """Return ``None`` for a valid MPEG-1/2/2.5 Layer III frame header, else why it is not one."""
    if len(header) < 4 or header[0] != 0xFF or (header[1] & 0xE0) != 0xE0:
        return "no MPEG frame sync"
    version = (header[1] >> 3) & 0b11  # 00 = MPEG-2.5, 01 = reserved, 10 = MPEG-2, 11 = MPEG-1
    layer = (header[1] >> 1) & 0b11  # 00 = reserved, 01 = Layer III, 10 = Layer II, 11 = Layer I
    bitrate = header[2] >> 4
    sample_rate = (header[2] >> 2) & 0b11
    emphasis = header[3] & 0b11
    if version == 0b01:
        return "reserved MPEG version bits"
    if layer == 0b00:
        return "reserved MPEG layer bits"
    if layer != 0b01:
        return f"MPEG Layer {'II' if layer == 0b10 else 'I'} audio (MP{2 if layer == 0b10 else 1}), not MP3"
    if bitrate == 0b1111:
        return "invalid MPEG bitrate index"
    if sample_rate == 0b11:
        return "reserved MPEG sample-rate index"
    if emphasis == 0b10:
        return "reserved MPEG emphasis bits"
    return None


def _detect(src: _Header) -> AudioFormat:
    head = src.read(0, 64)
    if head.startswith(b"ID3") or b"ID3".startswith(head):
        return _after_id3(src, head)
    if head.startswith(b"RIFF") or (len(head) < 4 and b"RIFF".startswith(head)):
        return _wav(src, head)
    if head.startswith(b"fLaC") or (len(head) < 4 and b"fLaC".startswith(head)):
        return _flac(src, 0)
    found = _describe_other(head)
    if found is not None:
        raise _invalid(f"looks like {found}", header=head)
    if head[:1] == b"\xff" and len(head) >= 2 and (head[1] & 0xE0) == 0xE0:
        if len(head) < 4:
            raise _truncated("MP3 frame header", 4, src.size)
        problem = _mpeg_frame(head)
        if problem is None:
            return AudioFormat.MP3
        raise _invalid(f"an MPEG frame sync with {problem}", reason="malformed", header=head)
    raise _invalid(f"unknown content starting with 0x{head[:8].hex()}", header=head)


def _after_id3(src: _Header, head: bytes) -> AudioFormat:
    """Skip one or more ID3v2 tags and require an MP3 frame (or a FLAC stream) right after them."""
    offset = 0
    for _ in range(_MAX_ID3_TAGS):
        tag = head if offset == 0 else src.read(offset, 10)
        if not (tag.startswith(b"ID3") or (0 < len(tag) < 3 and b"ID3".startswith(tag))):
            break
        if len(tag) < 10:
            raise _truncated("MP3 ID3 tag", offset + 10, src.size)
        major, revision, flags = tag[3], tag[4], tag[5]
        size = _syncsafe(tag[6:10])
        if major not in (2, 3, 4) or revision == 0xFF or size is None:
            raise _invalid("a malformed ID3v2 tag header", reason="malformed", header=tag)
        offset += 10 + size + (10 if major == 4 and flags & 0x10 else 0)
    if offset >= src.size:
        raise _invalid(
            f"an ID3 tag of {offset} bytes with no audio after it (the file has {src.size} bytes)",
            reason="truncated",
            format="mp3",
            needed_bytes=offset + 4,
            size_bytes=src.size,
        )
    window = src.read(offset, _ID3_PADDING_WINDOW)
    start = len(window) - len(window.lstrip(b"\x00"))
    audio = window[start : start + 4]
    if audio.startswith(b"fLaC"):
        return _flac(src, offset + start)
    if not audio:
        raise _invalid("an ID3 tag followed only by padding", reason="truncated", format="mp3")
    if len(audio) < 4 and audio[:1] == b"\xff":
        raise _truncated("MP3 frame header", offset + start + 4, src.size)
    problem = _mpeg_frame(audio)
    if problem is not None:
        other = _describe_other(window[start:])
        found = f"an ID3 tag followed by {other}" if other else f"an ID3 tag followed by {problem}"
        raise _invalid(found, reason="malformed", header=audio)
    return AudioFormat.MP3


def _wav(src: _Header, head: bytes) -> AudioFormat:
    if len(head) < 12:
        raise _truncated("WAV (RIFF) header", 12, src.size)
    form = head[8:12]
    if form != b"WAVE":
        kinds = {b"AVI ": "an AVI video", b"WEBP": "a WebP image", b"RMID": "a RIFF MIDI file"}
        found = kinds.get(form) or f"a RIFF file of type {form.decode('latin-1')!r}, not WAVE"
        raise _invalid(f"looks like {found}", header=head)
    offset = 12
    for _ in range(_MAX_WAV_CHUNKS):
        chunk = src.read(offset, 8)
        if len(chunk) < 8:
            raise _truncated("WAV file", offset + 8, src.size)
        chunk_id = chunk[:4]
        (chunk_size,) = struct.unpack("<I", chunk[4:8])
        if chunk_id == b"fmt ":
            if chunk_size < 16:
                raise _invalid(f"a WAV fmt chunk of {chunk_size} bytes (at least 16 needed)", reason="malformed")
            body = src.read(offset + 8, 16)
            if len(body) < 16:
                raise _truncated("WAV fmt chunk", offset + 24, src.size)
            _tag, channels, sample_rate = struct.unpack("<HHI", body[:8])
            if channels == 0 or sample_rate == 0:
                raise _invalid(
                    f"a WAV fmt chunk with {channels} channels at {sample_rate} Hz",
                    reason="malformed",
                    channels=channels,
                    sample_rate=sample_rate,
                )
            return AudioFormat.WAV
        if chunk_id == b"data":
            raise _invalid("a WAV file whose data chunk comes before its fmt chunk", reason="malformed")
        offset += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to an even length
    raise _invalid(f"a WAV file with no fmt chunk in its first {_MAX_WAV_CHUNKS} chunks", reason="malformed")


def _flac(src: _Header, offset: int) -> AudioFormat:
    needed = 4 + 4 + 34  # "fLaC", a metadata block header, the STREAMINFO block
    block = src.read(offset, needed)
    if len(block) < needed:
        raise _truncated("FLAC header", offset + needed, src.size)
    block_type = block[4] & 0x7F
    length = int.from_bytes(block[5:8], "big")
    if block_type != 0 or length != 34:
        raise _invalid("a FLAC stream whose first metadata block is not STREAMINFO", reason="malformed")
    info = block[8:]
    min_block, max_block = struct.unpack(">HH", info[:4])
    sample_rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4)
    if min_block < 16 or max_block < min_block or sample_rate == 0:
        raise _invalid(
            "a FLAC STREAMINFO block with impossible values",
            reason="malformed",
            sample_rate=sample_rate,
            min_block_size=min_block,
            max_block_size=max_block,
        )
    return AudioFormat.FLAC


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"OggS", "an Ogg file (Vorbis/Opus are not supported)"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
    (b"MThd", "a MIDI file"),
    (b"\x7fELF", "an ELF executable"),
    (b"#!AMR", "an AMR audio file"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "a Windows Media (ASF/WMA) file"),
)


def _describe_other(head: bytes) -> str | None:
    """Name well-known non-audio (or unsupported audio) content, or ``None``."""
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("latin-1").strip()
        return f"an MP4/M4A/MOV file (brand {brand!r}; AAC/ALAC audio is not supported)"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "an AIFF audio file"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xF6) == 0xF0:
        return "AAC audio in ADTS frames"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] == b"<":
        return "an HTML or XML document"
    if text[:1] in (b"{", b"["):
        return "JSON text"
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The 64-byte window may cut a multi-byte character; anything earlier is a real decoding error.
        if exc.start < len(head) - 3:
            return None
        decoded = head[: exc.start].decode("utf-8")
    if decoded and all(ch.isprintable() or ch in "\r\n\t" for ch in decoded):
        return "plain text"
    return None
