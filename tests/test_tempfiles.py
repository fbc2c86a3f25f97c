"""Temp files and workspaces: layout, cleanup on every exit path, id safety, concurrency, bulk cleanup."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.test import override_settings

from common import tempfiles
from common.errors import ResourceError, ValidationError
from common.fs import prune_tree
from common.maintenance import ResourceManager
from common.tempfiles import TempFileManager, is_path_in_use, temp_file_manager

OLD = time.time() - 48 * 3600


@pytest.fixture
def root(tmp_path: Path):
    """A managed temp root (and cache dir) under tmp_path, via the app settings."""
    temp_root = tmp_path / "temp"
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": temp_root, "CACHE_DIR": tmp_path / "cache"}):
        yield temp_root
    assert temp_file_manager.active_paths() == []


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if not p.is_dir())


# --------------------------------------------------------------------------- layout


def test_temp_file_lives_under_the_root_and_is_removed(root: Path) -> None:
    with temp_file_manager.temp_file(".mp4") as path:
        assert path.parent == root
        assert path.name.endswith(".mp4")
        assert path.is_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert temp_file_manager.is_in_use(path)
        path.write_bytes(b"frame")
    assert not path.exists()
    assert not is_path_in_use(path)


def test_user_and_job_workspaces(root: Path) -> None:
    with temp_file_manager.temp_file(".wav", user_id=42) as user_file:
        assert user_file.parent == root / "users" / "42"
    with temp_file_manager.temp_directory("render_", job_id="job-1") as job_dir:
        assert job_dir.parent == root / "jobs" / "job-1"
        assert job_dir.name.startswith("render_")
        assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700
    # A job workspace wins over the user's: the job's status is what protects it.
    with temp_file_manager.temp_file(user_id="7", job_id="job-2", prefix="clip_") as both:
        assert both.parent == root / "jobs" / "job-2"
        assert both.name.startswith("clip_")
    assert not user_file.exists()
    assert not job_dir.exists()
    assert not both.exists()


def test_get_workspace_directories_create_private_dirs(root: Path) -> None:
    user_dir = temp_file_manager.get_user_temp_directory("u-1")
    job_dir = temp_file_manager.get_job_temp_directory("2b1f8e8e-6a43-4c8e-9d1e-0d5f1b7c9a10")
    assert user_dir == root / "users" / "u-1"
    assert job_dir == root / "jobs" / "2b1f8e8e-6a43-4c8e-9d1e-0d5f1b7c9a10"
    assert user_dir.is_dir()
    assert job_dir.is_dir()
    assert stat.S_IMODE(user_dir.stat().st_mode) == 0o700
    # Idempotent.
    assert temp_file_manager.get_user_temp_directory("u-1") == user_dir


def test_root_follows_settings_and_explicit_root(tmp_path: Path) -> None:
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": tmp_path / "a"}):
        assert temp_file_manager.root == tmp_path / "a"
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": tmp_path / "b"}):
        assert temp_file_manager.root == tmp_path / "b"
    own = TempFileManager(root=tmp_path / "own")
    with own.temp_file() as path:
        assert path.parent == tmp_path / "own"
    assert not path.exists()


@pytest.mark.parametrize(
    "bad", ["..", ".", "", "a/b", "/etc", "a\\b", "x\x00y", "../../etc", "a" * 129, None, True, 1.5, b"raw"]
)
def test_ids_that_could_escape_the_root_are_refused(root: Path, bad: object) -> None:
    with pytest.raises(ValidationError) as excinfo:
        temp_file_manager.get_user_temp_directory(bad)
    assert excinfo.value.details["field"] == "user_id"
    with pytest.raises(ValidationError):
        temp_file_manager.temp_directory(job_id=bad) if bad is not None else temp_file_manager.job_directory_path(bad)
    with pytest.raises(ValidationError):
        temp_file_manager.cleanup_job_temp_files(bad)
    assert not (root / "users").exists() or list((root / "users").iterdir()) == []


@pytest.mark.parametrize("bad", ["/../../evil", "a/b", "x\\y", "nul\x00"])
def test_suffix_and_prefix_cannot_carry_separators(root: Path, bad: str) -> None:
    with pytest.raises(ValidationError):
        temp_file_manager.temp_file(suffix=bad)
    with pytest.raises(ValidationError):
        temp_file_manager.temp_directory(prefix=bad)


def test_a_context_can_only_be_entered_once(root: Path) -> None:
    ctx = temp_file_manager.temp_file()
    with ctx as path, pytest.raises(RuntimeError), ctx:
        pass
    assert not path.exists()


# --------------------------------------------------------------------------- cleanup on every exit path


def fail_inside_file(seen: list[Path]) -> None:
    with temp_file_manager.temp_file(user_id="u") as path:
        seen.append(path)
        path.write_bytes(b"x")
        raise ZeroDivisionError


def fail_inside_directory(seen: list[Path]) -> None:
    with temp_file_manager.temp_directory(job_id="j") as directory:
        seen.append(directory)
        (directory / "nested").mkdir()
        (directory / "nested" / "frame.png").write_bytes(b"x" * 100)
        raise ZeroDivisionError


def test_sync_contexts_clean_up_on_error(root: Path) -> None:
    seen: list[Path] = []
    with pytest.raises(ZeroDivisionError):
        fail_inside_file(seen)
    with pytest.raises(ZeroDivisionError):
        fail_inside_directory(seen)
    assert len(seen) == 2
    assert not any(p.exists() for p in seen)
    assert files_under(root) == []


async def test_async_contexts_clean_up(root: Path) -> None:
    async with temp_file_manager.temp_file(".mp3", user_id="u") as path:
        path.write_bytes(b"audio")
        assert is_path_in_use(path)
    async with temp_file_manager.temp_directory("work_", job_id="j") as directory:
        (directory / "a").write_bytes(b"1")
        assert is_path_in_use(directory / "a")
    assert not path.exists()
    assert not directory.exists()
    seen: list[Path] = []

    async def fail() -> None:
        async with temp_file_manager.temp_directory() as failing:
            seen.append(failing)
            (failing / "b").write_bytes(b"2")
            raise KeyError("boom")

    with pytest.raises(KeyError):
        await fail()
    assert not seen[0].exists()
    assert temp_file_manager.active_paths() == []


async def test_cancellation_removes_the_workspace(root: Path) -> None:
    ready = asyncio.Event()
    seen: list[Path] = []

    async def worker() -> None:
        async with temp_file_manager.temp_directory(job_id="cancelled") as directory:
            seen.append(directory)
            for i in range(50):
                (directory / f"frame{i}.png").write_bytes(b"x" * 1000)
            async with temp_file_manager.temp_file(job_id="cancelled") as single:
                seen.append(single)
                ready.set()
                await asyncio.Event().wait()  # blocks until cancelled

    task = asyncio.create_task(worker())
    await ready.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(not p.exists() for p in seen)
    assert temp_file_manager.active_paths() == []


async def test_cleanup_completes_even_when_cancelled_again_during_it(root: Path) -> None:
    ready = asyncio.Event()
    holder: list[Path] = []

    async def worker() -> None:
        async with temp_file_manager.temp_directory() as directory:
            holder.append(directory)
            for i in range(200):
                (directory / f"f{i}").write_bytes(b"x")
            ready.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(worker())
    await ready.wait()
    task.cancel()
    await asyncio.sleep(0)  # the task is now in __aexit__, waiting for the removal thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not holder[0].exists()
    assert temp_file_manager.active_paths() == []


def test_caller_may_remove_or_move_the_path_itself(root: Path, tmp_path: Path) -> None:
    with temp_file_manager.temp_file() as path:
        path.rename(tmp_path / "kept.bin")
    with temp_file_manager.temp_directory() as directory:
        directory.rmdir()
    assert (tmp_path / "kept.bin").exists()
    assert temp_file_manager.active_paths() == []


def test_creation_retries_when_cleanup_removed_the_workspace_meanwhile(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tempfiles.open_chain
    calls = {"n": 0, "vanish": 1}

    def racing_cleanup(root_path: str, parts: tuple[str, ...], *, create: bool) -> int | None:
        """Open the workspace, then let "the age-based cleanup" remove it (old and empty) before the caller uses it."""
        fd = real(root_path, parts, create=create)
        if not create:  # the removal on exit
            return fd
        calls["n"] += 1
        if calls["n"] <= calls["vanish"]:
            os.rmdir(os.path.join(root_path, *parts))
        return fd

    monkeypatch.setattr(tempfiles, "open_chain", racing_cleanup)
    with temp_file_manager.temp_file(user_id="racy") as path:
        assert path.exists()
        assert path.parent == root / "users" / "racy"
    assert calls["n"] == 2
    calls.update(n=0, vanish=99)
    with pytest.raises(ResourceError, match="kept vanishing"), temp_file_manager.temp_directory(user_id="racy"):
        pass
    assert calls["n"] == 3
    assert temp_file_manager.active_paths() == []


def test_removal_failure_is_logged_not_raised(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_unlink = os.unlink

    def refuse(path, *args, **kwargs):
        if os.fspath(path) == held.name:
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    with temp_file_manager.temp_file() as held:
        monkeypatch.setattr(tempfiles.os, "unlink", refuse)
    monkeypatch.undo()
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "temp_cleanup_failed"]
    assert record.__dict__["path"] == str(held)
    assert record.__dict__["error"] == "Permission denied"
    assert temp_file_manager.active_paths() == []
    held.unlink()


# --------------------------------------------------------------------------- disk check


def test_min_free_bytes_refuses_a_workspace_that_would_not_fit(root: Path) -> None:
    free = os.statvfs(tmp := root.parent).f_bavail * os.statvfs(tmp).f_frsize
    with (
        pytest.raises(ResourceError) as excinfo,
        temp_file_manager.temp_directory(job_id="big", min_free_bytes=free + 10**15),
    ):
        pass
    assert excinfo.value.details["resource"] == "disk"
    assert excinfo.value.details["required_bytes"] == free + 10**15
    assert list((root / "jobs" / "big").iterdir()) == []
    with temp_file_manager.temp_file(".mp4", job_id="big", min_free_bytes=1) as path:
        assert path.exists()


# --------------------------------------------------------------------------- concurrency


def test_threads_share_the_manager_safely(root: Path) -> None:
    threads_n, rounds = 16, 25
    barrier = threading.Barrier(threads_n)
    paths: list[Path] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for r in range(rounds):
                if r % 2:
                    ctx = temp_file_manager.temp_file(".bin", user_id=f"user{i % 4}")
                else:
                    ctx = temp_file_manager.temp_directory(job_id=f"job{i % 3}")
                with ctx as path:
                    target = path if path.is_file() else path / "data"
                    target.write_bytes(f"{i}-{r}".encode())
                    assert target.read_bytes() == f"{i}-{r}".encode()
                    assert is_path_in_use(target)
                    with lock:
                        paths.append(path)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == []
    assert len(paths) == threads_n * rounds
    assert len(set(paths)) == threads_n * rounds
    assert files_under(root) == []
    assert temp_file_manager.active_paths() == []


async def test_asyncio_tasks_share_the_manager_safely(root: Path) -> None:
    async def work(i: int) -> Path:
        async with temp_file_manager.temp_directory(job_id=f"job{i % 5}") as directory:
            (directory / "out.mp4").write_bytes(str(i).encode())
            await asyncio.sleep(0)
            async with temp_file_manager.temp_file(user_id=f"u{i % 3}") as file:
                file.write_bytes(b"x")
                await asyncio.sleep(0)
                assert (directory / "out.mp4").read_bytes() == str(i).encode()
            return directory

    results = await asyncio.gather(*(work(i) for i in range(60)))
    assert len(set(results)) == 60
    assert files_under(root) == []
    assert temp_file_manager.active_paths() == []


# --------------------------------------------------------------------------- bulk cleanup


def test_cleanup_user_temp_files_spares_paths_in_use(root: Path) -> None:
    user_dir = temp_file_manager.get_user_temp_directory("u1")
    (user_dir / "a.bin").write_bytes(b"1234")
    (user_dir / "sub").mkdir()
    (user_dir / "sub" / "b.bin").write_bytes(b"56")
    other = temp_file_manager.get_user_temp_directory("u2")
    (other / "keep.bin").write_bytes(b"x")
    with temp_file_manager.temp_file(user_id="u1") as held:
        stats = temp_file_manager.cleanup_user_temp_files("u1")
        assert held.exists()
        assert stats.files_removed == 2
        assert stats.dirs_removed == 1  # sub; the workspace itself still holds the open file
        assert stats.bytes_freed == 6
        assert stats.skipped_in_use == 1
    stats = temp_file_manager.cleanup_user_temp_files("u1")
    assert stats.dirs_removed == 1
    assert not user_dir.exists()
    assert (other / "keep.bin").exists()


async def test_async_job_cleanup_and_dry_run(root: Path) -> None:
    job_dir = temp_file_manager.get_job_temp_directory("j9")
    (job_dir / "clip.mp4").write_bytes(b"x" * 10)
    dry = await temp_file_manager.acleanup_job_temp_files("j9", dry_run=True)
    assert (dry.files_removed, dry.dirs_removed, dry.bytes_freed, dry.dry_run) == (1, 1, 10, True)
    assert (job_dir / "clip.mp4").exists()
    real = await temp_file_manager.acleanup_job_temp_files("j9")
    assert (real.files_removed, real.dirs_removed, real.bytes_freed) == (1, 1, 10)
    assert not job_dir.exists()
    again = await temp_file_manager.acleanup_user_temp_files("nobody")
    assert again.to_dict()["errors"] == 0
    assert again.files_removed == 0


def test_prune_tree_never_follows_symlinks(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    workspace = temp_file_manager.get_user_temp_directory("u")
    (workspace / "link_to_dir").symlink_to(outside, target_is_directory=True)
    (workspace / "link_to_file").symlink_to(outside / "precious.txt")
    (workspace / "dangling").symlink_to(tmp_path / "nowhere")
    stats = temp_file_manager.cleanup_user_temp_files("u")
    assert stats.files_removed == 3
    assert {item["kind"] for item in stats.removed if item["kind"] != "dir"} == {"link"}
    assert (outside / "precious.txt").read_text() == "keep me"
    assert not workspace.exists()


def test_is_path_in_use_covers_contents_of_open_directories(root: Path) -> None:
    with temp_file_manager.temp_directory() as directory:
        assert is_path_in_use(directory / "deep" / "file")
        assert not is_path_in_use(str(directory) + "-sibling")
        assert not is_path_in_use(directory.parent)
    assert not is_path_in_use(directory / "deep" / "file")


def test_prune_records_failures_and_keeps_going(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = temp_file_manager.get_user_temp_directory("stuck")
    for name in ("a", "b"):
        (workspace / name).write_bytes(b"x")
    real_unlink = os.unlink

    def refuse_a(path, *args, **kwargs):
        if os.fspath(path) == "a":
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(tempfiles.os, "unlink", refuse_a)
    stats = temp_file_manager.cleanup_user_temp_files("stuck")
    monkeypatch.undo()
    assert stats.failures == [{"path": str(workspace / "a"), "error": "Permission denied"}]
    assert stats.files_removed == 1
    assert (workspace / "a").exists()
    assert not (workspace / "b").exists()
    assert workspace.exists()  # not empty, so kept


def test_handing_out_a_workspace_refreshes_its_age(root: Path) -> None:
    workspace = temp_file_manager.get_user_temp_directory("returning")
    os.utime(workspace, (OLD, OLD))
    assert temp_file_manager.get_user_temp_directory("returning") == workspace
    stats = prune_tree(root, max_age_hours=24)
    assert workspace.is_dir()
    assert stats.dirs_removed == 0


# ---------------------------------------------------------- no symlink is followed under the root (issue 10, item 1)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """``VICTIM/J/precious.txt`` outside any temp root (the issue's reproduction)."""
    (tmp_path / "VICTIM" / "J").mkdir(parents=True)
    (tmp_path / "VICTIM" / "J" / "precious.txt").write_text("precious\n")
    return tmp_path / "VICTIM"


def refusal_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "temp_cleanup_refused"]


