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
registry that the age-based cleanup (:mod:`common.resources`) consults.

Removal never follows symbolic links: the tree walk opens every directory with
``O_NOFOLLOW`` relative to its parent's descriptor, so a link pointing out of the
root is unlinked itself and its target is never touched.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from uuid import UUID

from common.errors import ValidationError
from common.log import get_logger

__all__ = [
    "JOBS_DIRNAME",
    "USERS_DIRNAME",
    "CleanupStats",
    "TempFileManager",
    "TempPath",
    "is_path_in_use",
    "prune_tree",
    "temp_file_manager",
]

logger = get_logger(__name__)

USERS_DIRNAME = "users"
JOBS_DIRNAME = "jobs"

# Ids become one path component: letters, digits, dot, dash, underscore; never "." or "..".
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_UNSAFE_AFFIX = re.compile(r"[/\\\x00]")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_CREATE_ATTEMPTS = 3

SkipReason = Literal["in_use", "live_job"]


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


# --------------------------------------------------------------------------- safe tree pruning


class FailureReport:
    """Mixin for statistics dataclasses with a ``failures`` list: an ``errors`` count and ``to_dict``."""

    failures: list[dict[str, str]]

    @property
    def errors(self) -> int:
        """Number of entries that could not be examined or removed."""
        return len(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (``errors`` is the count, ``failures`` the details)."""
        data = asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses
        data["errors"] = self.errors
        return data


@dataclass
class CleanupStats(FailureReport):
    """What a cleanup removed (or, with ``dry_run``, would remove) and what it left alone."""

    files_removed: int = 0
    dirs_removed: int = 0
    bytes_freed: int = 0
    scanned: int = 0
    skipped_in_use: int = 0
    skipped_live_jobs: int = 0
    skipped_recent: int = 0
    dry_run: bool = False
    interrupted: bool = False
    root: str = ""
    max_age_hours: float | None = None
    removed: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


class _Pruner:
    """One walk of a tree: removes old entries bottom-up without following symlinks."""

    def __init__(
        self,
        stats: CleanupStats,
        *,
        cutoff: float | None,
        skip: Callable[[str], SkipReason | None],
        dry_run: bool,
        record: bool,
        stop: threading.Event | None,
        progress: Callable[[CleanupStats], None] | None,
    ) -> None:
        self.stats = stats
        self.cutoff = cutoff
        self.skip = skip
        self.dry_run = dry_run
        self.record = record
        self.stop = stop
        self.progress = progress

    def old(self, st: os.stat_result) -> bool:
        return self.cutoff is None or st.st_mtime <= self.cutoff

    def fail(self, path: str, exc: OSError) -> None:
        self.stats.failures.append({"path": path, "error": exc.strerror or str(exc)})

    def removed(self, path: str, kind: str, size: int) -> None:
        if self.record:
            self.stats.removed.append({"path": path, "kind": kind, "bytes": size})

    def prune_dir(self, dir_fd: int, dir_path: str) -> bool:
        """Prune the directory open as ``dir_fd``; True when it is (or would be) empty afterwards."""
        remaining = 0
        try:
            with os.scandir(dir_fd) as it:
                entries = list(it)
        except OSError as exc:
            self.fail(dir_path, exc)
            return False
        for entry in entries:
            if self.stop is not None and self.stop.is_set():
                self.stats.interrupted = True
                return False
            self.stats.scanned += 1
            if self.progress is not None:
                self.progress(self.stats)
            if not self.prune_entry(dir_fd, dir_path, entry):
                remaining += 1
        return remaining == 0

    def prune_entry(self, dir_fd: int, dir_path: str, entry: os.DirEntry[str]) -> bool:
        """Handle one entry; True when it is gone (or would be)."""
        path = os.path.join(dir_path, entry.name)
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return True
        except OSError as exc:
            self.fail(path, exc)
            return False
        reason = self.skip(path)
        if reason == "in_use":
            self.stats.skipped_in_use += 1
            return False
        if reason == "live_job":
            self.stats.skipped_live_jobs += 1
            return False
        if stat.S_ISDIR(st.st_mode):
            return self.prune_subdir(dir_fd, path, entry.name, st)
        # Regular files, symlinks (the link itself), fifos, sockets.
        if not self.old(st):
            self.stats.skipped_recent += 1
            return False
        kind = "link" if stat.S_ISLNK(st.st_mode) else "file"
        if not self.dry_run:
            try:
                os.unlink(entry.name, dir_fd=dir_fd)
            except FileNotFoundError:
                return True
            except OSError as exc:
                self.fail(path, exc)
                return False
        self.stats.files_removed += 1
        self.stats.bytes_freed += st.st_size
        self.removed(path, kind, st.st_size)
        return True

    def prune_subdir(self, dir_fd: int, path: str, name: str, st: os.stat_result) -> bool:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return True
        except OSError as exc:  # ELOOP: replaced by a symlink since the scan; leave it
            self.fail(path, exc)
            return False
        try:
            if not os.path.samestat(st, os.fstat(fd)):
                return False  # swapped since the scan; look again next run
            empty = self.prune_dir(fd, path)
        finally:
            os.close(fd)
        # ``st`` was taken before the walk, so removing children does not make the directory look new.
        if not empty or not self.old(st):
            if empty:
                self.stats.skipped_recent += 1
            return False
        if not self.dry_run:
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return True
            except OSError:
                # Not empty any more (a worker wrote into it meanwhile): keep it, not an error.
                return False
        self.stats.dirs_removed += 1
        self.removed(path, "dir", 0)
        return True


def prune_tree(
    root: Path,
    *,
    max_age_hours: float | None,
    skip: Callable[[str], SkipReason | None] | None = None,
    dry_run: bool = False,
    include_root: bool = False,
    record: bool = True,
    stop: threading.Event | None = None,
    progress: Callable[[CleanupStats], None] | None = None,
) -> CleanupStats:
    """Remove files, links and then empty directories under ``root`` last modified more than ``max_age_hours`` ago.

    ``max_age_hours=None`` removes regardless of age. ``skip(path)`` (an absolute ``str``) may return
    ``"in_use"`` or ``"live_job"`` to leave a path (and everything below it)
    alone. Symlinks are never followed. ``include_root`` also removes ``root``
    itself when it ends up empty. Errors are collected in the stats, not raised.
    """
    top = os.path.abspath(root)
    cutoff = None if max_age_hours is None else time.time() - max_age_hours * 3600
    stats = CleanupStats(dry_run=dry_run, root=top, max_age_hours=max_age_hours)
    pruner = _Pruner(
        stats,
        cutoff=cutoff,
        skip=skip or (lambda _path: None),
        dry_run=dry_run,
        record=record,
        stop=stop,
        progress=progress,
    )
    try:
        fd = os.open(top, _DIR_FLAGS)
    except FileNotFoundError:
        return stats
    except OSError as exc:
        pruner.fail(top, exc)
        return stats
    try:
        empty = pruner.prune_dir(fd, top)
    finally:
        os.close(fd)
    if include_root and empty and not stats.interrupted and pruner.skip(top) is None:
        if not dry_run:
            try:
                os.rmdir(top)
            except OSError:  # gone already, or written into meanwhile
                return stats
        stats.dirs_removed += 1
        pruner.removed(top, "dir", 0)
    return stats


# --------------------------------------------------------------------------- contexts


class TempPath:
    """A temp file or directory, usable as ``with`` or ``async with``; removed on exit, always."""

    def __init__(self, create: Callable[[], Path], *, is_dir: bool) -> None:
        self._create = create
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
        # Creating one file or directory is a single fast syscall; doing it inline means a
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
            if self._is_dir:
                shutil.rmtree(path, onerror=_log_rmtree_error)
            else:
                path.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        except OSError as exc:
            _log_removal_error(os.unlink, str(path), exc)
        finally:
            # Only now may the age-based cleanup consider the path (it is gone anyway).
            _active.discard(path)
            self.path = None


def _log_rmtree_error(func: Callable[..., Any], path: str, exc_info: tuple[Any, BaseException, Any]) -> None:
    _log_removal_error(func, path, exc_info[1])


def _log_removal_error(func: Callable[..., Any], path: str, exc: BaseException) -> None:
    if isinstance(exc, FileNotFoundError):
        return
    logger.warning(
        "could not remove temporary path %s: %s",
        path,
        exc,
        extra={"event": "temp_cleanup_failed", "path": path, "error": str(exc)},
    )


def _fresh_directory(path: Path) -> Path:
    """Create ``path`` if needed and mark it as just used.

    The age-based cleanup removes old *empty* directories; touching one that is
    handed out means a caller about to write into it does not lose it meanwhile.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.utime(path)
    return path


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
            configured = self._root
        else:
            from common.conf import app_settings

            configured = app_settings.TEMP_DIR
        return Path(os.path.abspath(os.path.expanduser(os.fspath(configured))))

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

    def get_user_temp_directory(self, user_id: object) -> Path:
        """Return the workspace of ``user_id``, creating it (mode 0700) if needed."""
        return _fresh_directory(self.user_directory_path(user_id))

    def get_job_temp_directory(self, job_id: object) -> Path:
        """Return the workspace of ``job_id``, creating it (mode 0700) if needed."""
        return _fresh_directory(self.job_directory_path(job_id))

    def _base(self, user_id: object | None, job_id: object | None) -> Path:
        # A job workspace wins over a user one: the job's status is what protects it from the cleanup.
        if job_id is not None:
            return self.job_directory_path(job_id)
        if user_id is not None:
            return self.user_directory_path(user_id)
        return self.root

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
        """
        suffix = _validate_affix(suffix, "suffix")
        prefix = _validate_affix(prefix, "prefix")
        base = self._base(user_id, job_id)

        def create() -> Path:
            def make() -> Path:
                fd, name = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=base)
                os.close(fd)
                return Path(name)

            return self._create_in(base, make, min_free_bytes)

        return TempPath(create, is_dir=False)

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
        """
        prefix = _validate_affix(prefix, "prefix")
        suffix = _validate_affix(suffix, "suffix")
        base = self._base(user_id, job_id)

        def create() -> Path:
            return self._create_in(
                base, lambda: Path(tempfile.mkdtemp(suffix=suffix, prefix=prefix, dir=base)), min_free_bytes
            )

        return TempPath(create, is_dir=True)

    def _create_in(self, base: Path, make: Callable[[], Path], min_free_bytes: int | None) -> Path:
        if min_free_bytes is not None:
            from common.resources import resource_manager

            base.mkdir(parents=True, exist_ok=True, mode=0o700)
            resource_manager.ensure_free_disk(min_free_bytes, path=base)
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                path = make()
            except FileNotFoundError:
                # First use of this workspace, or the age-based cleanup removed it (old and empty) just now.
                if attempt == _CREATE_ATTEMPTS - 1:
                    raise
                base.mkdir(parents=True, exist_ok=True, mode=0o700)
                continue
            _active.add(path)
            return path
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- tracking

    def active_paths(self) -> list[Path]:
        """Paths currently held by open temp contexts in this process."""
        return _active.snapshot()

    def is_in_use(self, path: Path | str) -> bool:
        """True when ``path`` is held by an open temp context (or lies inside one)."""
        return is_path_in_use(path)

    # ---- bulk cleanup

    def _cleanup_workspace(self, path: Path, *, dry_run: bool) -> CleanupStats:
        return prune_tree(
            path,
            max_age_hours=None,
            skip=lambda p: "in_use" if _active.covers(p) else None,
            dry_run=dry_run,
            include_root=True,
        )

    def cleanup_user_temp_files(self, user_id: object, *, dry_run: bool = False) -> CleanupStats:
        """Remove the workspace of ``user_id`` (sparing paths still held by open contexts).

        Raises:
            ValidationError: when the id could escape the root.
        """
        stats = self._cleanup_workspace(self.user_directory_path(user_id), dry_run=dry_run)
        _log_cleanup("user", user_id, stats)
        return stats

    def cleanup_job_temp_files(self, job_id: object, *, dry_run: bool = False) -> CleanupStats:
        """Remove the workspace of ``job_id`` (sparing paths still held by open contexts).

        Raises:
            ValidationError: when the id could escape the root.
        """
        stats = self._cleanup_workspace(self.job_directory_path(job_id), dry_run=dry_run)
        _log_cleanup("job", job_id, stats)
        return stats

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


def parse_job_id(name: str) -> str | None:
    """Return the canonical UUID string of a job directory name, or ``None`` if it is not a UUID."""
    try:
        return str(UUID(name))
    except ValueError:
        return None


temp_file_manager = TempFileManager()
