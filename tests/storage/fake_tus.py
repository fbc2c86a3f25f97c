"""The TUS routes of the stand-in server (``/storage/v1/upload/resumable``), as Supabase Storage serves them.

Reproduced from ``http/routes/tus/index.ts`` and ``lifecycle.ts`` (supabase/storage) and the
@tus/server handlers they use:

* ``POST /upload/resumable`` with ``Tus-Resumable: 1.0.0``, ``Upload-Length`` and ``Upload-Metadata``
  (base64 ``bucketName``, ``objectName``, ``contentType``, ``cacheControl``) -> 201 with an absolute
  ``Location`` whose last segment is base64url(``bucket/object/version``); ``x-upsert: true`` allows
  replacing an existing object.
* ``HEAD <location>`` -> ``Upload-Offset`` and ``Upload-Length`` (``Cache-Control: no-store``).
* ``PATCH <location>`` with ``Content-Type: application/offset+octet-stream`` and the current
  ``Upload-Offset`` (409 when it differs) -> 204 with the new ``Upload-Offset``. Bytes are kept as
  they arrive, so after a dropped connection the offset may fall anywhere inside a chunk. The object
  appears when the last byte arrives (``onUploadFinish``); until then nothing is listed.
* The bearer key is checked first (a JSON 400 with ``statusCode`` "403" from the JWT plugin); errors
  raised inside the TUS handlers come back with their real HTTP status and the message as plain
  text (``onResponseError``): 404 bucket not found, 400 invalid key, 409 already exists,
  413 over the bucket's size limit, 415 a content type the bucket does not allow.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.storage.fake_supabase import PREFIX, HTTPError, StoredObject

if TYPE_CHECKING:
    from tests.storage.fake_supabase import FakeSupabase

_READ = 1024 * 1024


@dataclass
class TusUpload:
    bucket: str
    name: str
    length: int
    content_type: str
    cache_control: str
    data: bytearray = field(default_factory=bytearray)


class TusRoutes:
    """Mixed into the request handler of ``FakeSupabase``."""

    server_state: FakeSupabase
    body_done: bool

    def tus(self, method: str, rest: str) -> None:
        self.role()  # type: ignore[attr-defined]  # the JWT plugin answers before the TUS server
        try:
            if method == "POST" and rest in ("", "/"):
                self._create()
                return
            upload_id = rest.strip("/")
            upload = self.server_state.uploads.get(upload_id)
            if upload is None:
                self.read_body()  # type: ignore[attr-defined]
                raise HTTPError(404, "NoSuchUpload", "The file for this url was not found", http_status=404)
            if method == "HEAD":
                self._offset(upload, 200)
            elif method == "PATCH":
                self._patch(upload_id, upload)
            elif method == "DELETE":
                self.server_state.uploads.pop(upload_id, None)
                self.send(204, b"", headers={"Tus-Resumable": "1.0.0"})  # type: ignore[attr-defined]
            else:
                raise HTTPError(405, "MethodNotAllowed", "Method not allowed", http_status=405)
        except HTTPError as error:
            status = error.http_status or error.status
            self.send(status, error.message.encode(), content_type="text/plain")  # type: ignore[attr-defined]

    def _create(self) -> None:
        state = self.server_state
        role = self.role()  # type: ignore[attr-defined]
        self.read_body()  # type: ignore[attr-defined]
        headers = self.headers  # type: ignore[attr-defined]
        if headers.get("Tus-Resumable") != "1.0.0":
            raise HTTPError(412, "TusError", "Unsupported version", http_status=412)
        try:
            length = int(headers.get("Upload-Length", ""))
        except ValueError:
            raise HTTPError(400, "TusError", "Upload-Length or Upload-Defer-Length header required") from None
        metadata = _parse_metadata(headers.get("Upload-Metadata", ""))
        bucket_name, name = metadata.get("bucketName", ""), metadata.get("objectName", "")
        content_type = metadata.get("contentType", "application/octet-stream")
        seconds = metadata.get("cacheControl", "")
        upsert = headers.get("x-upsert") == "true"
        with state.lock:
            bucket = state.bucket(bucket_name, "service")
            if role == "anon":
                raise HTTPError(403, "AccessDenied", "new row violates row-level security policy")
            state.check_new_object(bucket, name, length, content_type, upsert)
            upload_id = base64.urlsafe_b64encode(f"{bucket_name}/{name}/{uuid.uuid4()}".encode()).decode().rstrip("=")
            cache_control = f"max-age={seconds}" if seconds.lstrip("-").isdigit() else "no-cache"
            state.uploads[upload_id] = TusUpload(bucket_name, name, length, content_type, cache_control)
        location = f"http://{state.location_host or headers.get('Host')}{PREFIX}/upload/resumable/{upload_id}"
        self.send(201, b"", headers={"Location": location, "Tus-Resumable": "1.0.0"})  # type: ignore[attr-defined]

    def _offset(self, upload: TusUpload, status: int) -> None:
        headers = {
            "Upload-Offset": str(len(upload.data)),
            "Upload-Length": str(upload.length),
            "Tus-Resumable": "1.0.0",
            "Cache-Control": "no-store",
        }
        self.send(status, b"", headers=headers)  # type: ignore[attr-defined]

    def _patch(self, upload_id: str, upload: TusUpload) -> None:
        headers = self.headers  # type: ignore[attr-defined]
        length = int(headers.get("Content-Length") or 0)
        if headers.get("Content-Type") != "application/offset+octet-stream":
            self.read_body()  # type: ignore[attr-defined]
            raise HTTPError(415, "TusError", "Unsupported Media Type", http_status=415)
        if headers.get("Upload-Offset") != str(len(upload.data)):
            self.read_body()  # type: ignore[attr-defined]
            raise HTTPError(409, "TusError", "Upload-Offset header does not match the upload's offset")
        if len(upload.data) + length > upload.length:
            self.read_body()  # type: ignore[attr-defined]
            raise HTTPError(413, "TusError", "Maximum size exceeded")
        with self.server_state.lock:
            self.server_state.patch_offsets.append(len(upload.data))
        fault = self.server_state.take_fault(self.path, ("drop_body",))  # type: ignore[attr-defined]
        limit = length if fault is None else min(length, fault.after)
        remaining = limit
        rfile = self.rfile  # type: ignore[attr-defined]
        while remaining:
            piece = rfile.read(min(_READ, remaining))
            if not piece:
                break
            upload.data += piece
            remaining -= len(piece)
        if fault is not None:
            self.drop()  # type: ignore[attr-defined]
            return
        self.body_done = remaining == 0
        if len(upload.data) == upload.length:
            self._finish(upload_id, upload)
        self.send(204, b"", headers={"Upload-Offset": str(len(upload.data)), "Tus-Resumable": "1.0.0"})  # type: ignore[attr-defined]

    def _finish(self, upload_id: str, upload: TusUpload) -> None:
        state = self.server_state
        upsert = self.headers.get("x-upsert") == "true"  # type: ignore[attr-defined]
        with state.lock:
            bucket = state.bucket(upload.bucket, "service")
            state.check_new_object(bucket, upload.name, upload.length, upload.content_type, upsert)
            bucket.objects[upload.name] = StoredObject(
                bytes(upload.data), upload.content_type, upload.cache_control, created=state.now()
            )
            state.uploads.pop(upload_id, None)


def _parse_metadata(header: str) -> dict[str, str]:
    values = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            values[key] = base64.b64decode(encoded).decode("utf-8") if encoded else ""
        except (binascii.Error, UnicodeDecodeError):
            raise HTTPError(400, "TusError", "Upload-Metadata is invalid") from None
    return values
