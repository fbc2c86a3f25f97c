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
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from common.log_json import _BIG_INT, _iso, _key, _safe_repr, _safe_str, _to_jsonable, _valid_utf8
from common.log_redaction import as_in_json, configured_secrets, redact

__all__ = [
    "QUIET_LOGGERS",
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


# Context managers every thread call below runs inside, registered by the apps that need one:
# common's AppConfig.ready() adds common.db.releasing_connections, so a thread gives its database
# connections back without this module importing the database layer (which logs through here).
_thread_call_wrappers: list[Callable[[], AbstractContextManager[Any]]] = []


def register_thread_call_wrapper(factory: Callable[[], AbstractContextManager[Any]]) -> None:
    """Run every later thread call of this module inside ``factory()`` (registered once, however often given).

    The calls are :func:`run_in_context`, :func:`submit_in_context` and :func:`wrap_with_context`.
    """
    if factory not in _thread_call_wrappers:
        _thread_call_wrappers.append(factory)


@contextmanager
def _thread_call() -> Iterator[None]:
    with ExitStack() as stack:
        for factory in tuple(_thread_call_wrappers):
            stack.enter_context(factory())
        yield


def run_in_context(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call ``func`` now, in a copy of the current context, so job ids it sets do not leak back.

    Not a way into a thread pool: ``pool.submit(run_in_context, f)`` copies the
    *worker's* context. Use :func:`submit_in_context` or :func:`wrap_with_context`.
    Off the main thread, a database connection ``func`` opened is given back when it
    ends (the rule of :func:`common.db.releasing_connections`).
    """
    with _thread_call():
        return contextvars.copy_context().run(func, *args, **kwargs)


def submit_in_context(executor: Executor, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """``executor.submit(func, ...)`` with the caller's job context (copied now) active in the worker.

    When ``func`` ends in the worker thread, the database connections it opened there go
    back to the pool (:func:`common.db.releasing_connections`), so short-lived threads never
    keep a pool slot.
    """
    ctx = contextvars.copy_context()

    def call() -> R:
        with _thread_call():
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
        with _thread_call():
            return ctx.copy().run(func, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- extra keys

# Attributes every LogRecord has (plus the two the standard library also refuses in ``extra``).
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _make_record(
    self: logging.Logger,
    name: str,
    level: int,
    fn: str,
    lno: int,
    msg: object,
    args: Any,
    exc_info: Any,
    func: str | None = None,
    extra: Mapping[str, object] | None = None,
    sinfo: str | None = None,
) -> logging.LogRecord:
    """``Logger.makeRecord``, except that an ``extra`` key naming a record attribute becomes ``extra_<key>``.

    The standard library raises ``KeyError`` for ``extra={"module": ...}`` (or ``"message"``, ``"name"``,
    ...) before any formatter runs, losing the line; here the value is kept under ``extra_module``.
    """
    record = logging.getLogRecordFactory()(name, level, fn, lno, msg, args, exc_info, func, sinfo)
    if extra is not None:
        for key in extra:
            stored: Any = key
            while stored in _RECORD_ATTRS or stored in record.__dict__:
                stored = f"extra_{stored}"
            record.__dict__[stored] = extra[key]
    return record


# Installed on the Logger class itself, not through logging.setLoggerClass: a subclass would only reach
# loggers created after this import, and the root logger and Django's own are created before it.
logging.Logger.makeRecord = _make_record  # type: ignore[method-assign]


# ------------------------------------------------------------ reserved fields (redaction: common.log_redaction)

_RESERVED = ("timestamp", "level", "module", "job_id", "stage", "message", "logger", "exception", "format_error")

# --------------------------------------------------------------------------- the formatter


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object per line; never raises.

    Fields: ``timestamp`` (UTC, ISO 8601 with ``Z``), ``level``, ``module``
    (the logger name), ``job_id``, ``stage``, ``message``, then the ``extra``
    fields (a key that collides with a reserved one is renamed ``extra_<key>``),
    then ``format_error`` when the message could not be built, then ``exception``
    when there is one. Secrets are redacted; the line is strict JSON in valid UTF-8.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        try:
            return self._format(record)
        except Exception as exc:  # noqa: BLE001 - last resort: a formatter must never raise
            return self._fallback(record, exc)

    def _format(self, record: logging.LogRecord) -> str:
        secrets = configured_secrets()
        json_secrets = as_in_json(secrets)
        format_error = None
        try:
            message = record.getMessage()
        except Exception as exc:  # noqa: BLE001 - bad %-args, a raising __str__/__repr__
            message = f"{_safe_repr(record.msg)} % {_safe_repr(record.args)}" if record.args else _safe_repr(record.msg)
            format_error = f"{type(exc).__name__}: {_safe_str(exc)}"
        fields = record.__dict__
        extra_keys = fields.keys() - _RECORD_ATTRS  # one set operation; most records have no extras
        if len(extra_keys) > 1:  # in the order given (the set has none)
            extras = {key: fields[key] for key in fields if key in extra_keys}
        else:
            extras = {key: fields[key] for key in extra_keys}
        # The line is built in pieces, each redacted once: the serialised pieces (level, module, job id, stage,
        # extras) as the JSON text they are (configured secrets in their JSON forms too, bearer tokens, URL
        # credentials, key shapes; the replacements keep the JSON valid), the texts (message, format error,
        # exception) before serialising and again after it when it escaped anything. No match can span two
        # pieces (every pattern stops at a quote), so this is the whole line's redaction, without scanning
        # the message twice.
        head = (
            f'{{"timestamp": "{_timestamp(record.created)}", "level": {_json(record.levelname)}, '
            f'"module": {_json(record.name)}, '
            f'"job_id": {_json_value(extras.pop("job_id", None) or _job_id.get())}, '
            f'"stage": {_json_value(extras.pop("stage", None) or _stage.get())}, "message": '
        )
        parts = [redact(head, json_secrets), _json_text(message, secrets, json_secrets)]
        if extras:
            body = {}
            for key, value in extras.items():
                name = key if type(key) is str else _key(key)
                body[f"extra_{name}" if name in _RESERVED else name] = _converted(value)
            parts.append(redact(f", {_encode(body)[1:-1]}", json_secrets))
        if format_error is not None:
            parts.append(f', "format_error": {_json_text(format_error, secrets, json_secrets)}')
        if record.exc_info:
            if not record.exc_text:  # cached on the record, as logging.Formatter does, for the other handlers
                record.exc_text = self.formatException(record.exc_info)
            parts.append(f', "exception": {_json_text(record.exc_text, secrets, json_secrets)}')
        elif record.exc_text:
            parts.append(f', "exception": {_json_text(record.exc_text, secrets, json_secrets)}')
        parts.append("}")
        return _valid_utf8("".join(parts))

    def _fallback(self, record: logging.LogRecord, exc: Exception) -> str:
        """The line for a record that could not be formatted: still its message and job, still redacted."""
        try:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001
                message = _safe_repr(getattr(record, "msg", None))
            job_id = getattr(record, "job_id", None) or _job_id.get()
            stage = getattr(record, "stage", None) or _stage.get()
            payload = {
                "timestamp": _iso(dt.datetime.now(dt.UTC)),
                "level": _safe_str(getattr(record, "levelname", "ERROR")),
                "module": _safe_str(getattr(record, "name", "?")),
                "job_id": None if job_id is None else _safe_str(job_id),
                "stage": None if stage is None else _safe_str(stage),
                "message": message,
                "format_error": f"{type(exc).__name__}: {_safe_str(exc)}",
            }
            secrets = configured_secrets()
            text = json.dumps(payload, ensure_ascii=False)
            return _valid_utf8(redact(redact(text, secrets), as_in_json(secrets)))
        except Exception:  # noqa: BLE001 - nothing of the record can be shown safely
            return json.dumps(
                {
                    "timestamp": _iso(dt.datetime.now(dt.UTC)),
                    "level": "ERROR",
                    "message": "log record could not be formatted",
                }
            )


def _converted(value: Any) -> Any:
    """:func:`_to_jsonable`, or a placeholder when the value cannot be converted (one bad extra spoils nothing)."""
    kind = type(value)  # the usual extras first, by exact type (a subclass takes the general path)
    if kind is str or value is None or kind is bool:
        return value
    if (kind is int and -_BIG_INT < value < _BIG_INT) or (kind is float and math.isfinite(value)):
        return value
    try:
        return _to_jsonable(value)
    except Exception:  # noqa: BLE001 - a broken object must not lose the line
        return f"<unrepresentable {type(value).__name__}>"


# The encoder json.dumps(ensure_ascii=False, allow_nan=False, default=_safe_repr) builds on every call, built once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_safe_repr)
_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # what that encoder uses for a str


def _make_encode() -> Callable[[Any], str]:
    """:data:`_ENCODER`'s ``encode`` for a dict, without building its C encoder again on every call.

    No cycle check (``markers`` None): the values given are :func:`_to_jsonable`'s, new containers of plain
    values, so they cannot hold a cycle. Falls back to ``_ENCODER.encode`` where the C encoder is missing.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    try:
        encoder = make(None, _safe_repr, _encode_str, None, ": ", ", ", False, False, False)
    except TypeError:  # another interpreter's signature
        return _ENCODER.encode
    return lambda value: "".join(encoder(value, 0))


_encode = _make_encode()


def _json(value: Any) -> str:
    """``value`` as JSON text, as :data:`_ENCODER` writes it (a str directly)."""
    return _encode_str(value) if type(value) is str else _ENCODER.encode(value)


def _json_value(value: Any) -> str:
    """:func:`_converted` ``value`` as JSON text (``null`` and strings directly)."""
    if value is None:
        return "null"
    return _encode_str(value) if type(value) is str else _ENCODER.encode(_converted(value))


def _json_text(text: str, secrets: Sequence[str], json_secrets: Sequence[str]) -> str:
    """``text`` redacted, as a JSON string, redacted again in its JSON form when serialising escaped anything."""
    encoded = _encode_str(redact(text, secrets))
    # Without a backslash the JSON form is the redacted text between quotes, and redacting again changes nothing.
    return redact(encoded, json_secrets) if "\\" in encoded else encoded


_last_second: tuple[float, str] = (math.nan, "")


def _timestamp(created: float) -> str:
    """``created`` as ``2026-01-31T12:00:00.123Z``, exactly as :func:`_iso` gives it, the seconds part cached."""
    global _last_second
    moment = dt.datetime.fromtimestamp(created, dt.UTC)
    second = created // 1
    if moment.microsecond == 0 and created - second > 0.5:  # rounded up into the next second
        second += 1
    cached_second, prefix = _last_second
    if cached_second != second:
        prefix = moment.replace(microsecond=0).isoformat()[:19]
        _last_second = (second, prefix)
    return f"{prefix}.{moment.microsecond // 1000:03d}Z"


# Loggers kept quieter than the root level by default. Django logs every 4xx/5xx request itself; httpx logs
# every request the Supabase client makes at INFO (half of all lines in a pipeline run), httpcore and hpack
# trace each connection at DEBUG. Override with build_logging_config(..., logger_levels={"httpx": "INFO"}).
QUIET_LOGGERS: dict[str, str] = {
    "django": "WARNING",
    "httpx": "WARNING",
    "httpcore": "WARNING",
    "hpack": "WARNING",
}


def build_logging_config(
    level: str, log_file: str | None = None, *, logger_levels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return a ``LOGGING`` dict: JSON to the console, plus a rotating file (100 MB x 5) when set.

    Args:
        level: the root level (``LOG_LEVEL``).
        log_file: also write to this file (``LOG_FILE``).
        logger_levels: levels of named loggers, over :data:`QUIET_LOGGERS` (``{"httpx": "INFO"}`` shows
            httpx's request lines again; ``{"boto3": "ERROR"}`` quiets another library).
    """
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
    levels = {**QUIET_LOGGERS, **(logger_levels or {})}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "common.log.JsonFormatter"}},
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level},
        "loggers": {name: {"level": name_level, "propagate": True} for name, name_level in levels.items()},
    }
