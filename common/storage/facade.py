"""The bucket facade the pipeline calls: upload, download, sign, delete, exists and list, sync and async.

Each call resolves ``bucket`` through ``django.core.files.storage.storages``, so
the same code runs on local files or Supabase Storage depending on ``STORAGES``.
Errors leave as :class:`~common.errors.PipelineError` subclasses: ``StorageError``
with code ``NOT_FOUND``, ``PERMISSION_DENIED`` or ``ALREADY_EXISTS``,
``ValidationError`` for bad paths/sizes/types, ``ServiceUnavailableError`` when
transient failures outlast the retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.core.files.storage import storages

from common.errors import ConfigError, PipelineError, StorageError, ValidationError
from common.log import get_logger
from common.storage.base import BucketStorageMixin, content_bytes, expiry_seconds
from common.storage.buckets import BUCKETS
from common.storage.paths import clean_object_path, clean_prefix

__all__ = [
    "adelete_file",
    "adownload_file",
    "aexists",
    "aget_signed_url",
    "alist_files",
    "aupload_file",
    "delete_file",
    "download_file",
    "exists",
    "get_bucket_storage",
    "get_signed_url",
    "list_files",
    "upload_file",
]

logger = get_logger("common.storage")
T = TypeVar("T")

FileData = bytes | bytearray | memoryview


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
            details={"bucket": bucket},
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
    """Run ``fn`` and turn OS-level storage errors into ``StorageError`` with a stable code."""
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
        raise StorageError(f"Access to {where} was denied.", code="PERMISSION_DENIED", details=details) from exc
    except OSError as exc:
        raise StorageError(f"Could not {operation} {where}: {exc}", details=details) from exc


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

    The content type is ``content_type`` or detected from the bytes (then the
    extension); size and type are checked against the bucket's rules before
    anything is written or sent.

    Args:
        upsert: replace an existing object; when False an existing object raises
            ``StorageError`` with code ``ALREADY_EXISTS``.
        expires_in: lifetime of the returned URL in seconds (default SIGNED_URL_EXPIRES_IN).

    Raises:
        ValidationError: bad path, too large (``FILE_TOO_LARGE``) or wrong type (``INVALID_CONTENT_TYPE``).
        StorageError: ``ALREADY_EXISTS``, ``PERMISSION_DENIED`` or another refusal.
        ServiceUnavailableError: the storage service stayed unreachable after retries.
    """
    clean_object_path(path)
    seconds = expiry_seconds(expires_in)  # refused before anything is stored
    storage = get_bucket_storage(bucket)
    data = content_bytes(file_data)
    _translate(
        bucket, path, "upload", lambda: storage.save_object(path, data, content_type=content_type, upsert=upsert)
    )
    logger.info("Stored %s/%s (%d bytes)", bucket, path, len(data), extra={"bucket": bucket, "path": path})
    return _translate(bucket, path, "sign", lambda: storage.signed_url(path, seconds))


def download_file(bucket: str, path: str) -> bytes:
    """Return the bytes stored at ``bucket/path``.

    Raises:
        StorageError: code ``NOT_FOUND`` when there is no such object.
    """
    clean_object_path(path)
    storage = get_bucket_storage(bucket)
    return _translate(bucket, path, "download", lambda: storage.read_object(path))


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


def exists(bucket: str, path: str) -> bool:
    """True when an object is stored at ``bucket/path``."""
    clean_object_path(path)
    storage = get_bucket_storage(bucket)
    return _translate(bucket, path, "check", lambda: storage.exists(path))


def list_files(bucket: str, prefix: str = "") -> list[str]:
    """Return the full paths of the files directly inside folder ``prefix`` of ``bucket`` (sorted)."""
    folder = clean_prefix(prefix)
    storage = get_bucket_storage(bucket)
    return _translate(bucket, folder or None, "list", lambda: storage.list_objects(folder))


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


async def aget_signed_url(bucket: str, path: str, expires_in: int | None = None) -> str:
    """Async twin of :func:`get_signed_url`."""
    return await sync_to_async(get_signed_url, thread_sensitive=False)(bucket, path, expires_in)


async def adelete_file(bucket: str, path: str) -> None:
    """Async twin of :func:`delete_file`."""
    await sync_to_async(delete_file, thread_sensitive=False)(bucket, path)


async def aexists(bucket: str, path: str) -> bool:
    """Async twin of :func:`exists`."""
    return await sync_to_async(exists, thread_sensitive=False)(bucket, path)


async def alist_files(bucket: str, prefix: str = "") -> list[str]:
    """Async twin of :func:`list_files`."""
    return await sync_to_async(list_files, thread_sensitive=False)(bucket, prefix)
