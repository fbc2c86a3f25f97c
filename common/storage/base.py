"""What both storage backends share: bucket options, the upload rules, and the object API the facade uses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import File

from common.conf import app_settings
from common.errors import ValidationError
from common.media import AudioFormat
from common.storage.content_types import detect_content_type, normalize_content_type, sniff_content_type
from common.storage.paths import clean_object_path, clean_prefix
from common.storage.sources import UploadSource, open_source

__all__ = ["BucketStorageMixin", "ObjectEntry", "expiry_seconds", "recognise_content"]

BUCKET_OPTIONS = frozenset({"bucket", "max_size", "allowed_content_types", "file_overwrite"})

# The audio types the sniffer's first guess is confirmed for by common.media's stricter header parser.
_AUDIO_TYPES = frozenset(audio.content_type for audio in AudioFormat)


@dataclass(frozen=True)
class ObjectEntry:
    """One stored object as a listing sees it: its full name, size and last modification (when known)."""

    name: str
    size: int | None = None
    updated: datetime | None = None


def expiry_seconds(expires_in: object = None) -> int:
    """Return the lifetime of a signed URL: ``expires_in`` whole seconds, or SIGNED_URL_EXPIRES_IN when None.

    Raises:
        ValidationError: for anything but a positive number of seconds (at least 1).
    """
    value = app_settings.SIGNED_URL_EXPIRES_IN if expires_in is None else expires_in
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value < float("inf"):
        raise ValidationError("expires_in must be a positive number of seconds.", details={"expires_in": expires_in})
    return int(value)


def recognise_content(source: UploadSource) -> tuple[str | None, str]:
    """Return (the content type the bytes are recognised as, or None; what they look like, for messages).

    The magic numbers decide (``common.media.sniff_content_type``); audio is then confirmed by
    ``common.validation.validate_audio_file``, which parses MP3 frame, WAV and FLAC headers, so
    random bytes that happen to start like an MPEG frame are not taken for MP3.
    """
    sniffed = sniff_content_type(source.head)
    if sniffed not in _AUDIO_TYPES:
        return sniffed, sniffed or f"unrecognised content starting with 0x{source.head[:8].hex()}"
    from common.validation import validate_audio_file

    try:
        audio = validate_audio_file(source.reader(), max_size_mb=source.size / (1024 * 1024) + 1)
    except ValidationError as exc:
        if exc.code == "UNREADABLE_FILE":
            raise
        return None, str(exc.details.get("found") or exc.message)
    return audio.content_type, audio.content_type


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

    def open_upload(self, name: str, content: object) -> UploadSource:
        """Return an :class:`UploadSource` for ``content`` (an ``UploadSource`` is used as it is)."""
        if isinstance(content, UploadSource):
            return content
        try:
            return open_source(content, max_size=self.max_size)
        except ValidationError as exc:
            exc.details = {"bucket": self.bucket_name, "path": name, **exc.details}
            raise

    def check_upload(self, name: str, source: UploadSource, content_type: object = None) -> str:
        """Check the path, size and content of an upload; return the content type to store.

        For a bucket with allowed types the content decides: the bytes must be recognised as one of
        them (a declared ``content_type`` is ignored, so HTML declared as ``audio/mpeg`` is refused)
        and the recognised type is what is stored. For a bucket without a list, the declared type
        is used, else the one detected from the bytes and the name.

        Raises:
            ValidationError: ``INVALID_PATH``, ``FILE_TOO_LARGE`` or ``INVALID_CONTENT_TYPE``.
        """
        clean_object_path(name)
        self.check_size(name, source.size)
        details = {"bucket": self.bucket_name, "path": name, "size": source.size}
        if content_type is not None and not isinstance(content_type, str):
            raise ValidationError(
                f"The content type must be a string such as 'audio/mpeg', not {content_type!r}.",
                code="INVALID_CONTENT_TYPE",
                details={**details, "content_type": repr(content_type)},
            )
        if self.allowed_content_types is None:
            return normalize_content_type(content_type) if content_type else detect_content_type(source.head, name)
        recognised, found = recognise_content(source)
        if recognised not in self.allowed_content_types:
            allowed = ", ".join(self.allowed_content_types)
            raise ValidationError(
                f"Bucket {self.bucket_name!r} accepts only {allowed}; the content of {name!r} is {found}"
                + (f" (declared {content_type!r})." if content_type else "."),
                code="INVALID_CONTENT_TYPE",
                details={
                    **details,
                    "content_type": recognised,
                    "found": found,
                    "allowed": list(self.allowed_content_types),
                },
            )
        return str(recognised)

    if TYPE_CHECKING:  # provided by the Storage class each backend also derives from

        def delete(self, name: str) -> None:
            """Delete ``name`` (no error when missing)."""

        def exists(self, name: str) -> bool:
            """True when ``name`` exists."""

        def open(self, name: str, mode: str = "rb") -> File[Any]:
            """Open ``name`` for reading."""

    # The object API used by the facade; each backend implements the first five.

    def save_object(self, name: str, content: object, *, content_type: str | None = None, upsert: bool = False) -> str:
        """Store ``content`` (bytes, a path, a file object or an ``UploadSource``) at exactly ``name``.

        Never renamed; ``FileExistsError`` when the object exists and not ``upsert``.
        """
        raise NotImplementedError

    def signed_url(self, name: str, expires_in: int | None = None) -> str:
        """Return a URL that serves ``name`` without credentials for ``expires_in`` seconds (see ``expiry_seconds``)."""
        raise NotImplementedError

    def list_entries(self, prefix: str = "", *, recursive: bool = False) -> list[ObjectEntry]:
        """Return the objects directly inside folder ``prefix`` (or anywhere below it), sorted by name."""
        raise NotImplementedError

    def delete_objects(self, names: list[str]) -> None:
        """Delete every object in ``names`` (missing ones are not an error)."""
        raise NotImplementedError

    def ping(self) -> None:
        """Raise when the bucket cannot be reached (a read-only probe; writes nothing)."""
        raise NotImplementedError

    def probe_key(self) -> tuple[str, ...]:
        """Buckets with equal probe keys are checked together by :meth:`check_buckets` (health checks)."""
        return (type(self).__name__, self.bucket_name, str(id(self)))

    def check_buckets(self, names: Iterable[str]) -> dict[str, Any]:
        """Prove the buckets ``names`` (sharing this backend's probe key) usable without writing; raise if not."""
        self.ping()
        return {}

    def read_object(self, name: str) -> bytes:
        """Return the bytes stored at ``name``; ``FileNotFoundError`` when there is none."""
        with self.open(clean_object_path(name), "rb") as handle:
            return bytes(handle.read())

    def iter_object(self, name: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield the bytes of ``name`` as they are read (from disk or the network)."""
        handle = self.open(clean_object_path(name), "rb")
        try:
            yield from handle.chunks(chunk_size)
        finally:
            with contextlib.suppress(Exception):
                handle.close()

    def list_objects(self, prefix: str = "", *, recursive: bool = False) -> list[str]:
        """Return the full names of the objects directly inside ``prefix`` (or anywhere below it), sorted."""
        return [entry.name for entry in self.list_entries(prefix, recursive=recursive)]

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete every object under folder ``prefix`` (recursively); return their names.

        Raises:
            ValidationError: for an empty prefix (that would be the whole bucket).
        """
        folder = clean_prefix(prefix)
        if not folder:
            raise ValidationError(
                "delete_prefix needs a folder; refusing to empty the whole bucket.",
                code="INVALID_PATH",
                details={"bucket": self.bucket_name, "prefix": prefix},
            )
        names = self.list_objects(folder, recursive=True)
        if names:
            self.delete_objects(names)
        return names
