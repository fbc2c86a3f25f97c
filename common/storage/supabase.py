"""Supabase Storage as a Django storage backend, on the ``supabase`` client's storage API (storage3)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible

from common.conf import app_settings
from common.errors import RetryableError, ServiceUnavailableError, StorageError, ValidationError
from common.log import get_logger
from common.retry import retry_with_backoff
from common.storage.base import BucketStorageMixin, expiry_seconds
from common.storage.client import get_supabase_client, make_supabase_client
from common.storage.paths import clean_object_path, clean_prefix

__all__ = ["SupabaseStorage", "translate_supabase_error"]

logger = get_logger("common.storage")
T = TypeVar("T")

_LIST_PAGE = 1000
_MAX_RETRY_AFTER = 30.0


def _status_of(exc: Exception) -> int | None:
    """The real HTTP status of a storage3 error: the body's ``statusCode`` (often "404" in an HTTP 400)."""
    status = getattr(exc, "status", None)
    try:
        return int(str(status))
    except (TypeError, ValueError):
        response = getattr(exc.__cause__, "response", None)
        return getattr(response, "status_code", None)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc.__cause__, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), _MAX_RETRY_AFTER) if value is not None else None
    except ValueError:
        return None


def translate_supabase_error(exc: Exception, *, bucket: str, name: str | None, operation: str) -> Exception:
    """Map a storage3/httpx error to what the backend raises.

    Not found -> ``FileNotFoundError``, 401/403 -> ``PermissionError``, 409 -> ``FileExistsError``,
    network errors, 5xx and 429 -> ``ServiceUnavailableError`` (retried), anything else -> ``StorageError``.
    """
    where = f"{bucket}/{name}" if name else bucket
    details = {"bucket": bucket, "path": name, "operation": operation}
    if isinstance(exc, httpx.TransportError):
        return ServiceUnavailableError(
            f"Supabase Storage is unreachable ({type(exc).__name__}) during {operation} of {where}.",
            details={**details, "error": str(exc)},
        )
    status = _status_of(exc)
    message = getattr(exc, "message", None) or str(exc)
    details["status"] = str(status)
    if status == 404:
        return FileNotFoundError(f"{where} does not exist ({message})")
    if status in (401, 403):
        return PermissionError(f"access to {where} was denied ({message})")
    if status == 409:
        return FileExistsError(f"{where} already exists ({message})")
    if status == 413:
        return ValidationError(f"Supabase Storage refused {where} as too large ({message}).", code="FILE_TOO_LARGE")
    if status == 429:
        return ServiceUnavailableError(
            f"Supabase Storage is rate limiting requests ({operation} of {where}).",
            code="RATE_LIMITED",
            details=details,
            retry_after=_retry_after(exc),
        )
    if status is not None and status >= 500:
        return ServiceUnavailableError(
            f"Supabase Storage failed with status {status} during {operation} of {where}: {message}",
            details=details,
        )
    return StorageError(
        f"Supabase Storage refused {operation} of {where} (status {status}): {message}", details=details
    )


