"""The disk and memory readiness checks: the resource readings against their thresholds, never critical by default.

That ``/health/ready`` runs them (``default_checks``) is tests/test_health.py's; here each is run alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
from django.core.management import call_command
from django.test import override_settings

from common import resources
from common.health import DiskCheck, MemoryCheck, default_checks, run_checks


@pytest.fixture
def disk_roots(tmp_path: Path) -> tuple[Path, Path]:
    """A temp root that exists and a cache directory that does not (read from its nearest existing ancestor)."""
    (tmp_path / "temp").mkdir()
    return tmp_path / "temp", tmp_path / "not" / "yet" / "cache"


def knobs(disk_roots: tuple[Path, Path], **extra: object) -> dict[str, object]:
    return {"TEMP_DIR": disk_roots[0], "CACHE_DIR": disk_roots[1], **extra}


def test_both_are_default_checks_and_not_critical() -> None:
    assert [check.name for check in default_checks()][-2:] == ["disk", "memory"]
    assert DiskCheck().critical is False
    assert MemoryCheck().critical is False


def test_below_the_thresholds_they_pass_with_the_readings(disk_roots, tmp_path: Path) -> None:
    with override_settings(
        VIDEOGEN_COMMON=knobs(disk_roots, DISK_THRESHOLD_PERCENT=100.0, MEMORY_THRESHOLD_PERCENT=100.0)
    ):
        report = run_checks([DiskCheck(), MemoryCheck()])
    disk, memory = (result.to_dict() for result in report.results)
    assert (disk["status"], disk["critical"], memory["status"], memory["critical"]) == ("ok", False, "ok", False)
    assert disk["details"]["threshold_percent"] == 100.0
    assert disk["details"]["temp"]["path"] == str(disk_roots[0])
    assert disk["details"]["cache"]["path"] == str(tmp_path)  # the nearest existing ancestor
    assert disk["details"]["temp"]["total"] == psutil.disk_usage(str(disk_roots[0])).total
    assert set(disk["details"]["temp"]) == {"path", "total", "used", "free", "percent_used"}
    assert memory["details"]["total"] == psutil.virtual_memory().total
    assert 0 < memory["details"]["available"] <= memory["details"]["total"]
    assert memory["details"]["threshold_percent"] == 100.0


def test_at_the_thresholds_they_fail_without_making_the_service_unready(disk_roots, tmp_path: Path) -> None:
    with override_settings(VIDEOGEN_COMMON=knobs(disk_roots, DISK_THRESHOLD_PERCENT=0.0, MEMORY_THRESHOLD_PERCENT=0.0)):
        report = run_checks([DiskCheck(), MemoryCheck()])
    assert report.healthy  # /health/ready answers 200
    disk, memory = report.results
    assert (disk.status, memory.status) == ("error", "error")
    assert disk.message.startswith(f"ResourceError: temp {disk_roots[0]} is ")
    assert f"; cache {tmp_path} is " in disk.message
    assert disk.message.endswith("% used (threshold 0%)")
    assert memory.message.startswith("ResourceError: memory is ")
    assert memory.message.endswith("% used (threshold 0%)")


def test_only_the_file_system_over_the_threshold_is_named(
    disk_roots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = psutil.disk_usage

    def cache_full(path: str):
        return real(path)._replace(percent=10.0 if path == str(disk_roots[0]) else 99.5)

    monkeypatch.setattr(resources.psutil, "disk_usage", cache_full)
    with override_settings(VIDEOGEN_COMMON=knobs(disk_roots, DISK_THRESHOLD_PERCENT=90.0)):
        [result] = run_checks([DiskCheck()]).results
    assert result.status == "error"
    assert result.message == f"ResourceError: cache {tmp_path} is 99.5% used (threshold 90%)"


def test_critical_when_configured(disk_roots) -> None:
    critical = ("database", "storage", "disk", "memory")
    with override_settings(
        VIDEOGEN_COMMON=knobs(disk_roots, DISK_THRESHOLD_PERCENT=0.0, HEALTH_CRITICAL_CHECKS=critical)
    ):
        report = run_checks([DiskCheck(), MemoryCheck()])
    assert not report.healthy  # /health/ready answers 503
    assert [result.critical for result in report.results] == [True, True]


def test_a_failed_reading_is_the_checks_error(disk_roots, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object):
        raise psutil.AccessDenied(pid=1)

    monkeypatch.setattr(resources.psutil, "disk_usage", denied)
    monkeypatch.setattr(resources.psutil, "virtual_memory", denied)
    with override_settings(VIDEOGEN_COMMON=knobs(disk_roots)):
        disk, memory = run_checks([DiskCheck(), MemoryCheck()]).results
    assert disk.status == "error"
    assert disk.message.startswith(f"ResourceError: Could not read disk usage of {disk_roots[0]}")
    assert memory.status == "error"
    assert memory.message.startswith("ResourceError: Could not read memory usage")


def test_check_services_runs_them(disk_roots, capsys: pytest.CaptureFixture[str]) -> None:
    with override_settings(VIDEOGEN_COMMON=knobs(disk_roots, DISK_THRESHOLD_PERCENT=0.0)):
        call_command("check_services", "--check", "disk", "--check", "memory", "--json")
    body = json.loads(capsys.readouterr().out)
    assert set(body["checks"]) == {"disk", "memory"}
    assert body["checks"]["disk"]["status"] == "error"
    assert body["status"] == "ok"  # neither is critical
