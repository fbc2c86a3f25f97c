"""Content-type detection: from the bytes (magic numbers) first, then from the file extension."""

from __future__ import annotations

import json
import mimetypes

__all__ = ["DEFAULT_CONTENT_TYPE", "detect_content_type", "normalize_content_type", "sniff_content_type"]

DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Common aliases mapped to one canonical name, so bucket rules list each type once.
_ALIASES = {
    "audio/mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-flac": "audio/flac",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "video/x-m4v": "video/mp4",
}

# Extensions the standard library does not know everywhere (or maps to an alias).
_EXTENSIONS = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".m4a": "audio/mp4",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".json": "application/json",
    ".txt": "text/plain",
}

# How many leading bytes JSON detection parses at most (larger payloads fall back to the extension).
_JSON_SNIFF_LIMIT = 1024 * 1024


def normalize_content_type(content_type: str) -> str:
    """Return ``content_type`` lower-cased, without parameters, aliases resolved (``audio/mp3`` -> ``audio/mpeg``)."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def _is_mp3_frame(data: bytes) -> bool:
    # MPEG audio frame sync: 11 set bits, then a layer other than "reserved" (00 = AAC ADTS).
    return len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0 and (data[1] >> 1) & 0x03 != 0


def sniff_content_type(data: bytes) -> str | None:
    """Return the content type recognised from the leading bytes of ``data``, or ``None``."""
    head = bytes(data[:64])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WAVE":
            return "audio/wav"
        if kind == b"WEBP":
            return "image/webp"
        if kind == b"AVI ":
            return "video/x-msvideo"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or _is_mp3_frame(head):
        return "audio/mpeg"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in bytes(data[:4096]) else "video/x-matroska"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"[") and len(data) <= _JSON_SNIFF_LIMIT:
        try:
            json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError):
            return None
        return "application/json"
    return None


def detect_content_type(data: bytes, filename: str | None = None) -> str:
    """Return the content type of ``data``: its magic bytes, else ``filename``'s extension, else octet-stream."""
    sniffed = sniff_content_type(data)
    if sniffed is not None:
        return sniffed
    if filename:
        dot = filename.rfind(".")
        if dot != -1:
            ext = filename[dot:].lower()
            if ext in _EXTENSIONS:
                return _EXTENSIONS[ext]
        guessed, _ = mimetypes.guess_type(filename, strict=False)
        if guessed:
            return normalize_content_type(guessed)
    return DEFAULT_CONTENT_TYPE
