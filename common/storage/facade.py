"""The bucket facade the pipeline calls: upload, download, sign, delete, exists and list, sync and async.

Each call resolves ``bucket`` through ``django.core.files.storage.storages``, so the same code
runs on local files or Supabase Storage depending on ``STORAGES``. Big objects stream: uploads
read their source chunk by chunk (resumable TUS above ``STORAGE_RESUMABLE_THRESHOLD`` on
Supabase) and :func:`download_to` writes as the bytes arrive.

Every error leaves as a :class:`~common.errors.PipelineError`: ``StorageError`` with code
``NOT_FOUND``, ``PERMISSION_DENIED`` (the server's reason in the message) or ``ALREADY_EXISTS``;
``ConfigError`` ``BUCKET_NOT_FOUND`` for a bucket the server does not have;
``ValidationError`` for bad paths, sizes, contents or unreadable sources;
``ServiceUnavailableError`` when transient failures outlast the retries; anything unexpected
from a client library as ``StorageError``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.files.storage import storages

from common.errors import ConfigError, PipelineError, StorageError, ValidationError
from common.log import get_logger
from common.storage.base import BucketStorageMixin, expiry_seconds
from common.storage.buckets import BUCKETS
from common.storage.paths import clean_object_path, clean_prefix

__all__ = [
    "adelete_file",
    "adelete_prefix",
    "adownload_file",
    "adownload_to",
    "aexists",
    "aget_signed_url",
    "alist_files",
    "aupload_file",
    "delete_file",
    "delete_prefix",
    "download_file",
    "download_to",
    "exists",
    "get_bucket_storage",
    "get_signed_url",
    "list_files",
    "upload_file",
]

logger = get_logger("common.storage")
T = TypeVar("T")

# bytes-like content, a local file path (str or os.PathLike), or a binary file object (Django File included)
FileData = Any
_DOWNLOAD_CHUNK = 1024 * 1024


def get_bucket_storage(bucket: str) -> BucketStorageMixin:
    """Return the configured storage of ``bucket`` (``storages[bucket]``).

    Raises:
        ValidationError: for a bucket name that is not one of the four buckets.
        ConfigError: when ``STORAGES[bucket]`` is missing or is not a bucket backend.
    """
    if not isinstance(bucket, str) or bucket not in BUCKETS:
        raise ValidationError(
            f"Unknown bucket {bucket!r}; expected one of {', '.join(BUCKETS)}.",
            code="INVALID_BUCKET",
            details={"bucket": repr(bucket)},
        )
    try:
        storage = storages[bucket]
    except Exception as exc:  # InvalidStorageError, or an import/configuration error of the backend
        raise ConfigError(f"STORAGES[{bucket!r}] is not usable: {exc}", details={"bucket": bucket}) from exc
    if not isinstance(storage, BucketStorageMixin):
        raise ConfigError(
            f"STORAGES[{bucket!r}] must use a bucket backend (LocalBucketStorage or SupabaseStorage), "
            f"not {type(storage).__name__}.",
            details={"bucket": bucket},
        )
    return storage


def _translate(bucket: str, path: str | None, operation: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` and turn every other error into a ``PipelineError`` with a stable code."""
    where = f"{bucket}/{path}" if path else bucket
    details = {"bucket": bucket, "path": path, "operation": operation}
    try:
        return fn()
    except PipelineError as exc:
        exc.details = {**details, **exc.details}
        raise
    except FileNotFoundError as exc:
        raise StorageError(f"{where} does not exist.", code="NOT_FOUND", details=details) from exc
    except FileExistsError as exc:
        raise StorageError(
            f"{where} already exists; pass upsert=True to replace it.", code="ALREADY_EXISTS", details=details
        ) from exc
    except PermissionError as exc:
        raise StorageError(f"Access to {where} was denied: {exc}", code="PERMISSION_DENIED", details=details) from exc
    except OSError as exc:
        raise StorageError(f"Could not {operation} {where}: {exc}", details=details) from exc
    except Exception as exc:  # a client library's ValueError, UnicodeDecodeError...: still a PipelineError
        logger.error("Unexpected error during %s of %s", operation, where, exc_info=True, extra=details)
        raise StorageError(
            f"Could not {operation} {where}: unexpected {type(exc).__name__}: {exc}", details=details
        ) from exc


