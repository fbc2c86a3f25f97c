"""Object path checks: a bad path is refused with ``ValidationError`` before anything is sent."""

from __future__ import annotations

from common.errors import ValidationError

__all__ = ["MAX_PATH_BYTES", "clean_object_path", "clean_prefix"]

# Supabase Storage (like S3) limits object keys to 1024 bytes.
MAX_PATH_BYTES = 1024


def _refuse(path: object, reason: str) -> ValidationError:
    return ValidationError(
        f"Invalid object path {path!r}: {reason}.",
        code="INVALID_PATH",
        details={"path": repr(path), "reason": reason},
    )


def clean_object_path(path: object) -> str:
    """Return ``path`` unchanged when it is a safe relative object path.

    Raises:
        ValidationError: (code ``INVALID_PATH``) for an empty or absolute path, ``.``/``..``
            or empty segments, backslashes, NUL or other control characters, or more
            than 1024 bytes.
    """
    if not isinstance(path, str):
        raise _refuse(path, "it must be a string")
    if not path.strip():
        raise _refuse(path, "it is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise _refuse(path, "it contains a NUL or control character")
    if "\\" in path:
        raise _refuse(path, "it contains a backslash (use '/' to separate folders)")
    if path.startswith("/"):
        raise _refuse(path, "it is absolute (remove the leading '/')")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise _refuse(path, "it is not valid Unicode text (a lone surrogate)") from None
    if size > MAX_PATH_BYTES:
        raise _refuse(path, f"it is longer than {MAX_PATH_BYTES} bytes")
    segments = path.split("/")
    if any(s in (".", "..") for s in segments):
        raise _refuse(path, "it contains a '.' or '..' segment")
    if any(s == "" for s in segments):
        raise _refuse(path, "it contains an empty segment ('//' or a trailing '/')")
    if any(s != s.strip() for s in segments):
        raise _refuse(path, "a segment starts or ends with whitespace")
    return path


def clean_prefix(prefix: object) -> str:
    """Return a folder prefix for listings: ``""`` (the bucket root) or a clean path without a trailing ``/``."""
    if prefix is None or prefix == "":
        return ""
    if isinstance(prefix, str) and prefix.endswith("/"):
        prefix = prefix[:-1]
    return clean_object_path(prefix)
