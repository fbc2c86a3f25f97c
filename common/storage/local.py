"""Local file storage per bucket (``MEDIA_ROOT/<bucket>``) with signed download URLs served by Django."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage
from django.urls import reverse
from django.utils.deconstruct import deconstructible

from common.storage.base import BucketStorageMixin, ObjectEntry, expiry_seconds
from common.storage.paths import clean_object_path, clean_prefix

__all__ = ["SIGNED_URL_SALT", "LocalBucketStorage", "make_signed_token", "read_signed_token"]

SIGNED_URL_SALT = "common.storage.signed-url"
TEMP_PREFIX = ".~upload-"
_WRITE_CHUNK = 1024 * 1024


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
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                (dirs if entry.is_dir(follow_symlinks=False) else files).append(entry.name)
        return sorted(dirs), sorted(files)

    def _save(self, name: str, content: File[Any]) -> str:
        return self.save_object(name, content, content_type=getattr(content, "content_type", None), upsert=True)

    def save_object(self, name: str, content: object, *, content_type: str | None = None, upsert: bool = False) -> str:
        """Write ``content`` at ``name`` chunk by chunk into a temp file, then rename it into place.

        ``FileExistsError`` unless ``upsert``; a failed write leaves nothing behind.
        """
        source = self.open_upload(name, content)
        try:
            self.check_upload(name, source, content_type)
            full_path = self.path(name)
            directory = os.path.dirname(full_path)
            os.makedirs(directory, exist_ok=True)
            if not upsert and os.path.exists(full_path):
                raise FileExistsError(f"{self.bucket_name}/{name} already exists")
            # The temp name has '~', which no object name may contain: it can never collide with one.
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in source.chunks(_WRITE_CHUNK):
                        fh.write(chunk)
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
        finally:
            if source is not content:
                source.close()

    def delete(self, name: str) -> None:
        """Delete ``name`` and the folders it leaves empty; deleting a missing file is not an error."""
        self.delete_objects([clean_object_path(name)])

    def delete_objects(self, names: list[str]) -> None:
        """Delete the files ``names`` (never following a link) and prune the folders left empty."""
        root = self.location
        for name in names:
            full = self.path(name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)
            parent = os.path.dirname(full)
            while parent != root and parent.startswith(root + os.sep):
                try:
                    os.rmdir(parent)
                except OSError:  # not empty (or gone): stop climbing
                    break
                parent = os.path.dirname(parent)

    def exists(self, name: str) -> bool:
        """True when a file is stored at ``name``."""
        return os.path.isfile(self.path(name))

    def list_entries(self, prefix: str = "", *, recursive: bool = False) -> list[ObjectEntry]:
        """Return the files directly inside ``prefix`` (every level below it when ``recursive``); links are skipped."""
        folder = clean_prefix(prefix)
        pending = [folder]
        entries: list[ObjectEntry] = []
        while pending:
            current = pending.pop()
            full = os.path.join(self.location, current) if current else self.location
            try:
                scan = list(os.scandir(full))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in scan:
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                name = f"{current}/{entry.name}" if current else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        pending.append(name)
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    entries.append(ObjectEntry(name, info.st_size, datetime.fromtimestamp(info.st_mtime, tz=UTC)))
        return sorted(entries, key=lambda e: e.name)

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

    def probe_key(self) -> tuple[str, ...]:
        """Each local bucket is probed on its own (its folder)."""
        return ("local", self.location)

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
