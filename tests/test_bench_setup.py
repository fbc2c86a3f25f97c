"""bench/_setup.py never drops a database it did not create (issue 10, item 13). Needs PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from bench import _setup

pytestmark = pytest.mark.postgres


@pytest.fixture
def admin() -> str:
    """A psycopg URL for the maintenance database of the test server."""
    settings = connection.settings_dict
    return f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}/postgres"


@pytest.fixture
def name(admin: str) -> Iterator[str]:
    """A database name of this test session's own (dropped afterwards whatever happened)."""
    db = f"{os.environ.get('VIDEOGEN_TEST_DB_NAME', 'test_videogen')}_bench_{os.getpid()}"
    yield db
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def exists(admin: str, db: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None


def make(admin: str, db: str, comment: str | None = None) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        if comment is not None:
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(db), sql.Literal(comment)))


def test_a_database_the_bench_did_not_create_is_never_dropped(admin: str, name: str) -> None:
    make(admin, name)  # somebody else's
    with pytest.raises(_setup.RefusedError, match="was not created by the benchmarks"):
        _setup.create_database(admin, name)
    assert exists(admin, name)
    assert not _setup.drop_database(admin, name, "videogen-bench:any")
    assert exists(admin, name)


def test_create_marks_and_drop_checks_the_mark(admin: str, name: str) -> None:
    mark = _setup.create_database(admin, name)
    assert mark.startswith(f"videogen-bench:{socket.gethostname()}:{os.getpid()}:")
    with pytest.raises(_setup.RefusedError, match="belongs to another benchmark run"):
        _setup.create_database(admin, name)  # this process is alive: its database is in use
    assert not _setup.drop_database(admin, name, mark + "x")
    assert exists(admin, name)
    assert _setup.drop_database(admin, name, mark)
    assert not exists(admin, name)
    assert not _setup.drop_database(admin, name, mark)


def test_a_dead_runs_leftover_is_replaced(admin: str, name: str) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    make(admin, name, f"videogen-bench:{socket.gethostname()}:{dead.stdout.strip()}:0123")
    mark = _setup.create_database(admin, name)
    assert mark.startswith("videogen-bench:")
    assert _setup.drop_database(admin, name, mark)


def test_the_name_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDEOGEN_BENCH_DB_NAME", raising=False)
    assert _setup.database_name("bench_videogen_x") == "bench_videogen_x"
    monkeypatch.setenv("VIDEOGEN_BENCH_DB_NAME", "bench_mine")
    assert _setup.database_name("bench_videogen_x") == "bench_mine"
    for bad in ('x"; DROP DATABASE postgres; --', "Upper", "a" * 64):
        monkeypatch.setenv("VIDEOGEN_BENCH_DB_NAME", bad)
        with pytest.raises(_setup.RefusedError, match="not a plain database name"):
            _setup.database_name("bench_videogen_x")
