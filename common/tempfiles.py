"""Temporary files and workspaces under one managed root, cleaned up however the work ends.

Layout under ``app_settings.TEMP_DIR`` (read at call time)::

    <root>/                 loose temp files and directories
    <root>/users/<user_id>/ per-user workspaces
    <root>/jobs/<job_id>/   per-job workspaces (spared by the age-based cleanup while the job is live)

:meth:`TempFileManager.temp_file` and :meth:`TempFileManager.temp_directory`
return objects that are both sync and async context managers. The path is
removed on exit whatever happens: normal exit, an exception, or asyncio
cancellation (the removal runs to completion even if the task is cancelled
again while it waits). Paths in use are tracked in a process-wide, thread-safe
registry that the age-based cleanup (:mod:`common.maintenance`) consults.

No path under the root is ever reached through a symbolic link (:mod:`common.fs`):
creating a path where ``jobs``, ``users`` or the workspace is a link raises
:class:`~common.errors.ResourceError` with code ``UNSAFE_PATH``; a workspace cleanup
in that state is refused (``stats.refused``, logged with ``event=temp_cleanup_refused``);
a link that *is* an entry (a workspace, a file) is unlinked itself, its target never touched.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from uuid import UUID

from common import resources
from common.errors import ResourceError, ValidationError
from common.fs import CleanupStats, create_entry, managed_root, open_chain, remove_below
from common.log import get_logger

__all__ = ["JOBS_DIRNAME", "USERS_DIRNAME", "TempFileManager", "TempPath", "is_path_in_use", "temp_file_manager"]

logger = get_logger(__name__)

USERS_DIRNAME = "users"
JOBS_DIRNAME = "jobs"

# Ids become one path component: letters, digits, dot, dash, underscore; never "." or "..".
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_UNSAFE_AFFIX = re.compile(r"[/\\\x00]")
_CREATE_ATTEMPTS = 3


# --------------------------------------------------------------------------- registry of paths in use


class _ActivePaths:
    """Paths held by open temp contexts, shared by every manager in the process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, path: Path | str) -> None:
        with self._lock:
            key = str(path)
            self._counts[key] = self._counts.get(key, 0) + 1

    def discard(self, path: Path | str) -> None:
        with self._lock:
            key = str(path)
            count = self._counts.get(key, 0) - 1
            if count > 0:
                self._counts[key] = count
            else:
                self._counts.pop(key, None)

    def snapshot(self) -> list[Path]:
        with self._lock:
            return [Path(p) for p in self._counts]

    def covers(self, path: Path | str) -> bool:
        """True when ``path`` (absolute) is an active path or lies inside an active directory."""
        if not self._counts:  # the common case, read without the lock (a dict's truth value is atomic)
            return False
        candidate = os.fspath(path)
        with self._lock:
            for active in self._counts:
                if candidate == active or candidate.startswith(active + os.sep):
                    return True
        return False


_active = _ActivePaths()


def is_path_in_use(path: Path | str) -> bool:
    """True when ``path`` is held by an open temp context (or lies inside one) in this process."""
    return _active.covers(os.path.abspath(path))


# --------------------------------------------------------------------------- contexts


class TempPath:
    """A temp file or directory, usable as ``with`` or ``async with``; removed on exit, always."""

    def __init__(self, create: Callable[[], Path], remove: Callable[[Path], None], *, is_dir: bool) -> None:
        self._create = create
        self._remove = remove
        self._is_dir = is_dir
        self._entered = False
        self.path: Path | None = None

    def __enter__(self) -> Path:
        if self._entered:
            raise RuntimeError("a temp context can only be entered once")
        self._entered = True
        self.path = self._create()
        return self.path

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    async def __aenter__(self) -> Path:
        # Creating one file or directory is a few fast syscalls; doing it inline means a
        # cancellation can never land between "created" and "handed to the caller".
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._is_dir:
            self._release()
            return
        # A workspace may hold gigabytes of frames: remove it in a thread, and see it through even if
        # this task is cancelled (again) meanwhile, then let the cancellation propagate.
        future = asyncio.ensure_future(asyncio.to_thread(self._release))
        cancelled = False
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    def _release(self) -> None:
        path = self.path
        if path is None:
            return
        try:
            self._remove(path)
        finally:
            # Only now may the age-based cleanup consider the path (it is gone anyway).
            _active.discard(path)
            self.path = None