@pytest.mark.parametrize(
    ("link", "cleanup"), [("jobs", "cleanup_job_temp_files"), ("users", "cleanup_user_temp_files")]
)
def test_workspace_cleanup_refuses_a_symlinked_jobs_or_users_dir(
    tmp_path: Path, victim: Path, caplog: pytest.LogCaptureFixture, link: str, cleanup: str
) -> None:
    # mkdir -p ROOT VICTIM/J; echo precious > VICTIM/J/precious.txt; ln -s VICTIM ROOT/jobs
    (tmp_path / "ROOT").mkdir()
    (tmp_path / "ROOT" / link).symlink_to(victim)
    stats = getattr(TempFileManager(tmp_path / "ROOT"), cleanup)("J")
    assert (victim / "J" / "precious.txt").read_text() == "precious\n"
    assert (tmp_path / "ROOT" / link).is_symlink()  # the shared link is not ours to remove either
    assert stats.files_removed == 0
    assert stats.errors == 1
    assert "symbolic link" in stats.refused
    assert str(tmp_path / "ROOT" / link) in stats.refused
    assert stats.failures == [{"path": str(tmp_path / "ROOT" / link), "error": stats.refused}]
    (record,) = refusal_records(caplog)
    assert record.levelno == logging.WARNING
    assert record.__dict__["path"] == str(tmp_path / "ROOT" / link)


