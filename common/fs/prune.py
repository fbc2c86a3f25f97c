"""Removing below a managed root without following a link: by age, whole entries, and the LRU size cap.

Everything here works through :mod:`common.fs.walk` and knows nothing of jobs or settings: the caller
says what to spare (``skip``) and how old or how large is too much (:mod:`common.maintenance`,
:mod:`common.tempfiles`). Errors are collected in the statistics (:mod:`common.fs.stats`), not raised.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.errors import ResourceError
from common.fs.stats import CacheEvictionStats, CleanupStats, FailureReport, SkipReason, refuse
from common.fs.walk import ENTRY, LEAVE, Walk, open_below, open_chain

__all__ = ["evict_lru", "open_reporting", "prune_entry", "prune_tree", "remove_below"]


def open_reporting(root: str, parts: tuple[str, ...], stats: FailureReport, *, path: str, what: str) -> int | None:
    """Open ``root/parts...`` as :func:`~common.fs.walk.open_chain` does; ``None`` when missing or not opened.

    A link (or non-directory) on the way is refused into ``stats`` (:func:`refuse`, naming ``what``);
    another operating-system error becomes one failure recorded at ``path``.
    """
    try:
        return open_chain(root, parts, create=False)
    except ResourceError as exc:
        refuse(stats, exc, what=what)
    except OSError as exc:
        stats.failures.append({"path": path, "error": exc.strerror or str(exc)})
    return None


# --------------------------------------------------------------------------- pruning


@dataclass
class _Pruner:
    """Removes old entries bottom-up, never following a link; counts into ``stats``."""

    stats: CleanupStats
    cutoff: float | None
    skip: Callable[[str], SkipReason | None] | None
    dry_run: bool
    record: bool
    stop: threading.Event | None = None
    progress: Callable[[CleanupStats], None] | None = None

    def old(self, st: os.stat_result) -> bool:
        return self.cutoff is None or st.st_mtime <= self.cutoff

    def fail(self, path: str, error: str) -> None:
        self.stats.failures.append({"path": path, "error": error})

    def removed(self, path: str, kind: str, size: int) -> None:
        if self.record:
            self.stats.removed.append({"path": path, "kind": kind, "bytes": size})

    def keep(self, path: str, st: os.stat_result) -> bool:
        """True when ``path`` stays: held in use, a live job's workspace, or (not a directory) too recent."""
        reason = self.skip(path) if self.skip is not None else None
        if reason == "in_use":
            self.stats.skipped_in_use += 1
        elif reason == "live_job":
            self.stats.skipped_live_jobs += 1
        elif not stat.S_ISDIR(st.st_mode) and not self.old(st):
            self.stats.skipped_recent += 1
            return True
        return reason is not None

    def remove(self, dir_fd: int | None, name: str, path: str, st: os.stat_result) -> bool:
        """Unlink an entry, or rmdir an emptied old directory; True when it is (or would be) gone."""
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir and not self.old(st):  # ``st`` predates the walk: emptying it does not make it look new
            self.stats.skipped_recent += 1
            return False
        if not self.dry_run:
            try:
                os.rmdir(name, dir_fd=dir_fd) if is_dir else os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return True
            except OSError as exc:
                if not is_dir:  # a directory written into meanwhile is kept, not an error
                    self.fail(path, exc.strerror or str(exc))
                return False
        if is_dir:
            self.stats.dirs_removed += 1
            self.removed(path, "dir", 0)
        else:
            self.stats.files_removed += 1
            self.stats.bytes_freed += st.st_size
            self.removed(path, "link" if stat.S_ISLNK(st.st_mode) else "file", st.st_size)
        return True

    def run(self, top_fd: int, top_path: str, names: list[str] | None = None) -> bool:
        """Prune below ``top_fd`` (only ``names`` of it, if given); True when nothing is left of them."""
        walk = Walk(top_fd, top_path, self.fail)
        if not walk.start(names):
            return False
        try:
            for kind, frame, name, st in walk:
                if kind == LEAVE:
                    parent = walk.current
                    if frame.kept or not self.remove(parent.fd, frame.name, frame.path, st):
                        parent.kept += 1
                    continue
                if self.stop is not None and self.stop.is_set():
                    self.stats.interrupted = True
                    return False
                self.stats.scanned += 1
                if self.progress is not None:
                    self.progress(self.stats)
                path = frame.path + os.sep + name
                if self.keep(path, st):
                    frame.kept += 1
                elif stat.S_ISDIR(st.st_mode):
                    if walk.descend(frame, name, st) == "kept":
                        frame.kept += 1
                elif not self.remove(frame.fd, name, path, st):
                    frame.kept += 1
        finally:
            walk.close()
        return walk.top.kept == 0 and not walk.aborted


