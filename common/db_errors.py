"""Classifying and translating database errors: the rules behind :func:`common.db.boundary`.

Kept apart from :mod:`common.db` so each stays small; import the names from ``common.db``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, DataError, IntegrityError, InterfaceError, OperationalError
from django.db import Error as DjangoDatabaseError

from common.errors import PipelineError, ServiceUnavailableError, ValidationError

__all__ = ["DB_ERRORS", "find_pool_timeout", "is_connection_error", "is_pool_exhausted", "translate_error"]

# Django's errors, and psycopg's own (the cost ledger's raw psycopg cursor raises those unwrapped).
DB_ERRORS: tuple[type[BaseException], ...] = (DjangoDatabaseError, psycopg.Error)

# SQLSTATE classes/codes that mean "the connection is gone or refused", not "the query is wrong".
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")
# SQLite has no server; these messages mean the file cannot be opened or read at all.
_SQLITE_CONNECTION_MESSAGES = ("unable to open database file", "disk i/o error")
# SQLite reports a schema that is not migrated (or a bad query) as an OperationalError.
_SQLITE_SCHEMA_MESSAGES = ("no such table", "no such column", "syntax error", "has no column named")
# Integrity errors: SQLSTATE -> (code, SQLite message prefix, what it means).
_INTEGRITY = {
    "23505": ("DUPLICATE_RECORD", "unique constraint failed", "a record with these values already exists"),
    "23503": ("RELATED_RECORD_MISSING", "foreign key constraint failed", "a record it refers to does not exist"),
    "23502": ("MISSING_VALUE", "not null constraint failed", "a required value is missing"),
    "23514": ("CONSTRAINT_VIOLATED", "check constraint failed", "a value breaks a rule of the table"),
}
# Seconds a client should wait before retrying (an exhausted pool frees up sooner than a down server).
_RETRY_AFTER_POOL = 1.0
_RETRY_AFTER_UNREACHABLE = 5.0


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (``__cause__``, else ``__context__``), at most 8 deep."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        yield current
        seen += 1
        current = current.__cause__ or current.__context__


def find_pool_timeout(exc: BaseException) -> BaseException | None:
    """The pool's timeout error in ``exc``'s chain, if a pooled connection was not available in time."""
    from psycopg_pool import PoolTimeout

    return next((e for e in _chain(exc) if isinstance(e, PoolTimeout)), None)


def _sqlstate(exc: BaseException) -> str | None:
    for error in _chain(exc):
        state = getattr(error, "sqlstate", None)
        if state:
            return str(state)
    return None


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` means no usable connection (lost, refused, or none from the pool), not a query error.

    :func:`is_pool_exhausted` tells an exhausted pool (the database is fine) from the rest.
    """
    if find_pool_timeout(exc) is not None:
        return True
    if isinstance(exc, (InterfaceError, psycopg.InterfaceError)):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        return state is None or str(state).startswith(_CONNECTION_SQLSTATES)
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__ or exc.__context__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return str(sqlstate).startswith(_CONNECTION_SQLSTATES)
    module = type(cause).__module__ if cause is not None else ""
    if module.startswith("psycopg"):
        # A psycopg OperationalError without SQLSTATE never reached the server (refused, reset).
        return True
    message = str(exc).lower()
    return any(m in message for m in _SQLITE_CONNECTION_MESSAGES) or "connection" in message


def is_pool_exhausted(pool_timeout: BaseException) -> bool:
    """True when the pool timed out because every connection was busy in this process (not a database problem)."""
    from common.db_backends.postgresql.base import PoolExhausted

    return isinstance(pool_timeout, PoolExhausted)