@pytest.mark.parametrize("where", ["users", "jobs"])
def test_temp_paths_are_never_created_through_a_symlink(tmp_path: Path, victim: Path, where: str) -> None:
    root = tmp_path / "ROOT"
    root.mkdir()
    (root / where).symlink_to(victim)
    manager = TempFileManager(root)
    ids = {"user_id": "J"} if where == "users" else {"job_id": "J"}
    before = sorted(victim.rglob("*"))
    for make in (manager.temp_file, manager.temp_directory):
        with pytest.raises(ResourceError) as excinfo, make(**ids):
            pass
        assert excinfo.value.code == "UNSAFE_PATH"
        assert "symbolic link" in excinfo.value.message
        assert excinfo.value.details["path"] == str(root / where)
    get = manager.get_user_temp_directory if where == "users" else manager.get_job_temp_directory
    with pytest.raises(ResourceError):
        get("J")
    with pytest.raises(ResourceError):
        get("K")  # not even a new directory in the link's target
    assert sorted(victim.rglob("*")) == before
    assert manager.active_paths() == []


def test_a_symlinked_workspace_is_unlinked_not_followed(tmp_path: Path, victim: Path) -> None:
    root = tmp_path / "ROOT"
    (root / "jobs").mkdir(parents=True)
    (root / "jobs" / "J").symlink_to(victim / "J", target_is_directory=True)
    manager = TempFileManager(root)
    with pytest.raises(ResourceError), manager.temp_file(job_id="J"):
        pass
    stats = manager.cleanup_job_temp_files("J")
    assert stats.errors == 0
    assert [item["kind"] for item in stats.removed] == ["link"]
    assert not (root / "jobs" / "J").is_symlink()
    assert (victim / "J" / "precious.txt").read_text() == "precious\n"


