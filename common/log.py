"""Structured JSON logging with the job id and stage carried in context.

Use :func:`get_logger` and log as usual; wrap a job's work in
:func:`job_context` (or call :func:`set_job_id`) and every record logged inside
it, in this task or thread, carries ``job_id`` and ``stage``. The context lives
in :mod:`contextvars`, so it follows asyncio tasks (and ``asyncio.to_thread``);
:func:`submit_in_context` / :func:`wrap_with_context` carry it into thread pools.

``videogen/settings.py`` installs :class:`JsonFormatter` through ``LOGGING``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

__all__ = [
    "JsonFormatter",
    "get_job_id",
    "get_logger",
    "get_stage",
    "job_context",
    "run_in_context",
    "set_job_id",
    "set_stage",
    "submit_in_context",
    "wrap_with_context",
]

P = ParamSpec("P")
R = TypeVar("R")

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("videogen_job_id", default=None)
_stage: contextvars.ContextVar[str | None] = contextvars.ContextVar("videogen_stage", default=None)


def get_logger(name: str) -> logging.Logger:
    """Return the standard logger ``name``; records are formatted as JSON by the configured handlers."""
    return logging.getLogger(name)


def set_job_id(job_id: UUID | str | None) -> contextvars.Token[str | None]:
    """Set the job id for the current context; returns a token for ``_job_id.reset``."""
    return _job_id.set(str(job_id) if job_id is not None else None)


def set_stage(stage: str | None) -> contextvars.Token[str | None]:
    """Set the pipeline stage for the current context."""
    return _stage.set(stage)


def get_job_id() -> str | None:
    """Return the job id of the current context, if any."""
    return _job_id.get()


def get_stage() -> str | None:
    """Return the stage of the current context, if any."""
    return _stage.get()


@contextmanager
def job_context(job_id: UUID | str | None, stage: str | None = None) -> Iterator[None]:
    """Log with ``job_id`` (and ``stage``) inside the block; restores the previous values on exit."""
    job_token = set_job_id(job_id)
    stage_token = _stage.set(stage)
    try:
        yield
    finally:
        _stage.reset(stage_token)
        _job_id.reset(job_token)


def _releasing_connections() -> AbstractContextManager[Any]:
    """``common.db.releasing_connections()`` once Django is set up (imported late: ``common.db`` logs through here)."""
    try:
        from django.conf import settings

        if not settings.configured:
            return nullcontext()
        from common.db import releasing_connections
    except ImportError:  # pragma: no cover - Django is a requirement; logging must work without it anyway
        return nullcontext()
    return releasing_connections()


def run_in_context(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call ``func`` now, in a copy of the current context, so job ids it sets do not leak back.

    Not a way into a thread pool: ``pool.submit(run_in_context, f)`` copies the
    *worker's* context. Use :func:`submit_in_context` or :func:`wrap_with_context`.
    Off the main thread, a database connection ``func`` opened is given back when it
    ends (the rule of :func:`common.db.releasing_connections`).
    """
    with _releasing_connections():
        return contextvars.copy_context().run(func, *args, **kwargs)


def submit_in_context(executor: Executor, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """``executor.submit(func, ...)`` with the caller's job context (copied now) active in the worker.

    When ``func`` ends in the worker thread, the database connections it opened there go
    back to the pool (:func:`common.db.releasing_connections`), so short-lived threads never
    keep a pool slot.
    """
    ctx = contextvars.copy_context()

    def call() -> R:
        with _releasing_connections():
            return ctx.run(func, *args, **kwargs)

    return executor.submit(call)


def wrap_with_context(func: Callable[P, R]) -> Callable[P, R]:
    """Return ``func`` bound to a copy of the *current* context, to run later in another thread.

    Each call gives back the database connections it opened when it ends, except on the
    main thread and except a connection inside a transaction, so calling the wrapper
    synchronously inside your own ``atomic`` block is safe (:func:`common.db.releasing_connections`).
    """
    ctx = contextvars.copy_context()

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _releasing_connections():
            return ctx.copy().run(func, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- formatting

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}
_RESERVED = ("timestamp", "level", "module", "job_id", "stage", "message", "logger", "exception")

_REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
# Signed-URL tokens: ?token=..., &signature=..., X-Amz-Signature=..., Django signed "sig" params.
# The value stops at a backslash too, so redacting a serialised JSON line never eats an escape.
_URL_TOKEN = re.compile(r"(?i)([?&](?:token|signature|sig|x-amz-signature|apikey|api_key)=)[^&\s\"'\\]+")
_KEY_SHAPES = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{20,}|r8_[A-Za-z0-9]{20,}|sb_secret_[A-Za-z0-9_-]{8,})")