@deconstructible(path="common.storage.supabase.SupabaseStorage")
class SupabaseStorage(BucketStorageMixin, Storage):
    """One private Supabase Storage bucket behind Django's storage API.

    Options (``STORAGES[...]["OPTIONS"]``): ``bucket`` (required), ``max_size``,
    ``allowed_content_types``, ``file_overwrite`` (default True), ``url`` and ``key``
    (default: the shared client from ``SUPABASE_URL``/``SUPABASE_SERVICE_KEY``),
    ``timeout`` (seconds) and ``cache_control``. Unknown options raise
    ``ImproperlyConfigured``. The client is created on first use, once, under a lock.
    """

    OPTION_NAMES = frozenset({"url", "key", "timeout", "cache_control"})

    def __init__(self, **options: Any) -> None:
        self._configure_bucket(options, self.OPTION_NAMES)
        self.url_option: str | None = options.get("url")
        self.key_option: str | None = options.get("key")
        self.timeout: float | None = options.get("timeout")
        self.cache_control = str(options.get("cache_control", "3600"))
        self._client: Any = None
        self._client_lock = threading.Lock()

    # ----------------------------------------------------------------- client

    @property
    def client(self) -> Any:
        """The ``supabase.Client`` in use (own one when ``url``/``key`` are given, else the shared one)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    if self.url_option and self.key_option:
                        self._client = make_supabase_client(self.url_option, self.key_option, timeout=self.timeout)
                    else:
                        self._client = get_supabase_client()
        return self._client

    def _bucket(self) -> Any:
        return self.client.storage.from_(self.bucket_name)

    def _call(self, operation: str, name: str | None, fn: Callable[[], T]) -> T:
        """Run one API call, translating errors and retrying transient ones (network, 5xx, 429)."""
        from storage3.utils import StorageException

        def attempt() -> T:
            try:
                return fn()
            except (StorageException, httpx.HTTPError) as exc:
                raise translate_supabase_error(exc, bucket=self.bucket_name, name=name, operation=operation) from exc

        attempt.__qualname__ = f"SupabaseStorage.{operation}({self.bucket_name}/{name or ''})"
        retrying = retry_with_backoff(
            max_attempts=int(app_settings.STORAGE_RETRY_ATTEMPTS),
            base_delay=float(app_settings.STORAGE_RETRY_BASE_DELAY),
            max_delay=_MAX_RETRY_AFTER,
            jitter=True,
            retryable_exceptions=(RetryableError,),
        )(attempt)
        return retrying()

    # ----------------------------------------------------------------- object API (facade)

    def save_object(self, name: str, data: bytes, *, content_type: str | None = None, upsert: bool = False) -> str:
        """Upload ``data`` to ``name`` with its content type and an explicit ``x-upsert``."""
        chosen = self.check_upload(name, data, content_type)
        options = {"content-type": chosen, "upsert": "true" if upsert else "false", "cache-control": self.cache_control}
        self._call("upload", name, lambda: self._bucket().upload(name, data, options))
        return name

    def read_object(self, name: str) -> bytes:
        """Download ``name``."""
        clean_object_path(name)
        return self._call("download", name, lambda: bytes(self._bucket().download(name)))

    def signed_url(self, name: str, expires_in: int | None = None) -> str:
        """Ask Supabase for a signed URL valid for ``expires_in`` seconds."""
        clean_object_path(name)
        seconds = expiry_seconds(expires_in)
        result = self._call("sign", name, lambda: self._bucket().create_signed_url(name, seconds))
        url = result.get("signedURL") or result.get("signedUrl")
        if not url:
            raise StorageError(f"Supabase Storage returned no signed URL for {self.bucket_name}/{name}.")
        return str(url)

    def _list_page(self, prefix: str, offset: int, limit: int) -> list[dict[str, Any]]:
        options = {"limit": limit, "offset": offset, "sortBy": {"column": "name", "order": "asc"}}
        return list(self._call("list", prefix or None, lambda: self._bucket().list(prefix, options)))

    def _list_all(self, prefix: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._list_page(prefix, offset, _LIST_PAGE)
            entries.extend(page)
            if len(page) < _LIST_PAGE:
                return entries
            offset += _LIST_PAGE

    def list_objects(self, prefix: str = "") -> list[str]:
        """Return the full names of the files directly inside ``prefix``."""
        _, files = self.listdir(prefix)
        folder = clean_prefix(prefix)
        return sorted(f"{folder}/{f}" if folder else f for f in files)

    def ping(self) -> None:
        """List at most one entry of the bucket root (reads only)."""
        self._list_page("", 0, 1)

    def info(self, name: str) -> dict[str, Any]:
        """Return Supabase's metadata for ``name``; ``FileNotFoundError`` when missing."""
        clean_object_path(name)
        return dict(self._call("info", name, lambda: self._bucket().info(name)))

    # ----------------------------------------------------------------- Django Storage API

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("SupabaseStorage opens files for reading only; use save() to write.")
        return ContentFile(self.read_object(name), name=name)

    def _save(self, name: str, content: File[Any]) -> str:
        data = self.read_content(name, content)
        return self.save_object(name, data, content_type=getattr(content, "content_type", None), upsert=True)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """Return ``name`` itself when overwriting is on (object-store semantics), else a free name."""
        clean_object_path(name)
        if self.file_overwrite:
            return name
        return super().get_available_name(name, max_length)

    def delete(self, name: str) -> None:
        """Delete ``name``; deleting a missing object is not an error (as with files)."""
        clean_object_path(name)
        self._call("delete", name, lambda: self._bucket().remove([name]))

    def exists(self, name: str) -> bool:
        """True when an object is stored at ``name``."""
        try:
            self.info(name)
        except FileNotFoundError:
            return False
        return True

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """Return (folders, files) directly inside ``path``."""
        prefix = clean_prefix(path)
        dirs: list[str] = []
        files: list[str] = []
        for entry in self._list_all(prefix):
            (files if entry.get("id") else dirs).append(str(entry["name"]))
        return dirs, files

    def size(self, name: str) -> int:
        """Return the size of ``name`` in bytes."""
        info = self.info(name)
        size = info.get("size")
        if size is None:
            size = (info.get("metadata") or {}).get("size")
        if size is None:
            raise StorageError(f"Supabase Storage reported no size for {self.bucket_name}/{name}.")
        return int(size)

    def get_modified_time(self, name: str) -> datetime:
        """Return when ``name`` was last modified (aware when ``USE_TZ``), from Supabase's metadata."""
        info = self.info(name)
        stamp = info.get("last_modified") or info.get("updated_at") or info.get("created_at")
        if not stamp:
            raise StorageError(f"Supabase Storage reported no modification time for {self.bucket_name}/{name}.")
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment if settings.USE_TZ else moment.astimezone().replace(tzinfo=None)

    def url(self, name: str | None, expire: int | None = None) -> str:
        """Return a signed URL for ``name`` (the buckets are private) valid ``expire`` seconds."""
        return self.signed_url(clean_object_path(name), expire)
