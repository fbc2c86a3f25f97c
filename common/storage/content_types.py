"""Content types: from the bytes first (:func:`common.media.sniff_content_type`), then from the file extension.

The signatures live in :mod:`common.media`, shared with the audio validator; this module adds the
names (aliases resolved to one canonical type) and the extension fallback. ``sniff_content_type``
is re-exported from here for the storage code and its callers.
"""

from __future__ import annotations

import mimetypes

from common.media import sniff_content_type

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


def normalize_content_type(content_type: str) -> str:
    """Return ``content_type`` lower-cased, without parameters, aliases resolved (``audio/mp3`` -> ``audio/mpeg``)."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


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
