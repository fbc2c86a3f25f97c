"""common.resources: real psutil readings, thresholds with hysteresis, and refusals of work that would not fit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psutil
import pytest
from django.test import override_settings

from common import resources
from common.errors import ResourceError, ValidationError
from common.resources import ResourceMonitor, SystemResources


@pytest.fixture
def monitor() -> ResourceMonitor:
    return ResourceMonitor()


def threshold_records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


# --------------------------------------------------------------------------- readings


def test_system_resources_are_real_numbers(roots, monitor: ResourceMonitor) -> None:
    temp_root, cache_root = roots
    sample = monitor.get_system_resources()
    assert isinstance(sample, SystemResources)
    assert sample.memory_total > 0
    assert 0 < sample.memory_available <= sample.memory_total
    assert 0.0 <= sample.memory_percent_used <= 100.0
    assert sample.temp_disk.path == str(temp_root)
    assert sample.cache_disk.path == str(cache_root)
    assert sample.temp_disk.total > 0
    assert 0 <= sample.temp_disk.free <= sample.temp_disk.total
    assert 0.0 <= sample.cpu_percent <= 100.0 * sample.cpu_count
    assert sample.pid == os.getpid()
    data = sample.to_dict()
    assert set(data) == {"memory", "disk", "cpu", "process"}
    assert isinstance(data["memory"]["percent_used"], float)
    assert isinstance(data["disk"]["temp"]["free"], int)


def test_process_rss_follows_this_processs_memory(roots, monitor: ResourceMonitor) -> None:
    """The RSS reading is this process's: 64 MiB written here shows up in the next sample."""
    size = 64 * 1024 * 1024
    before = monitor.get_system_resources().process_rss
    block = bytearray(size)
    block[:: os.sysconf("SC_PAGE_SIZE")] = b"\x01" * len(block[:: os.sysconf("SC_PAGE_SIZE")])  # touch every page
    after = monitor.get_system_resources().process_rss
    del block
    assert after - before >= size * 3 // 4


async def test_async_sample_and_missing_directories(tmp_path: Path, monitor: ResourceMonitor) -> None:
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": tmp_path / "not" / "yet", "CACHE_DIR": tmp_path / "nope"}):
        sample = await monitor.aget_system_resources()
    # Disk usage is read from the nearest existing ancestor.
    assert sample.temp_disk.path == str(tmp_path)
    assert sample.cache_disk.path == str(tmp_path)


