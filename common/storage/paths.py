"""Object names: one rule for both backends, checked before any I/O, and how a name goes into a URL.

The rule is the one every deployed Supabase Storage server accepts (``isValidKey`` in
supabase/storage ``src/storage/limits.ts``: ASCII letters and digits and
``_ / ! - . * ' ( ) space & $ @ = ; : + , ?``, at most 1024 bytes; newer servers accept more of
Unicode, older ones do not), minus what the project refuses on purpose:

* ``?`` and ``;``: the server signs ``decodeURI`` of the request path, which keeps ``%3F`` escaped,
  so a signed link to a name with ``?`` never verifies; ``;`` ends the path on Fastify 4 servers
  (find-my-way's semicolon delimiter), so such a name is cut short there;
* ``%``: not in the server's set anyway, and refusing it means no escaped name can alias another;
* a leading ``/``, empty segments (``//``, a trailing ``/``), ``.`` and ``..`` segments, a segment
  that starts or ends with a space, and a segment longer than 255 bytes (a file name on disk).

Every accepted name is sent percent-encoded segment by segment (:func:`quote_object_path`), so
the server decodes exactly the name that was checked.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from common.errors import ValidationError

__all__ = [
    "ALLOWED_CHARACTERS",
    "MAX_PATH_BYTES",
    "MAX_SEGMENT_BYTES",
    "clean_object_path",
    "clean_prefix",
    "quote_object_path",
]

# Supabase Storage (like S3) limits object keys to 1024 bytes; the names are ASCII, so bytes = characters.
MAX_PATH_BYTES = 1024
# The longest file name the local backend can store (NAME_MAX on Linux and macOS).
MAX_SEGMENT_BYTES = 255
ALLOWED_CHARACTERS = "A-Z a-z 0-9 _ / ! - . * ' ( ) space & $ @ = : + ,"
_ALLOWED = re.compile(r"[A-Za-z0-9_/!\-.*'() &$@=:+,]*")
_SAFE_IN_URL = "!*'()&$@=:+,"  # kept as-is in the URL path (decodeURI would keep their escapes in a signature)


def _refuse(path: object, reason: str) -> ValidationError:
    return ValidationError(
        f"Invalid object path {path!r}: {reason}.",
        code="INVALID_PATH",
        details={"path": repr(path), "reason": reason},
    )


def _first_refused(path: str) -> str:
    match = _ALLOWED.match(path)
    return path[match.end() if match else 0]


def clean_object_path(path: object) -> str:
    """Return ``path`` unchanged when both backends (and Supabase Storage) accept it as an object name.

    Raises:
        ValidationError: (code ``INVALID_PATH``) naming what is wrong: not a string, empty, a
            character outside :data:`ALLOWED_CHARACTERS` (``%``, ``?``, ``;``, ``#``, a backslash,
            non-ASCII letters, controls...), a leading ``/``, an empty, ``.`` or ``..`` segment,
            a segment with surrounding spaces or over 255 bytes, or over 1024 bytes in all.
    """
    if not isinstance(path, str):
        raise _refuse(path, "it must be a string")
    if not path.strip():
        raise _refuse(path, "it is empty")
    if not _ALLOWED.fullmatch(path):
        bad = _first_refused(path)
        raise _refuse(path, f"it contains {bad!r} (U+{ord(bad):04X}); object names may only use {ALLOWED_CHARACTERS}")
    if len(path) > MAX_PATH_BYTES:
        raise _refuse(path, f"it is longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise _refuse(path, "it is absolute (remove the leading '/')")
    segments = path.split("/")
    if any(s in (".", "..") for s in segments):
        raise _refuse(path, "it contains a '.' or '..' segment")
    if any(s == "" for s in segments):
        raise _refuse(path, "it contains an empty segment ('//' or a trailing '/')")
    if any(s != s.strip() for s in segments):
        raise _refuse(path, "a segment starts or ends with whitespace")
    if any(len(s) > MAX_SEGMENT_BYTES for s in segments):
        raise _refuse(path, f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return path


def clean_prefix(prefix: object) -> str:
    """Return a folder prefix for listings: ``""`` (the bucket root) or a clean path without a trailing ``/``."""
    if prefix is None or prefix == "":
        return ""
    if isinstance(prefix, str) and prefix.endswith("/"):
        prefix = prefix[:-1]
    return clean_object_path(prefix)


def quote_object_path(path: str) -> str:
    """Return ``path`` as it goes into a URL path: each segment percent-encoded, the ``/`` kept.

    Only a space is escaped for an accepted name (``%20``, which ``decodeURI`` decodes), so the
    server's signature covers exactly the checked name.
    """
    return "/".join(quote(segment, safe=_SAFE_IN_URL) for segment in path.split("/"))
