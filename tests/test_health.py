"""Health: /health (liveness), /health/ready and manage.py check_services, with each service up and down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, override_settings

from common import health, retry
from common.health import CacheCheck, DatabaseCheck, HealthCheck, StorageCheck, run_checks
from common.storage.buckets import BUCKETS, bucket_storages
from tests.servicekit import broken_database, closed_port
from tests.storage.conftest import SERVICE_KEY, supabase_storages
from tests.storage.fake_supabase import FakeSupabase
from tests.test_cache import LOCMEM, redis_caches

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_supabase() -> Iterator[FakeSupabase]:
    """The stand-in Supabase Storage server (see tests/storage/fake_supabase.py)."""
    server = FakeSupabase(key=SERVICE_KEY, buckets=tuple(BUCKETS)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def services_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Embedded defaults for every test: local storage in a temp folder, local-memory cache, no retry waits."""
    monkeypatch.setattr(retry, "sleep", lambda seconds: None)
    with override_settings(MEDIA_ROOT=tmp_path / "media", STORAGES=bucket_storages(supabase=False), CACHES=LOCMEM):
        yield


def ready(client: Client) -> tuple[int, dict]:
    response = client.get("/health/ready")
    return response.status_code, response.json()


class TestLiveness:
    def test_ok_with_version(self, client: Client, django_assert_num_queries) -> None:
        with django_assert_num_queries(0):
            response = client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "version": health.get_version()}
        assert response["Cache-Control"].startswith("max-age=0")

    def test_no_checks_run(self, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
        def explode(*args: object) -> None:
            raise AssertionError("liveness must not run checks")

        monkeypatch.setattr(health, "run_checks", explode)
        assert client.get("/health").status_code == 200

    def test_version_without_package_metadata(self) -> None:
        assert health.get_version() == health.VERSION


class TestReadiness:
    def test_all_up(self, client: Client) -> None:
        # This machine's own disk and memory are not the subject here (tests/test_health_resources.py).
        with override_settings(VIDEOGEN_COMMON={"DISK_THRESHOLD_PERCENT": 100.0, "MEMORY_THRESHOLD_PERCENT": 100.0}):
            status, body = ready(client)
        assert status == 200
        assert body["status"] == "ok"
        assert body["version"] == health.get_version()
        assert set(body["checks"]) == {"database", "cache", "storage", "jwks", "disk", "memory"}
        for check in body["checks"].values():
            assert check["status"] == "ok"
            assert isinstance(check["latency_ms"], float)
            assert check["latency_ms"] >= 0
        assert body["checks"]["database"]["critical"] is True
        assert body["checks"]["storage"]["details"]["backend"] == "LocalBucketStorage"

    def test_storage_check_writes_nothing(self, client: Client, tmp_path: Path) -> None:
        assert ready(client)[0] == 200
        media = tmp_path / "media"
        assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))

    def test_redis_up(self, client: Client, redis_url: str) -> None:
        with override_settings(CACHES=redis_caches(redis_url)):
            status, body = ready(client)
        assert status == 200
        assert body["checks"]["cache"]["details"]["backend"] == "RedisCache"

    def test_redis_down_is_reported_but_not_critical(self, client: Client) -> None:
        with override_settings(CACHES=redis_caches(f"redis://127.0.0.1:{closed_port()}/0")):
            status, body = ready(client)
        assert status == 200
        cache = body["checks"]["cache"]
        assert (cache["status"], cache["critical"]) == ("error", False)
        assert "unreachable" in cache["message"]

    def test_redis_down_when_cache_is_critical(self, client: Client) -> None:
        with override_settings(
            CACHES=redis_caches(f"redis://127.0.0.1:{closed_port()}/0"),
            VIDEOGEN_COMMON={"HEALTH_CRITICAL_CHECKS": ("database", "cache", "storage")},
        ):
            status, body = ready(client)
        assert status == 503
        assert body["status"] == "unavailable"

    def test_database_down(self, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
        with broken_database(monkeypatch) as (alias, _):
            monkeypatch.setattr(
                health, "default_checks", lambda: [DatabaseCheck(using=alias), CacheCheck(), StorageCheck()]
            )
            status, body = ready(client)
        assert status == 503
        assert body["checks"]["database"]["status"] == "error"
        assert "unreachable" in body["checks"]["database"]["message"]
        assert body["checks"]["cache"]["status"] == "ok"

    def test_supabase_storage_up_lists_only(self, client: Client, fake_supabase: FakeSupabase) -> None:
        with override_settings(STORAGES=supabase_storages(fake_supabase.url)):
            status, body = ready(client)
            assert status == 200
            ready(client)
        assert body["checks"]["storage"]["details"]["backend"] == "SupabaseStorage"
        # One bucket listing answers for the four buckets; the second probe reuses it (HEALTH_STORAGE_CACHE_SECONDS).
        assert fake_supabase.requests == [("GET", "/storage/v1/bucket")]  # never an upload: probes write nothing

    def test_supabase_storage_down(self, client: Client) -> None:
        with override_settings(STORAGES=supabase_storages(f"http://127.0.0.1:{closed_port()}")):
            status, body = ready(client)
        assert status == 503
        storage = body["checks"]["storage"]
        assert storage["status"] == "error"
        assert "audio-uploads" in storage["message"]

    def test_only_get(self, client: Client) -> None:
        assert client.post("/health/ready").status_code == 405


class Hanging(HealthCheck):
    name = "hanging"

    def __init__(self, release: threading.Event) -> None:
        super().__init__(critical=True, timeout=0.05)
        self.release = release

    def check(self) -> None:
        self.release.wait(10)


class Failing(HealthCheck):
    name = "failing"

    def check(self) -> None:
        raise RuntimeError("boom")


class TestRunner:
    def test_timeout(self) -> None:
        release = threading.Event()
        try:
            report = run_checks([Hanging(release), CacheCheck()])
        finally:
            release.set()
        hanging, cache = report.results
        assert hanging.status == "timeout"
        assert "no answer within 0.05 s" in hanging.message
        assert cache.ok
        assert not report.healthy

    def test_failure_is_a_result(self) -> None:
        report = run_checks([Failing(critical=False), CacheCheck()])
        assert report.healthy
        assert report.results[0].status == "error"
        assert report.results[0].message == "RuntimeError: boom"
        report = run_checks([Failing(critical=True)])
        assert not report.healthy

    def test_critical_flag_defaults_from_settings(self) -> None:
        assert DatabaseCheck().critical
        assert StorageCheck().critical
        assert not CacheCheck().critical
        with override_settings(VIDEOGEN_COMMON={"HEALTH_CRITICAL_CHECKS": ()}):
            assert not DatabaseCheck().critical

    def test_storage_check_subset(self) -> None:
        report = run_checks([StorageCheck(buckets=["video-clips"])])
        assert report.results[0].details == {"buckets": ["video-clips"], "backend": "LocalBucketStorage"}


class TestCheckServicesCommand:
    def test_all_up(self, capsys: pytest.CaptureFixture[str]) -> None:
        call_command("check_services")
        out = capsys.readouterr().out
        for name in ("database", "cache", "storage"):
            assert name in out
        assert "All critical services are available." in out

    def test_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        call_command("check_services", "--json")
        body = json.loads(capsys.readouterr().out)
        assert body["status"] == "ok"
        assert set(body["checks"]) == {"database", "cache", "storage", "jwks", "disk", "memory"}

    def test_only_some_checks(self, capsys: pytest.CaptureFixture[str]) -> None:
        call_command("check_services", "--check", "cache", "--json")
        assert set(json.loads(capsys.readouterr().out)["checks"]) == {"cache"}

    def test_unknown_check(self) -> None:
        with pytest.raises(CommandError, match="Unknown check"):
            call_command("check_services", "--check", "queue")

    def test_critical_failure_exits_non_zero(self, capsys: pytest.CaptureFixture[str]) -> None:
        with (
            override_settings(STORAGES=supabase_storages(f"http://127.0.0.1:{closed_port()}")),
            pytest.raises(CommandError) as caught,
        ):
            call_command("check_services")
        assert caught.value.returncode == 1
        assert "storage" in str(caught.value)
        assert "ERROR" in capsys.readouterr().out

    def test_optional_failure_exits_zero(self) -> None:
        with override_settings(CACHES=redis_caches(f"redis://127.0.0.1:{closed_port()}/0")):
            call_command("check_services", stdout=open(os.devnull, "w"))  # noqa: SIM115

    @pytest.mark.postgres
    def test_the_database_line_shows_the_pool(self, capsys: pytest.CaptureFixture[str]) -> None:
        call_command("check_services", "--check", "database")
        lines = capsys.readouterr().out.splitlines()
        pool_lines = [line.strip() for line in lines if "pool videogen-default:" in line]
        assert len(pool_lines) == 1
        assert f"of {connection.settings_dict['OPTIONS']['pool']['max_size']} in use" in pool_lines[0]
        assert "waiting;" in pool_lines[0]
        assert "requests" in pool_lines[0]

    @pytest.mark.postgres
    def test_json_has_the_pool_in_the_database_details(self, capsys: pytest.CaptureFixture[str]) -> None:
        call_command("check_services", "--check", "database", "--json")
        pool = json.loads(capsys.readouterr().out)["checks"]["database"]["details"]["pool"]
        assert set(pool) >= {"name", "max_size", "open", "in_use", "idle", "waiting", "stats"}
        assert pool["stats"]["pool_max"] == pool["max_size"]


class TestDatabaseCheck:
    @pytest.mark.postgres
    def test_ready_shows_the_pool(self, client: Client) -> None:
        status, body = ready(client)
        assert status == 200
        pool = body["checks"]["database"]["details"]["pool"]
        assert pool["name"] == "videogen-default"
        assert pool["max_size"] == connection.settings_dict["OPTIONS"]["pool"]["max_size"]
        assert pool["waiting"] == 0
        assert pool["stats"]["requests_num"] >= 1

    def test_details_name_the_vendor_and_a_pool_only_on_postgresql(self) -> None:
        details = DatabaseCheck().run()
        assert details is not None
        assert details["vendor"] == connection.vendor
        assert ("pool" in details) == (connection.vendor == "postgresql")

    def test_the_probe_leaves_a_margin_inside_the_check_timeout(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from common import db

        seen: list[float] = []
        monkeypatch.setattr(db, "ping", lambda *, using, timeout: seen.append(timeout))
        DatabaseCheck(timeout=1.0).run()
        assert seen == [0.8]


def run_manage(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "REDIS_URL", "DATABASE_URL"))}
    base.update(VIDEOGEN_ENV_FILE=os.devnull, DATABASE_URL=f"sqlite:///{tmp_path / 'probe.sqlite3'}", **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check_services"],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestCheckServicesProcess:
    """The real exit codes, in a separate process with its own environment."""

    def test_exit_zero_when_up(self, tmp_path: Path) -> None:
        result = run_manage(tmp_path)
        assert result.returncode == 0, result.stderr
        assert "All critical services are available." in result.stdout

    def test_exit_one_when_storage_is_down(self, tmp_path: Path) -> None:
        result = run_manage(
            tmp_path,
            SUPABASE_URL=f"http://127.0.0.1:{closed_port()}",
            SUPABASE_SERVICE_KEY="sb_secret_" + "k" * 32,
        )
        assert result.returncode == 1
        assert "Critical service check(s) failed: storage" in result.stderr
        assert "Traceback" not in result.stderr


async def test_async_runner() -> None:
    report = await health.arun_checks([CacheCheck()])
    assert report.healthy
    assert report.to_dict()["checks"]["cache"]["status"] == "ok"