def test_psutil_errors_become_resource_errors(roots, monitor: ResourceMonitor, monkeypatch) -> None:
    def denied():
        raise psutil.AccessDenied(pid=1)

    monkeypatch.setattr(resources.psutil, "virtual_memory", denied)
    with pytest.raises(ResourceError) as excinfo:
        monitor.get_system_resources()
    assert isinstance(excinfo.value.__cause__, psutil.AccessDenied)
    monkeypatch.undo()

    def broken(path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(resources.psutil, "disk_usage", broken)
    with pytest.raises(ResourceError) as excinfo:
        monitor.disk_usage(roots[0])
    assert excinfo.value.details == {"resource": "disk", "path": str(roots[0])}
    # A background sample logs the failure instead of dying.
    assert monitor.sample_and_check() is None


# --------------------------------------------------------------------------- thresholds


def test_threshold_warns_once_per_crossing(roots, monitor: ResourceMonitor, caplog) -> None:
    caplog.set_level(logging.INFO, logger="common.resources")
    knobs = {"TEMP_DIR": roots[0], "CACHE_DIR": roots[1]}
    with override_settings(VIDEOGEN_COMMON={**knobs, "MEMORY_THRESHOLD_PERCENT": 0.0, "DISK_THRESHOLD_PERCENT": 0.0}):
        assert monitor.check_thresholds() == ["memory", "disk_temp", "disk_cache"]
        for _ in range(5):
            assert monitor.check_thresholds() == []
        assert monitor.crossed_thresholds() == ["disk_cache", "disk_temp", "memory"]
    crossed = threshold_records(caplog, "resource_threshold_crossed")
    assert [r.__dict__["resource"] for r in crossed] == ["memory", "disk_temp", "disk_cache"]
    assert all(r.levelno == logging.WARNING and r.__dict__["threshold_percent"] == 0.0 for r in crossed)
    assert crossed[1].__dict__["path"] == str(roots[0])

    with override_settings(
        VIDEOGEN_COMMON={**knobs, "MEMORY_THRESHOLD_PERCENT": 100.0, "DISK_THRESHOLD_PERCENT": 100.0}
    ):
        assert monitor.check_thresholds() == []
        assert monitor.crossed_thresholds() == []
    recovered = threshold_records(caplog, "resource_threshold_recovered")
    assert sorted(r.__dict__["resource"] for r in recovered) == ["disk_cache", "disk_temp", "memory"]

    with override_settings(VIDEOGEN_COMMON={**knobs, "MEMORY_THRESHOLD_PERCENT": 0.0}):
        assert monitor.check_thresholds() == ["memory"]
    assert len(threshold_records(caplog, "resource_threshold_crossed")) == 4


def test_hysteresis_keeps_a_hovering_reading_quiet(roots, monitor: ResourceMonitor, caplog) -> None:
    sample = monitor.get_system_resources()
    just_above = max(sample.memory_percent_used - 0.5, 0.0)
    knobs = {"TEMP_DIR": roots[0], "CACHE_DIR": roots[1], "DISK_THRESHOLD_PERCENT": 100.0}
    with override_settings(VIDEOGEN_COMMON={**knobs, "MEMORY_THRESHOLD_PERCENT": just_above}):
        assert monitor.check_thresholds(sample) == ["memory"]
    # Threshold now slightly above the reading, but within the 2-point margin: still "crossed", no log.
    with override_settings(VIDEOGEN_COMMON={**knobs, "MEMORY_THRESHOLD_PERCENT": sample.memory_percent_used + 1.0}):
        assert monitor.check_thresholds(sample) == []
        assert monitor.crossed_thresholds() == ["memory"]
    assert threshold_records(caplog, "resource_threshold_recovered") == []


def test_ensure_free_disk(roots, monitor: ResourceMonitor) -> None:
    usage = monitor.ensure_free_disk(0)
    assert usage.path == str(roots[0])
    monitor.ensure_free_disk(1024, path=roots[1])
    with pytest.raises(ResourceError) as excinfo:
        monitor.ensure_free_disk(usage.total * 2)
    error = excinfo.value
    assert error.code == "RESOURCE_EXHAUSTED"
    assert error.details["resource"] == "disk"
    assert error.details["required_bytes"] == usage.total * 2
    assert error.details["free_bytes"] <= usage.total
    assert "cleanup_temp_files" in error.message
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(ValidationError) as bad_info:
            monitor.ensure_free_disk(bad)  # type: ignore[arg-type]
        assert bad_info.value.details == {"field": "bytes_needed"}


def test_ensure_memory(roots, monitor: ResourceMonitor) -> None:
    with override_settings(VIDEOGEN_COMMON={"MEMORY_THRESHOLD_PERCENT": 100.0}):
        assert monitor.ensure_memory().memory_total > 0
        assert monitor.ensure_memory(1).memory_available >= 1
        total = psutil.virtual_memory().total
        with pytest.raises(ResourceError) as excinfo:
            monitor.ensure_memory(total * 4)
        assert excinfo.value.details["required_bytes"] == total * 4
        assert excinfo.value.details["resource"] == "memory"
    with override_settings(VIDEOGEN_COMMON={"MEMORY_THRESHOLD_PERCENT": 0.0}), pytest.raises(ResourceError) as excinfo:
        monitor.ensure_memory()
    assert excinfo.value.details["threshold_percent"] == 0.0
    with pytest.raises(ValidationError) as bad_info:
        monitor.ensure_memory(-5)
    assert bad_info.value.details == {"field": "bytes_needed"}


# --------------------------------------------------------------------------- one reading, without a monitor


def test_roots_follow_settings_and_expand_the_home_directory(tmp_path: Path) -> None:
    with override_settings(VIDEOGEN_COMMON={"TEMP_DIR": "~/vg-temp", "CACHE_DIR": tmp_path / "c" / ".." / "cache"}):
        assert resources.temp_root() == Path.home() / "vg-temp"
        assert resources.cache_root() == tmp_path / "cache"
        assert ResourceMonitor().temp_root == Path.home() / "vg-temp"


def test_disk_and_memory_readings(tmp_path: Path) -> None:
    usage = resources.disk_usage(tmp_path / "missing" / "deeper")
    assert usage.path == str(tmp_path)  # the nearest existing ancestor
    assert usage.total == psutil.disk_usage(str(tmp_path)).total
    assert usage.used + usage.free <= usage.total
    memory = resources.memory_usage()
    assert memory.total == psutil.virtual_memory().total
    assert 0 < memory.available <= memory.total
    assert memory.to_dict() == {
        "total": memory.total,
        "available": memory.available,
        "percent_used": memory.percent_used,
    }


def test_ensure_free_disk_without_a_monitor(tmp_path: Path) -> None:
    """The form temp files use for ``min_free_bytes``: a path, no monitor."""
    assert resources.ensure_free_disk(0, path=tmp_path).path == str(tmp_path)
    total = psutil.disk_usage(str(tmp_path)).total
    with pytest.raises(ResourceError) as excinfo:
        resources.ensure_free_disk(total + 1, path=tmp_path)
    assert excinfo.value.details["path"] == str(tmp_path)
    assert excinfo.value.details["required_bytes"] == total + 1


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "5", True, None])
def test_positive_number_refuses(bad: object) -> None:
    with pytest.raises(ValidationError) as excinfo:
        resources.positive_number(bad, "interval")
    assert excinfo.value.details == {"field": "interval"}


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_non_negative_int_refuses(bad: object) -> None:
    with pytest.raises(ValidationError) as excinfo:
        resources.non_negative_int(bad, "max_bytes")
    assert excinfo.value.details == {"field": "max_bytes"}


