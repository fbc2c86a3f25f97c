"""The database boundary: error translation for every service, threads that give connections back, health.

* :func:`boundary` (a decorator or a ``with`` block) turns every database error into a
  :class:`~common.errors.PipelineError`: connection and operational errors become
  ``ServiceUnavailableError`` (retryable, the operation named, and saying whether this
  process's pool is exhausted or the database cannot be reached), data errors
  ``ValidationError`` naming the column when the database names it, integrity errors
  ``ValidationError`` with their own codes. Every public service and selector uses it,
  so no ``django.db`` exception leaves ``common``.
* :func:`releasing_connections` / :func:`release_thread_connections` give a thread's
  connections back (to the pool), which ``common.log.submit_in_context`` and
  ``wrap_with_context`` do for the functions they run.
* :func:`ping` / :func:`health_check` probe the database within one time budget
  (getting a connection included); :func:`pool_status` shows the pool's use.
* :func:`retry_on_connection_error` retries connection-level failures only (the server
  is unreachable, the connection dropped, the server is shutting down); integrity
  errors, query errors, timeouts and an exhausted pool never are.
"""

from __future__ import annotations

import functools
import inspect
import random
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType
from typing import Any, NoReturn, ParamSpec, TypeVar, cast, overload

from asgiref.sync import sync_to_async
from django.db import (
    DEFAULT_DB_ALIAS,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)

from common.conf import app_settings
from common.db_errors import DB_ERRORS, find_pool_timeout, is_connection_error, is_pool_exhausted, translate_error
from common.errors import ServiceUnavailableError, ValidationError
from common.ids import canonical_uuid
from common.log import get_logger
from common.retry import retry_with_backoff

__all__ = [
    "ahealth_check",
    "aping",
    "async_twin",
    "atomic",
    "boundary",
    "health_check",
    "is_connection_error",
    "is_locked",
    "is_wrapped",
    "operation_name",
    "ping",
    "pool_status",
    "release_thread_connections",
    "releasing_connections",
    "retry_locked",
    "retry_on_connection_error",
    "translate_error",
    "wait_limit",
]

logger = get_logger("common.db")
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
P = ParamSpec("P")

# How long a SQLite writer keeps retrying "database is locked" (see retry_locked).
LOCKED_RETRY_SECONDS = 30.0

# The probe of ping()/health_check() (a module constant, so a test can make it slow).
_PROBE_SQL = "SELECT 1"


