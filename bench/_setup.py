"""Shared set-up for the benchmarks: a dedicated PostgreSQL database, created, migrated and dropped here.

The server is ``DATABASE_URL``'s (default the local one). The database is named by
``VIDEOGEN_BENCH_DB_NAME`` when set, else by the script (``bench_videogen_...``). The bench marks the
database it creates (``COMMENT ON DATABASE ... IS 'videogen-bench:<host>:<pid>:<token>'``) and drops
only a database that carries its own mark, checked right before the ``DROP``. A database of that
name which the bench did not create is never dropped: the script stops and says so. A leftover marked
by a bench process that is no longer running on this host is dropped before the new one is created.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"
NAME_VARIABLE = "VIDEOGEN_BENCH_DB_NAME"
MARK_PREFIX = "videogen-bench:"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class RefusedError(RuntimeError):
    """The bench will not create or drop this database (it is not the bench's, or another run holds it)."""


def server_url() -> str:
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(f"the benchmarks need PostgreSQL; DATABASE_URL is {url.split(':', 1)[0]}://...")
    return url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def psycopg_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def database_name(default: str) -> str:
    """``VIDEOGEN_BENCH_DB_NAME`` if set, else ``default``; a plain lower-case identifier either way."""
    name = os.environ.get(NAME_VARIABLE) or default
    if not _NAME.fullmatch(name):
        raise RefusedError(f"{NAME_VARIABLE}={name!r} is not a plain database name ([a-z_][a-z0-9_]*, <= 63)")
    return name


def _mark_of(conn: object, name: str) -> tuple[bool, str | None]:
    """Whether database ``name`` exists, and its comment."""
    row = conn.execute(  # type: ignore[attr-defined]
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    return (row is not None, row[0] if row else None)


def _leftover(mark: str) -> bool:
    """True when ``mark`` names a bench process on this host that is no longer running."""
    try:
        host, pid, _token = mark[len(MARK_PREFIX) :].rsplit(":", 2)
        number = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` and mark it as this run's; return the mark.

    Raises:
        RefusedError: when ``name`` exists and is not a leftover of a finished bench run.
    """
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists, mark = _mark_of(conn, name)
        if exists:
            if not (mark or "").startswith(MARK_PREFIX):
                raise RefusedError(
                    f"database {name} exists and was not created by the benchmarks; it is left alone. "
                    f"Set {NAME_VARIABLE} to another name."
                )
            if not _leftover(mark or ""):
                raise RefusedError(
                    f"database {name} belongs to another benchmark run ({mark}); wait for it or set {NAME_VARIABLE}."
                )
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))  # a dead run's leftover
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        mark = f"{MARK_PREFIX}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(mark)))
    return mark


def drop_database(admin_url: str, name: str, mark: str) -> bool:
    """Drop database ``name`` if it still carries ``mark``; True when dropped. Says why when it is not."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists, current = _mark_of(conn, name)
        if not exists:
            return False
        if current != mark:
            print(f"not dropping database {name}: it no longer carries this run's mark ({current!r})", file=sys.stderr)
            return False
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    return True


@contextmanager
def bench_database(name: str = "bench_videogen") -> Iterator[str]:
    """Create a marked database on the server of ``DATABASE_URL``, point Django at it, migrate; drop it after.

    ``name`` is the default; ``VIDEOGEN_BENCH_DB_NAME`` overrides it.
    """
    url = server_url()
    admin = psycopg_url(with_database(url, "postgres"))
    try:
        name = database_name(name)
        mark = create_database(admin, name)
    except RefusedError as exc:
        sys.exit(f"bench: {exc}")
    target = with_database(url, name)
    os.environ["DATABASE_URL"] = target
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    sys.path.insert(0, str(ROOT))
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        yield psycopg_url(target)
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            for conn in connections.all():
                conn.close()
                close_pool = getattr(conn, "close_pool", None)
                if close_pool is not None:
                    close_pool()
        drop_database(admin, name, mark)
