"""Cache and storage figures: helper overhead against raw baselines, and how fast a down Redis is given up on.

Run: REDIS_URL=redis://127.0.0.1:6379/<n> .venv/bin/python -m bench.services [--rounds 5]
Prints figures only (no pass/fail), each against a baseline measured in the same interleaved rounds
(median with min-max, and the speed ratio baseline time / ours taken round by round):

- cache get+set pairs of a small value: common.cache on Redis and on local memory against raw redis-py;
- Redis down (a closed port, a server that never answers): cache.get's miss against raw redis-py with the
  same timeouts and no retry (the least any client configured that way waits; redis-py's default retries
  wait several times longer);
- 1 MB upload+download through the storage facade: on local files against writing and reading the file
  directly, and on the Supabase stand-in against plain httpx POST+GET of the same object on the same server;
- /health/ready's checks against one raw probe of the same services.

Uses a throwaway SQLite file and a temporary MEDIA_ROOT, both removed at the end (no database of
DATABASE_URL is touched); the cache keys live under ``videogen:cache:bench:<random>`` and are deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import sys
import tempfile
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

import httpx  # noqa: E402
import redis  # noqa: E402
from django.test import override_settings  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

from bench._compare import compare, print_table  # noqa: E402
from common import cache  # noqa: E402
from common.health import run_checks  # noqa: E402
from common.storage import facade  # noqa: E402
from common.storage.buckets import bucket_storages  # noqa: E402
from tests.servicekit import closed_port  # noqa: E402
from tests.storage.conftest import supabase_storages  # noqa: E402
from tests.storage.fake_supabase import FakeSupabase  # noqa: E402
from tests.storage.samples import MP4  # noqa: E402
from tests.test_cache import LOCMEM, redis_caches  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        run(args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(rounds: int) -> None:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    key = f"bench:{uuid.uuid4().hex}"
    raw = redis.Redis.from_url(redis_url)
    rkey = f"videogen:cache:{key}"

    def raw_pair() -> None:
        raw.set(rkey, b"1")
        raw.get(rkey)

    def helper_pair() -> None:
        cache.set(key, 1)
        cache.get(key)

    for label, caches in (("Redis", redis_caches(redis_url)), ("local memory", LOCMEM)):
        with override_settings(CACHES=caches):
            name = f"common.cache on {label}"
            results = compare({"redis-py raw": raw_pair, name: helper_pair}, baseline="redis-py raw", rounds=rounds)
            print_table(f"cache: get+set pair, small value, common.cache on {label}", results, baseline="redis-py raw")
            cache.delete(key)
    raw.delete(rkey)

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    down = [("closed port", closed_port(), 0.5), ("silent server", silent.getsockname()[1], 0.5)]
    down.append(("silent server", silent.getsockname()[1], 0.2))
    for label, port, timeout in down:
        bare = redis.Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

        def bare_miss(bare: redis.Redis = bare) -> None:
            with contextlib.suppress(redis.RedisError, OSError):
                bare.get("k")

        with override_settings(
            CACHES=redis_caches(f"redis://127.0.0.1:{port}/0"), VIDEOGEN_COMMON={"CACHE_SOCKET_TIMEOUT": timeout}
        ):
            results = compare(
                {"redis-py, same timeouts, no retry": bare_miss, "cache.get": lambda: cache.get("k")},
                baseline="redis-py, same timeouts, no retry",
                rounds=rounds,
                seconds=0.05,
            )
        print_table(
            f"Redis down ({label}, timeout {timeout:g} s): time to answer a miss",
            results,
            baseline="redis-py, same timeouts, no retry",
            unit="ms",
            scale=1e-3,
        )
    silent.close()

    data = MP4 + bytes(1024 * 1024 - len(MP4))
    plain = tmp / "plain.mp4"

    def plain_files() -> None:
        plain.write_bytes(data)
        plain.read_bytes()

    server = FakeSupabase(key="k", buckets=("video-clips",)).start()
    local_storages = bucket_storages(supabase=False)
    with override_settings(MEDIA_ROOT=tmp / "media", STORAGES=local_storages):
        local = {
            "plain file write+read": plain_files,
            "facade, local files": lambda: (
                facade.upload_file("video-clips", "b/x.mp4", data, upsert=True),
                facade.download_file("video-clips", "b/x.mp4"),
            ),
        }
        results = compare(local, baseline="plain file write+read", rounds=rounds)
        print_table(
            "storage: 1 MB upload+download, local files",
            results,
            baseline="plain file write+read",
            unit="ms",
            scale=1e-3,
        )
    auth = {"Authorization": "Bearer k", "apikey": "k"}
    with httpx.Client(base_url=f"{server.url}/storage/v1/object", headers=auth, timeout=30) as client:

        def httpx_pair() -> None:
            client.post(
                "/video-clips/b/y.mp4", content=data, headers={"x-upsert": "true", "content-type": "video/mp4"}
            ).raise_for_status()
            client.get("/video-clips/b/y.mp4").raise_for_status()

        with override_settings(STORAGES=supabase_storages(server.url, key="k")):
            results = compare(
                {
                    "httpx POST+GET": httpx_pair,
                    "facade, Supabase stand-in": local["facade, local files"],  # the same calls, now over HTTP
                },
                baseline="httpx POST+GET",
                rounds=rounds,
            )
        print_table(
            "storage: 1 MB upload+download, Supabase (stand-in, HTTP on loopback)",
            results,
            baseline="httpx POST+GET",
            unit="ms",
            scale=1e-3,
        )
    server.stop()

    from django.db import connection

    def raw_probes() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        raw.ping()
        os.statvfs(tmp)

    with override_settings(MEDIA_ROOT=tmp / "media", STORAGES=local_storages, CACHES=redis_caches(redis_url)):
        results = compare(
            {"raw probes (SELECT 1, PING, statvfs)": raw_probes, "run_checks()": run_checks},
            baseline="raw probes (SELECT 1, PING, statvfs)",
            rounds=rounds,
        )
        print_table(
            "/health/ready checks, local storage and Redis",
            results,
            baseline="raw probes (SELECT 1, PING, statvfs)",
            unit="ms",
            scale=1e-3,
        )


if __name__ == "__main__":
    main()
