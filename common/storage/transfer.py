"""Big objects over HTTP: resumable (TUS) uploads in fixed-size chunks, and downloads read as they arrive.

Uploads above ``STORAGE_RESUMABLE_THRESHOLD`` use Supabase Storage's TUS endpoint
(``/storage/v1/upload/resumable``), as Supabase recommends above 6 MB: one ``POST`` creates the
upload (metadata ``bucketName``, ``objectName``, ``contentType``, ``cacheControl``; ``x-upsert``
on every request, as the server reads it per request), then one ``PATCH`` per
``STORAGE_CHUNK_SIZE`` chunk (6 MiB; Supabase's S3 store wants exactly that). After a dropped
connection or a 5xx, the client asks the server for its offset (``HEAD``) and sends from there,
even from the middle of a chunk, instead of starting over. Only one chunk is in memory at a time.

tuspy (PyPI ``tuspy`` 1.1.0) was judged and not used: it needs ``requests``, ``aiohttp`` and
``tinydb``; it sends without a timeout and on a new connection per request; it retries only the
``PATCH`` and after a fixed 30 s wait; it can only seek in a file, and its errors carry no
status the backend could translate. This is about 150 lines on the backend's own httpx client.

:class:`RemoteReader` streams a download: ``read()`` pulls bytes from the open response as the
caller asks for them; a connection dropped mid-body is resumed with a ``Range`` request.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from common.conf import app_settings
from common.errors import RetryableError, StorageError, ValidationError
from common.log import get_logger
from common.retry import compute_delay
from common.storage.rest import MAX_RETRY_AFTER, StorageAPI, error_from_transport
from common.storage.sources import UploadSource

__all__ = ["RemoteReader", "tus_upload"]

logger = get_logger("common.storage")
TUS_VERSION = "1.0.0"


def _metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode('utf-8')).decode('ascii')}" for k, v in values.items())


def _sleep(attempt: int, error: BaseException) -> None:
    from common import retry  # looked up at call time: tests replace retry.sleep

    delay = compute_delay(
        attempt,
        base_delay=float(app_settings.STORAGE_RETRY_BASE_DELAY),
        max_delay=MAX_RETRY_AFTER,
        jitter=True,
        error=error,
    )
    retry.sleep(delay)


def _upload_location(api: StorageAPI, location: str | None, *, bucket: str, name: str) -> str:
    """The absolute upload URL, kept on the configured host (the key is never sent elsewhere)."""
    if not location:
        raise StorageError(
            f"Supabase Storage created an upload for {bucket}/{name} without a Location header.",
            details={"bucket": bucket, "path": name, "operation": "upload"},
        )
    absolute = urljoin(f"{api.base}/upload/resumable/", location)
    if urlsplit(absolute).netloc != urlsplit(api.base).netloc:
        # Behind a proxy the server may name its internal host: keep the path, use the configured origin.
        tail = absolute[absolute.find("/upload/resumable/") :] if "/upload/resumable/" in absolute else ""
        if not tail:
            raise StorageError(f"Supabase Storage returned an upload URL on another host: {absolute!r}.")
        absolute = f"{api.base}{tail}"
    return absolute


def tus_upload(
    api: StorageAPI,
    *,
    bucket: str,
    name: str,
    source: UploadSource,
    content_type: str,
    cache_seconds: str,
    upsert: bool,
    chunk_size: int,
) -> int:
    """Upload ``source`` to ``bucket/name`` with TUS, resuming after failures; return how many times it resumed.

    Raises:
        The translated errors of :mod:`common.storage.rest` once ``STORAGE_RETRY_ATTEMPTS`` failures
        in a row are used up (progress resets the count); ``ValidationError`` when the source
        cannot be read.
    """
    headers = {"Tus-Resumable": TUS_VERSION, "x-upsert": "true" if upsert else "false"}
    where = _Where(api, bucket, name)
    create_headers = {
        **headers,
        "Upload-Length": str(source.size),
        "Upload-Metadata": _metadata(
            {"bucketName": bucket, "objectName": name, "contentType": content_type, "cacheControl": cache_seconds}
        ),
    }

    def create() -> str:
        response = where.send("POST", f"{api.base}/upload/resumable", headers=create_headers)
        return _upload_location(api, response.headers.get("location"), bucket=bucket, name=name)

    create.__qualname__ = f"SupabaseStorage.upload({bucket}/{name})"
    location = api.call("upload", bucket, name, create)
    attempts = int(app_settings.STORAGE_RETRY_ATTEMPTS)
    failures = resumes = offset = 0
    while offset < source.size:
        length = min(chunk_size - offset % chunk_size, source.size - offset)
        patch_headers = {
            **headers,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(length),
        }
        # The chunk is read piece by piece while it is sent: reading overlaps sending, and at most one piece
        # is in memory (bytes handed to httpx whole would also stay alive in its request/response cycle).
        body = _pieces(source, offset, length, bucket=bucket, name=name)
        try:
            response = where.send("PATCH", location, content=body, headers=patch_headers)
        except (RetryableError, FileExistsError) as exc:
            if isinstance(exc, FileExistsError):
                # TUS answers 409 both for an offset conflict and for an object that appeared meanwhile.
                server_offset = _server_offset(where, location)
                if server_offset == offset or server_offset >= source.size:
                    raise
            failures += 1
            if failures >= attempts:
                raise
            _sleep(failures, exc)
            offset = _server_offset(where, location)
            resumes += 1
            logger.warning(
                "Resuming the upload of %s/%s at byte %d of %d after: %s",
                bucket,
                name,
                offset,
                source.size,
                exc,
                extra={"bucket": bucket, "path": name, "offset": offset, "size": source.size},
            )
            continue
        new_offset = response.headers.get("upload-offset")
        offset = int(new_offset) if new_offset and new_offset.isdigit() else offset + length
        failures = 0
    return resumes


_PIECE = 256 * 1024


def _pieces(source: UploadSource, offset: int, length: int, *, bucket: str, name: str) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``source`` from ``offset`` in pieces (``UNREADABLE_FILE`` if it ends early)."""
    end = offset + length
    while offset < end:
        data = source.read_at(offset, min(_PIECE, end - offset))
        if not data:
            raise ValidationError(
                f"{source.label} ended after {offset} bytes; it declared {source.size}.",
                code="UNREADABLE_FILE",
                details={"bucket": bucket, "path": name, "size": source.size},
            )
        offset += len(data)
        yield data


