"""What an upload reads from: bytes, a local file path, or any binary file object, chunk by chunk.

:func:`open_source` turns the caller's ``file_data`` into an :class:`UploadSource` that knows
its size before anything is sent, keeps the first bytes for content sniffing, and reads the rest
in chunks, so a 1 GB video never sits in memory. A file object is read from its start (as
Django's ``File.chunks()`` does); one whose size cannot be learned (a pipe) is first copied to
a temporary file. Every read failure becomes a ``ValidationError`` (``UNREADABLE_FILE``), never a
raw ``OSError``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from common.errors import ValidationError

__all__ = ["HEAD_BYTES", "SourceReader", "UploadSource", "open_source"]

# How many leading bytes are kept for content sniffing (common.validation reads at most 64 KB).
HEAD_BYTES = 64 * 1024
_COPY_CHUNK = 1024 * 1024


def _unreadable(message: str, exc: BaseException | None = None, **details: Any) -> ValidationError:
    if exc is not None:
        details = {**details, "error": f"{type(exc).__name__}: {exc}"}
    return ValidationError(message, code="UNREADABLE_FILE", details=details)


class UploadSource:
    """A sized, rewindable stream of the bytes to upload; :meth:`chunks` yields them in order."""

    def __init__(self, stream: IO[bytes], size: int, *, label: str, owned: bool, start: int = 0) -> None:
        self._stream = stream
        self.size = size
        self.label = label
        self._owned = owned
        self._start = start
        self.head = self.read_at(0, min(HEAD_BYTES, size))

    def read_at(self, offset: int, length: int) -> bytes:
        """Return up to ``length`` bytes at ``offset`` (``UNREADABLE_FILE`` when the read fails)."""
        try:
            self._stream.seek(self._start + offset)
            data = self._stream.read(length)
        except Exception as exc:
            raise _unreadable(f"Could not read {self.label}: {exc}", exc) from exc
        if isinstance(data, str):
            raise _unreadable(f"{self.label} is open in text mode; open it in binary mode ('rb').")
        return bytes(data or b"")

    def chunks(self, chunk_size: int, offset: int = 0) -> Iterator[bytes]:
        """Yield the content from ``offset`` in pieces of ``chunk_size`` bytes (the last may be shorter).

        Raises:
            ValidationError: ``UNREADABLE_FILE`` when a read fails or the content is shorter or
                longer than the size it declared.
        """
        position = offset
        try:
            self._stream.seek(self._start + offset)
        except Exception as exc:
            raise _unreadable(f"Could not read {self.label}: {exc}", exc) from exc
        while position < self.size:
            try:
                data = self._stream.read(min(chunk_size, self.size - position))
            except Exception as exc:
                raise _unreadable(f"Could not read {self.label}: {exc}", exc) from exc
            if isinstance(data, str):
                raise _unreadable(f"{self.label} is open in text mode; open it in binary mode ('rb').")
            if not data:
                raise _unreadable(
                    f"{self.label} ended after {position} bytes; it declared {self.size}.",
                    size=self.size,
                    read=position,
                )
            position += len(data)
            yield bytes(data)

    def reader(self) -> SourceReader:
        """Return a seekable read-only view of the content (for sniffers that need random access)."""
        return SourceReader(self)

    def read_all(self) -> bytes:
        """Return the whole content (for small uploads)."""
        return b"".join(self.chunks(max(self.size, 1)))

    def close(self) -> None:
        """Close the stream when this source opened it (a path or a spooled copy)."""
        if self._owned:
            with contextlib.suppress(OSError):
                self._stream.close()

    def __enter__(self) -> UploadSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SourceReader:
    """A seekable, read-only file view of an :class:`UploadSource` (read errors stay ``UNREADABLE_FILE``)."""

    def __init__(self, source: UploadSource) -> None:
        self._source = source
        self._position = 0

    def seekable(self) -> bool:
        """Always True."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the current position or the end."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._source.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when negative)."""
        left = max(0, self._source.size - self._position)
        data = self._source.read_at(self._position, left if size is None or size < 0 else min(size, left))
        self._position += len(data)
        return data


def open_source(data: object, *, max_size: int | None = None) -> UploadSource:
    """Return an :class:`UploadSource` for ``data``: bytes-like, a path (``str``/``os.PathLike``) or a binary file.

    ``max_size`` is checked against the size before anything is read (``FILE_TOO_LARGE``).

    Raises:
        ValidationError: ``VALIDATION_ERROR`` for another type, ``NOT_FOUND`` / ``UNREADABLE_FILE``
            for a path that is missing, not a regular file or contains NUL, ``UNREADABLE_FILE`` for
            a file object that cannot be read, ``FILE_TOO_LARGE`` over ``max_size``.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        _check_size(len(raw), max_size)
        return UploadSource(io.BytesIO(raw), len(raw), label="the data", owned=True)
    if isinstance(data, (str, os.PathLike)):
        return _open_path(data, max_size)
    if callable(getattr(data, "read", None)):
        return _open_stream(data, max_size)
    raise ValidationError(
        f"The file data must be bytes, a path or a binary file object, not {type(data).__name__}.",
        details={"type": type(data).__name__},
    )


