"""Storage figures: 100 MB through the facade against plain httpx, and /health/ready under load.

Run: .venv/bin/python -m bench.storage [--size-mb 100] [--rounds 7] [--probes 100]
Prints figures only (no pass/fail). The stand-in Supabase server runs in its own process, so the
process memory measured here is the client's alone.

1. Upload and download of one object (100 MB by default) through ``common.storage`` (TUS in 6 MiB
   chunks, a streamed download to a file) and through plain httpx streaming the same file to the
   same server in the same run (one TUS PATCH carrying the whole file, and one PATCH per 6 MiB as Supabase
   requires; a streamed GET), interleaved. Printed: the median MB/s of the rounds with their min-max,
   the ratio to httpx taken round by round (median and min-max; goal >= 0.9) and the growth of this
   process's memory while each runs (sampled every 2 ms; goal < 64 MB). Then one upload whose connection
   is dropped midway, resumed (its rate as a ratio to the median undisturbed upload of the same run), and
   the download's SHA-256 compared with the source's.
2. ``/health/ready`` while 6 threads upload and download 1 MB objects, against a server that takes
   50 ms an answer (standing for the loaded server of issue 16, where the storage check took ~220 ms):
   the old probe (one listing per bucket, the baseline), the new one (one bucket listing), the new one with
   its result reused for HEALTH_STORAGE_CACHE_SECONDS, in 5 interleaved blocks of probes. Printed: median,
   p90 and max, and the speed ratio of the median and of the p90 to the old probe's. Goal: p90 < 50 ms.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="videogen-bench-storage-"))
os.environ["DATABASE_URL"] = f"sqlite:///{TMP / 'bench.sqlite3'}"
os.environ["VIDEOGEN_ENV_FILE"] = os.devnull
os.environ.setdefault("LOG_LEVEL", "ERROR")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")
for name in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY", "REDIS_URL"):
    os.environ.pop(name, None)

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
import psutil  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from common import health  # noqa: E402
from common.health import CacheCheck, DatabaseCheck, HealthCheck, StorageCheck  # noqa: E402
from common.storage import facade  # noqa: E402
from common.storage.buckets import BUCKETS  # noqa: E402
from tests.storage.conftest import supabase_storages  # noqa: E402
from tests.storage.samples import MP4, mp4_of  # noqa: E402

KEY = "bench-service-key"
MB = 1024 * 1024


class Server:
    """The stand-in server in a child process."""

    def __init__(self, latency: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.storage.fake_supabase", "--key", KEY),
                *("--buckets", ",".join(BUCKETS), "--latency", str(latency)),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def control(self, line: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class PeakMemory:
    """The highest RSS of this process while the block runs, minus the RSS before it."""

    def __init__(self) -> None:
        self.process = psutil.Process()

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self.before = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / MB


def write_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        head = MP4
        handle.write(head)
        digest.update(head)
        left = size - len(head)
        while left:
            piece = os.urandom(min(MB, left))
            handle.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(MB), b""):
            digest.update(piece)
    return digest.hexdigest()


def httpx_upload(url: str, path: Path, name: str, chunk: int | None = None) -> None:
    """Plain httpx: create a TUS upload, then stream the file in one PATCH (or one PATCH per ``chunk`` bytes)."""
    size = path.stat().st_size
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {"bucketName": "video-outputs", "objectName": name, "contentType": "video/mp4"}.items()
    )
    auth = {"Authorization": f"Bearer {KEY}", "apikey": KEY, "Tus-Resumable": "1.0.0", "x-upsert": "true"}
    with httpx.Client(timeout=120) as client:
        created = client.post(
            f"{url}/storage/v1/upload/resumable",
            headers={**auth, "Upload-Length": str(size), "Upload-Metadata": meta},
        )
        created.raise_for_status()

        def body(start: int, length: int):
            with open(path, "rb") as handle:
                handle.seek(start)
                while length:
                    piece = handle.read(min(256 * 1024, length))
                    length -= len(piece)
                    yield piece

        step = chunk or size
        for start in range(0, size, step):
            length = min(step, size - start)
            headers = {
                **auth,
                "Upload-Offset": str(start),
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(length),
            }
            client.patch(created.headers["location"], content=body(start, length), headers=headers).raise_for_status()


def httpx_download(url: str, name: str, destination: Path) -> None:
    auth = {"Authorization": f"Bearer {KEY}", "apikey": KEY}
    with (
        httpx.Client(timeout=120) as client,
        client.stream("GET", f"{url}/storage/v1/object/video-outputs/{name}", headers=auth) as response,
    ):
        response.raise_for_status()
        with open(destination, "wb") as handle:
            for piece in response.iter_raw():
                handle.write(piece)


def timed(fn) -> tuple[float, float]:
    with PeakMemory() as memory:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return seconds, memory.growth_mb


def transfer_bench(size_mb: int, rounds: int) -> None:
    size = size_mb * MB
    source = TMP / "source.mp4"
    expected = write_source(source, size)
    server = Server()
    print(f"== storage: {size_mb} MB upload and download, stand-in server in its own process, {rounds} rounds")
    print("   (memory: growth of this process's RSS while the transfer runs; goal < 64 MB; throughput goal >= 0.9x)")
    labels = ("httpx up", "httpx up 6MiB", "facade up", "httpx down", "facade down")
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in labels}
    runs = {
        "httpx up": lambda: httpx_upload(server.url, source, "bench/video.mp4"),
        "httpx up 6MiB": lambda: httpx_upload(server.url, source, "bench/video.mp4", chunk=6 * MB),
        "facade up": lambda: facade.upload_file("video-outputs", "bench/video.mp4", source, upsert=True),
        "httpx down": lambda: httpx_download(server.url, "bench/video.mp4", TMP / "a.mp4"),
        "facade down": lambda: facade.download_to(
            bucket="video-outputs", path="bench/video.mp4", destination=TMP / "b"
        ),
    }
    with override_settings(STORAGES=supabase_storages(server.url, key=KEY, timeout=120)):
        facade.upload_file("video-outputs", "bench/warm.mp4", mp4_of(MB), upsert=True)  # imports, connections
        for _ in range(rounds):  # interleaved, so a busy moment of the machine hits every variant alike
            for label in labels:
                results[label].append(timed(runs[label]))
        rates = {}
        for label, samples in results.items():
            per_round = [size_mb / seconds for seconds, _ in samples]
            rates[label] = per_round
            growth = max(m for _, m in samples)
            print(
                f"  {label:<14} {statistics.median(per_round):8.1f} MB/s [{min(per_round):.1f}-{max(per_round):.1f}]"
                f"  memory growth {growth:6.1f} MB (max)"
            )
        for ours, theirs, what in (
            ("facade up", "httpx up", "upload   ratio facade/httpx (httpx: one streamed PATCH)"),
            (
                "facade up",
                "httpx up 6MiB",
                "upload   ratio facade/httpx (httpx: the same 6 MiB PATCHes Supabase requires)",
            ),
            ("facade down", "httpx down", "download ratio facade/httpx"),
        ):
            ratios = [a / b for a, b in zip(rates[ours], rates[theirs], strict=True)]
            print(f"  {what}: {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]")

        # One upload whose connection drops midway (a PATCH near the middle keeps 3 MB and closes), then a download.
        middle = max(0, size // (6 * MB) // 2)
        resumed: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: resumed.append(record.getMessage())  # type: ignore[method-assign]
        storage_log = logging.getLogger("common.storage")
        level, propagate = storage_log.level, storage_log.propagate
        storage_log.setLevel(logging.WARNING)
        storage_log.propagate = False
        storage_log.addHandler(handler)
        server.control(f"drop_body /upload/resumable/ 3000000 {middle}")
        heads_before = int(server.control("count HEAD /upload/resumable/"))
        seconds, growth = timed(lambda: facade.upload_file("video-outputs", "bench/resumed.mp4", source))
        storage_log.removeHandler(handler)
        storage_log.setLevel(level)
        storage_log.propagate = propagate
        heads = int(server.control("count HEAD /upload/resumable/")) - heads_before
        facade.download_to(bucket="video-outputs", path="bench/resumed.mp4", destination=TMP / "c.mp4")
        same = sha256_of(TMP / "c.mp4") == expected
        resumes = sum("Resuming the upload" in m for m in resumed)
        at = (middle * 6 * MB + 3_000_000) / MB
        print(
            f"  dropped connection at {at:.0f} MB: resumed {resumes}x from the server's offset ({heads} HEAD), "
            f"{size_mb / seconds:.1f} MB/s ({size_mb / seconds / statistics.median(rates['facade up']):.2f}x an "
            f"undisturbed facade upload), memory growth {growth:.1f} MB, download SHA-256 matches: {same}"
        )
    server.stop()


class OldStorageCheck(HealthCheck):
    """The probe before issue 16: one listing request per bucket, every time."""

    name = "storage"

    def check(self) -> dict:
        from common.storage.facade import get_bucket_storage

        for bucket in BUCKETS:
            get_bucket_storage(bucket).ping()
        return {}


def readiness_bench(probes: int) -> None:
    server = Server(latency=0.05)
    stop = threading.Event()

    def load(i: int) -> None:
        data = mp4_of(MB)
        n = 0
        while not stop.is_set():
            facade.upload_file("video-clips", f"load/{i}/{n % 3}.mp4", data, upsert=True)
            facade.download_file("video-clips", f"load/{i}/{n % 3}.mp4")
            n += 1

    print(
        f"== /health/ready under load: 6 threads uploading+downloading 1 MB, server answers in 50 ms, {probes} probes"
    )
    variants = {
        "before: a listing per bucket": lambda: [DatabaseCheck(), CacheCheck(), OldStorageCheck()],
        "one bucket listing, no cache": lambda: [DatabaseCheck(), CacheCheck(), StorageCheck(use_cache=False)],
        "one bucket listing + 5 s cache": health.default_checks,
    }
    original = health.default_checks
    with override_settings(STORAGES=supabase_storages(server.url, key=KEY, timeout=30)):
        call_command("migrate", verbosity=0)
        threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(6)]
        for t in threads:
            t.start()
        client = Client()
        total: dict[str, list[float]] = {label: [] for label in variants}
        storage: dict[str, list[float]] = {label: [] for label in variants}
        try:
            health._probe_cache.clear()
            client.get("/health/ready")
            for block in range(5):  # interleaved, so the load and the machine weigh on every variant alike
                for label, checks in variants.items():
                    health.default_checks = checks  # type: ignore[assignment]
                    for _ in range(probes // 5 if block else probes - 4 * (probes // 5)):
                        start = time.perf_counter()
                        response = client.get("/health/ready")
                        total[label].append((time.perf_counter() - start) * 1000)
                        storage[label].append(response.json()["checks"]["storage"]["latency_ms"])
                        time.sleep(0.02)
            base = next(iter(variants))
            base_median, base_p90 = statistics.median(total[base]), statistics.quantiles(total[base], n=10)[-1]
            for label in variants:
                median, p90 = statistics.median(total[label]), statistics.quantiles(total[label], n=10)[-1]
                print(
                    f"  {label:<32} /health/ready median {median:6.1f} ms  p90 {p90:6.1f} ms  "
                    f"max {max(total[label]):6.1f} ms   "
                    f"storage check median {statistics.median(storage[label]):6.1f} ms"
                    + (
                        "   baseline"
                        if label == base
                        else f"   speed {base_median / median:.2f}x median, {base_p90 / p90:.2f}x p90 of the baseline"
                    )
                )
        finally:
            health.default_checks = original  # type: ignore[assignment]
            stop.set()
            for t in threads:
                t.join()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7, help="at least 5")
    parser.add_argument("--probes", type=int, default=100, help="per variant, at least 10")
    parser.add_argument("--part", choices=("all", "transfer", "health"), default="all")
    args = parser.parse_args()
    if args.rounds < 5 or args.probes < 10:
        parser.error("--rounds must be at least 5 and --probes at least 10 (medians of fewer say little)")
    try:
        if args.part in ("all", "transfer"):
            transfer_bench(args.size_mb, args.rounds)
        if args.part in ("all", "health"):
            readiness_bench(args.probes)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