def test_a_symlinked_root_is_refused(tmp_path: Path, victim: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "ROOT").symlink_to(victim)
    manager = TempFileManager(tmp_path / "ROOT")
    stats = manager.cleanup_job_temp_files("J")
    assert "symbolic link" in stats.refused
    with pytest.raises(ResourceError, match="symbolic link"), manager.temp_file():
        pass
    stats = prune_tree(tmp_path / "ROOT", max_age_hours=None, include_root=True)
    assert "symbolic link" in stats.refused
    assert (victim / "J" / "precious.txt").exists()


@pytest.mark.parametrize("is_dir", [True, False])
def test_release_does_not_follow_a_link_swapped_in_while_the_context_was_open(
    tmp_path: Path, victim: Path, is_dir: bool
) -> None:
    root = tmp_path / "ROOT"
    manager = TempFileManager(root)
    make = manager.temp_directory if is_dir else manager.temp_file
    with make(job_id="J") as path:
        # Mirror the workspace outside the root, then swap ROOT/jobs for a link to the mirror.
        mirror = victim / "J" / path.name
        if is_dir:
            mirror.mkdir()
            (mirror / "precious.bin").write_bytes(b"keep")
        else:
            mirror.write_bytes(b"keep")
        (root / "jobs").rename(root / "jobs.moved")
        (root / "jobs").symlink_to(victim)
    assert (mirror / "precious.bin").read_bytes() == b"keep" if is_dir else mirror.read_bytes() == b"keep"
    assert manager.active_paths() == []


