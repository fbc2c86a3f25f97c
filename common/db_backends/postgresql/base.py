"""Django's PostgreSQL backend, whose wait for a pooled connection is bounded, timed and explained.

Django's own backend asks psycopg's pool for a connection with ``pool.getconn()``,
which waits the pool's ``timeout`` (``DATABASE_POOL_TIMEOUT``) and then raises a bare
``PoolTimeout``. This subclass gives Django a thin view of the same pool whose ``getconn``:

* waits at most the pool's timeout, or less inside :func:`wait_limit` (the health
  check bounds its whole run that way);
* counts the threads waiting right now (psycopg's ``requests_waiting`` keeps clients
  that already gave up until a connection comes back, so it overstates);
* logs a WARNING when a wait lasted ``DB_POOL_WAIT_WARNING_SECONDS`` or more;
* on timeout logs an ERROR and raises :class:`PoolExhausted` (every connection the
  pool may open is open and busy in this process) or :class:`PoolCannotConnect` (the
  pool could not open one: the database is not answering). Both are ``PoolTimeout``
  subclasses carrying the pool's figures; Django wraps them in
  ``django.db.OperationalError`` like any driver error, and
  :func:`common.db.translate_error` makes that a ``ServiceUnavailableError``.

Returning connections, health checks and closing the pool stay Django's and psycopg's.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db.backends.postgresql import base as postgresql
from psycopg_pool import ConnectionPool, PoolTimeout

from common.conf import app_settings
from common.log import get_logger

__all__ = ["DatabaseWrapper", "PoolCannotConnect", "PoolExhausted", "PoolWaitTimeout", "pool_status", "wait_limit"]

logger = get_logger("common.db")

# The longest a getconn in this context may wait (None: the pool's own timeout).
_wait_limit: ContextVar[float | None] = ContextVar("videogen_db_wait_limit", default=None)
# Threads inside getconn right now, per pool.
_waiting: weakref.WeakKeyDictionary[ConnectionPool[Any], int] = weakref.WeakKeyDictionary()
_waiting_lock = threading.Lock()


class PoolWaitTimeout(PoolTimeout):
    """No pooled connection within the allowed wait; ``status`` holds the pool's figures at that moment."""

    def __init__(self, message: str, *, status: dict[str, Any], waited: float) -> None:
        super().__init__(message)
        self.status = status
        self.waited = waited


class PoolExhausted(PoolWaitTimeout):
    """Every connection this process's pool may open is in use; none came back in time."""


class PoolCannotConnect(PoolWaitTimeout):
    """The pool could not open a connection in time: the database does not accept connections."""


@contextmanager
def wait_limit(seconds: float) -> Iterator[None]:
    """Inside the block, waiting for a pooled connection takes at most ``seconds`` (never more than the pool allows)."""
    outer = _wait_limit.get()
    token = _wait_limit.set(seconds if outer is None else min(seconds, outer))
    try:
        yield
    finally:
        _wait_limit.reset(token)


def _count_waiting(pool: ConnectionPool[Any], step: int) -> None:
    with _waiting_lock:
        _waiting[pool] = _waiting.get(pool, 0) + step


def pool_status(pool: ConnectionPool[Any]) -> dict[str, Any]:
    """The pool's figures: size, connections open / in use / idle, threads waiting, and psycopg's ``get_stats()``."""
    stats = pool.get_stats()
    # A pool Django has not opened yet counts its min_size as connections; it has none.
    size = 0 if pool.closed else int(stats.get("pool_size", 0))
    idle = 0 if pool.closed else int(stats.get("pool_available", 0))
    with _waiting_lock:
        waiting = _waiting.get(pool, 0)
    return {
        "name": pool.name,
        "min_size": pool.min_size,
        "max_size": pool.max_size,
        "timeout": pool.timeout,
        "open": size,
        "in_use": max(size - idle, 0),
        "idle": idle,
        "waiting": waiting,
        "stats": stats,
    }


class MeasuredPool:
    """What Django sees as ``connection.pool``: the real pool, with a bounded, timed and explained ``getconn``."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def __bool__(self) -> bool:
        return True

    def getconn(self, timeout: float | None = None) -> Any:
        """Return a connection, waiting at most the pool's timeout (or the :func:`wait_limit` in effect)."""
        pool = self._pool
        limit = float(pool.timeout if timeout is None else timeout)
        bound = _wait_limit.get()
        if bound is not None:
            limit = min(limit, bound)
        errors_before = pool.get_stats().get("connections_errors", 0)
        _count_waiting(pool, 1)
        started = time.monotonic()
        try:
            conn = pool.getconn(timeout=limit)
        except PoolTimeout as exc:
            waited = time.monotonic() - started
            _count_waiting(pool, -1)
            error = _timeout_error(pool, limit, waited, errors_before)
            logger.error("%s", error, extra={"pool": error.status})
            raise error from exc
        except BaseException:
            _count_waiting(pool, -1)
            raise
        _count_waiting(pool, -1)
        waited = time.monotonic() - started
        threshold = app_settings.DB_POOL_WAIT_WARNING_SECONDS
        if threshold is not None and waited >= threshold:
            status = pool_status(pool)
            logger.warning(
                "waited %.2f s for a database connection from pool %r (%d of %d in use, %d other threads waiting)",
                waited,
                pool.name,
                status["in_use"],
                status["max_size"],
                status["waiting"],
                extra={"pool": status, "waited_seconds": round(waited, 3)},
            )
        return conn


def _timeout_error(pool: ConnectionPool[Any], limit: float, waited: float, errors_before: int) -> PoolWaitTimeout:
    """Say why no connection came: all in use here (exhausted), or the pool could not open one (cannot connect)."""
    status = pool_status(pool)
    failed = int(status["stats"].get("connections_errors", 0)) - int(errors_before)
    exhausted = failed == 0 and status["idle"] == 0 and status["open"] >= status["max_size"]
    if exhausted:
        return PoolExhausted(
            f"this process's database connection pool {pool.name!r} is exhausted: all {status['max_size']} "
            f"connections are in use and {status['waiting']} other thread(s) are waiting; none came back within "
            f"{limit:g} s. The database is not down (its connections are busy in this process). Give a thread's "
            "connection back when its work ends (common.db.release_thread_connections(), or run it through "
            "common.log.submit_in_context), or raise DATABASE_POOL_SIZE.",
            status=status,
            waited=waited,
        )
    return PoolCannotConnect(
        f"the database is unreachable: the connection pool {pool.name!r} could not open a connection within "
        f"{limit:g} s ({failed} connection attempt(s) failed meanwhile). Check DATABASE_URL and that the server is up.",
        status=status,
        waited=waited,
    )


class DatabaseWrapper(postgresql.DatabaseWrapper):
    """Django's PostgreSQL backend whose ``pool`` is a :class:`MeasuredPool` view of psycopg's pool."""

    @property
    def pool(self) -> Any:
        """The alias's psycopg pool (created by Django on first use), seen through :class:`MeasuredPool`."""
        real = super().pool  # type: ignore[misc]  # django-stubs do not know the pool (Django 5.1+)
        return None if real is None else MeasuredPool(real)
