"""common.fs: the never-following walk, and the guard against hostile temp trees (issue 10).

The guard builds trees an attacker or a careless module could leave under a managed root (symlinks to
outside at every level, fifos, sockets, unreadable directories, 1,000 levels) and runs every cleanup
entry point over them: the age-based cleanup, the job and user workspace cleanups, the cache cap and the
removal of a temp directory on exit. It snapshots the outside tree (type, mode, size, mtime, content
hash or link target of every entry) before and after, and asserts nothing outside changed.

Unreadable directories: the tests run as root here, and root reads a mode-000 directory anyway (the
CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH capabilities). So when the effective uid is 0 each entry point
runs in a thread that first drops those two capabilities from its own effective set (``capset`` is
per thread on Linux); a mode-000 directory is then as unreadable to it as to any user. As another
user, ``chmod 000`` suffices and the thread runs unchanged.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.test import override_settings

from common import selectors
from common.errors import ResourceError
from common.fs import (
    ENTRY,
    LEAVE,
    CacheEvictionStats,
    CleanupStats,
    Walk,
    create_entry,
    evict_lru,
    managed_root,
    open_below,
    open_chain,
    open_reporting,
    open_root,
    prune,
    prune_tree,
    remove_below,
)
from common.maintenance import ResourceManager
from common.tempfiles import TempFileManager

OLD = time.time() - 48 * 3600
DEPTH = 1000
T = TypeVar("T")


# --------------------------------------------------------------------------- helpers


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_dac_capabilities() -> None:
    """Clear CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) from this thread's effective set."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (_CapData * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    data[0].effective &= ~((1 << 1) | (1 << 2))
    assert libc.capset(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())


def as_unprivileged(func: Callable[[], T]) -> T:
    """Run ``func`` in a thread for which mode-000 directories are unreadable (see the module docstring)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if os.geteuid() == 0:
                _drop_dac_capabilities()
            result.append(func())
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def snapshot(top: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``top`` (itself included): type, mode, size, mtime, and content hash or link target."""
    seen: dict[str, tuple[Any, ...]] = {}
    stack = [str(top)]
    while stack:
        path = stack.pop()
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            seen[path] = ("link", os.readlink(path), st.st_mtime_ns)
            continue
        if stat.S_ISDIR(st.st_mode):
            seen[path] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, sorted(os.listdir(path)))
            stack.extend(os.path.join(path, name) for name in os.listdir(path))
            continue
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
        seen[path] = ("other", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return seen


class Builder:
    """Creates entries and remembers them, so every one can be aged afterwards (any depth, no recursion)."""

    def __init__(self, sockets_dir: Path) -> None:
        self.paths: list[Path] = []
        self.sockets_dir = sockets_dir
        self.sockets: list[socket.socket] = []

    def dir(self, path: Path) -> Path:
        path.mkdir()
        self.paths.append(path)
        return path

    def file(self, path: Path, data: bytes = b"precious") -> Path:
        path.write_bytes(data)
        self.paths.append(path)
        return path

    def link(self, path: Path, target: Path) -> Path:
        path.symlink_to(target)
        self.paths.append(path)
        return path

    def fifo(self, path: Path) -> Path:
        os.mkfifo(path)
        self.paths.append(path)
        return path

    def sock(self, path: Path) -> Path:
        # A socket path must be short (108 bytes): bind nearby, then move it into place.
        short = self.sockets_dir / f"s{len(self.sockets)}"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(short))
        self.sockets.append(server)
        os.rename(short, path)
        self.paths.append(path)
        return path

    def hostile(self, top: Path, outside: Path, *, depth: int = 3) -> None:
        """Under ``top``: links to outside (dirs, files, dangling), a fifo, a socket, then ``depth`` more levels."""
        current = top
        for level in range(depth + 1):
            self.link(current / "to_outside", outside)
            self.link(current / "to_precious", outside / "precious.txt")
            if level % 100 == 0:
                self.link(current / "to_J", outside / "J")
                self.link(current / "dangling", outside / "missing")
                self.fifo(current / "pipe")
                self.sock(current / "sock")
                self.file(current / "junk.bin", b"x" * 10)
            if level < depth:
                current = self.dir(current / "d")

    def unreadable(self, top: Path, outside: Path) -> list[Path]:
        """A mode-000 directory and a read-only-without-search (0600) one, each holding a link to outside."""
        locked = []
        for name, mode in (("locked", 0o000), ("no_search", 0o600)):
            directory = self.dir(top / name)
            self.link(directory / "to_outside", outside)
            self.file(directory / "inner.bin")
            locked.append((directory, mode))
        self.age()
        for directory, mode in locked:
            directory.chmod(mode)
        return [directory for directory, _ in locked]

    def age(self) -> None:
        for path in self.paths:
            os.utime(path, (OLD, OLD), follow_symlinks=False)

    def close(self) -> None:
        for server in self.sockets:
            server.close()