def _remove_temp_path(root: str, parts: tuple[str, ...], path: Path, *, is_dir: bool) -> None:
    """Remove ``path`` (``root/parts.../name``), reaching it without following any link; log what fails."""
    # One unlink, as before issue 13: through remove_below a temp file costs ~10 % more (bench/tempfiles.py (c)).
    if not is_dir and _unlink_quickly(root, parts, path.name):
        return
    stats = remove_below(root, parts, path.name, what=f"removal of temporary path {path}", record=False)
    for failure in stats.failures:
        if failure["error"] != stats.refused:  # a refusal is logged as such
            _log_removal_error(failure["path"], failure["error"])


def _unlink_quickly(root: str, parts: tuple[str, ...], name: str) -> bool:
    """The common case, a temp file: one unlink relative to its directory. False: take the long way, which reports."""
    try:
        parent_fd = open_chain(root, parts, create=False)
    except (ResourceError, OSError):
        return False
    if parent_fd is None:
        return True  # the caller removed its workspace itself
    try:
        os.unlink(name, dir_fd=parent_fd)  # a file, or whatever the caller put there: never followed
    except FileNotFoundError:
        return True
    except OSError:  # a directory the caller put there instead, or an error remove_below will report
        return False
    finally:
        os.close(parent_fd)
    return True


def _log_removal_error(path: str, error: str) -> None:
    logger.warning(
        "could not remove temporary path %s: %s",
        path,
        error,
        extra={"event": "temp_cleanup_failed", "path": path, "error": error},
    )


def _creation_failed(what: str, where: Path, exc: OSError) -> ResourceError:
    """The error for a temp path the operating system would not create (permissions, full disk, ...)."""
    return ResourceError(
        f"Could not create a {what} in {where}: {exc.strerror or exc}.",
        details={"resource": "disk", "path": str(where), "error": exc.strerror or str(exc)},
    )


def _validate_id(value: object, what: str) -> str:
    text = str(value) if isinstance(value, (str, int, UUID)) and not isinstance(value, bool) else None
    if text is None or not _SAFE_ID.match(text) or text in (".", ".."):
        raise ValidationError(
            f"{what} {value!r} cannot name a temp directory: use 1-128 letters, digits, '.', '-' or '_' "
            "(no slashes, no '..', not absolute, not empty)",
            details={"field": what, "value": repr(value)},
        )
    return text


