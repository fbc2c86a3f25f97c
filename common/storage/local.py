"""Local file storage per bucket (``MEDIA_ROOT/<bucket>``) with signed download URLs served by Django."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage
from django.urls import reverse
from django.utils.deconstruct import deconstructible

from common.storage.base import BucketStorageMixin, expiry_seconds
from common.storage.paths import clean_object_path, clean_prefix

__all__ = ["SIGNED_URL_SALT", "LocalBucketStorage", "make_signed_token", "read_signed_token"]

SIGNED_URL_SALT = "common.storage.signed-url"


def _now() -> float:
    """Current Unix time (tests replace this to expire links)."""
    return time.time()


def make_signed_token(bucket: str, path: str, expires_in: int) -> str:
    """Return a token, signed with ``SECRET_KEY``, naming ``bucket``, ``path`` and an expiry time."""
    return signing.dumps({"b": bucket, "p": path, "e": int(_now()) + int(expires_in)}, salt=SIGNED_URL_SALT)


def read_signed_token(token: str, *, bucket: str, path: str) -> bool:
    """True when ``token`` is a valid, unexpired signature for exactly ``bucket`` and ``path``."""
    try:
        payload = signing.loads(token, salt=SIGNED_URL_SALT)
    except signing.BadSignature:
        return False
    if not isinstance(payload, dict):
        return False
    expires = payload.get("e")
    return payload.get("b") == bucket and payload.get("p") == path and isinstance(expires, int) and expires >= _now()


@deconstructible(path="common.storage.local.LocalBucketStorage")
class LocalBucketStorage(BucketStorageMixin, FileSystemStorage):
    """One bucket as a folder under ``MEDIA_ROOT`` (or ``location``), with signed URLs instead of public ones.

    Options (``STORAGES[...]["OPTIONS"]``): ``bucket`` (required), ``location``,
    ``max_size``, ``allowed_content_types``, ``file_overwrite`` (default True),
    ``file_permissions_mode``, ``directory_permissions_mode``.
    """

    OPTION_NAMES = frozenset({"location", "file_permissions_mode", "directory_permissions_mode"})

    def __init__(self, **options: Any) -> None:
        self._configure_bucket(options, self.OPTION_NAMES)
        super().__init__(
            location=options.get("location"),
            file_permissions_mode=options.get("file_permissions_mode"),
            directory_permissions_mode=options.get("directory_permissions_mode"),
            allow_overwrite=self.file_overwrite,
        )

    # MEDIA_ROOT is read at call time (no cached_property), so override_settings(MEDIA_ROOT=...) applies at once.
    @property
    def base_location(self) -> str:
        """``<location or MEDIA_ROOT>/<bucket>``."""
        location = getattr(self, "_location", None)
        root = location if location is not None else settings.MEDIA_ROOT
        return os.path.join(str(root), self.bucket_name)

    @property
    def location(self) -> str:
        """The absolute folder of the bucket."""
        return os.path.abspath(self.base_location)

    def path(self, name: str) -> str:
        """Return the file system path of object ``name`` (checked first)."""
        return super().path(clean_object_path(name))

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """Return (folders, files) directly inside ``path``; an empty list for a folder that does not exist."""
        prefix = clean_prefix(path)
        full = os.path.join(self.location, prefix) if prefix else self.location
        if not os.path.isdir(full):
            return [], []
        dirs: list[str] = []
        files: list[str] = []
        with os.scandir(full) as entries:
            for entry in entries:
                (dirs if entry.is_dir() else files).append(entry.name)
        return sorted(dirs), sorted(files)

    def _save(self, name: str, content: File[Any]) -> str:
        data = self.read_content(name, content)
        return self.save_object(name, data, content_type=getattr(content, "content_type", None), upsert=True)

    def save_object(self, name: str, data: bytes, *, content_type: str | None = None, upsert: bool = False) -> str:
        """Write ``data`` at ``name`` atomically (temp file + rename); ``FileExistsError`` unless ``upsert``."""
        self.check_upload(name, data, content_type)
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        os.makedirs(directory, exist_ok=True)
        if not upsert and os.path.exists(full_path):
            raise FileExistsError(f"{self.bucket_name}/{name} already exists")
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if self.file_permissions_mode is not None:
                os.chmod(tmp, self.file_permissions_mode)
            if upsert:
                os.replace(tmp, full_path)
            else:
                # link() fails if the name appeared meanwhile: no silent overwrite under a race.
                os.link(tmp, full_path)
                os.unlink(tmp)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return name

    def read_object(self, name: str) -> bytes:
        """Return the bytes of ``name``; ``FileNotFoundError`` when missing."""
        with open(self.path(name), "rb") as fh:
            return fh.read()

    def delete(self, name: str) -> None:
        """Delete ``name``; deleting a missing file is not an error."""
        super().delete(clean_object_path(name))

    def exists(self, name: str) -> bool:
        """True when a file is stored at ``name``."""
        return os.path.isfile(self.path(name))

    def url(self, name: str | None, expire: int | None = None) -> str:
        """Return a signed URL for ``name`` that expires after ``expire`` seconds (default SIGNED_URL_EXPIRES_IN)."""
        return self.signed_url(clean_object_path(name), expire)

    def signed_url(self, name: str, expires_in: int | None = None) -> str:
        """Return ``/storage/<bucket>/<path>?token=...``, served by ``common.storage.views.signed_download``.

        Raises ``FileNotFoundError`` for a missing file, as Supabase does.
        """
        seconds = expiry_seconds(expires_in)
        if not os.path.isfile(self.path(name)):
            raise FileNotFoundError(f"{self.bucket_name}/{name} does not exist")
        token = make_signed_token(self.bucket_name, name, seconds)
        base = reverse("common:storage-signed-download", kwargs={"bucket": self.bucket_name, "path": name})
        return f"{base}?{urlencode({'token': token})}"

    def list_objects(self, prefix: str = "") -> list[str]:
        """Return the full names of the files directly inside ``prefix`` (hidden temp files excluded)."""
        folder = clean_prefix(prefix)
        _, files = self.listdir(folder)
        return sorted(f"{folder}/{f}" if folder else f for f in files if not f.startswith(".upload-"))

    def ping(self) -> None:
        """Check that the bucket folder (or the nearest existing parent) is readable and writable."""
        path = self.location
        while not os.path.exists(path):
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        if not os.access(path, os.R_OK | os.W_OK):
            raise PermissionError(f"{path} is not readable and writable")
