"""The disk and memory readiness checks: the resource readings against their thresholds, never critical by default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from common import resources
from common.health import DiskCheck, MemoryCheck, default_checks, run_checks
from common.storage.buckets import bucket_storages
from tests.test_cache import LOCMEM

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def embedded_services(tmp_path: Path) -> Iterator[None]:
    """Local storage in a temp folder and the local-memory cache, so only disk and memory can fail."""
    with override_settings(MEDIA_ROOT=tmp_path / "media", STORAGES=bucket_storages(supabase=False), CACHES=LOCMEM):
        yield


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """A temp root that exists and a cache directory that does not (read from its nearest existing ancestor)."""
    (tmp_path / "temp").mkdir()
    return tmp_path / "temp", tmp_path / "not" / "yet" / "cache"


def knobs(roots: tuple[Path, Path], **extra: object) -> dict[str, object]:
    return {"TEMP_DIR": roots[0], "CACHE_DIR": roots[1], **extra}


def ready(client: Client) -> tuple[int, dict]:
    response = client.get("/health/ready")
    return response.status_code, response.json()


def test_both_are_default_checks_and_not_critical() -> None:
    assert [check.name for check in default_checks()][-2:] == ["disk", "memory"]
    assert DiskCheck().critical is False
    assert MemoryCheck().critical is False


def test_below_the_thresholds_they_pass_with_the_readings(client: Client, roots, tmp_path: Path) -> None:
    with override_settings(VIDEOGEN_COMMON=knobs(roots, DISK_THRESHOLD_PERCENT=100.0, MEMORY_THRESHOLD_PERCENT=100.0)):
        status, body = ready(client)
    assert status == 200
    disk, memory = body["checks"]["disk"], body["checks"]["memory"]
    assert (disk["status"], disk["critical"], memory["status"], memory["critical"]) == ("ok", False, "ok", False)
    assert disk["details"]["threshold_percent"] == 100.0
    assert disk["details"]["temp"]["path"] == str(roots[0])
    assert disk["details"]["cache"]["path"] == str(tmp_path)  # the nearest existing ancestor
    assert disk["details"]["temp"]["total"] == psutil.disk_usage(str(roots[0])).total
    assert set(disk["details"]["temp"]) == {"path", "total", "used", "free", "percent_used"}
    assert memory["details"]["total"] == psutil.virtual_memory().total
    assert 0 < memory["details"]["available"] <= memory["details"]["total"]
    assert memory["details"]["threshold_percent"] == 100.0


def test_at_the_thresholds_they_fail_without_making_the_service_unready(client: Client, roots) -> None:
    with override_settings(VIDEOGEN_COMMON=knobs(roots, DISK_THRESHOLD_PERCENT=0.0, MEMORY_THRESHOLD_PERCENT=0.0)):
        status, body = ready(client)
    assert status == 200
    assert body["status"] == "ok"
    disk, memory = body["checks"]["disk"], body["checks"]["memory"]
    assert (disk["status"], memory["status"]) == ("error", "error")
    assert disk["message"].startswith(f"ResourceError: temp {roots[0]} is ")
    assert f"; cache {roots[1].parent.parent.parent} is " in disk["message"]
    assert disk["message"].endswith("% used (threshold 0%)")
    assert memory["message"].startswith("ResourceError: memory is ")
    assert memory["message"].endswith("% used (threshold 0%)")


def test_only_the_file_system_over_the_threshold_is_named(roots, monkeypatch: pytest.MonkeyPatch) -> None:
    real = psutil.disk_usage

    def cache_full(path: str):
        usage = real(path)
        return usage._replace(percent=99.5) if path != str(roots[0]) else usage._replace(percent=10.0)

    monkeypatch.setattr(resources.psutil, "disk_usage", cache_full)
    with override_settings(VIDEOGEN_COMMON=knobs(roots, DISK_THRESHOLD_PERCENT=90.0)):
        [result] = run_checks([DiskCheck()]).results
    assert result.status == "error"
    assert result.message == f"ResourceError: cache {roots[1].parent.parent.parent} is 99.5% used (threshold 90%)"


def test_critical_when_configured(client: Client, roots) -> None:
    critical = ("database", "storage", "disk", "memory")
    with override_settings(VIDEOGEN_COMMON=knobs(roots, DISK_THRESHOLD_PERCENT=0.0, HEALTH_CRITICAL_CHECKS=critical)):
        status, body = ready(client)
    assert status == 503
    assert body["checks"]["disk"]["critical"] is True
    assert body["checks"]["memory"]["critical"] is True


def test_a_failed_reading_is_the_checks_error(roots, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object):
        raise psutil.AccessDenied(pid=1)

    monkeypatch.setattr(resources.psutil, "disk_usage", denied)
    monkeypatch.setattr(resources.psutil, "virtual_memory", denied)
    with override_settings(VIDEOGEN_COMMON=knobs(roots)):
        disk, memory = run_checks([DiskCheck(), MemoryCheck()]).results
    assert disk.status == "error"
    assert disk.message.startswith(f"ResourceError: Could not read disk usage of {roots[0]}")
    assert memory.status == "error"
    assert memory.message.startswith("ResourceError: Could not read memory usage")


def test_check_services_runs_them(roots, capsys: pytest.CaptureFixture[str]) -> None:
    with override_settings(VIDEOGEN_COMMON=knobs(roots, DISK_THRESHOLD_PERCENT=0.0)):
        call_command("check_services", "--check", "disk", "--check", "memory", "--json")
    body = json.loads(capsys.readouterr().out)
    assert set(body["checks"]) == {"disk", "memory"}
    assert body["checks"]["disk"]["status"] == "error"
    assert body["status"] == "ok"  # neither is critical
