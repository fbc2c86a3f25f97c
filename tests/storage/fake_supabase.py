"""A stand-in for the Supabase Storage API on 127.0.0.1, for the tests and benches of SupabaseStorage.

Run it in-process (``FakeSupabase(...).start()``) or as its own process
(``python -m tests.storage.fake_supabase --key K --buckets a,b``, which prints its URL;
the memory bench does this so the server's copy of an object is not counted).

Routes (under ``/storage/v1``), as the real server (github.com/supabase/storage) serves them:

* ``POST|PUT /object/{bucket}/{path}``   upload: a raw body (``content-type``, ``cache-control``,
  ``x-upsert`` headers, what storage-js and ``SupabaseStorage`` send) or multipart (storage3)
* ``GET /object[/authenticated]/{bucket}/{path}``  download, with ``Range`` (206)
* ``GET /object/info/{bucket}/{path}``   metadata;  ``DELETE /object/{bucket}`` ``{"prefixes": [...]}``
* ``POST /object/list/{bucket}``         one folder level: files, then folders as ``id: null`` entries
* ``POST /object/sign/{bucket}/{path}``  ``{"expiresIn"}``; ``GET /object/sign/{bucket}/{path}?token=``
* ``GET /bucket``, ``GET /bucket/{id}``  bucket rows (``public`` flag)
* ``POST|HEAD|PATCH /upload/resumable[/{id}]``  TUS 1.0.0 (see ``tests/storage/fake_tus.py``)

Real-server behaviours reproduced (file names are in supabase/storage):

1. Errors are HTTP 400 (500 for server faults) with the real status in the body:
   ``{"statusCode": "404", "code": "NoSuchBucket", "error": "NoSuchBucket", "message": "Bucket not found"}``
   (``StorageBackendError.render`` + ``http/error-handler.ts``). ``legacy_errors=True`` renders the
   older servers' ``error`` names instead ("Bucket not found", "not_found", "Duplicate").
2. URL paths are percent-decoded before routing (find-my-way decodes route parameters), so
   ``/object/b/p/x%41.mp4`` addresses ``p/xA.mp4`` and ``%2F`` makes a folder; a bad escape
   (``%ff``) is a 400 "Bad Request". Names inside JSON bodies (delete, list) are used as sent.
3. Object keys are checked on every write (upload, TUS creation) with ``isValidKey``
   (``storage/limits.ts``): non-empty, only ``A-Za-z0-9_/!-.*'() &$@=;:+,?``, at most 1024
   bytes -> 400 ``InvalidKey``. Newer servers accept more of Unicode; the project keeps to this set.
4. An unknown bucket is 404 ``NoSuchBucket`` on every route, reads included.
5. An upload over an existing object without ``x-upsert: true`` is 409 ``ResourceAlreadyExists``
   ("Duplicate" in older servers); ``PUT`` replaces (and 404s when there is nothing to replace).
6. Keys: the service key sees everything; the anon key is subject to row-level security with no
   policies, as in a new project: it sees no bucket, reads answer 404 ``NoSuchKey``, listings are
   empty, writes are 403 ``AccessDenied`` ("new row violates row-level security policy"); any other
   key is 403 ``AccessDenied`` ("invalid signature") on every route (``http/plugins/jwt.ts``).
7. Signed URLs: the token signs ``decodeURI`` of the raw request path (``storage/object.ts``), so
   an escaped reserved character (``%3F``) stays escaped in the token and the link then fails with
   ``InvalidSignature``; the returned ``signedURL`` carries the decoded path. Expired -> ``InvalidJWT``.
8. Uploads are checked against the bucket's ``file_size_limit`` (413 ``EntityTooLarge``) and
   ``allowed_mime_types`` (415 ``InvalidMimeType``) when the bucket has them.

Faults (``inject``): ``status`` (an HTTP status and body), ``drop`` (close the connection without
an answer), ``drop_body`` (a TUS ``PATCH`` keeps its first ``after`` bytes, a download sends only
``after`` bytes, then the connection is closed). ``latency`` delays every answer (the benches use it
to stand for a loaded server). Every request is recorded in ``requests``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

PREFIX = "/storage/v1"
MAX_KEY_BYTES = 1024
# isValidKey's character set (storage/limits.ts, the rule current servers apply).
_VALID_KEY = re.compile(r"^[A-Za-z0-9_/!\-.*'() &$@=;:+,?]+$")
# The escapes decodeURI leaves alone: the reserved characters and '#'.
_RESERVED_ESCAPES = {"%3B", "%2F", "%3F", "%3A", "%40", "%26", "%3D", "%2B", "%24", "%2C", "%23"}
_LEGACY_ERRORS = {"NoSuchBucket": "Bucket not found", "NoSuchKey": "not_found", "ResourceAlreadyExists": "Duplicate"}


def now_iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(moment))


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    cache_control: str
    created: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class BucketState:
    objects: dict[str, StoredObject] = field(default_factory=dict)
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: list[str] | None = None
    created: float = field(default_factory=time.time)


@dataclass
class Fault:
    """One injected failure (see the module docstring)."""

    kind: str
    status: int = 500
    http_status: int | None = None
    retry_after: str | None = None
    after: int = 0
    path_contains: str = ""  # only requests whose path contains this text take the fault
    skip: int = 0  # let this many matching requests pass first


class HTTPError(Exception):
    """An answer the handler sends instead of the route's result."""

    def __init__(self, status: int, code: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.http_status = status, code, message, http_status


def is_valid_key(key: str) -> bool:
    """The real server's ``isValidKey``."""
    return bool(_VALID_KEY.match(key)) and len(key.encode("utf-8")) <= MAX_KEY_BYTES


def decode_uri(raw: str) -> str:
    """JavaScript's ``decodeURI``: every escape except those of reserved characters and '#'."""

    def decode_run(match: re.Match[str]) -> str:
        out: list[str] = []
        pending = bytearray()
        for escape in re.findall(r"%[0-9A-Fa-f]{2}", match.group(0)):
            if escape.upper() in _RESERVED_ESCAPES:
                out.append(pending.decode("utf-8"))
                pending.clear()
                out.append(escape)
            else:
                pending.append(int(escape[1:], 16))
        out.append(pending.decode("utf-8"))
        return "".join(out)

    return re.sub(r"(?:%[0-9A-Fa-f]{2})+", decode_run, raw)


class FakeSupabase:
    """The server state, the fault queue and the request log; ``start()`` serves on a free port."""

    def __init__(
        self,
        key: str = "service-role-key",
        buckets: tuple[str, ...] = (),
        *,
        anon_key: str = "anon-key-for-tests",
        legacy_errors: bool = False,
        latency: float = 0.0,
    ) -> None:
        self.key = key
        self.anon_key = anon_key
        self.legacy_errors = legacy_errors
        self.latency = latency
        self.buckets: dict[str, BucketState] = {b: BucketState() for b in buckets}
        self.uploads: dict[str, Any] = {}  # TUS uploads in progress (fake_tus.TusUpload)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.patch_offsets: list[int] = []  # Upload-Offset of every TUS PATCH, in order
        self.ranges: list[str] = []  # Range header of every download that had one
        self.location_host: str | None = None  # answer TUS creations with this host (a proxy's internal name)
        self.ignore_range = False  # answer Range requests with the whole object (200), as some proxies do
        self.clock_offset = 0.0
        self.lock = threading.RLock()
        self._secret = uuid.uuid4().bytes
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> FakeSupabase:
        from tests.storage.fake_objects import ObjectRoutes
        from tests.storage.fake_tus import TusRoutes

        fake = self

        class Handler(ObjectRoutes, TusRoutes, _Handler):
            server_state = fake

        self._server = _Server(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def take_fault(self, path: str, kinds: tuple[str, ...]) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.kind in kinds and fault.path_contains in path:
                    if fault.skip:
                        fault.skip -= 1
                        return None
                    return self.faults.pop(i)
        return None

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    def objects(self, bucket: str) -> dict[str, StoredObject]:
        return self.buckets[bucket].objects

    def now(self) -> float:
        return time.time() + self.clock_offset

    def error_body(self, status: int, code: str, message: str) -> dict[str, str]:
        error = _LEGACY_ERRORS.get(code, code) if self.legacy_errors else code
        return {"statusCode": str(status), "code": code, "error": error, "message": message}

    # ------------------------------------------------------------------ signing

    def sign(self, url: str, expires_in: int) -> str:
        payload = json.dumps({"url": url, "exp": int(self.now()) + expires_in}).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        mac = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{mac}"

    def verify(self, token: str) -> dict[str, Any]:
        try:
            body, mac = token.rsplit(".", 1)
        except ValueError:
            raise HTTPError(400, "InvalidJWT", "jwt malformed") from None
        expected = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, expected):
            raise HTTPError(400, "InvalidJWT", "invalid signature")
        payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if payload["exp"] < self.now():
            raise HTTPError(400, "InvalidJWT", "jwt expired")
        return payload

    # ------------------------------------------------------------------ shared rules

    def bucket(self, name: str, role: str) -> BucketState:
        state = self.buckets.get(name)
        if state is None or role == "anon":  # RLS hides every bucket from the anon role
            raise HTTPError(404, "NoSuchBucket", "Bucket not found")
        return state

    def check_new_object(self, bucket: BucketState, name: str, size: int, content_type: str, upsert: bool) -> None:
        if not is_valid_key(name):
            raise HTTPError(400, "InvalidKey", f"Invalid key: {name}")
        if bucket.file_size_limit is not None and size > bucket.file_size_limit:
            raise HTTPError(413, "EntityTooLarge", "The object exceeded the maximum allowed size")
        if bucket.allowed_mime_types and content_type.split(";")[0] not in bucket.allowed_mime_types:
            raise HTTPError(415, "InvalidMimeType", f"mime type {content_type} is not supported")
        if name in bucket.objects and not upsert:
            raise HTTPError(409, "ResourceAlreadyExists", "The resource already exists")


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 refuses connections when many threads call at once
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    """Plumbing, authentication and routing; the routes are in fake_objects.py and fake_tus.py."""

    server_state: FakeSupabase
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    body_done = False

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # ------------------------------------------------------------------ plumbing

    def read_body(self) -> bytes:
        self.body_done = True
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, payload: Any, content_type: str = "application/json", headers: dict | None = None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if not self.body_done:  # an unread request body: this connection cannot carry another request
            self.send_header("Connection", "close")
            self.close_connection = True
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_body(self, error: HTTPError) -> None:
        state = self.server_state
        http_status = error.http_status or (500 if error.status >= 500 else 400)
        self.send(http_status, state.error_body(error.status, error.code, error.message))

    def drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def role(self) -> str:
        """``service``, ``anon``, or an HTTPError for any other key (the JWT plugin)."""
        state = self.server_state
        token = re.sub(r"^Bearer\s+", "", self.headers.get("Authorization", ""), flags=re.I)
        if token == state.key:
            return "service"
        if token == state.anon_key:
            return "anon"
        raise HTTPError(403, "AccessDenied", "invalid signature")

    def _handle(self, method: str) -> None:
        state = self.server_state
        self.body_done = method in ("GET", "HEAD", "DELETE") and not self.headers.get("Content-Length")
        parts = urlsplit(self.path)
        with state.lock:
            state.requests.append((method, parts.path))
        if state.latency:
            time.sleep(state.latency)
        fault = state.take_fault(parts.path, ("status", "drop"))
        if fault is not None:
            self.read_body()
            if fault.kind == "drop":
                self.drop()
                return
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            self.send(
                fault.http_status or fault.status,
                state.error_body(fault.status, "injected", f"injected {fault.status}"),
                headers=headers,
            )
            return
        try:
            if parts.path.startswith(PREFIX + "/upload/resumable"):
                self.tus(method, parts.path[len(PREFIX + "/upload/resumable") :])
                return
            body = self.read_body()
            try:  # route parameters are percent-decoded, as find-my-way does
                segments = [unquote(s, errors="strict") for s in parts.path.split("/")]
            except UnicodeDecodeError:
                self.send(400, {"statusCode": "400", "error": "Bad Request", "message": "not a valid url component"})
                return
            if parts.path.startswith(PREFIX + "/object/sign/") and method == "GET":
                self.signed_get(segments[5], "/".join(segments[6:]), parse_qs(parts.query).get("token", [""])[0])
            elif parts.path.startswith(PREFIX + "/object/"):
                self.route_object(method, segments[4:], body, parts.path)
            elif parts.path.startswith(PREFIX + "/bucket"):
                self.route_bucket(method, segments[4:])
            else:
                self.send(404, {"statusCode": "404", "error": "Not Found", "message": "Route not found"})
        except HTTPError as error:
            self.send_error_body(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake must be visible, not a hang
            self.send(500, {"statusCode": "500", "code": "fake_bug", "error": "fake_bug", "message": repr(exc)})

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def raw_object_url(server: FakeSupabase, bucket: str, raw_path: str) -> str:
    """The URL of an object route with ``raw_path`` sent exactly as given (no escaping added)."""
    return f"{server.url}{PREFIX}/object/{quote(bucket)}/{raw_path}"


def main() -> None:
    """Serve until stdin closes (the memory bench runs the server in its own process)."""
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--buckets", required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeSupabase(key=args.key, buckets=tuple(args.buckets.split(",")), latency=args.latency).start()
    print(server.url, flush=True)
    for line in sys.stdin:  # control lines: "drop_body <path_contains> <after> <skip>", or "count <method> <text>"
        words = line.split()
        if words[0] == "count":
            print(server.count(words[1], words[2]), flush=True)
            continue
        kind, contains, after, skip = words
        server.inject(Fault(kind, after=int(after), path_contains=contains, skip=int(skip)))
        print("ok", flush=True)
    server.stop()


if __name__ == "__main__":
    main()