def _validate_affix(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or _UNSAFE_AFFIX.search(value) or len(value) > 128:
        raise ValidationError(
            f"{what} {value!r} must be a short string without '/', '\\' or NUL",
            details={"field": what, "value": repr(value)},
        )
    return value


class TempFileManager:
    """Creates temp files and per-user/per-job workspaces under the managed root, and cleans them up."""

    def __init__(self, root: Path | str | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        """The managed temp root: ``root`` given at construction, else ``app_settings.TEMP_DIR``."""
        if self._root is not None:
            return managed_root(self._root)
        from common.conf import app_settings

        return managed_root(app_settings.TEMP_DIR)

    # ---- layout

    def user_directory_path(self, user_id: object) -> Path:
        """Return (without creating) the workspace path of ``user_id``.

        Raises:
            ValidationError: when the id could escape the root.
        """
        return self.root / USERS_DIRNAME / _validate_id(user_id, "user_id")

    def job_directory_path(self, job_id: object) -> Path:
        """Return (without creating) the workspace path of ``job_id``.

        Raises:
            ValidationError: when the id could escape the root.
        """
        return self.root / JOBS_DIRNAME / _validate_id(job_id, "job_id")

    def _workspace(self, kind: str, ident: object) -> Path:
        """Create (mode 0700) or reuse a workspace, never through a link, and mark it as just used.

        The age-based cleanup removes old *empty* directories; touching one that is
        handed out means a caller about to write into it does not lose it meanwhile.
        """
        parts = (kind, _validate_id(ident, "user_id" if kind == USERS_DIRNAME else "job_id"))
        root = self.root
        try:
            fd = open_chain(str(root), parts, create=True)
            assert fd is not None
            try:
                os.utime(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _creation_failed("workspace", root.joinpath(*parts), exc) from exc
        return root.joinpath(*parts)

    def get_user_temp_directory(self, user_id: object) -> Path:
        """Return the workspace of ``user_id``, creating it (mode 0700) if needed.

        Raises:
            ValidationError: when the id could escape the root.
            ResourceError: ``UNSAFE_PATH`` when ``users`` or the workspace is a symlink (never followed).
        """
        return self._workspace(USERS_DIRNAME, user_id)

    def get_job_temp_directory(self, job_id: object) -> Path:
        """Return the workspace of ``job_id``, creating it (mode 0700) if needed.

        Raises:
            ValidationError: when the id could escape the root.
            ResourceError: ``UNSAFE_PATH`` when ``jobs`` or the workspace is a symlink (never followed).
        """
        return self._workspace(JOBS_DIRNAME, job_id)

    def _parts(self, user_id: object | None, job_id: object | None) -> tuple[str, ...]:
        # A job workspace wins over a user one: the job's status is what protects it from the cleanup.
        if job_id is not None:
            return (JOBS_DIRNAME, _validate_id(job_id, "job_id"))
        if user_id is not None:
            return (USERS_DIRNAME, _validate_id(user_id, "user_id"))
        return ()

    # ---- contexts

    def temp_file(
        self,
        suffix: str | None = None,
        *,
        user_id: object | None = None,
        job_id: object | None = None,
        prefix: str | None = None,
        min_free_bytes: int | None = None,
    ) -> TempPath:
        """Return a context that creates an empty temp file (mode 0600) and removes it on exit.

        Args:
            suffix: file name suffix, e.g. ``".mp4"``.
            user_id: put it in the user's workspace.
            job_id: put it in the job's workspace (wins over ``user_id``).
            prefix: file name prefix.
            min_free_bytes: refuse with ``ResourceError`` unless this much disk is free there.

        Raises:
            ValidationError: for an id, suffix or prefix that could escape the root.
            ResourceError: on entry, ``UNSAFE_PATH`` when a directory on the way is a symlink
                (never followed), or ``RESOURCE_EXHAUSTED`` for ``min_free_bytes``.
        """
        return self._context(suffix, prefix, user_id, job_id, min_free_bytes, is_dir=False)

    def temp_directory(
        self,
        prefix: str | None = None,
        *,
        user_id: object | None = None,
        job_id: object | None = None,
        suffix: str | None = None,
        min_free_bytes: int | None = None,
    ) -> TempPath:
        """Return a context that creates a temp directory (mode 0700) and removes it, contents and all, on exit.

        Args:
            prefix: directory name prefix, e.g. ``"render_"``.
            user_id: put it in the user's workspace.
            job_id: put it in the job's workspace (wins over ``user_id``).
            suffix: directory name suffix.
            min_free_bytes: refuse with ``ResourceError`` unless this much disk is free there.

        Raises:
            ValidationError: for an id, prefix or suffix that could escape the root.
            ResourceError: on entry, ``UNSAFE_PATH`` when a directory on the way is a symlink
                (never followed), or ``RESOURCE_EXHAUSTED`` for ``min_free_bytes``.
        """
        return self._context(suffix, prefix, user_id, job_id, min_free_bytes, is_dir=True)

    def _context(
        self,
        suffix: str | None,
        prefix: str | None,
        user_id: object | None,
        job_id: object | None,
        min_free_bytes: int | None,
        *,
        is_dir: bool,
    ) -> TempPath:
        suffix = _validate_affix(suffix, "suffix")
        prefix = _validate_affix(prefix, "prefix")
        parts = self._parts(user_id, job_id)
        root = self.root
        base = root.joinpath(*parts)

        what = "directory" if is_dir else "file"

        def create() -> Path:
            try:
                return attempt_create()
            except ResourceError:
                raise
            except OSError as exc:  # permissions, a full disk, a read-only file system
                raise _creation_failed(f"temp {what}", base, exc) from exc

        def attempt_create() -> Path:
            for attempt in range(_CREATE_ATTEMPTS):
                try:
                    fd = open_chain(str(root), parts, create=True)
                    assert fd is not None
                except FileNotFoundError:
                    continue  # the age-based cleanup removed the (old, empty) workspace between mkdir and open
                try:
                    if min_free_bytes is not None and attempt == 0:
                        resources.ensure_free_disk(min_free_bytes, path=base)
                    name = create_entry(fd, prefix, suffix, is_dir=is_dir)
                except FileNotFoundError:
                    continue  # the same race after the open: the directory behind ``fd`` is gone
                finally:
                    os.close(fd)
                path = base / name
                _active.add(path)
                return path
            raise ResourceError(
                f"Could not create a temp {what} in {base}: the directory kept vanishing "
                f"({_CREATE_ATTEMPTS} attempts; is another process removing it?).",
                details={"resource": "disk", "path": str(base)},
            )

        return TempPath(create, lambda path: _remove_temp_path(str(root), parts, path, is_dir=is_dir), is_dir=is_dir)

    # ---- tracking

    def active_paths(self) -> list[Path]:
        """Paths currently held by open temp contexts in this process."""
        return _active.snapshot()

    def is_in_use(self, path: Path | str) -> bool:
        """True when ``path`` is held by an open temp context (or lies inside one)."""
        return is_path_in_use(path)

    # ---- bulk cleanup

    def _cleanup_workspace(self, kind: str, ident: object, *, dry_run: bool) -> CleanupStats:
        name = _validate_id(ident, "user_id" if kind == USERS_DIRNAME else "job_id")
        stats = remove_below(
            str(self.root),
            (kind,),
            name,
            what=f"cleanup of {kind[:-1]} workspace {name}",
            skip=lambda p: "in_use" if _active.covers(p) else None,
            dry_run=dry_run,
        )
        if not stats.refused:
            _log_cleanup(kind[:-1], ident, stats)
        return stats

    def cleanup_user_temp_files(self, user_id: object, *, dry_run: bool = False) -> CleanupStats:
        """Remove the workspace of ``user_id`` (sparing paths still held by open contexts).

        A ``users`` directory that is a symlink is refused (``stats.refused`` says
        why, logged as ``event=temp_cleanup_refused``); a workspace that is a
        symlink is unlinked, its target never touched.

        Raises:
            ValidationError: when the id could escape the root.
        """
        return self._cleanup_workspace(USERS_DIRNAME, user_id, dry_run=dry_run)

    def cleanup_job_temp_files(self, job_id: object, *, dry_run: bool = False) -> CleanupStats:
        """Remove the workspace of ``job_id`` (sparing paths still held by open contexts).

        A ``jobs`` directory that is a symlink is refused (``stats.refused`` says
        why, logged as ``event=temp_cleanup_refused``); a workspace that is a
        symlink is unlinked, its target never touched.

        Raises:
            ValidationError: when the id could escape the root.
        """
        return self._cleanup_workspace(JOBS_DIRNAME, job_id, dry_run=dry_run)

    async def acleanup_user_temp_files(self, user_id: object, *, dry_run: bool = False) -> CleanupStats:
        """Async twin of :meth:`cleanup_user_temp_files` (runs in a thread)."""
        return await asyncio.to_thread(self.cleanup_user_temp_files, user_id, dry_run=dry_run)

    async def acleanup_job_temp_files(self, job_id: object, *, dry_run: bool = False) -> CleanupStats:
        """Async twin of :meth:`cleanup_job_temp_files` (runs in a thread)."""
        return await asyncio.to_thread(self.cleanup_job_temp_files, job_id, dry_run=dry_run)


def _log_cleanup(kind: str, ident: object, stats: CleanupStats) -> None:
    logger.info(
        "removed %s temp workspace %s: %d files, %d dirs, %d bytes",
        kind,
        ident,
        stats.files_removed,
        stats.dirs_removed,
        stats.bytes_freed,
        extra={
            "event": "temp_workspace_cleaned",
            "workspace": kind,
            "workspace_id": str(ident),
            "files_removed": stats.files_removed,
            "bytes_freed": stats.bytes_freed,
            "errors": stats.errors,
            "dry_run": stats.dry_run,
        },
    )


temp_file_manager = TempFileManager()
