"""Database helpers: a health check, an atomic block, and retries of lost connections.

Only connection-level failures (the server is unreachable, the connection
dropped, the server is shutting down) are retried; integrity errors, query
errors and timeouts never are. A failure that outlasts the retries leaves as
:class:`~common.errors.ServiceUnavailableError` (``raise ... from e``).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction

from common.conf import app_settings
from common.errors import ServiceUnavailableError, ValidationError
from common.log import get_logger
from common.retry import retry_with_backoff

__all__ = [
    "ahealth_check",
    "aping",
    "atomic",
    "health_check",
    "is_connection_error",
    "ping",
    "retry_on_connection_error",
]

logger = get_logger("common.db")
F = TypeVar("F", bound=Callable[..., Any])

# SQLSTATE classes/codes that mean "the connection is gone or refused", not "the query is wrong".
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")
# SQLite has no server; these messages mean the file cannot be opened or read at all.
_SQLITE_CONNECTION_MESSAGES = ("unable to open database file", "disk i/o error")
# The probe of ping()/health_check() (a module constant, so a test can make it slow).
_PROBE_SQL = "SELECT 1"


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` is a lost or refused database connection (worth retrying), not a query error."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__ or exc.__context__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return str(sqlstate).startswith(_CONNECTION_SQLSTATES)
    module = type(cause).__module__ if cause is not None else ""
    if module.startswith("psycopg"):
        # A psycopg OperationalError without SQLSTATE never reached the server (refused, reset, pool timeout).
        return True
    message = str(exc).lower()
    return any(m in message for m in _SQLITE_CONNECTION_MESSAGES) or "connection" in message


class _ConnectionLost(ServiceUnavailableError):
    """Internal marker: a connection error, retried by :func:`retry_on_connection_error`."""


def _discard_broken(using: str) -> None:
    """Close a connection that failed, so the next attempt opens a new one (never inside a transaction)."""
    conn = connections[using]
    if not conn.in_atomic_block:
        conn.close()


def retry_on_connection_error(
    func: F | None = None, /, *, using: str = DEFAULT_DB_ALIAS, max_attempts: int | None = None
) -> Any:
    """Decorate a sync function to retry it when the database connection fails.

    Up to ``DB_RETRY_ATTEMPTS`` (3) attempts with exponential backoff from
    ``DB_RETRY_BASE_DELAY``. Inside an open transaction nothing is retried (the
    transaction is lost anyway). Other errors (``IntegrityError`` ...) propagate unchanged.

    Raises:
        ServiceUnavailableError: when the connection still fails after the last attempt.
    """

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            raise TypeError("retry_on_connection_error wraps sync functions; wrap the sync part for async code.")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            attempts = int(max_attempts or app_settings.DB_RETRY_ATTEMPTS)
            in_transaction = connections[using].in_atomic_block

            @functools.wraps(fn)
            def attempt() -> Any:
                try:
                    return fn(*args, **kwargs)
                except (OperationalError, InterfaceError) as exc:
                    if not is_connection_error(exc):
                        raise
                    _discard_broken(using)
                    error = _ConnectionLost(
                        f"The database connection failed: {exc}", details={"service": "database", "alias": using}
                    )
                    if in_transaction:
                        raise ServiceUnavailableError(str(error), details=error.details) from exc
                    raise error from exc

            retrying = retry_with_backoff(
                max_attempts=1 if in_transaction else attempts,
                base_delay=float(app_settings.DB_RETRY_BASE_DELAY),
                max_delay=10.0,
                jitter=True,
                retryable_exceptions=(_ConnectionLost,),
            )(attempt)
            try:
                return retrying()
            except _ConnectionLost as exc:
                raise ServiceUnavailableError(
                    f"The database is unavailable after {attempts} attempts: {exc.__cause__}",
                    details=exc.details,
                ) from exc.__cause__

        return cast(F, wrapper)

    if func is not None:
        return decorate(func)
    return decorate


@contextmanager
def atomic(using: str = DEFAULT_DB_ALIAS, *, savepoint: bool = True, durable: bool = False) -> Iterator[None]:
    """``transaction.atomic`` that reports a lost connection as ``ServiceUnavailableError``.

    Integrity and other query errors propagate unchanged (the transaction is rolled back).
    """
    try:
        with transaction.atomic(using=using, savepoint=savepoint, durable=durable):
            yield
    except (OperationalError, InterfaceError) as exc:
        if not is_connection_error(exc):
            raise
        raise ServiceUnavailableError(
            f"The database connection failed during a transaction: {exc}",
            details={"service": "database", "alias": using},
        ) from exc


def ping(*, using: str = DEFAULT_DB_ALIAS, timeout: float | None = None) -> None:
    """Run ``SELECT 1`` (with a statement timeout on PostgreSQL).

    Raises:
        ValidationError: when ``timeout`` is not a positive number of seconds.
        ServiceUnavailableError: when the database cannot be reached or does not answer in time.
    """
    seconds = app_settings.HEALTH_CHECK_TIMEOUT if timeout is None else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValidationError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    conn = connections[using]
    try:
        if conn.vendor == "postgresql":
            # A transaction-local timeout: it ends with the block, so pooled connections stay clean.
            # At least 1 ms: PostgreSQL reads 0 as "no timeout".
            with transaction.atomic(using=using), conn.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [f"{max(1, round(seconds * 1000))}ms"]
                )
                cursor.execute(_PROBE_SQL)
                row = cursor.fetchone()
        else:
            # No transaction elsewhere: SQLite's BEGIN IMMEDIATE would queue a probe behind writers.
            with conn.cursor() as cursor:
                cursor.execute(_PROBE_SQL)
                row = cursor.fetchone()
    except (OperationalError, InterfaceError) as exc:
        _discard_broken(using)
        raise ServiceUnavailableError(
            f"The database is unreachable: {exc}", details={"service": "database", "alias": using}
        ) from exc
    if row is None or row[0] != 1:
        raise ServiceUnavailableError("The database gave a wrong answer to SELECT 1.", details={"alias": using})


async def aping(*, using: str = DEFAULT_DB_ALIAS, timeout: float | None = None) -> None:
    """Async twin of :func:`ping`."""
    await sync_to_async(ping)(using=using, timeout=timeout)


async def ahealth_check(*, using: str = DEFAULT_DB_ALIAS, timeout: float | None = None) -> bool:
    """Async twin of :func:`health_check`."""
    return await sync_to_async(health_check)(using=using, timeout=timeout)


def health_check(*, using: str = DEFAULT_DB_ALIAS, timeout: float | None = None) -> bool:
    """True when ``SELECT 1`` succeeds within ``timeout`` seconds; False (logged) otherwise."""
    started = time.monotonic()
    try:
        ping(using=using, timeout=timeout)
    except ServiceUnavailableError as exc:
        logger.warning("Database health check failed: %s", exc, extra={"alias": using})
        return False
    logger.debug("Database health check took %.1f ms", (time.monotonic() - started) * 1000)
    return True