class _Where:
    """One upload's bucket and name, and its requests (translated errors, no retries)."""

    def __init__(self, api: StorageAPI, bucket: str, name: str) -> None:
        self.api, self.bucket, self.name = api, bucket, name

    def send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.api.send(method, url, bucket=self.bucket, name=self.name, operation="upload", **kw)


def _server_offset(where: _Where, location: str) -> int:
    """``HEAD`` the upload for the server's ``Upload-Offset`` (retried)."""

    def head() -> int:
        response = where.send("HEAD", location, headers={"Tus-Resumable": TUS_VERSION})
        value = response.headers.get("upload-offset", "")
        if not value.isdigit():
            raise StorageError(
                f"Supabase Storage gave no Upload-Offset for {location}.",
                details={"bucket": where.bucket, "path": where.name, "operation": "upload"},
            )
        return int(value)

    head.__qualname__ = f"SupabaseStorage.upload-offset({where.bucket}/{where.name})"
    return where.api.call("upload", where.bucket, where.name, head)


class RemoteReader(io.RawIOBase):
    """A download read from the network as the caller reads; a dropped connection resumes with ``Range``.

    ``open_at(offset)`` returns a streamed 2xx response starting at ``offset`` (or raises the
    translated error); it is called again after a transport error, at most STORAGE_RETRY_ATTEMPTS
    times in a row without progress. :meth:`pieces` yields the bytes as they arrive (no copying);
    ``read()``/``readinto()`` serve the same bytes to file-like callers (Django's ``File.chunks()``).
    """

    def __init__(self, open_at: Callable[[int], httpx.Response], *, bucket: str, name: str) -> None:
        super().__init__()
        self._open_at = open_at
        self._bucket = bucket
        self._name = name
        self._position = 0
        self._pending = memoryview(b"")
        self._response: httpx.Response | None = open_at(0)
        self.size = _content_length(self._response)
        self._source = self._iterate()

    def _iterate(self) -> Iterator[bytes]:
        failures = 0
        while self._response is not None:
            chunks = self._response.iter_raw()
            skip = self._position if self._position and self._response.status_code == 200 else 0
            try:
                for piece in chunks:
                    if skip:  # the server ignored Range and sent the object from its start
                        if len(piece) <= skip:
                            skip -= len(piece)
                            continue
                        piece, skip = piece[skip:], 0
                    self._position += len(piece)
                    failures = 0
                    yield piece
            except httpx.TransportError as exc:
                error: Exception = exc
            else:
                if self.size is None or self._position >= self.size:
                    self._finish()
                    return
                error = StorageError(f"the download of {self._bucket}/{self._name} ended early")
            failures += 1
            self._finish()
            if failures >= int(app_settings.STORAGE_RETRY_ATTEMPTS):
                if isinstance(error, httpx.TransportError):
                    raise error_from_transport(error, bucket=self._bucket, name=self._name, operation="download")
                raise error
            logger.warning(
                "Resuming the download of %s/%s at byte %d after: %s",
                self._bucket,
                self._name,
                self._position,
                error,
                extra={"bucket": self._bucket, "path": self._name, "offset": self._position},
            )
            _sleep(failures, error)
            self._response = self._open_at(self._position)

    def pieces(self) -> Iterator[bytes]:
        """Yield the object's bytes as they arrive (closes the response at the end or on error)."""
        try:
            if self._pending:
                yield bytes(self._pending)
                self._pending = memoryview(b"")
            yield from self._source
        finally:
            self.close()

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill ``buffer`` with the next bytes; 0 at the end of the object."""
        if not self._pending:
            piece = next(self._source, b"")
            if not piece:
                return 0
            self._pending = memoryview(piece)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _finish(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def close(self) -> None:
        """Close the response (the connection goes back to the pool)."""
        self._finish()
        super().close()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None
