"""The Supabase Storage REST API on httpx: one client per URL and key, retries, and its errors translated.

Why not storage3 (the ``supabase`` client's storage API): it percent-decodes object names before
putting them in the URL (so ``%41`` became ``A``), reads every download whole into memory, takes
only bytes or open files for uploads, and has no resumable uploads. This module sends exactly the
request shapes storage3 and storage-js send (``/storage/v1/object/...``, ``apikey`` and bearer
headers, raw upload bodies with ``content-type``, ``cache-control`` and ``x-upsert``), with every
object name escaped by :func:`common.storage.paths.quote_object_path`.

Errors (the server answers most with HTTP 400 and the real status in the body's ``statusCode``)
become what the backend raises: ``FileNotFoundError`` (404), ``PermissionError`` (401/403, a refused
or expired key; the server's reason is kept), ``FileExistsError`` (409), ``ConfigError``
``BUCKET_NOT_FOUND`` (``NoSuchBucket``), ``ValidationError`` (413, 415, ``InvalidKey``),
``ServiceUnavailableError`` (network, 5xx, 429: retried) and ``StorageError`` otherwise.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from common.conf import app_settings
from common.errors import ConfigError, RetryableError, ServiceUnavailableError, StorageError, ValidationError
from common.retry import retry_with_backoff
from common.storage.paths import quote_object_path

__all__ = ["StorageAPI", "error_from_response", "error_from_transport"]

T = TypeVar("T")
MAX_RETRY_AFTER = 30.0
_PERMISSION_CODES = {"AccessDenied", "InvalidJWT", "Unauthorized", "unauthorized"}
_PERMISSION_WORDS = ("jwt", "signature", "api key", "apikey", "unauthorized", "row-level security")


@dataclass(frozen=True)
class ServerError:
    """What the server said: the real status, its code and error names, and its message."""

    status: int
    code: str
    error: str
    message: str

    @classmethod
    def parse(cls, response: httpx.Response) -> ServerError:
        """Read a JSON error body (``statusCode``/``code``/``error``/``message``) or a TUS plain-text one."""
        status = response.status_code
        try:
            raw = response.read()
        except httpx.HTTPError:
            raw = b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            text = raw.decode("utf-8", "replace").strip()
            return cls(status, "", "", text[:500] or response.reason_phrase)
        with contextlib.suppress(ValueError):
            status = int(str(body.get("statusCode", status)))
        message = str(body.get("message") or body.get("msg") or body.get("error") or response.reason_phrase)
        return cls(status, str(body.get("code") or ""), str(body.get("error") or ""), message[:500])

    @property
    def names(self) -> set[str]:
        """The server's code and error names."""
        return {self.code, self.error} - {""}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), MAX_RETRY_AFTER) if value is not None else None
    except ValueError:
        return None


def error_from_response(
    response: httpx.Response, *, bucket: str, name: str | None, operation: str, server: str
) -> Exception:
    """Translate an error answer of Supabase Storage (see the module docstring)."""
    err = ServerError.parse(response)
    where = f"{bucket}/{name}" if name else bucket
    details = {"bucket": bucket, "path": name, "operation": operation, "status": err.status, "server_code": err.code}
    said = f"{err.code or err.error or err.status}: {err.message}"
    if "NoSuchBucket" in err.names or "Bucket not found" in (err.error, err.message):
        return ConfigError(
            f"Bucket {bucket!r} does not exist on Supabase Storage at {server} (the server said {said}). "
            "Create it as a private bucket, or fix the bucket name in STORAGES.",
            code="BUCKET_NOT_FOUND",
            details=details,
        )
    lowered = err.message.lower()
    if err.status in (401, 403) or err.names & _PERMISSION_CODES or any(w in lowered for w in _PERMISSION_WORDS):
        return PermissionError(
            f"Supabase Storage refused the key for {operation} of {where} ({said}); "
            "SUPABASE_SERVICE_KEY (or the backend's key option) must be the project's service-role key"
        )
    if "InvalidKey" in err.names:
        return ValidationError(
            f"Supabase Storage refused the object name {name!r} ({said}).", code="INVALID_PATH", details=details
        )
    if err.status == 404:
        return FileNotFoundError(f"{where} does not exist ({said})")
    if err.status == 409:
        return FileExistsError(f"{where} already exists ({said})")
    if err.status == 413:
        return ValidationError(f"Supabase Storage refused {where} as too large ({said}).", code="FILE_TOO_LARGE")
    if err.status == 415:
        return ValidationError(
            f"Supabase Storage refused the content type of {where} ({said}); "
            "the bucket's allowed MIME types on the server differ from the project's.",
            code="INVALID_CONTENT_TYPE",
            details=details,
        )
    if err.status == 429:
        return ServiceUnavailableError(
            f"Supabase Storage is rate limiting requests ({operation} of {where}).",
            code="RATE_LIMITED",
            details=details,
            retry_after=_retry_after(response),
        )
    if err.status >= 500:
        return ServiceUnavailableError(
            f"Supabase Storage failed with status {err.status} during {operation} of {where}: {err.message}",
            details=details,
        )
    return StorageError(f"Supabase Storage refused {operation} of {where} ({said}).", details=details)