@pytest.fixture
def world(tmp_path: Path):
    """``outside`` (precious, old files named like what lives under a temp root) and a builder for roots."""
    scratch = Path(tempfile.mkdtemp(prefix="s", dir="/tmp"))
    builder = Builder(scratch)
    outside = builder.dir(tmp_path / "outside")
    builder.file(outside / "precious.txt")
    for name in ("J", "jobs", "users", "d", "u1", str(uuid.UUID(int=7))):
        directory = builder.dir(outside / name)
        builder.file(directory / "precious.txt")
        builder.dir(directory / "empty")
        builder.link(directory / "own_link", outside / "precious.txt")
    builder.age()
    yield tmp_path, outside, builder
    builder.close()
    for path in builder.paths:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o700)
    # pytest removes old temp directories with a recursive rmtree, which a 1,000-level tree would crash
    # (RecursionError, in every later session on this machine): remove what is left here, iteratively.
    assert prune_tree(tmp_path, max_age_hours=None, record=False).errors == 0
    prune_tree(scratch, max_age_hours=None, include_root=True, record=False)


def linked_root(root: Path, outside: Path, builder: Builder) -> None:  # returns None: nothing is locked
    """A root whose ``jobs`` and ``users`` are links to outside, plus links at its top level."""
    builder.dir(root)
    builder.link(root / "jobs", outside)
    builder.link(root / "users", outside)
    builder.hostile(root, outside, depth=0)
    builder.age()


def hostile_root(root: Path, outside: Path, builder: Builder) -> list[Path]:
    """A root with real ``jobs``/``users`` full of links, fifos, sockets, unreadable and 1,000-level directories."""
    builder.dir(root)
    builder.hostile(root, outside, depth=0)
    for kind, ident in (("jobs", str(uuid.UUID(int=7))), ("jobs", "deep"), ("users", "u1"), ("users", "deep")):
        parent = root / kind
        if not parent.exists():
            builder.dir(parent)
        workspace = builder.dir(parent / ident)
        builder.hostile(workspace, outside, depth=DEPTH if ident == "deep" else 3)
    builder.link(root / "jobs" / "J", outside / "J")  # a workspace that is a link
    builder.link(root / "users" / "J", outside / "J")
    locked = builder.unreadable(root / "users" / "u1", outside)
    builder.age()
    return locked


def remaining(root: Path) -> list[str]:
    """What is left under ``root`` (as root sees it), links first."""
    left = snapshot(root) if root.exists() or root.is_symlink() else {}
    return sorted(left)


def expected_failures(locked: list[Path]) -> set[str]:
    """The mode-000 directory cannot be listed; the entries of the 0600 one cannot be examined."""
    return {str(locked[0]), *(str(locked[1] / name) for name in os.listdir(locked[1]))}


def assert_only_locked_left(root: Path, locked: list[Path]) -> None:
    """Everything is gone but the unreadable directories, their contents and their ancestors."""
    keep = {str(p) for p in locked}
    for directory in locked:
        keep.update(str(p) for p in [directory, *directory.parents] if str(p).startswith(str(root)))
        keep.update(os.path.join(directory, name) for name in os.listdir(directory))
    assert set(remaining(root)) == keep