# ---------------------------------------------------------------------------------- default roots (issue 10, item 13)


def test_default_roots_belong_to_this_checkout() -> None:
    """The machine-wide ``<tmp>/videogen`` let two checkouts (or projects) clean each other's files."""
    checkout = Path(__file__).resolve().parent.parent
    manager = ResourceManager()
    assert TempFileManager().root == checkout / "var" / "tmp"
    assert manager.cache_root == checkout / "var" / "cache"
    assert not str(TempFileManager().root).startswith(tempfile.gettempdir() + os.sep)


def test_the_caller_may_replace_its_temp_file_by_a_directory_or_drop_the_workspace(root: Path) -> None:
    with temp_file_manager.temp_file(job_id="swap") as path:
        path.unlink()
        (path / "frames").mkdir(parents=True)
        (path / "frames" / "f.png").write_bytes(b"x")
    assert not path.exists()
    with temp_file_manager.temp_file(job_id="dropped") as path:
        path.unlink()
        path.parent.rmdir()
    assert not path.parent.exists()
    assert temp_file_manager.active_paths() == []


def test_an_os_refusal_to_create_is_a_resource_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager = TempFileManager(tmp_path / "root")
    real_open = os.open

    def full_disk(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(28, "No space left on device")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(tempfiles.os, "open", full_disk)
    with pytest.raises(ResourceError) as excinfo, manager.temp_file(job_id="j"):
        pass
    assert excinfo.value.details["error"] == "No space left on device"
    assert excinfo.value.details["path"] == str(tmp_path / "root" / "jobs" / "j")
    monkeypatch.undo()
    (tmp_path / "file_root").write_bytes(b"")
    with pytest.raises(ResourceError, match="is a regular file, not a directory"):
        TempFileManager(tmp_path / "file_root").get_job_temp_directory("j")
    (tmp_path / "parent_is_file").write_bytes(b"")
    with pytest.raises(ResourceError, match=r"parent_is_file/root cannot be examined \(Not a directory\)"):
        TempFileManager(tmp_path / "parent_is_file" / "root").get_job_temp_directory("j")
    (tmp_path / "ro").mkdir()
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfiles.os, "mkdir", read_only)
    with pytest.raises(ResourceError, match=r"Could not create a workspace .*: Read-only file system"):
        TempFileManager(tmp_path / "ro").get_job_temp_directory("j")
    monkeypatch.setattr(tempfiles.os, "mkdir", real_mkdir)
    assert manager.active_paths() == []
