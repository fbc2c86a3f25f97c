"""The test and CI environment is safe on a shared machine (issue 10, item 13).

Tests use a dedicated Redis database index unless ``REDIS_URL`` names one, never flush a database,
and ``.ci/run`` keeps a test database name and Redis URL the caller already set.
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import DEFAULT_REDIS_URL, port_open, redis_test_url, require_service

ROOT = Path(__file__).resolve().parent.parent
# Calls that empty a whole Redis database (django-redis's cache.clear() is FLUSHDB).
FLUSHING = {"flushdb", "flushall", "flush_all"}


def test_redis_default_is_a_dedicated_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert redis_test_url() == DEFAULT_REDIS_URL
    assert urlsplit(DEFAULT_REDIS_URL).path not in ("", "/", "/0")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/7")
    assert redis_test_url() == "redis://127.0.0.1:6379/7"


def flushing_calls(path: Path) -> list[str]:
    """``x.flushdb()``-style calls, and ``.clear()`` on Django's cache objects (``cache``, ``caches[...]``).

    A private in-process dict that happens to hold cached values (``_probe_cache``) is not a Redis database.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr.lower()
        owner = ast.unparse(node.func.value).lower()
        target = owner.split("[", 1)[0].rsplit(".", 1)[-1]
        if name in FLUSHING or (name == "clear" and target in ("cache", "caches")):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node.func)}()")
    return found


def test_nothing_flushes_a_redis_database() -> None:
    files = [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("common").rglob("*.py")]
    assert [call for path in files for call in flushing_calls(path)] == []


def test_the_flush_detector_finds_flushes(tmp_path: Path) -> None:
    sample = ROOT / "tests" / "_flush_sample_tmp.py"
    sample.write_text(
        "r.flushdb()\ncache.clear()\ncaches['default'].clear()\nsettings_cache.cache_clear()\n_probe_cache.clear()\n"
    )
    try:
        assert [line.split(": ", 1)[1] for line in flushing_calls(sample)] == [
            "r.flushdb()",
            "cache.clear()",
            "caches['default'].clear()",
        ]
    finally:
        sample.unlink()


@pytest.mark.parametrize("preset", [True, False])
def test_ci_run_keeps_the_callers_test_database_and_redis(tmp_path: Path, preset: bool) -> None:
    if not (port_open("127.0.0.1", 5432) and port_open("127.0.0.1", 6379)):
        require_service("PostgreSQL and Redis must be up (.ci/run would start them)")
    stub = tmp_path / "make"
    stub.write_text('#!/bin/sh\necho "make $* db=$VIDEOGEN_TEST_DB_NAME redis=$REDIS_URL"\n')
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("VIDEOGEN_TEST_DB_NAME", "REDIS_URL")}
    env["PATH"] = f"{tmp_path}:{env['PATH']}"
    if preset:
        env.update(VIDEOGEN_TEST_DB_NAME="test_videogen_mine", REDIS_URL="redis://127.0.0.1:6379/9")
    out = subprocess.run([ROOT / ".ci" / "run"], env=env, capture_output=True, text=True, check=True).stdout
    if preset:
        assert out.strip() == "make test db=test_videogen_mine redis=redis://127.0.0.1:6379/9"
    else:
        assert out.strip() == "make test db=test_videogen_ci redis=redis://127.0.0.1:6379/15"