# --------------------------------------------------------------------------- the guard


@pytest.mark.parametrize("layout", ["hostile", "linked"])
def test_age_cleanup_changes_nothing_outside(world, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path, outside, builder = world
    root = tmp_path / "temp"
    locked = hostile_root(root, outside, builder) if layout == "hostile" else linked_root(root, outside, builder)
    before = snapshot(outside)
    manager = ResourceManager(TempFileManager(root))
    monkeypatch.setattr(selectors, "jobs_live_ids", lambda **kwargs: set())  # no database in the unprivileged thread
    stats: CleanupStats = as_unprivileged(lambda: manager.cleanup_temporary_files(24))
    assert snapshot(outside) == before
    if layout == "linked":
        assert remaining(root) == [str(root)]
        assert stats.errors == 0
        return
    assert locked is not None
    assert_only_locked_left(root, locked)
    assert {f["path"] for f in stats.failures} == expected_failures(locked)
    assert stats.dirs_removed > 2 * DEPTH


@pytest.mark.parametrize("layout", ["hostile", "linked"])
def test_workspace_cleanups_change_nothing_outside(world, layout: str) -> None:
    tmp_path, outside, builder = world
    root = tmp_path / "temp"
    locked = hostile_root(root, outside, builder) if layout == "hostile" else linked_root(root, outside, builder)
    before = snapshot(outside)
    manager = TempFileManager(root)

    def clean_all() -> list[CleanupStats]:
        jobs = [manager.cleanup_job_temp_files(i) for i in (str(uuid.UUID(int=7)), "deep", "J", "missing")]
        users = [manager.cleanup_user_temp_files(i) for i in ("u1", "deep", "J", "missing")]
        return jobs + users

    results = as_unprivileged(clean_all)
    assert snapshot(outside) == before
    if layout == "linked":
        assert all("symbolic link" in stats.refused for stats in results)
        assert (root / "jobs").is_symlink()
        return
    assert locked is not None
    assert not any(stats.refused for stats in results)
    assert sorted(os.listdir(root / "jobs")) == []
    assert sorted(os.listdir(root / "users")) == ["u1"]
    assert_only_locked_left(root / "users", locked)


@pytest.mark.parametrize("layout", ["hostile", "linked"])
def test_cache_cap_changes_nothing_outside(world, layout: str) -> None:
    tmp_path, outside, builder = world
    cache = tmp_path / "cache"
    locked = hostile_root(cache, outside, builder) if layout == "hostile" else linked_root(cache, outside, builder)
    before = snapshot(outside)
    manager = ResourceManager()
    with override_settings(VIDEOGEN_COMMON={"CACHE_DIR": cache}):
        stats: CacheEvictionStats = as_unprivileged(lambda: manager.enforce_cache_limit(0))
    assert snapshot(outside) == before
    # Every non-directory it could reach is evicted (links as links); directories stay.
    left = [p for p in remaining(cache) if os.path.islink(p) or not os.path.isdir(p)]
    if layout == "linked":
        assert left == []
        assert stats.files_evicted == 9  # jobs, users and the seven entries of the top level
        return
    assert locked is not None
    assert set(left) == {os.path.join(d, name) for d in locked for name in os.listdir(d)}
    assert {f["path"] for f in stats.failures} == expected_failures(locked)
    assert stats.files_evicted > 2 * DEPTH


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_removal_on_exit_changes_nothing_outside(world, asynchronous: bool) -> None:
    tmp_path, outside, builder = world
    root = tmp_path / "temp"
    before = snapshot(outside)
    manager = TempFileManager(root)
    if asynchronous:
        async with manager.temp_directory(job_id="J") as work:
            builder.hostile(work, outside, depth=DEPTH)
    else:
        with manager.temp_directory(job_id="J") as work:
            builder.hostile(work, outside, depth=DEPTH)
    assert not work.exists()
    assert snapshot(outside) == before
    assert manager.active_paths() == []


# --------------------------------------------------------------------------- the walk itself


def chain(top: Path, names: str) -> list[Path]:
    paths, current = [], top
    for name in names:
        current = current / name
        current.mkdir()
        (current / "file").write_bytes(b"x")
        paths.append(current)
    return paths


def test_walk_reopens_closed_levels_through_dotdot_and_closes_everything(tmp_path: Path) -> None:
    chain(tmp_path, "abcdefgh")
    fds_before = open_fds()
    top = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    errors: list[tuple[str, str]] = []
    walk = Walk(top, str(tmp_path), lambda p, e: errors.append((p, e)), max_open=2)
    assert walk.start()
    visited, left = [], []
    for kind, frame, name, st in walk:
        if kind == ENTRY:
            visited.append(os.path.join(frame.path, name))
            if stat.S_ISDIR(st.st_mode):
                assert walk.descend(frame, name, st) == "entered"
                assert open_fds() - fds_before <= 1 + 2  # the top and at most two more
        else:
            assert kind == LEAVE
            assert walk.current.fd is not None
            left.append(frame.name)
    walk.close()
    os.close(top)
    assert open_fds() == fds_before
    assert errors == []
    assert left == list("hgfedcba")
    assert len(visited) == 16


def test_walk_stops_when_a_closed_level_was_moved(tmp_path: Path) -> None:
    _a, b, c, _d = chain(tmp_path, "abcd")
    fds_before = open_fds()
    top = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    errors: list[tuple[str, str]] = []
    walk = Walk(top, str(tmp_path), lambda p, e: errors.append((p, e)), max_open=2)
    assert walk.start()
    events = []
    for kind, frame, name, st in walk:
        events.append((kind, frame.name, name))
        if kind == ENTRY and stat.S_ISDIR(st.st_mode):
            walk.descend(frame, name, st)
            if name == "d":
                c.rename(tmp_path / "moved")  # "a" and "b" are closed now; c's ".." is the top, not b
    walk.close()
    os.close(top)
    assert walk.aborted
    assert errors == [(str(b), "moved during the walk; stopped to stay inside the root")]
    assert ("leave", "b", "") not in events
    assert open_fds() == fds_before


def test_open_helpers_refuse_links_and_non_directories(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "link").symlink_to(tmp_path)
    (tmp_path / "real" / "file").write_bytes(b"")
    os.mkfifo(tmp_path / "real" / "pipe")
    (tmp_path / "rootlink").symlink_to(tmp_path / "real")
    top = open_root(str(tmp_path / "real"), create=False)
    assert top is not None
    try:
        for name, said in (("link", "is a symbolic link (to "), ("file", "is a regular file"), ("pipe", "is a fifo")):
            with pytest.raises(ResourceError) as excinfo:
                open_below(top, str(tmp_path / "real"), (name, "x"), create=True)
            assert excinfo.value.code == "UNSAFE_PATH"
            assert said in excinfo.value.details["reason"]
            assert excinfo.value.details["path"] == str(tmp_path / "real" / name)
        assert open_below(top, str(tmp_path / "real"), ("missing", "x"), create=False) is None
    finally:
        os.close(top)
    with pytest.raises(ResourceError, match="rootlink is a symbolic link"):
        open_chain(str(tmp_path / "rootlink"), ("x",), create=True)
    assert open_chain(str(tmp_path / "nowhere"), ("x",), create=False) is None
    assert not (tmp_path / "x").exists()


def test_statistics_read_like_the_seeds_dicts() -> None:
    stats = CleanupStats(files_removed=3, removed=[{"path": "/t/a", "kind": "file", "bytes": 1}])
    assert stats["files_removed"] == 3
    assert stats["errors"] == 0
    assert dict(stats) == stats.to_dict()
    assert "refused" in stats
    copy = stats["removed"]
    copy.clear()  # a copy: the view is read-only
    assert len(stats.removed) == 1
    with pytest.raises(KeyError):
        stats["nope"]
    with pytest.raises(TypeError):
        stats["files_removed"] = 4  # type: ignore[index]


# --------------------------------------------------------------------------- what is built on the walk


def put(path: Path, size: int = 1, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_prune_tree_removes_by_age(tmp_path: Path) -> None:
    old_file, new_file = put(tmp_path / "w" / "old.bin", 3, OLD), put(tmp_path / "w" / "new.bin", 5)
    (tmp_path / "empty_old").mkdir()
    os.utime(tmp_path / "empty_old", (OLD, OLD))
    (tmp_path / "empty_new").mkdir()
    stats = prune_tree(tmp_path, max_age_hours=24)
    assert not old_file.exists()
    assert new_file.exists()
    assert not (tmp_path / "empty_old").exists()
    assert (tmp_path / "empty_new").is_dir()
    assert (stats.files_removed, stats.dirs_removed, stats.bytes_freed) == (1, 1, 3)
    assert (stats.skipped_recent, stats.scanned, stats.errors) == (2, 5, 0)  # new.bin, empty_new; five entries


def test_prune_tree_stop_and_missing_root(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    for i in range(5):
        (tmp_path / "t" / f"f{i}").write_bytes(b"x")
    stop = threading.Event()
    stop.set()
    stats = prune_tree(tmp_path / "t", max_age_hours=None, stop=stop, include_root=True)
    assert stats.interrupted
    assert stats.files_removed == 0
    assert len(list((tmp_path / "t").iterdir())) == 5
    missing = prune_tree(tmp_path / "missing", max_age_hours=0)
    assert missing.scanned == 0
    assert missing.errors == 0
    not_a_dir = prune_tree(tmp_path / "t" / "f0", max_age_hours=0)
    assert not_a_dir.errors == 1


def test_remove_below_removes_whatever_the_entry_is(tmp_path: Path) -> None:
    outside = put(tmp_path / "outside" / "precious.txt").parent
    root = tmp_path / "root"
    put(root / "jobs" / "file.bin", 7)
    put(root / "jobs" / "dir" / "a" / "b.bin", 2)
    (root / "jobs" / "link").symlink_to(outside, target_is_directory=True)
    one = remove_below(str(root), ("jobs",), "file.bin", what="x")
    assert (one.files_removed, one.bytes_freed, one.errors, one.root) == (1, 7, 0, str(root / "jobs" / "file.bin"))
    dry = remove_below(str(root), ("jobs",), "dir", what="x", dry_run=True)
    assert (dry.files_removed, dry.dirs_removed, dry.bytes_freed) == (1, 2, 2)
    assert (root / "jobs" / "dir" / "a" / "b.bin").exists()
    tree = remove_below(str(root), ("jobs",), "dir", what="x")
    assert (tree.files_removed, tree.dirs_removed, tree.bytes_freed) == (1, 2, 2)
    link = remove_below(str(root), ("jobs",), "link", what="x")
    assert [item["kind"] for item in link.removed] == ["link"]
    assert (outside / "precious.txt").exists()
    assert sorted(os.listdir(root / "jobs")) == []
    for gone in (
        remove_below(str(root), ("jobs",), "nothing", what="x"),
        remove_below(str(root), ("users",), "u1", what="x"),
    ):
        assert (gone.files_removed, gone.errors, gone.refused) == (0, 0, "")


def test_remove_below_refuses_a_link_on_the_way(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    victim = put(tmp_path / "victim" / "J" / "precious.txt").parent.parent
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "jobs").symlink_to(victim)
    stats = remove_below(str(tmp_path / "root"), ("jobs",), "J", what="cleanup of job workspace J")
    assert (victim / "J" / "precious.txt").exists()
    assert stats.refused.startswith(f"Refused: {tmp_path / 'root' / 'jobs'} is a symbolic link (to {victim})")
    assert stats.failures == [{"path": str(tmp_path / "root" / "jobs"), "error": stats.refused}]
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "temp_cleanup_refused"]
    assert record.getMessage().startswith("cleanup of job workspace J refused: ")
    assert record.name == "common.fs"


def test_open_reporting_records_what_it_could_not_open(tmp_path: Path) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    stats = CleanupStats()
    fd = open_reporting(str(tmp_path / "real"), ("sub",), stats, path="p", what="w")
    assert fd is not None
    os.close(fd)
    assert open_reporting(str(tmp_path / "real"), ("missing",), stats, path="p", what="w") is None
    assert stats.failures == []
    (tmp_path / "real" / "link").symlink_to(tmp_path)
    assert open_reporting(str(tmp_path / "real"), ("link",), stats, path="p", what="w") is None
    assert "symbolic link" in stats.refused
    long_name = str(tmp_path / ("n" * 300))  # the operating system's own refusal: ENAMETOOLONG
    assert open_reporting(long_name, (), stats, path="where", what="w") is None
    assert stats.failures[-1] == {"path": "where", "error": "File name too long"}


def test_create_entry_makes_private_entries_with_fresh_names(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = [create_entry(fd, "clip_", ".mp4", is_dir=False) for _ in range(50)]
        folder = create_entry(fd, None, None, is_dir=True)
    finally:
        os.close(fd)
    assert len(set(names)) == 50
    assert all(n.startswith("clip_") and n.endswith(".mp4") for n in names)
    assert {stat.S_IMODE((tmp_path / n).stat().st_mode) for n in names} == {0o600}
    assert folder.startswith("tmp")
    assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o700


def test_managed_root_expands_but_never_resolves(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert managed_root("~/x") == Path.home() / "x"
    assert managed_root(tmp_path / "link" / ".." / "link") == tmp_path / "link"  # the link itself, not its target


def test_evict_lru_keeps_what_skip_names_and_refuses_a_linked_root(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    oldest, held, newest = (put(cache / n, 100, OLD + i) for i, n in enumerate(("a", "held", "z")))
    stats = evict_lru(cache, 100, skip=lambda path: path == str(held))
    assert [Path(item["path"]).name for item in stats.evicted] == ["a", "z"]  # "held" made up for by the next
    assert (stats.bytes_before, stats.bytes_after, stats.limit_bytes) == (300, 100, 100)
    assert held.exists()
    assert not oldest.exists()
    assert not newest.exists()
    (tmp_path / "linked").symlink_to(cache)
    refused = evict_lru(tmp_path / "linked", 0)
    assert "symbolic link" in refused.refused
    assert held.exists()
    assert evict_lru(tmp_path / "missing", 0).to_dict()["errors"] == 0


def test_eviction_never_follows_a_link_swapped_in_after_the_scan(tmp_path: Path, monkeypatch) -> None:
    cache_root = tmp_path / "cache"
    now = time.time()
    for i in range(3):
        put(cache_root / "sub" / f"f{i}", 100, now - 1000 + i)
    for i in range(20):  # more directories than the eviction keeps open at once
        put(cache_root / f"d{i:02}" / "x", 10, now - 2000 + i)
    put(cache_root / "moved" / "f0", 100, now - 900)
    outside = tmp_path / "outside"
    for name in ("f0", "f1", "f2"):
        put(outside / name, 100, now - 5000)
    real_scan = prune._scan_cache

    def scan_then_swap(*args, **kwargs):
        files = real_scan(*args, **kwargs)
        (cache_root / "sub").rename(tmp_path / "sub.away")
        (cache_root / "sub").symlink_to(outside)  # the same names, reachable only through the link
        (cache_root / "moved").rename(tmp_path / "moved.away")
        (cache_root / "moved").mkdir()  # another real directory, same name and file name
        put(cache_root / "moved" / "f0", 100, now - 900)
        return files

    monkeypatch.setattr(prune, "_scan_cache", scan_then_swap)
    stats = evict_lru(cache_root, 0)
    assert sorted(p.name for p in outside.iterdir()) == ["f0", "f1", "f2"]
    assert (cache_root / "moved" / "f0").exists()  # not the file that was scanned: left for the next run
    assert [f["path"] for f in stats.failures] == [str(cache_root / "sub")]
    assert "symbolic link" in stats.failures[0]["error"]
    assert stats.files_evicted == 20
    assert all(not (cache_root / f"d{i:02}" / "x").exists() for i in range(20))
