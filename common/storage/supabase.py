"""Supabase Storage as a Django storage backend, on the Storage REST API (:mod:`common.storage.rest`)."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible

from common.conf import app_settings
from common.errors import ConfigError, StorageError
from common.storage.base import BucketStorageMixin, ObjectEntry, expiry_seconds
from common.storage.client import check_service_key, get_storage_api, key_role
from common.storage.paths import clean_object_path, clean_prefix
from common.storage.rest import StorageAPI
from common.storage.transfer import RemoteReader, tus_upload

__all__ = ["SupabaseStorage"]

_LIST_PAGE = 1000
_DELETE_BATCH = 1000  # MAX_OBJECTS_PER_REQUEST of the server
_READ_BUFFER = 256 * 1024
_SAFE_IN_SIGNED_PATH = "/!*'()&$@=:+,"


def _parse_time(value: object) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@deconstructible(path="common.storage.supabase.SupabaseStorage")
class SupabaseStorage(BucketStorageMixin, Storage):
    """One private Supabase Storage bucket behind Django's storage API.

    Options (``STORAGES[...]["OPTIONS"]``): ``bucket`` (required), ``max_size``,
    ``allowed_content_types``, ``file_overwrite`` (default True), ``url`` and ``key``
    (default: the shared client from ``SUPABASE_URL``/``SUPABASE_SERVICE_KEY``),
    ``timeout`` (seconds) and ``cache_control`` (seconds, default 3600). Unknown options raise
    ``ImproperlyConfigured``. The HTTP client is created on first use, once, under a lock.
    """

    OPTION_NAMES = frozenset({"url", "key", "timeout", "cache_control"})

    def __init__(self, **options: Any) -> None:
        self._configure_bucket(options, self.OPTION_NAMES)
        self.url_option: str | None = options.get("url")
        self.key_option: str | None = options.get("key")
        self.timeout: float | None = options.get("timeout")
        self.cache_control = str(options.get("cache_control", "3600"))
        self._api: StorageAPI | None = None
        self._api_lock = threading.Lock()

    # ----------------------------------------------------------------- client

    @property
    def api(self) -> StorageAPI:
        """The Storage REST client in use (own one when ``url``/``key`` are given, else the shared one).

        Raises:
            ConfigError: Supabase not configured, or a key that is not the service role's.
        """
        if self._api is None:
            with self._api_lock:
                if self._api is None:
                    if self.url_option and self.key_option:
                        check_service_key(self.key_option, source=f"the key option of bucket {self.bucket_name!r}")
                        self._api = StorageAPI(self.url_option, self.key_option, timeout=self.timeout)
                    else:
                        self._api = get_storage_api()
        return self._api

    def _json(self, operation: str, method: str, url: str, name: str | None = None, **kw: Any) -> Any:
        return self.api.request_json(operation, method, url, bucket=self.bucket_name, name=name, **kw)

    def _cache_header(self) -> str:
        return f"max-age={self.cache_control}" if self.cache_control.isdigit() else self.cache_control

    # ----------------------------------------------------------------- object API (facade)

    def save_object(self, name: str, content: object, *, content_type: str | None = None, upsert: bool = False) -> str:
        """Upload ``content`` to ``name``: one request up to STORAGE_RESUMABLE_THRESHOLD bytes, TUS above."""
        source = self.open_upload(name, content)
        try:
            chosen = self.check_upload(name, source, content_type)
            api = self.api
            if source.size > int(app_settings.STORAGE_RESUMABLE_THRESHOLD):
                tus_upload(
                    api,
                    bucket=self.bucket_name,
                    name=name,
                    source=source,
                    content_type=chosen,
                    cache_seconds=self.cache_control,
                    upsert=upsert,
                    chunk_size=int(app_settings.STORAGE_CHUNK_SIZE),
                )
                return name
            data = source.read_all()
            headers = {
                "content-type": chosen,
                "cache-control": self._cache_header(),
                "x-upsert": "true" if upsert else "false",
            }
            self._json(
                "upload", "POST", api.object_url("", self.bucket_name, name), name, content=data, headers=headers
            )
            return name
        finally:
            if source is not content:
                source.close()

    def _open_at(self, name: str) -> Any:
        url = self.api.object_url("", self.bucket_name, name)

        def open_at(offset: int) -> httpx.Response:
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"

            def attempt() -> httpx.Response:
                return self.api.send(
                    "GET", url, bucket=self.bucket_name, name=name, operation="download", stream=True, headers=headers
                )

            attempt.__qualname__ = f"SupabaseStorage.download({self.bucket_name}/{name})"
            return self.api.call("download", self.bucket_name, name, attempt)

        return open_at

    def signed_url(self, name: str, expires_in: int | None = None) -> str:
        """Ask Supabase for a signed URL valid for ``expires_in`` seconds."""
        clean_object_path(name)
        seconds = expiry_seconds(expires_in)
        api = self.api
        result = self._json(
            "sign", "POST", api.object_url("sign", self.bucket_name, name), name, json={"expiresIn": seconds}
        )
        signed = (result.get("signedURL") or result.get("signedUrl")) if isinstance(result, dict) else None
        if not signed:
            raise StorageError(f"Supabase Storage returned no signed URL for {self.bucket_name}/{name}.")
        # The server returns the decoded path (a raw space): escape it again for a valid URL.
        path, _, query = str(signed).partition("?")
        return f"{api.base}/{quote(path.lstrip('/'), safe=_SAFE_IN_SIGNED_PATH)}?{query}"

    def _list_folder(self, folder: str) -> list[dict[str, Any]]:
        url = f"{self.api.base}/object/list/{quote(self.bucket_name, safe='')}"
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            body = {
                "prefix": folder,
                "limit": _LIST_PAGE,
                "offset": offset,
                "sortBy": {"column": "name", "order": "asc"},
            }
            page = self._json("list", "POST", url, folder or None, json=body)
            page = [row for row in page if isinstance(row, dict)] if isinstance(page, list) else []
            rows.extend(page)
            if len(page) < _LIST_PAGE:
                return rows
            offset += _LIST_PAGE

    def list_entries(self, prefix: str = "", *, recursive: bool = False) -> list[ObjectEntry]:
        """Return the objects directly inside ``prefix`` (every level below it when ``recursive``), sorted."""
        pending = [clean_prefix(prefix)]
        entries: list[ObjectEntry] = []
        while pending:
            folder = pending.pop()
            for row in self._list_folder(folder):
                full = f"{folder}/{row.get('name')}" if folder else str(row.get("name"))
                if row.get("id"):
                    metadata = row.get("metadata") or {}
                    size = metadata.get("size") if isinstance(metadata, dict) else None
                    updated = _parse_time(row.get("updated_at") or row.get("created_at"))
                    entries.append(ObjectEntry(full, int(size) if isinstance(size, int) else None, updated))
                elif recursive:
                    pending.append(full)
        return sorted(entries, key=lambda e: e.name)

    def delete_objects(self, names: list[str]) -> None:
        """Delete ``names`` (the server takes at most 1000 a request; missing ones are not an error)."""
        url = f"{self.api.base}/object/{quote(self.bucket_name, safe='')}"
        for start in range(0, len(names), _DELETE_BATCH):
            batch = names[start : start + _DELETE_BATCH]
            self._json("delete", "DELETE", url, batch[0] if len(batch) == 1 else None, json={"prefixes": batch})

    def ping(self) -> None:
        """List at most one entry of the bucket root (reads only)."""
        url = f"{self.api.base}/object/list/{quote(self.bucket_name, safe='')}"
        self._json("list", "POST", url, json={"prefix": "", "limit": 1, "offset": 0})

    def probe_key(self) -> tuple[str, ...]:
        """Buckets with the same probe key are checked by one request (the same server and key)."""
        api = self.api
        return ("supabase", api.url, hashlib.sha256(api.key.encode()).hexdigest()[:16])

    def check_buckets(self, names: Iterable[str]) -> dict[str, Any]:
        """Prove, without writing, that each bucket exists, is private and is visible to the service role.

        One ``GET /storage/v1/bucket`` answers for every bucket on this server. A key that says it is
        not the service role's fails first; a bucket the key cannot see is reported missing (with the
        anon role's row-level security, a new project shows it no bucket at all).

        Raises:
            ConfigError: ``BUCKET_NOT_FOUND``, ``BUCKET_NOT_PRIVATE`` or ``STORAGE_KEY_NOT_SERVICE_ROLE``,
                naming every bucket and problem; ``StorageError`` ``PERMISSION_DENIED`` for a refused key.
        """
        api = self.api
        rows = {str(row.get("id") or row.get("name")): row for row in api.list_buckets()}
        role = key_role(api.key)
        problems: list[tuple[str, str]] = []
        for bucket in names:
            row = rows.get(bucket)
            if row is None:
                hint = "" if role == "service_role" else " (or the key cannot see it: is it the service-role key?)"
                problems.append(("BUCKET_NOT_FOUND", f"bucket {bucket!r} does not exist on {api.url}{hint}"))
            elif row.get("public"):
                problems.append(("BUCKET_NOT_PRIVATE", f"bucket {bucket!r} is public; make it private"))
        if problems:
            raise ConfigError(
                "; ".join(message for _, message in problems),
                code=problems[0][0],
                details={"problems": [{"code": c, "message": m} for c, m in problems]},
            )
        return {"server": api.url, "key_role": role or "unknown (accepted by the server)"}

    def info(self, name: str) -> dict[str, Any]:
        """Return Supabase's metadata for ``name``; ``FileNotFoundError`` when missing."""
        clean_object_path(name)
        result = self._json("info", "GET", self.api.object_url("info", self.bucket_name, name), name)
        return dict(result) if isinstance(result, dict) else {}

    # ----------------------------------------------------------------- Django Storage API

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("SupabaseStorage opens files for reading only; use save() to write.")
        clean_object_path(name)
        reader = RemoteReader(self._open_at(name), bucket=self.bucket_name, name=name)
        handle: File[Any] = File(io.BufferedReader(reader, buffer_size=_READ_BUFFER), name=name)
        if reader.size is not None:
            handle.size = reader.size
        return handle

    def iter_object(self, name: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield the bytes of ``name`` as they arrive from the network (resumed with ``Range`` after a drop)."""
        clean_object_path(name)
        yield from RemoteReader(self._open_at(name), bucket=self.bucket_name, name=name).pieces()

    def _save(self, name: str, content: File[Any]) -> str:
        return self.save_object(name, content, content_type=getattr(content, "content_type", None), upsert=True)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """Return ``name`` itself when overwriting is on (object-store semantics), else a free name."""
        clean_object_path(name)
        if self.file_overwrite:
            return name
        return super().get_available_name(name, max_length)

    def delete(self, name: str) -> None:
        """Delete ``name``; deleting a missing object is not an error (as with files)."""
        self.delete_objects([clean_object_path(name)])

    def exists(self, name: str) -> bool:
        """True when an object is stored at ``name`` (a missing bucket or refused key raises)."""
        try:
            self.info(name)
        except FileNotFoundError:
            return False
        return True

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """Return (folders, files) directly inside ``path``."""
        folder = clean_prefix(path)
        dirs: list[str] = []
        files: list[str] = []
        for row in self._list_folder(folder):
            (files if row.get("id") else dirs).append(str(row.get("name")))
        return sorted(dirs), sorted(files)

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
        moment = _parse_time(info.get("last_modified") or info.get("updated_at") or info.get("created_at"))
        if moment is None:
            raise StorageError(f"Supabase Storage reported no modification time for {self.bucket_name}/{name}.")
        return moment if settings.USE_TZ else moment.astimezone().replace(tzinfo=None)

    def url(self, name: str | None, expire: int | None = None) -> str:
        """Return a signed URL for ``name`` (the buckets are private) valid ``expire`` seconds."""
        return self.signed_url(clean_object_path(name), expire)
