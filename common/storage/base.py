"""What both storage backends share: bucket options, upload rules, and the object API the facade uses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import File

from common.conf import app_settings
from common.errors import ValidationError
from common.storage.content_types import detect_content_type, normalize_content_type, sniff_content_type
from common.storage.paths import clean_object_path

__all__ = ["BucketStorageMixin", "content_bytes", "expiry_seconds"]

BUCKET_OPTIONS = frozenset({"bucket", "max_size", "allowed_content_types", "file_overwrite"})


def content_bytes(content: File[Any] | bytes | bytearray | memoryview | str) -> bytes:
    """Return the whole content of a Django ``File`` (or raw bytes/str) as bytes."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if isinstance(content, str):
        return content.encode("utf-8")
    if not hasattr(content, "read"):
        raise ValidationError(
            f"The file data must be bytes or a file object, not {type(content).__name__}.",
            details={"type": type(content).__name__},
        )
    if hasattr(content, "seek"):
        with contextlib.suppress(OSError, ValueError):
            content.seek(0)
    data = content.read()
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def expiry_seconds(expires_in: object = None) -> int:
    """Return the lifetime of a signed URL: ``expires_in`` whole seconds, or SIGNED_URL_EXPIRES_IN when None.

    Raises:
        ValidationError: for anything but a positive number of seconds (at least 1).
    """
    value = app_settings.SIGNED_URL_EXPIRES_IN if expires_in is None else expires_in
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value < float("inf"):
        raise ValidationError("expires_in must be a positive number of seconds.", details={"expires_in": expires_in})
    return int(value)


class BucketStorageMixin:
    """Bucket options and the checks every upload passes before anything is written or sent."""

    bucket_name: str
    max_size: int | None
    allowed_content_types: tuple[str, ...] | None
    file_overwrite: bool

    def _configure_bucket(self, options: Mapping[str, Any], known: Iterable[str]) -> None:
        """Validate ``options`` (unknown names raise ``ImproperlyConfigured``) and store the bucket ones."""
        known_names = BUCKET_OPTIONS | set(known)
        unknown = sorted(set(options) - known_names)
        cls = type(self).__name__
        if unknown:
            raise ImproperlyConfigured(
                f"{cls} got unknown option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known_names))}."
            )
        bucket = options.get("bucket")
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise ImproperlyConfigured(f"{cls} needs the option 'bucket' (a bucket name without '/').")
        max_size = options.get("max_size")
        if max_size is not None and (not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0):
            raise ImproperlyConfigured(f"{cls} option 'max_size' must be a positive number of bytes or None.")
        allowed = options.get("allowed_content_types")
        if allowed is not None and (isinstance(allowed, str) or not all(isinstance(t, str) for t in allowed)):
            raise ImproperlyConfigured(f"{cls} option 'allowed_content_types' must be a list of content types.")
        self.bucket_name = bucket
        self.max_size = max_size
        self.allowed_content_types = tuple(normalize_content_type(t) for t in allowed) if allowed is not None else None
        self.file_overwrite = bool(options.get("file_overwrite", True))

    def check_size(self, name: str, size: int) -> None:
        """Refuse ``size`` bytes when it exceeds the bucket's limit (``ValidationError`` ``FILE_TOO_LARGE``)."""
        if self.max_size is not None and size > self.max_size:
            raise ValidationError(
                f"The file is {size} bytes; bucket {self.bucket_name!r} accepts at most {self.max_size} bytes.",
                code="FILE_TOO_LARGE",
                details={"bucket": self.bucket_name, "path": name, "size": size, "max_size": self.max_size},
            )

    def read_content(self, name: str, content: File[Any]) -> bytes:
        """Return the bytes of a Django ``File`` after checking its declared size (before reading it all)."""
        size = getattr(content, "size", None)
        if isinstance(size, int):
            self.check_size(name, size)
        return content_bytes(content)

    def check_upload(self, name: str, data: bytes, content_type: str | None = None) -> str:
        """Check the path, size and type of an upload; return the content type to store.

        The type is ``content_type`` when given, else detected from the bytes and the
        name. When the bytes are recognised, their type must be allowed too, so a PNG
        declared as ``audio/mpeg`` is refused.

        Raises:
            ValidationError: ``INVALID_PATH``, ``FILE_TOO_LARGE`` or ``INVALID_CONTENT_TYPE``.
        """
        clean_object_path(name)
        self.check_size(name, len(data))
        details = {"bucket": self.bucket_name, "path": name, "size": len(data)}
        if content_type is not None and not isinstance(content_type, str):
            raise ValidationError(
                f"The content type must be a string such as 'audio/mpeg', not {content_type!r}.",
                code="INVALID_CONTENT_TYPE",
                details={**details, "content_type": repr(content_type)},
            )
        chosen = normalize_content_type(content_type) if content_type else detect_content_type(data, name)
        if self.allowed_content_types is not None:
            allowed = ", ".join(self.allowed_content_types)
            if chosen not in self.allowed_content_types:
                raise ValidationError(
                    f"Bucket {self.bucket_name!r} does not accept {chosen!r} files (allowed: {allowed}).",
                    code="INVALID_CONTENT_TYPE",
                    details={**details, "content_type": chosen, "allowed": list(self.allowed_content_types)},
                )
            sniffed = sniff_content_type(data)
            if sniffed is not None and sniffed not in self.allowed_content_types:
                raise ValidationError(
                    f"The content looks like {sniffed!r}, which bucket {self.bucket_name!r} does not accept "
                    f"(allowed: {allowed}).",
                    code="INVALID_CONTENT_TYPE",
                    details={**details, "content_type": sniffed, "allowed": list(self.allowed_content_types)},
                )
        return chosen

    if TYPE_CHECKING:  # provided by the Storage class each backend also derives from

        def delete(self, name: str) -> None:
            """Delete ``name`` (no error when missing)."""

        def exists(self, name: str) -> bool:
            """True when ``name`` exists."""

    # The object API used by the facade; each backend implements these.

    def save_object(self, name: str, data: bytes, *, content_type: str | None = None, upsert: bool = False) -> str:
        """Store ``data`` at exactly ``name`` (never renamed); ``FileExistsError`` when it exists and not ``upsert``."""
        raise NotImplementedError

    def read_object(self, name: str) -> bytes:
        """Return the bytes stored at ``name``; ``FileNotFoundError`` when there is none."""
        raise NotImplementedError

    def signed_url(self, name: str, expires_in: int | None = None) -> str:
        """Return a URL that serves ``name`` without credentials for ``expires_in`` seconds (see ``expiry_seconds``)."""
        raise NotImplementedError

    def list_objects(self, prefix: str = "") -> list[str]:
        """Return the full names of the files directly inside folder ``prefix`` (sorted)."""
        raise NotImplementedError

    def ping(self) -> None:
        """Raise when the bucket cannot be reached (a read-only probe; writes nothing)."""
        raise NotImplementedError