def translate_error(
    exc: BaseException, *, operation: str, using: str = DEFAULT_DB_ALIAS, job_id: uuid.UUID | str | None = None
) -> PipelineError:
    """The :class:`~common.errors.PipelineError` for a database error raised during ``operation``.

    * no pooled connection in time -> ``ServiceUnavailableError`` saying whether this process's pool is
      exhausted (its figures in ``details["pool"]``, ``reason="pool_exhausted"``) or the database
      cannot be reached (``reason="unreachable"``);
    * a lost or refused connection -> ``ServiceUnavailableError`` (``reason="unreachable"``);
    * another operational error (statement timeout, deadlock, serialization failure, SQLite's
      "database is locked") -> ``ServiceUnavailableError`` (``reason="operational"``), retryable;
    * a data error (too long, out of range, NUL, bad JSON) -> ``ValidationError`` naming the column
      when the database names it;
    * an integrity error -> ``ValidationError`` with code ``DUPLICATE_RECORD``, ``RELATED_RECORD_MISSING``,
      ``MISSING_VALUE`` or ``CONSTRAINT_VIOLATED``;
    * anything else (a schema that is not migrated, a bug) -> ``PipelineError`` code ``DATABASE_ERROR``.

    A :class:`PipelineError` is returned unchanged. The result is meant for ``raise ... from exc``.
    """
    if isinstance(exc, PipelineError):
        return exc
    details: dict[str, Any] = {"service": "database", "alias": using, "operation": operation}
    pool_timeout = find_pool_timeout(exc)
    if pool_timeout is not None:
        status = getattr(pool_timeout, "status", None)
        if status is not None:
            details["pool"] = status
        exhausted = is_pool_exhausted(pool_timeout)
        details["reason"] = "pool_exhausted" if exhausted else "unreachable"
        return ServiceUnavailableError(
            f"{operation}: {pool_timeout}"
            if exhausted
            else f"{operation}: the database is unavailable: {pool_timeout}",
            job_id=job_id,
            details=details,
            retry_after=_RETRY_AFTER_POOL if exhausted else _RETRY_AFTER_UNREACHABLE,
        )
    state = _sqlstate(exc)
    message = _first_line(exc)
    if is_connection_error(exc):
        details["reason"] = "unreachable"
        return ServiceUnavailableError(
            f"{operation}: the database is unavailable: "
            f"the server is unreachable or dropped the connection ({message})",
            job_id=job_id,
            details=details,
            retry_after=_RETRY_AFTER_UNREACHABLE,
        )
    if state:
        details["sqlstate"] = state
    if isinstance(exc, (IntegrityError, psycopg.IntegrityError)):
        return _integrity_error(exc, state, message, operation, job_id, details)
    if isinstance(exc, (DataError, psycopg.DataError)):
        column = _diag(exc, "column_name")
        if column:
            details["field"] = column
        where = f" in {column!r}" if column else ""
        return ValidationError(
            f"{operation}: the database refused a value{where}: {message}", job_id=job_id, details=details
        )
    lowered = message.lower()
    schema = (state or "").startswith("42") or any(m in lowered for m in _SQLITE_SCHEMA_MESSAGES)
    if isinstance(exc, (OperationalError, psycopg.OperationalError)) and not schema:
        details["reason"] = "operational"
        return ServiceUnavailableError(
            f"{operation}: the database could not complete the operation ({message}); it may be retried",
            job_id=job_id,
            details=details,
            retry_after=_RETRY_AFTER_POOL,
        )
    hint = " Is the schema migrated (manage.py migrate)?" if schema else ""
    return PipelineError(
        f"{operation}: the database rejected the statement: {message}.{hint}",
        job_id=job_id,
        code="DATABASE_ERROR",
        details=details,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300].replace("\x00", "\\x00")  # never a NUL in a message that may be stored


def _diag(exc: BaseException, name: str) -> str | None:
    """A field of psycopg's diagnostic (``column_name``, ``constraint_name``, ``table_name``) in ``exc``'s chain."""
    for error in _chain(exc):
        diag = getattr(error, "diag", None)
        value = getattr(diag, name, None) if diag is not None else None
        if value:
            return str(value)
    return None


def _integrity_error(
    exc: BaseException,
    state: str | None,
    message: str,
    operation: str,
    job_id: uuid.UUID | str | None,
    details: dict[str, Any],
) -> ValidationError:
    lowered = message.lower()
    entry = _INTEGRITY.get(state or "") or next(
        (value for value in _INTEGRITY.values() if lowered.startswith(value[1])), None
    )
    code, _prefix, meaning = entry or ("INTEGRITY_ERROR", "", "the change breaks a rule of the database")
    constraint = _diag(exc, "constraint_name")
    column = _diag(exc, "column_name")
    named_by_sqlite = message.split(":", 1)[1].strip() if ":" in message and "constraint failed" in lowered else ""
    if code == "CONSTRAINT_VIOLATED" and named_by_sqlite:
        constraint = constraint or named_by_sqlite  # SQLite: "CHECK constraint failed: <name>"
    if constraint:
        details["constraint"] = constraint
    if column:
        details["field"] = column
    elif key := re.match(r"Key \((.+?)\)=", _diag(exc, "message_detail") or ""):
        details["fields"] = [part.strip().strip('"') for part in key.group(1).split(",")]  # PostgreSQL's unique key
    elif named_by_sqlite and code != "CONSTRAINT_VIOLATED":
        # SQLite names the columns: "UNIQUE constraint failed: job_costs.job_id, job_costs.idempotency_key".
        details["fields"] = [part.strip().rsplit(".", 1)[-1] for part in named_by_sqlite.split(",")]
    named = constraint or column or ", ".join(details.get("fields", []))
    return ValidationError(
        f"{operation}: {meaning}" + (f" ({named})" if named else ""), job_id=job_id, code=code, details=details
    )
