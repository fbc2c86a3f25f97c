"""A stand-in for the Supabase Storage REST API on 127.0.0.1, for tests of SupabaseStorage.

It speaks the subset storage3 uses (routes under ``/storage/v1``):

* ``POST|PUT /object/{bucket}/{path}``       multipart upload (``x-upsert``), answers ``{"Key", "Id"}``
* ``GET /object[/authenticated]/{bucket}/{path}``  download
* ``GET /object/info/{bucket}/{path}``       object metadata
* ``DELETE /object/{bucket}``                ``{"prefixes": [...]}``
* ``POST /object/list/{bucket}``             ``{"prefix", "limit", "offset", "sortBy"}``
* ``POST /object/sign/{bucket}/{path}``      ``{"expiresIn"}`` -> ``{"signedURL": "/object/sign/...?token=..."}``
* ``GET /object/sign/{bucket}/{path}?token`` serves a signed object

Errors look like the real server's: HTTP 400 with the real status in the body's
``statusCode`` (``{"statusCode": "404", "error": "not_found", "message": ...}``).
Faults can be queued (``inject``): an HTTP status with a JSON body, or a dropped
connection (the socket is closed without an answer). Every request is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = "/storage/v1"


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    cache_control: str
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Fault:
    """One injected failure: ``status`` (HTTP status + body statusCode) or ``drop`` (close the socket)."""

    kind: str
    status: int = 500
    http_status: int | None = None
    retry_after: str | None = None


class FakeSupabase:
    """The server state, the fault queue and the request log; start() serves on a free port."""

    def __init__(self, key: str = "service-role-key", buckets: tuple[str, ...] = ()) -> None:
        self.key = key
        self.buckets: dict[str, dict[str, StoredObject]] = {b: {} for b in buckets}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.clock_offset = 0.0
        self.lock = threading.Lock()
        self._secret = uuid.uuid4().bytes
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeSupabase:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    def now(self) -> float:
        return time.time() + self.clock_offset

    # ------------------------------------------------------------------ signing

    def sign(self, bucket: str, path: str, expires_in: int) -> str:
        payload = json.dumps({"url": f"{bucket}/{path}", "exp": int(self.now()) + expires_in}).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        mac = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{mac}"

    def verify(self, token: str, bucket: str, path: str) -> str | None:
        """Return None when valid, else the error message."""
        try:
            body, mac = token.rsplit(".", 1)
        except ValueError:
            return "invalid token"
        expected = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, expected):
            return "invalid signature"
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if payload["url"] != f"{bucket}/{path}":
            return "url mismatch"
        if payload["exp"] < self.now():
            return "jwt expired"
        return None


def error_body(status: int, error: str, message: str) -> dict[str, str]:
    return {"statusCode": str(status), "error": error, "message": message}


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeSupabase

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # ------------------------------------------------------------------ plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, content_type: str = "application/json", headers: dict | None = None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, error: str, message: str) -> None:
        # Like Supabase Storage: most errors are HTTP 400 with the real status in the body.
        self._send(400, error_body(status, error, message))

    def _handle(self, method: str) -> None:
        state = self.server_state
        body = self._body()
        parts = urlsplit(self.path)
        path = parts.path
        with state.lock:
            state.requests.append((method, path))
            fault = state.faults.pop(0) if state.faults else None
        if fault is not None:
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            self._send(
                fault.http_status or fault.status,
                error_body(fault.status, "injected", f"injected {fault.status}"),
                headers=headers,
            )
            return
        if not path.startswith(PREFIX + "/object/"):
            self._send(404, {"error": "route not found"})
            return
        rest = [unquote(p) for p in path[len(PREFIX) + len("/object/") :].split("/")]
        query = parse_qs(parts.query)
        if rest[0] == "sign" and method == "GET":
            self._signed_get(rest[1], "/".join(rest[2:]), query.get("token", [""])[0])
            return
        auth = self.headers.get("Authorization", "")
        if auth != f"Bearer {state.key}" or self.headers.get("apikey") != state.key:
            self._error(403, "Unauthorized", "invalid signature")
            return
        try:
            self._route(method, rest, body)
        except Exception as exc:  # a bug in the fake must be visible, not a hang
            self._send(500, error_body(500, "fake_bug", repr(exc)))

    def _route(self, method: str, rest: list[str], body: bytes) -> None:
        head = rest[0]
        if method == "POST" and head == "list":
            self._list(rest[1], json.loads(body or b"{}"))
        elif method == "POST" and head == "sign":
            self._sign(rest[1], "/".join(rest[2:]), json.loads(body or b"{}"))
        elif method == "GET" and head == "info":
            self._info(rest[1], "/".join(rest[2:]))
        elif method == "GET" and head == "authenticated":
            self._download(rest[1], "/".join(rest[2:]))
        elif method == "GET":
            self._download(head, "/".join(rest[1:]))
        elif method == "DELETE" and len(rest) == 1:
            self._remove(head, json.loads(body or b"{}"))
        elif method in ("POST", "PUT"):
            self._upload(method, head, "/".join(rest[1:]), body)
        else:
            self._send(404, {"error": "route not found"})

    def _bucket(self, name: str) -> dict[str, StoredObject] | None:
        objects = self.server_state.buckets.get(name)
        if objects is None:
            self._error(404, "Bucket not found", "Bucket not found")
        return objects

    def _object(self, bucket: str, path: str) -> StoredObject | None:
        """The stored object, or None after answering Supabase's 404 (no bucket or no object)."""
        objects = self._bucket(bucket)
        if objects is None:
            return None
        obj = objects.get(path)
        if obj is None:
            self._error(404, "not_found", "Object not found")
        return obj

    # ------------------------------------------------------------------ routes

    def _upload(self, method: str, bucket: str, path: str, body: bytes) -> None:
        objects = self._bucket(bucket)
        if objects is None:
            return
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        file_part, cache_control = None, "no-cache"
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                file_part = part
            elif name == "cacheControl":
                cache_control = part.get_content()
        if file_part is None:
            self._error(400, "InvalidRequest", "no file")
            return
        data = file_part.get_payload(decode=True) or b""
        upsert = self.headers.get("x-upsert", "false") == "true" or method == "PUT"
        with self.server_state.lock:
            if path in objects and not upsert:
                self._error(409, "Duplicate", "The resource already exists")
                return
            if method == "PUT" and path not in objects:
                self._error(404, "not_found", "Object not found")
                return
            objects[path] = StoredObject(data, file_part.get_content_type(), f"max-age={cache_control}")
        self._send(200, {"Key": f"{bucket}/{path}", "Id": objects[path].id})

    def _download(self, bucket: str, path: str) -> None:
        obj = self._object(bucket, path)
        if obj is not None:
            self._send(200, obj.data, content_type=obj.content_type)

    def _info(self, bucket: str, path: str) -> None:
        obj = self._object(bucket, path)
        if obj is None:
            return
        self._send(
            200,
            {
                "id": obj.id,
                "name": path,
                "bucket_id": bucket,
                "size": len(obj.data),
                "content_type": obj.content_type,
                "cache_control": obj.cache_control,
                "created_at": obj.created_at,
                "last_modified": obj.created_at,
                "metadata": {"size": len(obj.data), "mimetype": obj.content_type},
            },
        )

    def _remove(self, bucket: str, payload: dict[str, Any]) -> None:
        objects = self._bucket(bucket)
        if objects is None:
            return
        removed = []
        with self.server_state.lock:
            for prefix in payload.get("prefixes", []):
                if objects.pop(prefix, None) is not None:
                    removed.append({"name": prefix, "bucket_id": bucket})
        self._send(200, removed)

    def _list(self, bucket: str, payload: dict[str, Any]) -> None:
        objects = self._bucket(bucket)
        if objects is None:
            return
        prefix = payload.get("prefix") or ""
        folder = f"{prefix.rstrip('/')}/" if prefix else ""
        entries: dict[str, dict[str, Any]] = {}
        with self.server_state.lock:
            for path, obj in objects.items():
                if not path.startswith(folder):
                    continue
                head, _, tail = path[len(folder) :].partition("/")
                if tail:
                    entries.setdefault(head, {"name": head, "id": None, "metadata": None})
                else:
                    entries[head] = {"name": head, "id": obj.id, "metadata": {"size": len(obj.data)}}
        ordered = [entries[k] for k in sorted(entries)]
        offset, limit = int(payload.get("offset", 0)), int(payload.get("limit", 100))
        self._send(200, ordered[offset : offset + limit])

    def _sign(self, bucket: str, path: str, payload: dict[str, Any]) -> None:
        if self._object(bucket, path) is None:
            return
        token = self.server_state.sign(bucket, path, int(payload["expiresIn"]))
        self._send(200, {"signedURL": f"/object/sign/{bucket}/{path}?token={token}"})

    def _signed_get(self, bucket: str, path: str, token: str) -> None:
        problem = self.server_state.verify(token, bucket, path)
        if problem is not None:
            self._error(400, "InvalidJWT", problem)
            return
        self._download(bucket, path)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")
