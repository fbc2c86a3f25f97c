"""A small, real PostgreSQL connection pool for a test, and threads that hold its connections.

``small_pool()`` swaps the ``default`` alias's psycopg pool for one with ``max_size``
connections and a short ``timeout`` (so a test of exhaustion never waits long), optionally
pointed at a closed port (a database that cannot be reached); the suite's own pool is put
back afterwards. Use it only in ``transaction=True`` tests: the main thread's connection is
given back first, which a test wrapped in a transaction cannot do.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections

from common import db


@contextmanager
def small_pool(*, max_size: int = 2, timeout: float = 0.5, port: int | None = None) -> Iterator[Any]:
    """The ``default`` alias uses a new pool of ``max_size`` connections waiting ``timeout`` s inside the block."""
    wrapper = connections["default"]
    pools = type(wrapper)._connection_pools
    settings = wrapper.settings_dict
    connections.close_all()
    saved_pool = pools.pop("default", None)
    saved_options, saved_port = settings["OPTIONS"]["pool"], settings["PORT"]
    settings["OPTIONS"]["pool"] = {
        **saved_options,
        "name": "test-small",
        "min_size": 1,
        "max_size": max_size,
        "timeout": timeout,
    }
    if port is not None:
        settings["PORT"] = str(port)
    try:
        yield wrapper.pool
    finally:
        connections.close_all()
        gc.collect()  # connections of threads that ended without giving them back
        small = pools.pop("default", None)
        if small is not None:
            small.close(timeout=2)
        settings["OPTIONS"]["pool"], settings["PORT"] = saved_options, saved_port
        if saved_pool is not None:
            pools["default"] = saved_pool


class Holder(threading.Thread):
    """A thread that takes a pooled connection, keeps it until :meth:`release`, then gives it back."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.ready = threading.Event()
        self._release = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()
        self._release.wait(30)
        connections.close_all()

    def release(self) -> None:
        """Give the connection back and wait for the thread to end."""
        self._release.set()
        self.join(10)


@contextmanager
def holding(count: int) -> Iterator[list[Holder]]:
    """``count`` threads each holding one pooled connection inside the block."""
    holders = [Holder() for _ in range(count)]
    try:
        for holder in holders:
            holder.start()
            holder.ready.wait(10)
            assert holder.error is None, holder.error
        yield holders
    finally:
        for holder in holders:
            holder.release()


def wait_for_waiters(count: int, *, within: float = 10.0) -> None:
    """Block until ``count`` threads are waiting for a connection of the default pool."""
    deadline = time.monotonic() + within
    while (db.pool_status() or {}).get("waiting", 0) < count:
        assert time.monotonic() < deadline, f"no {count} waiting thread(s) within {within} s"
        time.sleep(0.005)


@contextmanager
def pool_for_threads(count: int) -> Iterator[None]:
    """Make room for ``count`` threads that each keep one connection (the README's rule: a pool at least that large).

    On PostgreSQL with a smaller pool, a pool of ``count`` connections that waits as long as the suite's
    replaces it inside the block (``transaction=True`` tests only); otherwise nothing changes.
    """
    options = connections["default"].settings_dict.get("OPTIONS", {}).get("pool")
    if connection.vendor != "postgresql" or not options or options.get("max_size", 0) >= count:
        yield
        return
    with small_pool(max_size=count, timeout=float(options.get("timeout", 5))):
        yield
