"""Content sniffing: what a file is, decided by its first bytes (never by its name or a declared type).

One table, :data:`SIGNATURES`, knows the images, audio, video and documents this project meets.
Two callers use it:

* :func:`sniff_content_type` names the MIME type of some bytes; ``common.storage`` records it and
  checks it against a bucket's allowed types (for those buckets the bytes decide the type).
* :func:`read_audio_format` parses MP3 (after any ID3 tags), WAV and FLAC headers strictly for
  :func:`common.validation.validate_audio_file`; anything else is refused with ``INVALID_AUDIO``
  and a message naming what the bytes look like, from the same table.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from common.errors import ValidationError

__all__ = [
    "INVALID_AUDIO",
    "MAX_HEADER_BYTES",
    "SIGNATURES",
    "AudioFormat",
    "Signature",
    "read_audio_format",
    "sniff_content_type",
]

INVALID_AUDIO = "INVALID_AUDIO"
# The most bytes read_audio_format reads from one input, however large it is.
MAX_HEADER_BYTES = 64 * 1024
# After an ID3v2 tag some taggers leave NUL padding outside the declared size; look this far for the audio.
_ID3_PADDING_WINDOW = 4096
_MAX_ID3_TAGS = 4
_MAX_WAV_CHUNKS = 32
# How many leading bytes JSON detection parses at most (larger payloads fall back to the extension).
_JSON_SNIFF_LIMIT = 1024 * 1024


class AudioFormat(StrEnum):
    """An accepted audio container, as detected from the content."""

    MP3 = "mp3"
    WAV = "wav"
    FLAC = "flac"

    @property
    def content_type(self) -> str:
        """The MIME type storage records for this format (``audio/mpeg`` for MP3)."""
        return {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac"}[self.value]


# --------------------------------------------------------------------------- the signatures


@dataclass(frozen=True)
class Signature:
    """One kind of content: how its leading bytes show it, what to call it, and its MIME type.

    ``description`` and ``content_type`` may be functions of the bytes (an MP4's brand decides
    between ``video/mp4`` and ``audio/mp4``); a ``content_type`` of ``None`` (or a function
    returning ``None``) means the sniffer does not name this content and looks further.
    """

    matches: Callable[[bytes], bool]
    description: str | Callable[[bytes], str]
    content_type: str | Callable[[bytes], str | None] | None = None

    def describe(self, data: bytes) -> str:
        """What ``data`` looks like, for a message (``"a PNG image"``)."""
        return self.description if isinstance(self.description, str) else self.description(data)

    def type_of(self, data: bytes) -> str | None:
        """The MIME type of ``data`` under this signature, or ``None``."""
        return self.content_type if not callable(self.content_type) else self.content_type(data)


def _starts(*magics: bytes) -> Callable[[bytes], bool]:
    return lambda data: data.startswith(magics)


def _riff(form: bytes) -> Callable[[bytes], bool]:
    return lambda data: data.startswith(b"RIFF") and data[8:12] == form


def _mpeg_sync(data: bytes) -> bool:
    # MPEG audio frame sync: 11 set bits, then a layer other than "reserved" (00 is AAC in ADTS frames).
    return len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0 and (data[1] >> 1) & 0x03 != 0


def _adts(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xF6) == 0xF0


def _ftyp_brand(data: bytes) -> str:
    return data[8:12].decode("latin-1").strip()


def _ftyp_type(data: bytes) -> str | None:
    if len(data) < 12:
        return None
    return {b"qt  ": "video/quicktime", b"M4A ": "audio/mp4", b"M4B ": "audio/mp4"}.get(data[8:12], "video/mp4")


# First match wins. The supported audio rows (audio/mpeg, audio/wav, audio/flac) are what read_audio_format
# parses itself; the others name what a rejected upload looks like. Rows without a MIME type are named, never
# sniffed. A Matroska file is Matroska whatever its bytes 4-8 say (an MP4 has its "ftyp" box there).
SIGNATURES: tuple[Signature, ...] = (
    Signature(_starts(b"\x89PNG\r\n\x1a\n"), "a PNG image", "image/png"),
    Signature(_starts(b"\xff\xd8\xff"), "a JPEG image", "image/jpeg"),
    Signature(_starts(b"GIF87a", b"GIF89a"), "a GIF image", "image/gif"),
    Signature(_riff(b"WAVE"), "a WAV file", "audio/wav"),
    Signature(_riff(b"WEBP"), "a WebP image", "image/webp"),
    Signature(_riff(b"AVI "), "an AVI video", "video/x-msvideo"),
    Signature(_riff(b"RMID"), "a RIFF MIDI file"),
    Signature(_starts(b"fLaC"), "a FLAC stream", "audio/flac"),
    Signature(_starts(b"ID3"), "an ID3 tag", "audio/mpeg"),
    Signature(_mpeg_sync, "an MPEG audio frame", "audio/mpeg"),
    Signature(_starts(b"%PDF-"), "a PDF document", "application/pdf"),
    Signature(_starts(b"PK\x03\x04"), "a ZIP archive (or an Office document)"),
    Signature(_starts(b"\x1f\x8b"), "a gzip archive"),
    Signature(_starts(b"OggS"), "an Ogg file (Vorbis/Opus are not supported)", "audio/ogg"),
    Signature(
        _starts(b"\x1aE\xdf\xa3"),
        "a Matroska/WebM file",
        lambda data: "video/webm" if b"webm" in data[:4096] else "video/x-matroska",
    ),
    Signature(_starts(b"MThd"), "a MIDI file"),
    Signature(_starts(b"\x7fELF"), "an ELF executable"),
    Signature(_starts(b"#!AMR"), "an AMR audio file"),
    Signature(_starts(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"), "a Windows Media (ASF/WMA) file"),
    Signature(
        lambda data: data[4:8] == b"ftyp",
        lambda data: f"an MP4/M4A/MOV file (brand {_ftyp_brand(data)!r}; AAC/ALAC audio is not supported)",
        _ftyp_type,
    ),
    Signature(lambda data: data.startswith(b"FORM") and data[8:12] in (b"AIFF", b"AIFC"), "an AIFF audio file"),
    Signature(_adts, "AAC audio in ADTS frames"),
)
_PARSED_AUDIO = frozenset(audio.content_type for audio in AudioFormat)


def sniff_content_type(data: bytes) -> str | None:
    """Return the content type recognised from the leading bytes of ``data`` (JSON: all of it), or ``None``."""
    head = bytes(data[:64])  # every signature is in the first 12 bytes; a WebM's doctype within 4 KiB
    for signature in SIGNATURES:
        if signature.matches(head) and (content_type := signature.type_of(bytes(data[:4096]))) is not None:
            return content_type
    if head.lstrip()[:1] in (b"{", b"[") and len(data) <= _JSON_SNIFF_LIMIT:
        try:
            json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError):
            return None
        return "application/json"
    return None


def _signature_of(data: bytes) -> str | None:
    """Name, from the table, content that is not an audio format :func:`read_audio_format` parses."""
    for signature in SIGNATURES:
        if signature.matches(data) and signature.type_of(data) not in _PARSED_AUDIO:
            return signature.describe(data)
    return None


def _describe_other(data: bytes) -> str | None:
    """Name content that is not an audio format :func:`read_audio_format` parses (text too), or ``None``."""
    found = _signature_of(data)
    if found is not None:
        return found
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] == b"<":
        return "an HTML or XML document"
    if text[:1] in (b"{", b"["):
        return "JSON text"
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The window may cut a multi-byte character; anything earlier is a real decoding error.
        if exc.start < len(data) - 3:
            return None
        decoded = data[: exc.start].decode("utf-8")
    if decoded and all(ch.isprintable() or ch in "\r\n\t" for ch in decoded):
        return "plain text"
    return None


# --------------------------------------------------------------------------- strict audio headers


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


def read_audio_format(read_at: Callable[[int, int], bytes], size: int) -> AudioFormat:
    """Return the format of ``size`` bytes of content, read through ``read_at(offset, length)``.

    Reads at most :data:`MAX_HEADER_BYTES` (skipping ID3 tags by offset). ``read_at`` may raise
    its own errors; they pass through unchanged.

    Raises:
        ValidationError: ``INVALID_AUDIO`` for anything but a well-formed MP3, WAV or FLAC header;
            ``details["found"]`` says what the content looks like.
    """
    return _detect(_Header(read_at, size))


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
        found = _signature_of(head) or f"a RIFF file of type {form.decode('latin-1')!r}, not WAVE"
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