def test_the_number_helpers_accept() -> None:
    assert resources.positive_number(2, "interval") == 2.0
    assert resources.positive_number(0.5, "interval") == 0.5
    resources.non_negative_int(0, "max_bytes")
    resources.non_negative_int(10**15, "max_bytes")


def test_process_reading_follows_a_fork(roots) -> None:
    """A monitor created before a fork (pre-fork worker servers) reports the child's own RSS and pid."""
    import multiprocessing

    monitor = ResourceMonitor()
    assert monitor.get_system_resources().pid == os.getpid()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child() -> None:
        queue.put(monitor.get_system_resources().pid == os.getpid())

    process = ctx.Process(target=child)
    process.start()
    result = queue.get(timeout=30)
    process.join(30)
    assert result is True
    assert process.exitcode == 0


# --------------------------------------------------------------------------- the seeds' call form (issue 10, item 14)


def test_the_seeds_dict_form_of_a_sample(roots) -> None:
    """``resource_manager.get_system_resources()['memory']['percent_used']``."""
    from common import resource_manager

    temp_root, _cache_root = roots
    sample = resource_manager.get_system_resources()
    assert sample["memory"]["percent_used"] == sample.memory_percent_used
    assert sample["disk"]["temp"]["path"] == str(temp_root)
    assert dict(sample) == sample.to_dict()
    assert list(sample) == ["memory", "disk", "cpu", "process"]
    with pytest.raises(TypeError):
        sample["memory"] = {}  # type: ignore[index]  # read-only
    with pytest.raises(KeyError):
        sample["nope"]
