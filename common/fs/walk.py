"""Opening, creating and walking below a managed root without ever following a symbolic link (see :mod:`common.fs`)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.errors import ResourceError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
# Descriptors one walk keeps open at most; deeper levels are reopened through ".." and verified.
MAX_OPEN_FDS = 32
UNSAFE_PATH = "UNSAFE_PATH"
_FILE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NAME_ATTEMPTS = 100


def managed_root(configured: str | os.PathLike[str]) -> Path:
    """The absolute form of a configured root (``TEMP_DIR``, ``CACHE_DIR``): ``~`` expanded, links left as they are."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(configured))))


# --------------------------------------------------------------------------- opening without following


def describe_entry(parent_fd: int | None, name: str) -> str:
    """Say what ``name`` in ``parent_fd`` (or the path ``name``) is, for a refusal message."""
    try:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=parent_fd)
            return f"is a symbolic link (to {target}); links under a managed root are never followed"
    except OSError as exc:
        return f"cannot be examined ({exc.strerror or exc})"
    kinds = {stat.S_ISREG: "a regular file", stat.S_ISFIFO: "a fifo", stat.S_ISSOCK: "a socket"}
    kind = next((label for test, label in kinds.items() if test(mode)), "a special file")
    return f"is {kind}, not a directory"


def _open_dir(parent_fd: int | None, name: str, path: str, *, create: bool) -> int | None:
    for attempt in (1, 2):
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create or parent_fd is None or attempt == 2:  # attempt 2: removed again at once; caller retries
                if create:
                    raise
                return None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            reason = describe_entry(parent_fd, name)
            raise ResourceError(
                f"Refused: {path} {reason}. Remove or rename it, then try again.",
                code=UNSAFE_PATH,
                details={"resource": "disk", "path": path, "reason": reason},
            ) from None
    raise AssertionError("unreachable")


def open_root(path: str, *, create: bool) -> int | None:
    """Open the managed root ``path`` (absolute); ``None`` when it is missing and ``create`` is false.

    Its parents are trusted as configured; the root itself is created with mode
    0700 when ``create``, and must not be a symlink.

    Raises:
        ResourceError: ``UNSAFE_PATH`` when the root is a symlink or not a directory.
    """
    fd = _open_dir(None, path, path, create=False)
    if fd is None and create:
        with contextlib.suppress(FileExistsError):  # a dangling link or a file: refused just below
            Path(path).mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = _open_dir(None, path, path, create=True)
    return fd


def open_below(top_fd: int, top_path: str, parts: tuple[str, ...], *, create: bool) -> int | None:
    """Open ``parts`` below the directory open as ``top_fd`` (named ``top_path``), one at a time, never via a link.

    Missing components are created (mode 0700) when ``create``. Returns a new
    descriptor (the caller closes it), or ``None`` when a component is missing.

    Raises:
        ResourceError: ``UNSAFE_PATH`` when a component is a symlink or not a directory.
    """
    return _descend(os.dup(top_fd), top_path, parts, create=create)


def _descend(fd: int, path: str, parts: tuple[str, ...], *, create: bool) -> int | None:
    """Open ``parts`` below ``fd``, which this consumes (closes)."""
    current: int | None = fd
    try:
        for part in parts:
            path = os.path.join(path, part)
            child = _open_dir(current, part, path, create=create)
            os.close(current)  # type: ignore[arg-type]  # not None inside the loop
            current = child
            if current is None:
                return None
    except BaseException:
        if current is not None:
            os.close(current)
        raise
    return current


def open_chain(root: str, parts: tuple[str, ...], *, create: bool) -> int | None:
    """Open ``root/parts...`` (see :func:`open_root` and :func:`open_below`); the caller closes the descriptor."""
    fd = open_root(root, create=create)
    return None if fd is None else _descend(fd, root, parts, create=create)


def create_entry(dir_fd: int, prefix: str | None, suffix: str | None, *, is_dir: bool) -> str:
    """Create a new empty file (0600) or directory (0700) with a random name in ``dir_fd``; return the name."""
    for _ in range(_NAME_ATTEMPTS):
        name = f"{'tmp' if prefix is None else prefix}{secrets.token_hex(8)}{suffix or ''}"
        try:
            if is_dir:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            else:
                os.close(os.open(name, _FILE_FLAGS, 0o600, dir_fd=dir_fd))
        except FileExistsError:
            continue
        return name
    raise FileExistsError(f"no free temp name after {_NAME_ATTEMPTS} attempts")  # pragma: no cover


# --------------------------------------------------------------------------- the walk


@dataclass(eq=False)
class Frame:
    """One directory on the walk's stack."""

    name: str
    path: str
    st: os.stat_result
    fd: int | None
    names: list[str]
    kept: int = 0