def upload_file(
    bucket: str,
    path: str,
    file_data: FileData,
    content_type: str | None = None,
    *,
    upsert: bool = False,
    expires_in: int | None = None,
) -> str:
    """Store ``file_data`` at ``bucket/path`` and return a signed URL to it.

    ``file_data`` is bytes, a local file path (``str`` or ``os.PathLike``) or a binary file
    object (a Django ``File`` included, read from its start); it is read chunk by chunk, never
    whole. Path, size and content are checked before anything is written or sent: for the
    project's buckets the content decides the type (``content_type`` is only a hint for buckets
    without a type list).

    Args:
        upsert: replace an existing object; when False an existing object raises
            ``StorageError`` with code ``ALREADY_EXISTS``.
        expires_in: lifetime of the returned URL in seconds (default SIGNED_URL_EXPIRES_IN).

    Raises:
        ValidationError: bad path, too large (``FILE_TOO_LARGE``), content not one of the bucket's
            types (``INVALID_CONTENT_TYPE``), a source that cannot be read (``UNREADABLE_FILE``).
        StorageError: ``ALREADY_EXISTS``, ``PERMISSION_DENIED`` or another refusal.
        ConfigError: ``BUCKET_NOT_FOUND`` and other configuration problems.
        ServiceUnavailableError: the storage service stayed unreachable after retries.
    """
    clean_object_path(path)
    seconds = expiry_seconds(expires_in)  # refused before anything is stored
    storage = get_bucket_storage(bucket)
    source = _translate(bucket, path, "upload", lambda: storage.open_upload(path, file_data))
    with source:
        _translate(
            bucket, path, "upload", lambda: storage.save_object(path, source, content_type=content_type, upsert=upsert)
        )
    logger.info("Stored %s/%s (%d bytes)", bucket, path, source.size, extra={"bucket": bucket, "path": path})
    return _translate(bucket, path, "sign", lambda: storage.signed_url(path, seconds))


def download_file(bucket: str, path: str) -> bytes:
    """Return the bytes stored at ``bucket/path`` (for small objects; see :func:`download_to`).

    Raises:
        StorageError: code ``NOT_FOUND`` when there is no such object.
    """
    clean_object_path(path)
    storage = get_bucket_storage(bucket)
    return _translate(bucket, path, "download", lambda: storage.read_object(path))


def download_to(*, bucket: str, path: str, destination: str | os.PathLike[str] | IO[bytes]) -> int:
    """Stream ``bucket/path`` into ``destination`` (a file path or a binary file object); return the byte count.

    A path is written through a temporary file in the same folder and renamed into place, so a
    failed download leaves no partial file; a file object is written from its current position.

    Raises:
        StorageError: ``NOT_FOUND`` and the other storage codes; ``ValidationError`` for a bad
            destination (NUL in the path, a folder that does not exist).
    """
    clean_object_path(path)
    storage = get_bucket_storage(bucket)
    if isinstance(destination, (str, os.PathLike)):
        return _download_to_path(storage, bucket, path, destination)
    if not callable(getattr(destination, "write", None)):
        raise ValidationError(
            f"destination must be a path or a binary file object, not {type(destination).__name__}.",
            details={"type": type(destination).__name__},
        )
    return _translate(bucket, path, "download", lambda: _copy(storage, path, destination))


def _copy(storage: BucketStorageMixin, path: str, destination: IO[bytes]) -> int:
    total = 0
    for chunk in storage.iter_object(path, _DOWNLOAD_CHUNK):
        try:
            destination.write(chunk)
        except Exception as exc:
            raise ValidationError(
                f"Could not write the download to the destination: {exc}", code="UNWRITABLE_DESTINATION"
            ) from exc
        total += len(chunk)
    return total


def _download_to_path(storage: BucketStorageMixin, bucket: str, path: str, destination: str | os.PathLike[str]) -> int:
    target = os.fspath(destination)
    if isinstance(target, bytes) or "\x00" in target:
        raise ValidationError(f"The destination path {target!r} contains a NUL byte or is not text.")
    folder = os.path.dirname(os.path.abspath(target))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
    except OSError as exc:
        raise ValidationError(
            f"Cannot write into {folder!r}: {exc.strerror or exc}.",
            code="UNWRITABLE_DESTINATION",
            details={"destination": target},
        ) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            total = _translate(bucket, path, "download", lambda: _copy(storage, path, handle))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return total


