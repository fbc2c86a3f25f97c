"""``manage.py cleanup_temp_files`` in all its modes."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.test import override_settings

from common import selectors
from common.fs import prune_tree
from common.models import Job, JobStatus

OLD = time.time() - 48 * 3600


class TTY(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def write(path: Path, size: int, mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


def run(*args: str, stderr: io.StringIO | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), stderr or io.StringIO()
    call_command("cleanup_temp_files", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_removes_old_files_and_keeps_live_jobs(roots) -> None:
    temp_root, _ = roots
    live = Job.objects.create(user_id=uuid.uuid4(), status=JobStatus.PROCESSING, audio_url="a", user_prompt="p")
    kept = write(temp_root / "jobs" / str(live.id) / "clip.mp4", 10)
    old = write(temp_root / "old.bin", 2048)
    recent = write(temp_root / "recent.bin", 1, time.time())
    out, _ = run()
    assert not old.exists()
    assert kept.exists()
    assert recent.exists()
    assert f"removed file {old} (2.0 KiB)" in out
    assert "removed 1 files and 0 directories older than 24 h, 2.0 KiB" in out
    assert "kept 1 live job workspaces" in out


def test_dry_run_removes_nothing(roots) -> None:
    temp_root, _ = roots
    old = write(temp_root / "users" / "u" / "old.bin", 5)
    os.utime(old.parent, (OLD, OLD))
    os.utime(old.parent.parent, (OLD, OLD))
    out, _ = run("--dry-run")
    assert old.exists()
    assert f"would remove file {old} (5 B)" in out
    assert f"would remove dir {old.parent}" in out
    assert out.strip().splitlines()[-1].startswith("[dry run]")


def test_older_than_and_json(roots) -> None:
    temp_root, _ = roots
    two_hours = write(temp_root / "two.bin", 3, time.time() - 2 * 3600)
    data = json.loads(run("--older-than", "3", "--json")[0])
    assert data["temp"]["files_removed"] == 0
    assert two_hours.exists()
    data = json.loads(run("--older-than", "1.5", "--json")[0])
    assert data["temp"]["files_removed"] == 1
    assert data["temp"]["bytes_freed"] == 3
    assert data["temp"]["max_age_hours"] == 1.5
    assert data["temp"]["errors"] == 0
    assert data["temp"]["removed"] == [{"path": str(two_hours), "kind": "file", "bytes": 3}]
    assert "cache" not in data


def test_cache_option(roots) -> None:
    temp_root, cache_root = roots
    for i in range(3):
        write(cache_root / f"c{i}", 1000, OLD + i)
    with override_settings(
        VIDEOGEN_COMMON={"TEMP_DIR": temp_root, "CACHE_DIR": cache_root, "CACHE_DIR_MAX_BYTES": 1500}
    ):
        data = json.loads(run("--cache", "--json", "--dry-run")[0])
        assert data["cache"]["files_evicted"] == 2
        assert (cache_root / "c0").exists()
        out, _ = run("--cache")
    assert f"evicted {cache_root / 'c0'} (1000 B)" in out
    assert "1000 B of the 1.5 KiB cap in use" in out
    assert sorted(p.name for p in cache_root.iterdir()) == ["c2"]


@pytest.mark.parametrize("bad", ["abc", "-1", "nan", "inf", ""])
def test_bad_older_than_is_a_clear_error(roots, bad: str) -> None:
    with pytest.raises(CommandError, match="--older-than"):
        run("--older-than", bad)


def test_progress_is_shown_on_a_terminal_only(roots) -> None:
    temp_root, _ = roots
    for i in range(450):
        write(temp_root / "many" / f"f{i:03}", 1)
    tty = TTY()
    out, err = run("--dry-run", stderr=tty)
    assert "\rscanned 200 entries" in err
    assert "\rscanned 400 entries" in err
    assert "would remove 450 files" in out
    _, plain = run("--dry-run")
    assert "scanned" not in plain


def test_failures_are_listed_and_make_the_command_fail(roots, monkeypatch) -> None:
    temp_root, _ = roots

    def down(**kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(selectors, "jobs_live_ids", down)
    kept = write(temp_root / "jobs" / str(uuid.uuid4()) / "clip.mp4", 1)
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 entries could not be removed"):
        call_command("cleanup_temp_files", stdout=io.StringIO(), stderr=err)
    assert "job workspaces kept" in err.getvalue()
    assert kept.exists()


def test_cache_eviction_failures_are_reported(roots, monkeypatch) -> None:
    temp_root, cache_root = roots
    stuck = write(cache_root / "stuck.bin", 1000, OLD)
    write(cache_root / "newer.bin", 1000, OLD + 10)
    real_unlink = os.unlink

    def refuse(path, *args, **kwargs):
        if os.fspath(path) == stuck.name:  # unlinked relative to its directory's descriptor
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refuse)
    err = io.StringIO()
    with (
        override_settings(VIDEOGEN_COMMON={"TEMP_DIR": temp_root, "CACHE_DIR": cache_root, "CACHE_DIR_MAX_BYTES": 500}),
        pytest.raises(CommandError, match="1 entries could not be removed"),
    ):
        call_command("cleanup_temp_files", "--cache", stdout=io.StringIO(), stderr=err)
    monkeypatch.undo()
    assert f"could not evict {stuck}: Permission denied" in err.getvalue()
    assert stuck.exists()
    assert not (cache_root / "newer.bin").exists()  # the cap moved on to the next file


def deep_tree(top: Path, levels: int, mtime: float = OLD) -> Path:
    """``top/d/d/.../d/leaf.bin``, ``levels`` directories deep, every entry last modified at ``mtime``."""
    directory = top
    for _ in range(levels):
        directory = directory / "d"
    directory.mkdir(parents=True)
    leaf = write(directory / "leaf.bin", 3, mtime)
    while directory != top.parent:
        os.utime(directory, (mtime, mtime))
        directory = directory.parent
    return leaf


@pytest.mark.django_db
def test_a_tree_deeper_than_the_recursion_limit_is_cleaned(roots) -> None:
    """Issue 10, item 11: a ~340-level tree crashed the cleanup with RecursionError, on every later run too."""
    temp_root, _ = roots
    leaf = deep_tree(temp_root / "users" / "deep", 400)
    os.utime(temp_root / "users", (OLD, OLD))
    kept = write(temp_root / "recent.bin", 1, time.time())
    try:
        data = json.loads(run("--json")[0])["temp"]
    finally:  # pytest's own (recursive) removal of old temp directories could not remove a deep tree
        prune_tree(temp_root / "users", max_age_hours=None, include_root=True)
    assert data["errors"] == 0
    assert data["files_removed"] == 1
    assert data["dirs_removed"] == 402  # users/deep and its 400 nested directories
    assert not leaf.exists()
    assert not (temp_root / "users").exists()
    assert kept.exists()


def test_a_symlinked_root_is_refused_with_the_reason(tmp_path: Path) -> None:
    real_temp, real_cache = tmp_path / "real_temp", tmp_path / "real_cache"
    precious = write(real_temp / "precious.bin", 1)
    kept = write(real_cache / "kept.bin", 1000)
    (tmp_path / "temp").symlink_to(real_temp)
    (tmp_path / "cache").symlink_to(real_cache)
    knobs = {"TEMP_DIR": tmp_path / "temp", "CACHE_DIR": tmp_path / "cache", "CACHE_DIR_MAX_BYTES": 0}
    err = io.StringIO()
    with override_settings(VIDEOGEN_COMMON=knobs), pytest.raises(CommandError) as excinfo:
        call_command("cleanup_temp_files", "--cache", stdout=io.StringIO(), stderr=err)
    message = str(excinfo.value)
    assert f"Refused: {tmp_path / 'temp'} is a symbolic link (to {real_temp})" in message
    assert f"Refused: {tmp_path / 'cache'} is a symbolic link (to {real_cache})" in message
    assert "could not" not in err.getvalue()  # said once, as the command's error
    assert precious.exists()
    assert kept.exists()
    out = io.StringIO()
    with override_settings(VIDEOGEN_COMMON=knobs), pytest.raises(CommandError):
        call_command("cleanup_temp_files", "--json", stdout=out, stderr=io.StringIO())
    data = json.loads(out.getvalue())
    assert data["temp"]["refused"].startswith("Refused: ")
    assert data["temp"]["errors"] == 1