class _Boundary:
    """:func:`boundary`'s object: a decorator for sync and async functions, and a context manager."""

    def __init__(self, operation: str | None, using: str, name_job: bool = True) -> None:
        self.operation = operation
        self.using = using
        self.name_job = name_job

    def _raise(self, exc: BaseException, operation: str, job_id: uuid.UUID | str | None) -> NoReturn:
        error = translate_error(exc, operation=operation, using=self.using, job_id=job_id)
        if error.details.get("reason") == "unreachable":
            _discard_broken(self.using)
        raise error from exc

    def __enter__(self) -> _Boundary:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and isinstance(exc, DB_ERRORS):
            self._raise(exc, self.operation or "database operation", None)

    def __call__(self, func: F) -> F:
        operation = self.operation or operation_name(func)
        names = list(inspect.signature(func).parameters)
        position = names.index("job_id") if "job_id" in names else None
        name_job = self.name_job

        def job_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> uuid.UUID | str | None:
            if not name_job:
                return None
            value = kwargs.get("job_id", args[position] if position is not None and position < len(args) else None)
            return canonical_uuid(value)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except DB_ERRORS as exc:
                    self._raise(exc, operation, job_of(args, kwargs))

            awrapper.__db_boundary__ = operation  # type: ignore[attr-defined]  # see is_wrapped()
            return cast(F, awrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except DB_ERRORS as exc:
                self._raise(exc, operation, job_of(args, kwargs))

        wrapper.__db_boundary__ = operation  # type: ignore[attr-defined]
        return cast(F, wrapper)


def operation_name(func: Callable[..., Any]) -> str:
    """The operation a boundary names by default: ``<module>.<function>`` (``jobs.job_create``).

    Everything under ``common.selectors`` is named after the package, its public home
    (``selectors.job_get``).
    """
    module = func.__module__
    home = "selectors" if module == "common.selectors" or module.startswith("common.selectors.") else None
    return f"{home or module.rsplit('.', 1)[-1]}.{func.__name__}"


def is_wrapped(func: object) -> bool:
    """True when ``func`` runs inside :func:`boundary` (its database errors leave it as ``PipelineError``)."""
    return isinstance(getattr(func, "__db_boundary__", None), str)


@overload
def boundary(target: F, /, *, using: str = ..., name_job: bool = ...) -> F: ...
@overload
def boundary(target: str | None = None, /, *, using: str = ..., name_job: bool = ...) -> _Boundary: ...
def boundary(target: Any = None, /, *, using: str = DEFAULT_DB_ALIAS, name_job: bool = True) -> Any:
    """Translate database errors at the edge of ``common`` (a decorator, with or without a name, or a ``with`` block).

    ``@boundary``, ``@boundary("charge")`` or ``with boundary("reconcile"):``.
    Every database error raised inside becomes a :class:`~common.errors.PipelineError` (see
    :func:`translate_error`), naming the operation (by default ``<module>.<function>``, e.g.
    ``jobs.stage_start``) and the job when the function takes ``job_id`` (``name_job=False``: never,
    for a read whose caller must not learn whether the job exists). Pipeline errors pass through.
    A lost connection is discarded (outside a transaction) so the next call opens a new one.
    """
    if callable(target):
        return _Boundary(None, using, name_job)(target)
    return _Boundary(target, using, name_job)


def async_twin(func: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """The async twin of a sync service or selector (``ajob_create`` of ``job_create``), inside the boundary.

    The twin takes the same arguments and runs ``func`` in a worker thread (``sync_to_async``), so it never
    blocks the event loop. ``atrack = async_twin(track)`` instead of writing the signature out twice.
    """

    @functools.wraps(func)
    async def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return await sync_to_async(func)(*args, **kwargs)

    twin.__name__ = f"a{func.__name__}"
    twin.__qualname__ = f"a{func.__qualname__}"
    twin.__doc__ = f"Async twin of :func:`{func.__name__}`."
    return boundary(twin)


class _ConnectionLost(ServiceUnavailableError):
    """Internal marker: a connection error, retried by :func:`retry_on_connection_error`."""


def _discard_broken(using: str) -> None:
    """Close a connection that failed, so the next attempt opens a new one (never inside a transaction)."""
    conn = connections[using]
    if not conn.in_atomic_block:
        _close_quietly(conn)  # a broken connection may fail to close; the caller's error is what matters


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
                    pool_timeout = find_pool_timeout(exc)
                    if pool_timeout is not None and is_pool_exhausted(pool_timeout):
                        # Every connection is busy in this process and it already waited: not retried.
                        raise translate_error(exc, operation=fn.__qualname__, using=using) from exc
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


def is_locked(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "database table is locked" (a writer or a shared cache is busy)."""
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and (
        "database is locked" in text or "database table is locked" in text or "busy" in text
    )


def retry_locked(func: Callable[[], T], *, atomic: bool = True, using: str = DEFAULT_DB_ALIAS) -> T:
    """Run ``func`` in a transaction of its own (``atomic=False``: as it is), retrying SQLite's locks.

    SQLite serialises writers; a writer (or, with a shared cache, a reader) that finds the
    database locked is retried with jittered backoff for up to ``LOCKED_RETRY_SECONDS``, so
    callers see a lock only as latency. Inside a caller's transaction nothing is retried (it
    cannot start over); other errors propagate unchanged, for :func:`boundary` to translate.
    """
    deadline = time.monotonic() + LOCKED_RETRY_SECONDS
    attempt = 0
    while True:
        try:
            if not atomic:
                return func()
            with transaction.atomic(using=using):
                return func()
        except OperationalError as exc:
            if connections[using].in_atomic_block or not is_locked(exc) or time.monotonic() >= deadline:
                raise
            attempt += 1
            time.sleep(min(0.001 * 2**attempt, 0.05) * (0.5 + random.random()))  # noqa: S311 - jitter


@contextmanager
def atomic(using: str = DEFAULT_DB_ALIAS, *, savepoint: bool = True, durable: bool = False) -> Iterator[None]:
    """``transaction.atomic`` that reports a lost connection as ``ServiceUnavailableError``.

    Integrity and other query errors propagate unchanged (the transaction is rolled back).
    """
    try:
        with transaction.atomic(using=using, savepoint=savepoint, durable=durable):
            yield
    except (OperationalError, InterfaceError) as exc:
        if find_pool_timeout(exc) is not None:
            raise translate_error(exc, operation="transaction", using=using) from exc
        if not is_connection_error(exc):
            raise
        raise ServiceUnavailableError(
            f"The database connection failed during a transaction: {exc}",
            details={"service": "database", "alias": using},
        ) from exc


def ping(*, using: str = DEFAULT_DB_ALIAS, timeout: float | None = None) -> None:
    """Run ``SELECT 1``; ``timeout`` (default ``HEALTH_CHECK_TIMEOUT``) bounds the whole probe.

    Getting a connection waits at most ``timeout`` (an exhausted pool fails the probe in time
    instead of after the pool's own wait), and the rest of it is the statement timeout on PostgreSQL.

    Raises:
        ValidationError: when ``timeout`` is not a positive number of seconds.
        ServiceUnavailableError: when no connection comes in time (the message says whether this
            process's pool is exhausted or the database cannot be reached) or ``SELECT 1`` does not answer in time.
    """
    seconds = app_settings.HEALTH_CHECK_TIMEOUT if timeout is None else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValidationError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    deadline = time.monotonic() + seconds
    conn = connections[using]
    try:
        with _wait_at_most(conn.vendor, seconds):
            conn.ensure_connection()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServiceUnavailableError(
                f"database health check: getting a connection took the whole {seconds:g} s",
                details={"service": "database", "alias": using},
            )
        if conn.vendor == "postgresql":
            # A transaction-local timeout: it ends with the block, so pooled connections stay clean.
            # At least 1 ms: PostgreSQL reads 0 as "no timeout".
            with transaction.atomic(using=using), conn.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [f"{max(1, round(remaining * 1000))}ms"]
                )
                cursor.execute(_PROBE_SQL)
                row = cursor.fetchone()
        else:
            # No transaction elsewhere: SQLite's BEGIN IMMEDIATE would queue a probe behind writers.
            with conn.cursor() as cursor:
                cursor.execute(_PROBE_SQL)
                row = cursor.fetchone()
    except DB_ERRORS as exc:
        error = translate_error(exc, operation="database health check", using=using)
        if error.details.get("reason") != "pool_exhausted":
            _discard_broken(using)
        raise error from exc
    if row is None or row[0] != 1:
        raise ServiceUnavailableError("The database gave a wrong answer to SELECT 1.", details={"alias": using})


def _wait_at_most(vendor: str, seconds: float) -> AbstractContextManager[None]:
    """Bound the wait for a pooled connection (PostgreSQL through ``common.db_backends.postgresql``)."""
    return wait_limit(seconds) if vendor == "postgresql" else nullcontext()


def wait_limit(seconds: float) -> AbstractContextManager[None]:
    """Inside the block, waiting for a pooled connection lasts at most ``seconds`` (never more than the pool's).

    For a caller that must answer sooner than ``DATABASE_POOL_TIMEOUT`` (a health probe, an HTTP request).

    Raises:
        ValidationError: when ``seconds`` is not a positive, finite number.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
        raise ValidationError(f"wait_limit needs a positive number of seconds, got {seconds!r}.")
    from common.db_backends.postgresql.base import wait_limit as limit

    return limit(float(seconds))


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


# --------------------------------------------------------------------------- threads and the pool


def pool_status(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, Any] | None:
    """Describe the process's connection pool for ``using``, or return None when it has none.

    Keys: ``name``, ``min_size``, ``max_size``, ``timeout``, ``open``, ``in_use``, ``idle``, ``waiting``
    (threads waiting now) and ``stats`` (psycopg's own ``get_stats()`` counters).
    """
    conn = connections[using]
    pool = getattr(conn, "pool", None) if conn.vendor == "postgresql" else None
    if pool is None:
        return None
    from common.db_backends.postgresql.base import pool_status as status_of

    return status_of(getattr(pool, "_pool", pool))


def _close_quietly(conn: Any) -> bool:
    try:
        conn.close()
    except Exception as exc:  # noqa: BLE001 - giving a connection back must not hide the work's own outcome
        logger.warning("could not close database connection %r: %s", conn.alias, exc)
        return False
    return True


def release_thread_connections() -> int:
    """Give back every database connection this thread holds outside a transaction; return how many.

    Closing a Django connection returns it to the pool (PostgreSQL) or closes it (SQLite). Call it
    in a ``finally`` when a thread of your own ends its work (``django.db.close_old_connections()``
    does the same while ``CONN_MAX_AGE`` is 0, which pooling requires).
    """
    released = 0
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block and _close_quietly(conn):
            released += 1
    return released


@contextmanager
def releasing_connections() -> Iterator[None]:
    """Give back, when the block ends, the connections this thread opened inside it (also a decorator).

    The rule of ``submit_in_context``, ``wrap_with_context`` and ``run_in_context``: on any thread but
    the main one, a connection opened during the call is given back when it ends, normally or by an
    exception, unless it is inside a transaction (whose owner closes it). A connection the thread
    already held when the block began is left alone, so calling a wrapped function synchronously
    inside your own transaction, or on a thread that keeps its connection on purpose, changes nothing.
    """
    if threading.current_thread() is threading.main_thread():
        yield
        return
    held = {conn.alias for conn in connections.all(initialized_only=True) if conn.connection is not None}
    try:
        yield
    finally:
        for conn in connections.all(initialized_only=True):
            if conn.alias not in held and conn.connection is not None and not conn.in_atomic_block:
                _close_quietly(conn)