def _check_size(size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise ValidationError(
            f"The file is {size} bytes; the bucket accepts at most {max_size} bytes.",
            code="FILE_TOO_LARGE",
            details={"size": size, "max_size": max_size},
        )


def _open_path(path: str | os.PathLike[str], max_size: int | None) -> UploadSource:
    try:
        name = os.fspath(path)
    except TypeError as exc:
        raise ValidationError(f"Not a usable file path: {path!r}.", details={"path": repr(path)}) from exc
    if isinstance(name, bytes) or "\x00" in name:
        raise _unreadable(f"The file path {name!r} contains a NUL byte or is not text.", path=repr(name))
    try:
        handle = open(name, "rb")  # noqa: SIM115 - owned by the UploadSource, closed by close()
    except FileNotFoundError:
        raise ValidationError(
            f"The file to upload, {name!r}, does not exist.", code="NOT_FOUND", details={"path": name}
        ) from None
    except (OSError, ValueError) as exc:
        raise _unreadable(f"The file to upload, {name!r}, cannot be opened: {exc}", exc, path=name) from exc
    try:
        info = os.fstat(handle.fileno())
        if not _is_regular(info.st_mode):
            raise _unreadable(f"{name!r} is not a regular file.", path=name)
        _check_size(info.st_size, max_size)
        return UploadSource(handle, info.st_size, label=f"the file {name!r}", owned=True)
    except BaseException:
        handle.close()
        raise


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def _declared_size(stream: Any) -> int | None:
    size = getattr(stream, "size", None)  # Django's File and UploadedFile know their size
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _seekable_size(stream: Any, declared: int | None) -> int | None:
    """The size of a file object from its start when it can seek there (``declared`` when given); else None."""
    try:
        if callable(getattr(stream, "seekable", None)) and not stream.seekable():
            return None
        stream.seek(0)
        if declared is not None:
            return declared
        end = stream.seek(0, io.SEEK_END)
        return int(end if isinstance(end, int) else stream.tell())
    except Exception:  # noqa: BLE001 - not seekable (or a broken seek): spool it
        return None


def _open_stream(stream: Any, max_size: int | None) -> UploadSource:
    label = f"the file object {getattr(stream, 'name', None) or type(stream).__name__!r}"
    declared = _declared_size(stream)
    if declared is not None:
        _check_size(declared, max_size)  # before reading a byte
    size = _seekable_size(stream, declared)
    if size is not None:
        _check_size(size, max_size)
        return UploadSource(stream, size, label=label, owned=False)
    # Unknown size (a pipe, a socket): copy it to a temporary file, refusing it once it passes max_size.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the UploadSource
    try:
        total = 0
        while True:
            try:
                piece = stream.read(_COPY_CHUNK)
            except Exception as exc:
                raise _unreadable(f"Could not read {label}: {exc}", exc) from exc
            if isinstance(piece, str):
                raise _unreadable(f"{label} is open in text mode; open it in binary mode ('rb').")
            if not piece:
                break
            total += len(piece)
            _check_size(total, max_size)
            spool.write(piece)
        return UploadSource(spool, total, label=label, owned=True)
    except BaseException:
        spool.close()
        raise