def get_signed_url(bucket: str, path: str, expires_in: int | None = None) -> str:
    """Return a URL that serves ``bucket/path`` without credentials for ``expires_in`` seconds (default 3600)."""
    clean_object_path(path)
    storage = get_bucket_storage(bucket)
    return _translate(bucket, path, "sign", lambda: storage.signed_url(path, expires_in))


def delete_file(bucket: str, path: str) -> None:
    """Delete ``bucket/path``; deleting an object that does not exist is not an error."""
    clean_object_path(path)
    storage = get_bucket_storage(bucket)
    _translate(bucket, path, "delete", lambda: storage.delete(path))


def delete_prefix(*, bucket: str, prefix: str) -> list[str]:
    """Delete every object under folder ``prefix`` of ``bucket`` (all levels); return their full paths.

    A job's objects live under ``<job_id>/`` in each bucket, so ``delete_prefix(bucket=b, prefix=job_id)``
    removes them. An empty prefix is refused (``ValidationError`` ``INVALID_PATH``).
    """
    folder = clean_prefix(prefix)
    storage = get_bucket_storage(bucket)
    deleted = _translate(bucket, folder or None, "delete", lambda: storage.delete_prefix(folder))
    if deleted:
        logger.info("Deleted %d objects under %s/%s/", len(deleted), bucket, folder, extra={"bucket": bucket})
    return deleted


def exists(bucket: str, path: str) -> bool:
    """True when an object is stored at ``bucket/path`` (a missing bucket or refused key raises)."""
    clean_object_path(path)
    storage = get_bucket_storage(bucket)
    return _translate(bucket, path, "check", lambda: storage.exists(path))


def list_files(bucket: str, prefix: str = "", *, recursive: bool = False) -> list[str]:
    """Return the full paths of the files directly inside folder ``prefix`` of ``bucket`` (sorted).

    With ``recursive=True``, the files at every level below ``prefix``.
    """
    folder = clean_prefix(prefix)
    storage = get_bucket_storage(bucket)
    return _translate(bucket, folder or None, "list", lambda: storage.list_objects(folder, recursive=recursive))


# The async twins run the sync calls in a worker thread (network and file I/O, not the ORM).


async def aupload_file(
    bucket: str,
    path: str,
    file_data: FileData,
    content_type: str | None = None,
    *,
    upsert: bool = False,
    expires_in: int | None = None,
) -> str:
    """Async twin of :func:`upload_file`."""
    return await sync_to_async(upload_file, thread_sensitive=False)(
        bucket, path, file_data, content_type, upsert=upsert, expires_in=expires_in
    )


async def adownload_file(bucket: str, path: str) -> bytes:
    """Async twin of :func:`download_file`."""
    return await sync_to_async(download_file, thread_sensitive=False)(bucket, path)


async def adownload_to(*, bucket: str, path: str, destination: str | os.PathLike[str] | IO[bytes]) -> int:
    """Async twin of :func:`download_to`."""
    return await sync_to_async(download_to, thread_sensitive=False)(bucket=bucket, path=path, destination=destination)


async def aget_signed_url(bucket: str, path: str, expires_in: int | None = None) -> str:
    """Async twin of :func:`get_signed_url`."""
    return await sync_to_async(get_signed_url, thread_sensitive=False)(bucket, path, expires_in)


async def adelete_file(bucket: str, path: str) -> None:
    """Async twin of :func:`delete_file`."""
    await sync_to_async(delete_file, thread_sensitive=False)(bucket, path)


async def adelete_prefix(*, bucket: str, prefix: str) -> list[str]:
    """Async twin of :func:`delete_prefix`."""
    return await sync_to_async(delete_prefix, thread_sensitive=False)(bucket=bucket, prefix=prefix)


async def aexists(bucket: str, path: str) -> bool:
    """Async twin of :func:`exists`."""
    return await sync_to_async(exists, thread_sensitive=False)(bucket, path)


async def alist_files(bucket: str, prefix: str = "", *, recursive: bool = False) -> list[str]:
    """Async twin of :func:`list_files`."""
    return await sync_to_async(list_files, thread_sensitive=False)(bucket, prefix, recursive=recursive)