def _cutoff(max_age_hours: float | None) -> float | None:
    return None if max_age_hours is None else time.time() - max_age_hours * 3600


def prune_entry(
    parent_fd: int,
    name: str,
    path: str,
    *,
    max_age_hours: float | None,
    skip: Callable[[str], SkipReason | None] | None = None,
    dry_run: bool = False,
    record: bool = True,
) -> CleanupStats:
    """Remove the entry ``name`` of the directory open as ``parent_fd`` (``path`` names it), following no link.

    A directory is emptied bottom-up, then removed; anything else (a file, a
    link, a fifo, a socket) is unlinked. Errors are collected in the stats.
    """
    stats = CleanupStats(dry_run=dry_run, root=path, max_age_hours=max_age_hours)
    _Pruner(stats, _cutoff(max_age_hours), skip, dry_run, record).run(parent_fd, os.path.dirname(path), [name])
    return stats


def prune_tree(
    root: Path | str,
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

    ``max_age_hours=None`` removes regardless of age. ``skip(path)`` (an
    absolute ``str``) may return ``"in_use"`` or ``"live_job"`` to leave a path
    (and everything below it) alone. No link is followed at any depth; a
    ``root`` that is itself a link is refused (``stats.refused``).
    ``include_root`` also removes ``root`` (when old) once it is empty. Errors
    are collected in the stats, not raised.
    """
    top = os.path.abspath(root)
    names: list[str] | None = None
    stats = CleanupStats(dry_run=dry_run, root=top, max_age_hours=max_age_hours)
    pruner = _Pruner(stats, _cutoff(max_age_hours), skip, dry_run, record, stop, progress)
    fd = open_reporting(top, (), stats, path=top, what=f"cleanup of {top}")
    if fd is not None and include_root:  # walk the root as the one entry of its (trusted) parent
        os.close(fd)
        fd = os.open(os.path.dirname(top), os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        top, names = os.path.dirname(top), [os.path.basename(top)]
    if fd is not None:
        try:
            pruner.run(fd, top, names)
        finally:
            os.close(fd)
    return stats


def remove_below(
    root: str,
    parts: tuple[str, ...],
    name: str,
    *,
    what: str,
    skip: Callable[[str], SkipReason | None] | None = None,
    dry_run: bool = False,
    record: bool = True,
) -> CleanupStats:
    """Remove ``root/parts.../name`` whatever its age and kind, reaching it without following a link.

    A link (or non-directory) among ``root`` and ``parts`` refuses the removal (``stats.refused``, logged
    naming ``what``); a missing parent means there is nothing to remove.
    """
    path = os.path.join(root, *parts, name)
    stats = CleanupStats(dry_run=dry_run, root=path)
    parent_fd = open_reporting(root, parts, stats, path=path, what=what)
    if parent_fd is None:
        return stats
    try:
        return prune_entry(parent_fd, name, path, max_age_hours=None, skip=skip, dry_run=dry_run, record=record)
    finally:
        os.close(parent_fd)


# --------------------------------------------------------------------------- the cache cap


# (last use, path, size, directory path, directory (dev, ino), name, file (dev, ino))
_CacheFile = tuple[float, str, int, str, tuple[int, int], str, tuple[int, int]]


def _ident(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _scan_cache(root_fd: int, root: str, stats: CacheEvictionStats) -> list[_CacheFile]:
    """Every non-directory under the cache root (links and fifos included), reached without following a link."""
    files: list[_CacheFile] = []
    walk = Walk(root_fd, root, lambda path, error: stats.failures.append({"path": path, "error": error}))
    if not walk.start():
        return files
    try:
        for kind, frame, name, st in walk:
            if kind != ENTRY:
                continue
            if stat.S_ISDIR(st.st_mode):
                walk.descend(frame, name, st)
                continue
            used = max(st.st_atime, st.st_mtime)
            path = frame.path + os.sep + name
            files.append((used, path, st.st_size, frame.path, _ident(frame.st), name, _ident(st)))
    finally:
        walk.close()
    return files


def _open_scanned_dir(
    root_fd: int, root: str, path: str, expected: tuple[int, int], stats: CacheEvictionStats
) -> int | None:
    """Reopen directory ``path`` from the root without following links; ``None`` unless it is the one scanned."""
    parts = tuple(path[len(root) :].split(os.sep)[1:])
    try:
        fd = open_below(root_fd, root, parts, create=False)
    except ResourceError as exc:  # a link swapped in since the scan: never followed
        stats.failures.append({"path": path, "error": exc.message})
        return None
    except OSError as exc:
        stats.failures.append({"path": path, "error": exc.strerror or str(exc)})
        return None
    if fd is not None and _ident(os.fstat(fd)) != expected:
        os.close(fd)  # another directory renamed into place: look again next run
        return None
    return fd


def evict_lru(
    root: Path | str,
    max_bytes: int,
    *,
    skip: Callable[[str], bool] | None = None,
    dry_run: bool = False,
    record: bool = True,
    stop: threading.Event | None = None,
) -> CacheEvictionStats:
    """Evict the least recently used files under ``root`` until it holds at most ``max_bytes``.

    "Used" is the later of the access and modification times. Symlinks are
    counted and evicted as links, never followed; a path for which
    ``skip(path)`` is true is kept. A ``root`` that is itself a link is refused
    (``stats.refused``); errors are collected in the stats, not raised.
    """
    top = os.path.abspath(root)
    stats = CacheEvictionStats(limit_bytes=max_bytes, dry_run=dry_run, root=top)
    root_fd = open_reporting(top, (), stats, path=top, what="cache cap")
    if root_fd is not None:
        try:
            _evict(root_fd, top, max_bytes, stats, skip=skip, record=record, stop=stop)
        finally:
            os.close(root_fd)
    return stats


def _evict(
    root_fd: int,
    root: str,
    max_bytes: int,
    stats: CacheEvictionStats,
    *,
    skip: Callable[[str], bool] | None,
    record: bool,
    stop: threading.Event | None,
) -> None:
    """Evict the least recently used files below ``root_fd`` until at most ``max_bytes`` remain.

    Files are chosen oldest first, then unlinked directory by directory (one
    descriptor open at a time), each directory reopened from the root without
    following links and checked to be the one scanned; a file replaced since the
    scan (another inode) is left alone. Files that could not be evicted are
    made up for with the next oldest, in further rounds.
    """
    files = _scan_cache(root_fd, root, stats)
    total = sum(item[2] for item in files)
    stats.bytes_before = total
    files.sort()
    evicted: list[tuple[int, str, int]] = []
    position = 0
    while total > max_bytes and position < len(files) and not stats.interrupted:
        # Choose the oldest files that bring the total under the cap, grouped by directory.
        chosen: dict[str, list[tuple[int, _CacheFile]]] = {}
        projected = total
        while projected > max_bytes and position < len(files):
            item = files[position]
            if skip is None or not skip(item[1]):
                chosen.setdefault(item[3], []).append((position, item))
                projected -= item[2]
            position += 1
        for dir_path, items in chosen.items():
            if stop is not None and stop.is_set():
                stats.interrupted = True
                break
            dir_fd = None if stats.dry_run else _open_scanned_dir(root_fd, root, dir_path, items[0][1][4], stats)
            if dir_fd is None and not stats.dry_run:
                continue
            try:
                for index, (_used, path, size, _dir, _dir_id, name, file_id) in items:
                    if dir_fd is not None:
                        try:
                            if _ident(os.stat(name, dir_fd=dir_fd, follow_symlinks=False)) != file_id:
                                continue  # replaced since the scan
                            os.unlink(name, dir_fd=dir_fd)
                        except FileNotFoundError:
                            total -= size
                            continue
                        except OSError as exc:
                            stats.failures.append({"path": path, "error": exc.strerror or str(exc)})
                            continue
                    total -= size
                    stats.files_evicted += 1
                    stats.bytes_freed += size
                    if record:
                        evicted.append((index, path, size))
            finally:
                if dir_fd is not None:
                    os.close(dir_fd)
    evicted.sort()  # least recently used first, as chosen
    stats.evicted = [{"path": path, "bytes": size} for _index, path, size in evicted]
    stats.bytes_after = total