def error_from_transport(exc: httpx.TransportError, *, bucket: str, name: str | None, operation: str) -> Exception:
    """A network failure: ``ServiceUnavailableError`` (retried)."""
    where = f"{bucket}/{name}" if name else bucket
    return ServiceUnavailableError(
        f"Supabase Storage is unreachable ({type(exc).__name__}) during {operation} of {where}.",
        details={"bucket": bucket, "path": name, "operation": operation, "error": str(exc)},
    )


class StorageAPI:
    """One Supabase Storage endpoint (``<url>/storage/v1``) reached with one key; safe to share between threads."""

    def __init__(self, url: str, key: str, *, timeout: float | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"The Supabase URL must be an http(s) URL with a host, not {url!r}.")
        if not key:
            raise ConfigError("The Supabase key is empty.")
        self.url = url.rstrip("/")
        self.base = f"{self.url}/storage/v1"
        self.key = key
        seconds = float(app_settings.STORAGE_TIMEOUT if timeout is None else timeout)
        self.http = httpx.Client(
            timeout=httpx.Timeout(seconds),
            headers={"apikey": key, "Authorization": f"Bearer {key}"},
            follow_redirects=False,
        )

    def object_url(self, kind: str, bucket: str, name: str | None = None) -> str:
        """``<base>/object[/kind]/<bucket>[/<escaped name>]``."""
        middle = f"/object/{kind}" if kind else "/object"
        tail = f"/{quote_object_path(name)}" if name else ""
        return f"{self.base}{middle}/{quote_object_path(bucket)}{tail}"

    def send(
        self, method: str, url: str, *, bucket: str, name: str | None, operation: str, stream: bool = False, **kw: Any
    ) -> httpx.Response:
        """Send one request; return a 2xx response, else raise the translated error (no retries)."""
        try:
            request = self.http.build_request(method, url, **kw)
            response = self.http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise error_from_transport(exc, bucket=bucket, name=name, operation=operation) from exc
        if response.is_success:
            return response
        try:
            raise error_from_response(response, bucket=bucket, name=name, operation=operation, server=self.url)
        finally:
            response.close()

    def call(self, operation: str, bucket: str, name: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn`` retrying transient failures (network, 5xx, 429) with backoff (STORAGE_RETRY_*)."""
        retrying = retry_with_backoff(
            max_attempts=int(app_settings.STORAGE_RETRY_ATTEMPTS),
            base_delay=float(app_settings.STORAGE_RETRY_BASE_DELAY),
            max_delay=MAX_RETRY_AFTER,
            jitter=True,
            retryable_exceptions=(RetryableError,),
        )(fn)
        return retrying()

    def request_json(
        self, operation: str, method: str, url: str, *, bucket: str, name: str | None = None, **kw: Any
    ) -> Any:
        """Send a request with retries and return its JSON body."""

        def attempt() -> Any:
            response = self.send(method, url, bucket=bucket, name=name, operation=operation, **kw)
            try:
                return response.json()
            except ValueError as exc:
                raise StorageError(
                    f"Supabase Storage answered {operation} of {bucket}/{name or ''} with a body that is not JSON.",
                    details={"bucket": bucket, "path": name, "operation": operation},
                ) from exc

        attempt.__qualname__ = f"SupabaseStorage.{operation}({bucket}/{name or ''})"
        return self.call(operation, bucket, name, attempt)

    def list_buckets(self) -> list[dict[str, Any]]:
        """``GET /bucket``: the buckets this key can see (the service role sees all of them)."""
        rows = self.request_json("list buckets", "GET", f"{self.base}/bucket", bucket="*")
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()
