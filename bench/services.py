"""Cache and storage figures: helper overhead against raw baselines, and how fast a down Redis is given up on.

Run: REDIS_URL=redis://127.0.0.1:6379/<n> .venv/bin/python -m bench.services
Prints figures only (no pass/fail). Uses a throwaway SQLite file and a temporary MEDIA_ROOT.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
tmp = Path(tempfile.mkdtemp(prefix="videogen-bench-"))
os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
os.environ["VIDEOGEN_ENV_FILE"] = os.devnull
# Each storage call and HTTP request logs at INFO; only the figures belong on the screen (override with LOG_LEVEL).
os.environ.setdefault("LOG_LEVEL", "ERROR")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")
for name in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY"):
    os.environ.pop(name, None)

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.test import override_settings  # noqa: E402

from common import cache  # noqa: E402
from common.health import run_checks  # noqa: E402
from common.storage import facade  # noqa: E402
from common.storage.buckets import bucket_storages  # noqa: E402
from tests.servicekit import closed_port  # noqa: E402
from tests.storage.conftest import supabase_storages  # noqa: E402
from tests.storage.fake_supabase import FakeSupabase  # noqa: E402
from tests.storage.samples import MP4  # noqa: E402
from tests.test_cache import LOCMEM, redis_caches  # noqa: E402


def rate(fn, seconds: float = 1.0) -> float:
    fn()  # warm up (imports, URL resolver, connection pools)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def timed(fn, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    key = f"bench:{uuid.uuid4().hex}"
    print("== cache: get+set pairs per second (1 thread)")
    with override_settings(CACHES=LOCMEM):
        print(f"  locmem via common.cache     {rate(lambda: (cache.set(key, 1), cache.get(key))):10.0f}/s")
    raw = redis.Redis.from_url(redis_url)
    baseline = rate(lambda: (raw.set(f"videogen:cache:{key}", 1), raw.get(f"videogen:cache:{key}")))
    print(f"  redis-py raw (baseline)     {baseline:10.0f}/s")
    with override_settings(CACHES=redis_caches(redis_url)):
        helper = rate(lambda: (cache.set(key, 1), cache.get(key)))
        print(f"  redis via common.cache      {helper:10.0f}/s  ({helper / baseline:.2f}x baseline)")
        cache.delete(key)
    raw.delete(f"videogen:cache:{key}")

    print("== cache: Redis down, median time for cache.get() to answer a miss")
    with override_settings(CACHES=redis_caches(f"redis://127.0.0.1:{closed_port()}/0")):
        print(f"  closed port                 {timed(lambda: cache.get('k')):10.1f} ms")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    for timeout in (0.5, 0.2):
        with override_settings(
            CACHES=redis_caches(f"redis://127.0.0.1:{silent.getsockname()[1]}/0"),
            VIDEOGEN_COMMON={"CACHE_SOCKET_TIMEOUT": timeout},
        ):
            print(f"  silent server, timeout {timeout:.1f}s {timed(lambda: cache.get('k'), 3):10.1f} ms")
    silent.close()

    print("== storage: 1 MB upload+download round trips per second")
    data = MP4 + bytes(1024 * 1024 - len(MP4))
    with override_settings(MEDIA_ROOT=tmp / "media", STORAGES=bucket_storages(supabase=False)):
        local = rate(
            lambda: (
                facade.upload_file("video-clips", "b/x.mp4", data, upsert=True),
                facade.download_file("video-clips", "b/x.mp4"),
            )
        )
        print(f"  local files                 {local:10.1f}/s")
    server = FakeSupabase(key="k", buckets=("video-clips",)).start()
    with override_settings(STORAGES=supabase_storages(server.url, key="k")):
        remote = rate(
            lambda: (
                facade.upload_file("video-clips", "b/x.mp4", data, upsert=True),
                facade.download_file("video-clips", "b/x.mp4"),
            )
        )
        print(f"  Supabase (stand-in, HTTP)   {remote:10.1f}/s")
    server.stop()

    print("== /health/ready checks, median of 5 runs")
    with override_settings(MEDIA_ROOT=tmp / "media", STORAGES=bucket_storages(supabase=False), CACHES=LOCMEM):
        print(f"  all local                   {timed(run_checks):10.1f} ms")
    with override_settings(
        MEDIA_ROOT=tmp / "media", STORAGES=bucket_storages(supabase=False), CACHES=redis_caches(redis_url)
    ):
        print(f"  with Redis                  {timed(run_checks):10.1f} ms")


if __name__ == "__main__":
    main()
