"""The object and bucket routes of the stand-in server (fake_supabase.py says what they reproduce)."""

from __future__ import annotations

import json
import re
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

from tests.storage.fake_supabase import BucketState, HTTPError, StoredObject, decode_uri, now_iso

if TYPE_CHECKING:
    from tests.storage.fake_supabase import FakeSupabase


class ObjectRoutes:
    """Mixed into the request handler of ``FakeSupabase``."""

    server_state: FakeSupabase

    def route_bucket(self, method: str, rest: list[str]) -> None:
        role = self.role()  # type: ignore[attr-defined]
        state = self.server_state
        if method != "GET":
            raise HTTPError(404, "NotFound", "Route not found")
        if not rest or rest[0] == "":
            rows = [] if role == "anon" else [_bucket_row(n, b) for n, b in sorted(state.buckets.items())]
            self.send(200, rows)
            return
        self.send(200, _bucket_row(rest[0], state.bucket(rest[0], role)))

    def route_object(self, method: str, rest: list[str], body: bytes, raw_path: str) -> None:
        role = self.role()  # type: ignore[attr-defined]
        head = rest[0]
        if method == "POST" and head == "list":
            self.list(rest[1], json.loads(body or b"{}"), role)
        elif method == "POST" and head == "sign":
            self.sign(rest[1], "/".join(rest[2:]), json.loads(body or b"{}"), role, raw_path)
        elif method == "GET" and head == "info":
            self.info(rest[1], "/".join(rest[2:]), role)
        elif method == "GET" and head == "authenticated":
            self.download(rest[1], "/".join(rest[2:]), role)
        elif method == "GET":
            self.download(head, "/".join(rest[1:]), role)
        elif method == "DELETE" and len(rest) == 1:
            self.remove(head, json.loads(body or b"{}").get("prefixes", []), role)
        elif method == "DELETE":
            self.remove(head, ["/".join(rest[1:])], role)
        elif method in ("POST", "PUT"):
            self.upload(method, head, "/".join(rest[1:]), body, role)
        else:
            raise HTTPError(404, "NotFound", "Route not found")

    def find(self, bucket: str, path: str, role: str) -> StoredObject:
        objects = self.server_state.bucket(bucket, "service").objects  # a missing bucket is NoSuchBucket first
        obj = objects.get(path)
        if obj is None or role == "anon":
            raise HTTPError(404, "NoSuchKey", "Object not found")
        return obj

    def upload(self, method: str, bucket_name: str, path: str, body: bytes, role: str) -> None:
        state = self.server_state
        bucket = state.bucket(bucket_name, "service")
        if role == "anon":
            raise HTTPError(403, "AccessDenied", "new row violates row-level security policy")
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        cache_control = self.headers.get("Cache-Control", "no-cache")
        data = body
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
            )
            file_part, seconds = None, None
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name == "file":
                    file_part = part
                elif name == "cacheControl":
                    seconds = part.get_content()
            if file_part is None:
                raise HTTPError(400, "InvalidRequest", "No content provided")
            data = file_part.get_payload(decode=True) or b""
            content_type = file_part.get_content_type()
            cache_control = f"max-age={seconds}" if seconds else "no-cache"
        upsert = self.headers.get("x-upsert", "false") == "true" or method == "PUT"
        with state.lock:
            if method == "PUT" and path not in bucket.objects:
                raise HTTPError(404, "NoSuchKey", "Object not found")
            state.check_new_object(bucket, path, len(data), content_type, upsert)
            bucket.objects[path] = StoredObject(data, content_type, cache_control, created=state.now())
        self.send(200, {"Key": f"{bucket_name}/{path}", "Id": bucket.objects[path].id})

    def download(self, bucket: str, path: str, role: str) -> None:
        self.send_object(self.find(bucket, path, role), path)

    def send_object(self, obj: StoredObject, path: str) -> None:
        data, status, extra = obj.data, 200, {}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            with self.server_state.lock:
                self.server_state.ranges.append(match.group(0))
        if match and not self.server_state.ignore_range:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            status, extra = 206, {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
            data = data[start : end + 1]
        fault = self.server_state.take_fault(self.path, ("drop_body",))
        self.send_response(status)
        self.send_header("Content-Type", obj.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if fault is not None:
            self.wfile.write(data[: fault.after])
            self.wfile.flush()
            self.drop()
            return
        view = memoryview(data)
        for start in range(0, len(view), 1024 * 1024):
            self.wfile.write(view[start : start + 1024 * 1024])

    def info(self, bucket: str, path: str, role: str) -> None:
        obj = self.find(bucket, path, role)
        stamp = now_iso(obj.created)
        self.send(
            200,
            {
                "id": obj.id,
                "name": path,
                "bucket_id": bucket,
                "size": len(obj.data),
                "content_type": obj.content_type,
                "cache_control": obj.cache_control,
                "created_at": stamp,
                "last_modified": stamp,
                "metadata": {"size": len(obj.data), "mimetype": obj.content_type},
            },
        )

    def remove(self, bucket_name: str, names: list[str], role: str) -> None:
        objects = self.server_state.bucket(bucket_name, "service").objects
        removed = []
        with self.server_state.lock:
            for name in names if role != "anon" else []:
                if objects.pop(name, None) is not None:
                    removed.append({"name": name, "bucket_id": bucket_name})
        self.send(200, removed)

    def list(self, bucket_name: str, payload: dict[str, Any], role: str) -> None:
        objects = self.server_state.bucket(bucket_name, "service").objects
        prefix = payload.get("prefix") or ""
        folder = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
        files: dict[str, dict[str, Any]] = {}
        folders: dict[str, dict[str, Any]] = {}
        with self.server_state.lock:
            for path, obj in objects.items() if role != "anon" else ():
                if not path.startswith(folder):
                    continue
                head, _, tail = path[len(folder) :].partition("/")
                if tail:
                    folders.setdefault(head, _folder_entry(head))
                else:
                    files[head] = _file_entry(head, obj)
        ordered = [folders[k] for k in sorted(folders)] + [files[k] for k in sorted(files)]
        ordered.sort(key=lambda e: e["name"])
        offset, limit = int(payload.get("offset", 0)), int(payload.get("limit", 100))
        self.send(200, ordered[offset : offset + limit])

    def sign(self, bucket: str, path: str, payload: dict[str, Any], role: str, raw_path: str) -> None:
        self.find(bucket, path, role)
        raw = raw_path.split("/", 5)[5]  # bucket/name as sent, after /storage/v1/object/sign/
        url = decode_uri(raw)
        token = self.server_state.sign(url, int(payload["expiresIn"]))
        self.send(200, {"signedURL": f"/object/sign/{url}?token={token}"})

    def signed_get(self, bucket: str, path: str, token: str) -> None:
        payload = self.server_state.verify(token)
        if payload["url"] != f"{bucket}/{path}":
            raise HTTPError(400, "InvalidSignature", "The url do not match the signature")
        self.send_object(self.find(bucket, path, "service"), path)


def _bucket_row(name: str, bucket: BucketState) -> dict[str, Any]:
    stamp = now_iso(bucket.created)
    return {
        "id": name,
        "name": name,
        "owner": "",
        "public": bucket.public,
        "file_size_limit": bucket.file_size_limit,
        "allowed_mime_types": bucket.allowed_mime_types,
        "created_at": stamp,
        "updated_at": stamp,
    }


def _folder_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": None,
        "updated_at": None,
        "created_at": None,
        "last_accessed_at": None,
        "metadata": None,
    }


def _file_entry(name: str, obj: StoredObject) -> dict[str, Any]:
    stamp = now_iso(obj.created)
    return {
        "name": name,
        "id": obj.id,
        "updated_at": stamp,
        "created_at": stamp,
        "last_accessed_at": stamp,
        "metadata": {"size": len(obj.data), "mimetype": obj.content_type, "cacheControl": obj.cache_control},
    }