ENTRY = "entry"
LEAVE = "leave"
Descend = Literal["entered", "gone", "kept"]


class Walk:
    """An iterative walk of the tree open as ``top_fd`` that never follows a link.

    Iterating yields ``(ENTRY, frame, name, st)`` for every entry (``st`` from
    ``lstat``; ``frame`` is its directory) and ``(LEAVE, frame, "", st)`` when
    a directory entered with :meth:`descend` is finished (its parent is then
    :attr:`current`, with an open ``fd``). The top itself is never left. The
    caller keeps ``top_fd``; :meth:`close` closes every other descriptor.
    """

    def __init__(
        self, top_fd: int, top_path: str, on_error: Callable[[str, str], None], *, max_open: int = MAX_OPEN_FDS
    ) -> None:
        self.top = Frame(name="", path=top_path, st=os.fstat(top_fd), fd=top_fd, names=[])
        self._stack = [self.top]
        self._on_error = on_error
        self._max_open = max(max_open, 2)
        self._open = 0  # descriptors open besides the top's
        self._low = 1  # frames [_low, len) hold open descriptors (besides the top)
        self.aborted = False

    @property
    def current(self) -> Frame:
        """The directory whose entries are being visited."""
        return self._stack[-1]

    def start(self, names: list[str] | None = None) -> bool:
        """List the top directory (or visit only ``names`` of it); False (reported) when it cannot be read."""
        listed = self._list(self.top) if names is None else list(reversed(names))
        if listed is None:
            return False
        self.top.names = listed
        return True

    def _list(self, frame: Frame) -> list[str] | None:
        try:
            with os.scandir(frame.fd) as it:
                names = [entry.name for entry in it]
        except OSError as exc:
            self._on_error(frame.path, exc.strerror or str(exc))
            return None
        names.reverse()  # popped from the end: visited in directory order
        return names

    def descend(self, frame: Frame, name: str, st: os.stat_result) -> Descend:
        """Enter directory ``name`` of ``frame`` (as ``st`` saw it): its entries come next.

        ``"gone"``: it vanished; ``"kept"``: unreadable (reported) or swapped since ``st`` (the next run looks again).
        """
        path = frame.path + os.sep + name
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=frame.fd)
        except FileNotFoundError:
            return "gone"
        except OSError as exc:  # ENOTDIR: replaced by a link or a file since the lstat
            self._on_error(path, exc.strerror or str(exc))
            return "kept"
        child = Frame(name=name, path=path, st=st, fd=fd, names=[])
        if not os.path.samestat(st, os.fstat(fd)):
            os.close(fd)
            return "kept"
        names = self._list(child)
        if names is None:
            os.close(fd)
            return "kept"
        child.names = names
        self._stack.append(child)
        self._open += 1
        if self._open > self._max_open:
            low = self._stack[self._low]
            if low.fd is not None:
                os.close(low.fd)
                low.fd = None
                self._open -= 1
            self._low += 1
        return "entered"

    def __iter__(self) -> Iterator[tuple[str, Frame, str, os.stat_result]]:
        stack = self._stack
        while True:
            frame = stack[-1]
            if frame.names:
                name = frame.names.pop()
                try:
                    st = os.stat(name, dir_fd=frame.fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    self._on_error(frame.path + os.sep + name, exc.strerror or str(exc))
                    frame.kept += 1
                    continue
                yield ENTRY, frame, name, st
                continue
            if frame is self.top:
                return
            if not self._pop():
                return
            yield LEAVE, frame, "", frame.st

    def _pop(self) -> bool:
        child = self._stack.pop()
        parent = self._stack[-1]
        if parent.fd is None:
            # Reopen the parent through "..", and make sure it is the directory we came down from.
            try:
                fd = os.open("..", DIR_FLAGS, dir_fd=child.fd)
            except OSError as exc:
                return self._abort(child, parent, exc.strerror or str(exc))
            if not os.path.samestat(parent.st, os.fstat(fd)):
                os.close(fd)
                return self._abort(child, parent, "moved during the walk; stopped to stay inside the root")
            parent.fd = fd
            self._open += 1
            self._low = len(self._stack) - 1
        assert child.fd is not None
        os.close(child.fd)
        child.fd = None
        self._open -= 1
        return True

    def _abort(self, child: Frame, parent: Frame, reason: str) -> bool:
        self._on_error(parent.path, reason)
        self._stack.append(child)  # closed by close()
        self.aborted = True
        self.top.kept += 1
        return False

    def close(self) -> None:
        """Close every descriptor the walk opened (not the top's)."""
        for frame in self._stack[1:]:
            if frame.fd is not None:
                os.close(frame.fd)
                frame.fd = None
        del self._stack[1:]
        self._open = 0
