"""One prepared statement on PostgreSQL, one round trip: the hot paths of charges and holds (private).

:func:`run_prepared` executes a hand-written statement on the raw psycopg connection of Django's
connection for this thread, through a server-binding cursor kept per connection, as a prepared
statement (unless ``COST_PREPARED_STATEMENTS`` is off), and returns its first row. Django's own
cursors bind client-side and never prepare; Django opens connections with ``prepare_threshold=None``
(preparing off, for poolers such as pgbouncer), so preparing is switched on for this one statement
only and the connection's setting restored afterwards. ``bench/costs.py`` measures what that buys.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import BaseDatabaseWrapper

from common.conf import app_settings

if TYPE_CHECKING:
    import psycopg

__all__ = ["CURSORS", "run_prepared"]

# The statement cursor of each Django connection (per thread), for its current raw psycopg connection.
# Keyed on the Django wrapper, not on the raw connection: the cursor references its raw connection,
# so a raw key would never be dropped (closed or pool-recycled connections would pile up).
CURSORS: weakref.WeakKeyDictionary[BaseDatabaseWrapper, psycopg.Cursor[Any]] = weakref.WeakKeyDictionary()


def run_prepared(conn: BaseDatabaseWrapper, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run ``sql`` with ``params`` as one prepared statement on ``conn``; return its first row (``None``: no row).

    Database errors come out as Django's (``IntegrityError``, ``OperationalError`` ...), like the ORM's.
    """
    conn.ensure_connection()
    import psycopg  # here, not at module level: on SQLite the import (~80 ms) would be start-up time for nothing

    raw = conn.connection
    cursor = CURSORS.get(conn)
    if cursor is None or cursor.closed or cursor.connection is not raw:
        cursor = CURSORS[conn] = psycopg.Cursor(raw)  # one per connection, reused: no set-up per statement
    prepare = bool(app_settings.COST_PREPARED_STATEMENTS)
    threshold = raw.prepare_threshold
    if prepare:
        raw.prepare_threshold = 0
    try:
        with conn.wrap_database_errors:
            cursor.execute(sql, params, prepare=prepare)
            row = cursor.fetchone()
    finally:
        raw.prepare_threshold = threshold
    return None if row is None else tuple(row)