def _configured_secrets() -> tuple[str, ...]:
    """Secret values of the environment (valid or not, so an invalid setup still redacts); empty if unreadable."""
    try:
        from common.conf import get_secret_values

        return get_secret_values()
    except Exception:  # noqa: BLE001 - redaction must never break logging
        return ()


@lru_cache(maxsize=4)
def _as_in_json(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """The secrets plus their forms inside a JSON string (a quote, backslash or tab escaped), longest first."""
    forms = set(secrets) | {json.dumps(secret, ensure_ascii=False)[1:-1] for secret in secrets}
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secrets: Sequence[str] | None = None) -> str:
    """Replace configured secrets, bearer tokens and signed-URL tokens in ``text``."""
    for secret in secrets if secrets is not None else _configured_secrets():
        if secret and secret in text:
            text = text.replace(secret, _REDACTED)
    # The two word-boundary patterns cost a few microseconds per line even when nothing matches (this runs
    # on every log record, twice); a substring test for the literal each match needs skips them.
    if "bearer" in text.lower():
        text = _BEARER.sub(rf"\1 {_REDACTED}", text)
    text = _URL_TOKEN.sub(rf"\1{_REDACTED}", text)
    if "sk-" in text or "r8_" in text or "sb_secret_" in text:
        text = _KEY_SHAPES.sub(_REDACTED, text)
    return text


def _to_jsonable(value: Any) -> Any:
    """Convert common non-JSON types; anything else falls back to ``repr``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (Decimal, UUID, Path)):
        return str(value)
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return _to_jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_to_jsonable(v) for v in value]
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        try:
            return _to_jsonable(model_dump(mode="json"))
        except Exception:  # noqa: BLE001, S110 - fall through to repr below
            pass
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break logging
        return f"<unrepresentable {type(value).__name__}>"


def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object per line; never raises.

    Fields: ``timestamp`` (UTC, ISO 8601 with ``Z``), ``level``, ``module``
    (the logger name), ``job_id``, ``stage``, ``message``, then the ``extra``
    fields (a key that collides with a reserved one is renamed ``extra_<key>``),
    then ``exception`` when there is one. Secrets are redacted.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        try:
            return self._format(record)
        except Exception as exc:  # noqa: BLE001 - last resort: a formatter must never raise
            return json.dumps(
                {
                    "timestamp": _iso(dt.datetime.now(dt.UTC)),
                    "level": getattr(record, "levelname", "ERROR"),
                    "module": getattr(record, "name", "?"),
                    "message": "log record could not be formatted",
                    "format_error": repr(exc),
                }
            )

    def _format(self, record: logging.LogRecord) -> str:
        secrets = _configured_secrets()
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - bad %-args
            message = f"{record.msg!r} % {record.args!r}"
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}
        payload: dict[str, Any] = {
            "timestamp": _iso(dt.datetime.fromtimestamp(record.created, dt.UTC)),
            "level": record.levelname,
            "module": record.name,
            "job_id": _to_jsonable(extras.pop("job_id", None) or _job_id.get()),
            "stage": _to_jsonable(extras.pop("stage", None) or _stage.get()),
            "message": redact(str(message), secrets),
        }
        for key, value in extras.items():
            name = f"extra_{key}" if key in _RESERVED else key
            payload[name] = _to_jsonable(value)
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info), secrets)
        elif record.exc_text:
            payload["exception"] = redact(record.exc_text, secrets)
        text = json.dumps(payload, ensure_ascii=False, default=repr)
        # Redact what arrived through extra fields (configured secrets, as serialised, bearer tokens,
        # signed-URL tokens, key shapes) on the serialised line; the replacements keep the JSON valid.
        return redact(text, _as_in_json(secrets))


def build_logging_config(level: str, log_file: str | None = None) -> dict[str, Any]:
    """Return a ``LOGGING`` dict: JSON to the console, plus a rotating file (100 MB x 5) when set."""
    handlers: dict[str, Any] = {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
    }
    if log_file:
        handlers["file"] = {
            "class": "logging.handlers.RotatingFileHandler",
            "formatter": "json",
            "filename": log_file,
            "maxBytes": 100 * 1024 * 1024,
            "backupCount": 5,
            "encoding": "utf-8",
            "delay": True,
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "common.log.JsonFormatter"}},
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level},
        "loggers": {
            # Django logs every 4xx/5xx request itself; keep its chatter at WARNING.
            "django": {"level": "WARNING", "propagate": True},
        },
    }
