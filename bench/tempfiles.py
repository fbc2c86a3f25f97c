"""Temp cleanup, cache cap and temp contexts against plain-stdlib baselines measured in the same run.

(a) Age-based cleanup of a tree of old files (with live and finished job workspaces,
    live ones checked against the jobs table) versus a bottom-up ``os.walk`` + unlink/rmdir
    that knows nothing of jobs, symlink races or in-use paths.
(b) LRU cache cap: scan, sort and evict half of a cache directory versus a bare
    ``os.walk`` + stat + sort + unlink.
(c) ``with temp_file_manager.temp_file()`` versus ``tempfile.mkstemp`` + close + unlink.

Usage: .venv/bin/python bench/tempfiles.py [--files 20000] [--rounds 5]
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; the
database bench_videogen_tempfiles (or VIDEOGEN_BENCH_DB_NAME) is created, marked and
dropped by this script (bench/_setup.py never drops a database it did not create).
Printed per case: the median of the interleaved rounds with their min-max, and the speed ratio to the
baseline taken round by round (baseline time / ours; above 1.00x: faster).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._compare import print_table, results_of
from bench._setup import bench_database

OLD = time.time() - 48 * 3600
T = TypeVar("T")


def build_tree(root: Path, files: int, live_jobs: list[str], finished_jobs: list[str]) -> None:
    per_dir = 100
    groups = [root / "users" / f"u{i}" for i in range(files // per_dir // 2)]
    groups += [root / "jobs" / job for job in finished_jobs]
    count = 0
    i = 0
    while count < files:
        directory = groups[i % len(groups)] / f"d{i}"
        directory.mkdir(parents=True, exist_ok=True)
        for j in range(per_dir):
            path = directory / f"f{j}.bin"
            path.write_bytes(b"x" * 64)
            os.utime(path, (OLD, OLD))
        count += per_dir
        i += 1
    for job in live_jobs:
        path = root / "jobs" / job / "clip.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 64)
        os.utime(path, (OLD, OLD))
    for walked, _dirs, _files in os.walk(root, topdown=False):
        os.utime(walked, (OLD, OLD))


def naive_cleanup(root: Path, max_age_hours: float) -> int:
    cutoff = time.time() - max_age_hours * 3600
    removed = 0
    for directory, _dirs, names in os.walk(root, topdown=False):
        for name in names:
            path = os.path.join(directory, name)
            if os.lstat(path).st_mtime <= cutoff:
                os.unlink(path)
                removed += 1
        if directory != str(root):
            with contextlib.suppress(OSError):  # not empty
                os.rmdir(directory)
    return removed


def naive_cache_cap(root: Path, limit: int) -> int:
    entries = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            entries.append((max(st.st_atime, st.st_mtime), path, st.st_size))
    total = sum(e[2] for e in entries)
    evicted = 0
    for _used, path, size in sorted(entries):
        if total <= limit:
            break
        os.unlink(path)
        total -= size
        evicted += 1
    return evicted


def timed(func: Callable[[], T]) -> tuple[float, T]:
    os.sync()  # write back the tree just built, so neither side pays for the other's dirty pages
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5, help="at least 5")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds must be at least 5 (a median of fewer says little on a shared machine)")

    with bench_database("bench_videogen_tempfiles"):
        from django.test import override_settings

        from common.maintenance import ResourceManager
        from common.models import Job, JobStatus
        from common.tempfiles import temp_file_manager

        live = [
            str(
                Job.objects.create(user_id=uuid.uuid4(), status=JobStatus.PROCESSING, audio_url="b", user_prompt="b").id
            )
            for _ in range(20)
        ]
        finished = [
            str(Job.objects.create(user_id=uuid.uuid4(), status=JobStatus.COMPLETED, audio_url="b", user_prompt="b").id)
            for _ in range(20)
        ]
        manager = ResourceManager()
        ours, base = [], []
        with tempfile.TemporaryDirectory() as scratch:
            for r in range(args.rounds):
                root_a, root_b = Path(scratch) / f"a{r}", Path(scratch) / f"b{r}"
                build_tree(root_a, args.files, live, finished)
                build_tree(root_b, args.files, live, finished)
                with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": root_a}):
                    seconds, stats = timed(partial(manager.cleanup_temporary_files, 24, record=False))
                assert stats.files_removed == args.files, stats
                assert stats.skipped_live_jobs == len(live), stats
                ours.append(seconds)
                seconds, removed = timed(partial(naive_cleanup, root_b, 24))
                assert removed == args.files + len(live)  # the baseline deletes live jobs' files too
                base.append(seconds)
        title = (
            f"(a) temp cleanup of {args.files} old files, {len(live)} live + {len(finished)} finished job workspaces"
        )
        samples = {"naive os.walk": [t * 1000 for t in base], "cleanup_temporary_files": [t * 1000 for t in ours]}
        print_table(title, results_of(samples, baseline="naive os.walk"), baseline="naive os.walk", unit="ms")

        ours, base = [], []
        with tempfile.TemporaryDirectory() as scratch:
            for r in range(args.rounds):
                roots = []
                for side in ("a", "b"):
                    root = Path(scratch) / f"{side}{r}"
                    for i in range(args.files):
                        path = root / f"d{i % 50}" / f"f{i}"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(b"x" * 100)
                        os.utime(path, (OLD + i, OLD + i))
                    roots.append(root)
                limit = args.files * 100 // 2
                with override_settings(VIDEOGEN_COMMON={"CACHE_DIR": roots[0]}):
                    seconds, eviction = timed(partial(manager.enforce_cache_limit, limit, record=False))
                assert eviction.files_evicted == args.files // 2, eviction
                ours.append(seconds)
                seconds, evicted = timed(partial(naive_cache_cap, roots[1], limit))
                assert evicted == args.files // 2
                base.append(seconds)
        title = f"(b) cache cap: scan {args.files} files, evict {args.files // 2}"
        samples = {"naive os.walk": [t * 1000 for t in base], "enforce_cache_limit": [t * 1000 for t in ours]}
        print_table(title, results_of(samples, baseline="naive os.walk"), baseline="naive os.walk", unit="ms")

        n = args.files // 4
        with (
            tempfile.TemporaryDirectory() as scratch,
            override_settings(VIDEOGEN_COMMON={"TEMP_DIR": Path(scratch) / "t"}),
        ):

            def ours_ctx() -> None:
                for _ in range(n):
                    with temp_file_manager.temp_file(".bin", job_id="bench"):
                        pass

            def base_ctx() -> None:
                directory = Path(scratch) / "plain"
                directory.mkdir(exist_ok=True)
                for _ in range(n):
                    fd, name = tempfile.mkstemp(".bin", dir=directory)
                    os.close(fd)
                    os.unlink(name)

            ours, base = [], []
            for _ in range(args.rounds):  # interleaved, so disk noise hits both sides alike
                ours.append(timed(ours_ctx)[0])
                base.append(timed(base_ctx)[0])
        samples = {"mkstemp + close + unlink": [t / n * 1e6 for t in base], "temp_file": [t / n * 1e6 for t in ours]}
        baseline = "mkstemp + close + unlink"
        print_table(
            f"(c) {n} temp files created and removed",
            results_of(samples, baseline=baseline),
            baseline=baseline,
            unit="µs each",
        )


if __name__ == "__main__":
    main()
