"""Tests for common.log: JSON lines, job context across tasks and threads, robustness, redaction, file rotation."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from common import env, log_redaction
from common import log as log_module
from common.log import (
    JsonFormatter,
    build_logging_config,
    get_job_id,
    get_logger,
    get_stage,
    job_context,
    redact,
    run_in_context,
    set_job_id,
    set_stage,
    submit_in_context,
    wrap_with_context,
)
from tests.envtools import PRODUCTION_ENV, SECRET_VALUES, subprocess_env, use_environment

ROOT = Path(__file__).resolve().parent.parent
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
JOB = UUID("0b6f3f4e-8a43-4d8c-9d7a-2f1f5d9c0a11")


class Capture:
    """A logger whose JSON lines are written to a string buffer."""

    def __init__(self, name: str) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.logger = get_logger(name)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def raw_lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw_lines()]

    def last(self) -> dict[str, Any]:
        return self.records()[-1]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.propagate = True
        self.logger.setLevel(logging.NOTSET)


@pytest.fixture
def cap(request: pytest.FixtureRequest) -> Iterator[Capture]:
    capture = Capture(f"tests.log.{request.node.name}")
    yield capture
    capture.close()


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    env.reset_settings_cache()
    yield
    env.reset_settings_cache()


# --------------------------------------------------------------------------- the line format


def test_one_json_object_per_line_with_the_fields_in_order(cap: Capture) -> None:
    cap.logger.info("first\nwith a newline", extra={"clip": 3, "cost": Decimal("0.25")})
    cap.logger.warning("second")
    lines = cap.raw_lines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == ["timestamp", "level", "module", "job_id", "stage", "message", "clip", "cost"]
    assert TIMESTAMP.match(first["timestamp"])
    assert first["level"] == "INFO"
    assert first["module"] == cap.logger.name
    assert first["job_id"] is None
    assert first["stage"] is None
    assert first["message"] == "first\nwith a newline"
    assert first["clip"] == 3
    assert first["cost"] == "0.25"  # money stays exact: Decimal as a string
    assert json.loads(lines[1])["level"] == "WARNING"


def test_timestamp_is_utc(cap: Capture) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cap.logger.info("now")
    stamp = dt.datetime.fromisoformat(cap.last()["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == dt.timedelta(0)
    assert stamp >= before


def test_percent_args_are_interpolated(cap: Capture) -> None:
    cap.logger.info("clip %d of %s", 2, "six")
    assert cap.last()["message"] == "clip 2 of six"


def test_exception_is_included(cap: Capture) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        cap.logger.exception("failed")
    record = cap.last()
    assert record["level"] == "ERROR"
    assert record["message"] == "failed"
    assert "Traceback" in record["exception"]
    assert "ValueError: boom" in record["exception"]
    assert list(record)[-1] == "exception"


def test_exc_text_without_exc_info() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "msg", None, None)
    record.exc_text = "precomputed traceback"
    assert json.loads(JsonFormatter().format(record))["exception"] == "precomputed traceback"


def test_get_logger_is_the_standard_logger() -> None:
    assert get_logger("common.anything") is logging.getLogger("common.anything")


# --------------------------------------------------------------------------- job context


def test_job_context_sets_and_restores(cap: Capture) -> None:
    assert get_job_id() is None
    with job_context(JOB, stage="audio_analysis"):
        assert get_job_id() == str(JOB)
        assert get_stage() == "audio_analysis"
        cap.logger.info("outer")
        with job_context("job-2"):
            assert get_stage() is None
            cap.logger.info("inner")
        cap.logger.info("outer again")
    assert get_job_id() is None
    assert get_stage() is None
    cap.logger.info("outside")
    seen = [(r["job_id"], r["stage"]) for r in cap.records()]
    assert seen == [
        (str(JOB), "audio_analysis"),
        ("job-2", None),
        (str(JOB), "audio_analysis"),
        (None, None),
    ]


def test_job_context_restores_after_an_exception() -> None:
    set_job_id("before")
    try:
        with pytest.raises(RuntimeError), job_context("during", "composition"):
            raise RuntimeError("x")
        assert get_job_id() == "before"
        assert get_stage() is None
    finally:
        set_job_id(None)


def test_set_job_id_and_stage(cap: Capture) -> None:
    job_token = set_job_id(JOB)
    stage_token = set_stage("scene_planning")
    try:
        cap.logger.info("x")
        assert cap.last()["job_id"] == str(JOB)
        assert cap.last()["stage"] == "scene_planning"
    finally:
        set_stage(None)
        set_job_id(None)
    assert job_token.old_value is None or job_token.old_value is job_token.MISSING
    assert stage_token.var.name == "videogen_stage"
    assert get_job_id() is None


def test_extra_job_id_and_stage_override_the_context(cap: Capture) -> None:
    with job_context("ctx", "ctx-stage"):
        cap.logger.info("x", extra={"job_id": JOB, "stage": "explicit"})
    assert cap.last()["job_id"] == str(JOB)
    assert cap.last()["stage"] == "explicit"


async def test_context_follows_asyncio_tasks(cap: Capture) -> None:
    async def work(job: str, stage: str) -> None:
        with job_context(job, stage):
            for step in range(3):
                await asyncio.sleep(0)  # interleave with the other tasks
                cap.logger.info("step %d", step)

    await asyncio.gather(*(asyncio.create_task(work(f"job-{n}", f"stage-{n}")) for n in range(4)))
    records = cap.records()
    assert len(records) == 12
    for record in records:
        n = record["job_id"].split("-")[1]
        assert record["stage"] == f"stage-{n}"
    # They really interleaved: the job ids are not in four consecutive runs.
    order = [r["job_id"] for r in records]
    assert order != sorted(order)


async def test_task_inherits_the_context_it_was_created_in(cap: Capture) -> None:
    async def child() -> str | None:
        cap.logger.info("child")
        set_job_id("changed-in-child")  # does not leak back to the parent
        return get_job_id()

    with job_context("parent", "p"):
        assert await asyncio.create_task(child()) == "changed-in-child"
        assert get_job_id() == "parent"
    assert cap.records()[0]["job_id"] == "parent"


def test_plain_threads_do_not_inherit_the_context(cap: Capture) -> None:
    with job_context("job-t"), ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(cap.logger.info, "no context").result()
    assert cap.last()["job_id"] is None


def test_submit_in_context_carries_the_job_into_a_pool(cap: Capture) -> None:
    def work(n: int) -> tuple[str, str | None, str | None]:
        cap.logger.info("work %d", n)
        return threading.current_thread().name, get_job_id(), get_stage()

    main = threading.current_thread().name
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = []
        for n in range(6):
            with job_context(f"job-{n}", "video_generation"):
                futures.append(submit_in_context(pool, work, n))
        results = [f.result() for f in futures]
    assert [r[1] for r in results] == [f"job-{n}" for n in range(6)]
    assert all(r[0] != main and r[2] == "video_generation" for r in results)
    assert sorted(r["job_id"] for r in cap.records()) == sorted(f"job-{n}" for n in range(6))


def test_wrap_with_context_binds_the_context_at_wrap_time(cap: Capture) -> None:
    def work() -> str | None:
        cap.logger.info("wrapped")
        set_job_id("mutated")  # stays inside this call's copy
        return get_job_id()

    with job_context("job-w", "composition"):
        wrapped = wrap_with_context(work)
    # Called later, outside the block, in other threads, twice: each call sees the wrap-time context.
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert [pool.submit(wrapped).result() for _ in range(2)] == ["mutated", "mutated"]
    assert [(r["job_id"], r["stage"]) for r in cap.records()] == [("job-w", "composition")] * 2
    assert get_job_id() is None


# --------------------------------------------------------------------------- never raises


class Color(Enum):
    RED = "red"


class Payload(BaseModel):
    name: str
    cost: Decimal


class BrokenDump:
    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        return "<BrokenDump>"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")

    __str__ = __repr__


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def test_extras_are_made_json_friendly(cap: Capture) -> None:
    extras = {
        "uuid": JOB,
        "path": Path("/tmp/x.wav"),
        "aware": dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "naive": dt.datetime(2026, 1, 2, 3, 4, 5),
        "day": dt.date(2026, 1, 2),
        "clock": dt.time(10, 30),
        "color": Color.RED,
        "nested": {1: [Decimal("1.5"), (2, 3)], "s": {4}},
        "model": Payload(name="a", cost=Decimal("0.1")),
        "broken_dump": BrokenDump(),
        "opaque": Opaque(),
        "broken": BrokenRepr(),
        "none": None,
        "flag": True,
        "ratio": 0.5,
    }
    cap.logger.info("x", extra=extras)
    record = cap.last()
    assert record["uuid"] == str(JOB)
    assert record["path"] == "/tmp/x.wav"
    assert record["aware"] == "2026-01-02T01:04:05.678Z"
    assert record["naive"] == "2026-01-02T03:04:05.000Z"
    assert record["day"] == "2026-01-02"
    assert record["clock"] == "10:30:00"
    assert record["color"] == "red"
    assert record["nested"] == {"1": ["1.5", [2, 3]], "s": [4]}
    assert record["model"] == {"name": "a", "cost": "0.1"}
    assert record["broken_dump"] == "<BrokenDump>"
    assert record["opaque"] == "<Opaque thing>"  # unserialisable: falls back to repr
    assert record["broken"] == "<unrepresentable BrokenRepr>"
    assert (record["none"], record["flag"], record["ratio"]) == (None, True, 0.5)


def test_reserved_keys_in_extra_are_renamed(cap: Capture) -> None:
    cap.logger.info("real message", extra={"level": "fake", "timestamp": 0, "logger": "l", "exception": "e"})
    record = cap.last()
    assert record["level"] == "INFO"
    assert record["message"] == "real message"
    assert TIMESTAMP.match(record["timestamp"])
    assert record["extra_level"] == "fake"
    assert record["extra_timestamp"] == 0
    assert record["extra_logger"] == "l"
    assert record["extra_exception"] == "e"
    assert "exception" not in record


def format_record(msg: object, *args: object) -> dict[str, Any]:
    """Format a record straight through JsonFormatter (pytest's own capture handler would re-raise)."""
    record = logging.getLogger("tests.log.direct").makeRecord(
        "tests.log.direct", logging.INFO, __file__, 1, msg, args, None
    )
    return json.loads(JsonFormatter().format(record))


def test_bad_percent_args_do_not_raise() -> None:
    record = format_record("clip %d of %d", "two")
    assert record["level"] == "INFO"
    assert record["message"] == "'clip %d of %d' % ('two',)"


def test_broken_repr_in_args_does_not_raise() -> None:
    record = format_record("value: %s", BrokenRepr())
    assert record["message"] == "'value: %s' % (<unrepresentable BrokenRepr>,)"
    assert record["format_error"] == "RuntimeError: repr exploded"
    assert record["level"] == "INFO"
    assert record["module"] == "tests.log.direct"
    assert TIMESTAMP.match(record["timestamp"])


def test_broken_message_object_does_not_raise() -> None:
    record = format_record(BrokenRepr())
    assert record["message"] == "<unrepresentable BrokenRepr>"
    assert record["format_error"] == "RuntimeError: repr exploded"


def test_formatter_survives_a_record_without_attributes() -> None:
    record = logging.makeLogRecord({"msg": "x"})
    del record.created  # the fallback line must not need it
    with job_context(JOB):
        data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "x"
    assert data["job_id"] == str(JOB)
    assert data["format_error"] == "AttributeError: 'LogRecord' object has no attribute 'created'"


def test_formatter_survives_a_failing_secret_lookup(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken() -> tuple[str, ...]:
        calls.append(1)
        raise PermissionError("cannot read .env")

    monkeypatch.setattr(env, "get_secret_values", broken)
    cap.logger.info("still logged with %s", "sk-" + "a" * 30)
    # The lookup failed, yet the line is written, and the key shapes are still redacted.
    assert cap.last()["message"] == "still logged with [REDACTED]"
    assert calls  # the failing lookup was really made


def test_secrets_are_redacted_even_when_the_configuration_is_invalid(
    cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Production with variables missing, and an OpenAI key in a shape the validator does not know.
    odd_key = "oa-new-format-key-0123456789"
    use_environment(monkeypatch, {"ENVIRONMENT": "production", "OPENAI_API_KEY": odd_key, "JWT_SECRET_KEY": "j" * 40})
    cap.logger.info("key %s and %s", odd_key, "j" * 40)
    assert cap.last()["message"] == "key [REDACTED] and [REDACTED]"


# --------------------------------------------------------------------------- redaction


def test_configured_secrets_are_redacted_everywhere(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, PRODUCTION_ENV)
    key = PRODUCTION_ENV["OPENAI_API_KEY"]
    jwt_secret = PRODUCTION_ENV["JWT_SECRET_KEY"]
    db_password = "Db-Pa55word-Secret"
    cap.logger.info(
        "calling with %s and %s",
        key,
        jwt_secret,
        extra={
            "dsn": f"postgresql://videogen:{db_password}@db/postgres",
            "nested": {"token": PRODUCTION_ENV["REPLICATE_API_TOKEN"]},
        },
    )
    try:
        raise RuntimeError(f"auth failed for {PRODUCTION_ENV['SUPABASE_SERVICE_KEY']}")
    except RuntimeError:
        cap.logger.exception("with %s", PRODUCTION_ENV["DJANGO_SECRET_KEY"])
    text = cap.stream.getvalue()
    for secret in SECRET_VALUES:
        assert secret not in text
    first, second = cap.records()
    assert first["message"] == "calling with [REDACTED] and [REDACTED]"
    assert first["dsn"] == "postgresql://videogen:[REDACTED]@db/postgres"
    assert first["nested"] == {"token": "[REDACTED]"}
    assert "RuntimeError: auth failed for [REDACTED]" in second["exception"]


def test_secrets_that_json_escapes_are_redacted_in_extras(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    # In the serialised line a quote or a backslash in a secret appears escaped (\" and \\).
    odd_secret = 'jwt"secret\\value-0123456789-0123456789\t!'
    use_environment(monkeypatch, {"JWT_SECRET_KEY": odd_secret})
    cap.logger.info("signing with %s", odd_secret, extra={"key": odd_secret, "nested": [f"k={odd_secret};"]})
    record = cap.last()
    assert record["message"] == "signing with [REDACTED]"
    assert record["key"] == "[REDACTED]"
    assert record["nested"] == ["k=[REDACTED];"]
    assert odd_secret not in cap.stream.getvalue()
    assert json.dumps(odd_secret)[1:-1] not in cap.stream.getvalue()


def test_bearer_tokens_are_redacted(cap: Capture) -> None:
    cap.logger.info(
        "sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-def_123",
        extra={"headers": {"Authorization": "bearer abcdefgh12345678"}},
    )
    record = cap.last()
    assert record["message"] == "sent Authorization: Bearer [REDACTED]"
    assert record["headers"] == {"Authorization": "bearer [REDACTED]"}


def test_signed_url_tokens_are_redacted(cap: Capture) -> None:
    signed = "https://abc.supabase.co/storage/v1/object/sign/video-clips/a.mp4?token=eyJhbGciOi.eyJ1cmwi.sig&download=1"
    presigned = "https://s3.example.com/b/k?X-Amz-Expires=60&X-Amz-Signature=0123abcd&x=1"
    cap.logger.info("uploaded to %s", signed, extra={"url": signed, "urls": [presigned]})
    record = cap.last()
    expected = "https://abc.supabase.co/storage/v1/object/sign/video-clips/a.mp4?token=[REDACTED]&download=1"
    assert record["message"] == f"uploaded to {expected}"
    assert record["url"] == expected
    assert record["urls"] == ["https://s3.example.com/b/k?X-Amz-Expires=60&X-Amz-Signature=[REDACTED]&x=1"]


def test_key_shapes_are_redacted_even_when_not_configured(cap: Capture) -> None:
    cap.logger.info(
        "keys sk-abcdefghijklmnopqrstuvwx r8_ABCDEFGHIJKLMNOPQRSTUVWX sb_secret_abcdefghij",
        extra={"k": "sk-abcdefghijklmnopqrstuvwx"},
    )
    assert cap.last()["message"] == "keys [REDACTED] [REDACTED] [REDACTED]"
    assert cap.last()["k"] == "[REDACTED]"


def test_redaction_keeps_the_json_valid(cap: Capture) -> None:
    cap.logger.info('quote "?token=abc\\" and \\?sig=x"', extra={"q": 'a?token=b"c', "b": "x?token=y\\z"})
    record = cap.last()  # still parses
    assert record["message"] == 'quote "?token=[REDACTED]\\" and \\?sig=[REDACTED]"'
    assert record["q"] == 'a?token=[REDACTED]"c'
    assert record["b"] == "x?token=[REDACTED]\\z"


def test_redact_function() -> None:
    assert redact("my secret-value-123 here", ["secret-value-123", ""]) == "my [REDACTED] here"
    assert redact("nothing to hide", []) == "nothing to hide"
    assert redact("?api_key=abc&sig=def") == "?api_key=[REDACTED]&sig=[REDACTED]"


# --------------------------------------------------------------------------- configuration


def test_build_logging_config_console_only() -> None:
    config = build_logging_config("WARNING")
    assert config["root"] == {"handlers": ["console"], "level": "WARNING"}
    assert set(config["handlers"]) == {"console"}
    assert config["formatters"]["json"] == {"()": "common.log.JsonFormatter"}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    logging.config.dictConfig(django_settings.LOGGING)


def test_rotating_file_handler_with_dict_config(tmp_path: Path, restore_logging: None) -> None:
    log_file = tmp_path / "videogen.log"
    config = build_logging_config("DEBUG", str(log_file))
    handler = config["handlers"]["file"]
    assert handler["class"] == "logging.handlers.RotatingFileHandler"
    assert handler["maxBytes"] == 100 * 1024 * 1024
    assert handler["backupCount"] == 5
    assert config["root"]["handlers"] == ["console", "file"]
    logging.config.dictConfig(config)
    with job_context(JOB, "composition"):
        get_logger("common.test").debug("to the file", extra={"clip": 1})
    for h in logging.getLogger().handlers:
        h.flush()
    [line] = log_file.read_text().splitlines()
    record = json.loads(line)
    assert (record["message"], record["job_id"], record["stage"], record["clip"]) == (
        "to the file",
        str(JOB),
        "composition",
        1,
    )


def test_rotation_keeps_five_backups(tmp_path: Path, restore_logging: None) -> None:
    log_file = tmp_path / "rotating.log"
    config = build_logging_config("INFO", str(log_file))
    config["handlers"]["file"]["maxBytes"] = 400  # the shipped 100 MB, scaled down for the test
    config["root"]["handlers"] = ["file"]
    logging.config.dictConfig(config)
    logger = get_logger("common.rotation")
    for n in range(60):
        logger.info("line %03d", n)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["rotating.log", *(f"rotating.log.{n}" for n in range(1, 6))]
    newest = json.loads(log_file.read_text().splitlines()[-1])
    assert newest["message"] == "line 059"


def test_django_settings_use_log_level_and_json_in_a_real_process() -> None:
    code = (
        "import logging; from common.log import get_logger, job_context\n"
        "print(logging.getLevelName(logging.getLogger().level))\n"
        "with job_context('job-sub', 'audio_analysis'): get_logger('common.sub').debug('hello %s', 'child')\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=subprocess_env({"LOG_LEVEL": "debug"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stdout.splitlines()
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    ours = [line for line in lines if line["module"] == "common.sub"]
    assert ours == [
        {
            "timestamp": ours[0]["timestamp"],
            "level": "DEBUG",
            "module": "common.sub",
            "job_id": "job-sub",
            "stage": "audio_analysis",
            "message": "hello child",
        }
    ]


def test_run_in_context_isolates_changes() -> None:
    def work(a: int, b: int) -> tuple[int, str | None]:
        set_job_id("inside")
        return a + b, get_job_id()

    with job_context("outer"):
        assert run_in_context(work, 2, b=3) == (5, "inside")
        assert get_job_id() == "outer"


# --------------------------------------------------------------------------- URL credentials in any form


def test_url_credentials_are_redacted_in_every_form(cap: Capture) -> None:
    cap.logger.info(
        "connecting to %s",
        "redis://127.0.0.1:6379/13?password=S3cret",
        extra={
            "urls": [
                "redis://:pw@cache:6379/0",
                "postgres://videogen:Pa55@db/x?sslmode=require&token=tk",
                "https://h/x?key=abc&access_token=xyz&API_KEY=q&client_secret=s&keyword=kept",
                "redis://:p@ss@cache/0 and more",
            ]
        },
    )
    record = cap.last()
    assert record["message"] == "connecting to redis://127.0.0.1:6379/13?password=[REDACTED]"
    assert record["urls"] == [
        "redis://:[REDACTED]@cache:6379/0",
        "postgres://videogen:[REDACTED]@db/x?sslmode=require&token=[REDACTED]",
        "https://h/x?key=[REDACTED]&access_token=[REDACTED]&API_KEY=[REDACTED]&client_secret=[REDACTED]&keyword=kept",
        "redis://:[REDACTED]@cache/0 and more",
    ]
    for leaked in ("S3cret", ":pw@", "Pa55", "=tk", "=abc", "=xyz", "=q&", "=s&", "p@ss"):
        assert leaked not in cap.stream.getvalue()


def test_a_configured_query_password_is_redacted_on_its_own(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"REDIS_URL": "redis://127.0.0.1:6379/13?password=Query-Secret-Value"})
    cap.logger.info("AUTH failed with Query-Secret-Value", extra={"sent": "Query-Secret-Value"})
    assert cap.last()["message"] == "AUTH failed with [REDACTED]"
    assert cap.last()["sent"] == "[REDACTED]"


# --------------------------------------------------------------------------- extra keys that name record attributes

RECORD_ATTRIBUTES = sorted({*vars(logging.makeLogRecord({})), "message", "asctime"})


@pytest.mark.parametrize("name", RECORD_ATTRIBUTES)
def test_every_record_attribute_in_extra_is_renamed_not_a_key_error(cap: Capture, name: str) -> None:
    """Before: the standard library raised KeyError("Attempt to overwrite 'module' in LogRecord")."""
    cap.logger.info("real message", extra={name: "from extra"})
    record = cap.last()
    assert record["message"] == "real message"
    assert record["module"] == cap.logger.name
    assert record["level"] == "INFO"
    assert record[f"extra_{name}"] == "from extra"


def test_an_extra_named_like_a_newer_record_attribute_is_kept(cap: Capture) -> None:
    """Before: ``taskName`` (a record attribute only from Python 3.12) was dropped from the line on 3.11."""
    cap.logger.info("x", extra={"taskName": "t"})
    record = cap.last()
    assert record.get("taskName", record.get("extra_taskName")) == "t"


def test_renaming_holds_for_plain_loggers_adapters_and_the_root(cap: Capture) -> None:
    standalone = logging.Logger("tests.log.standalone")  # a plain Logger, made without get_logger
    standalone.addHandler(cap.handler)
    standalone.info("plain", extra={"module": "m", "msg": "x", "extra_module": "taken"})
    adapter = logging.LoggerAdapter(cap.logger, {"message": "from adapter"})
    adapter.info("adapted")
    root = logging.getLogger()
    root.addHandler(cap.handler)
    try:
        logging.warning("root", extra={"name": "n"})
    finally:
        root.removeHandler(cap.handler)
    plain, adapted, from_root = cap.records()
    assert (plain["message"], plain["extra_module"], plain["extra_msg"]) == ("plain", "m", "x")
    assert plain["extra_extra_module"] == "taken"
    assert (adapted["message"], adapted["extra_message"]) == ("adapted", "from adapter")
    assert (from_root["message"], from_root["module"], from_root["extra_name"]) == ("root", "root", "n")


# --------------------------------------------------------------------------- the fallback line

LOG_SECRET = "jwt-secret-value-that-is-long-enough-0123456789"


class LeakyRepr:
    """A ``__repr__`` that fails with a secret in its error (a client object with a key in its state)."""

    def __repr__(self) -> str:
        raise RuntimeError(f"cannot show client with key {LOG_SECRET}")

    __str__ = __repr__


def test_a_raising_repr_never_leaks_and_keeps_message_and_job(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"JWT_SECRET_KEY": LOG_SECRET})
    with job_context(JOB, "composition"):
        record = logging.getLogger("tests.log.direct").makeRecord(
            "tests.log.direct", logging.INFO, __file__, 1, "uploaded %s for %s", (LeakyRepr(), "clip-3"), None
        )
        line = JsonFormatter().format(record)
    assert LOG_SECRET not in line
    data = json.loads(line)
    assert data["job_id"] == str(JOB)
    assert data["stage"] == "composition"
    assert data["message"] == "'uploaded %s for %s' % (<unrepresentable LeakyRepr>, 'clip-3')"
    assert data["format_error"] == "RuntimeError: cannot show client with key [REDACTED]"


def test_the_last_resort_line_keeps_message_and_job_and_redacts(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {"JWT_SECRET_KEY": LOG_SECRET})

    def broken(self: JsonFormatter, exc_info: Any) -> str:
        raise RuntimeError(f"traceback rendering failed near {LOG_SECRET}")

    monkeypatch.setattr(JsonFormatter, "formatException", broken)
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("tests.log.direct").makeRecord(
            "tests.log.direct",
            logging.ERROR,
            __file__,
            1,
            "step %d failed",
            (4,),
            sys.exc_info(),
            extra={"job_id": JOB},
        )
    line = JsonFormatter().format(record)
    assert LOG_SECRET not in line
    data = json.loads(line)
    assert (data["level"], data["module"], data["job_id"]) == ("ERROR", "tests.log.direct", str(JOB))
    assert data["message"] == "step 4 failed"
    assert data["format_error"] == "RuntimeError: traceback rendering failed near [REDACTED]"
    assert TIMESTAMP.match(data["timestamp"])


def test_non_finite_numbers_recursive_and_deep_structures_stay_valid_json(cap: Capture) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    looped: dict[str, Any] = {}
    looped["self"] = looped
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    cap.logger.info(
        "x",
        extra={
            "nan": float("nan"),
            "inf": float("-inf"),
            "loop": loop,
            "looped": looped,
            "deep": deep,
            "big": 10**5000,
        },
    )
    [line] = cap.raw_lines()

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    record = json.loads(line, parse_constant=refuse)
    assert record["message"] == "x"
    assert (record["nan"], record["inf"]) == ("nan", "-inf")
    assert record["loop"] == [1, "<recursive list>"]
    assert record["looped"] == {"self": "<recursive dict>"}
    assert "nested deeper than" in json.dumps(record["deep"])
    assert record["big"].startswith("<int of ")


def test_non_str_extra_keys(cap: Capture) -> None:
    cap.logger.info("x", extra={1: "one", (2, 3): "pair", None: "none"})  # type: ignore[dict-item]
    record = cap.last()
    assert (record["1"], record["(2, 3)"], record["None"]) == ("one", "pair", "none")


# --------------------------------------------------------------------------- file names that are not UTF-8

UNDECODABLE = os.fsdecode(b"/tmp/clip-\xff\xfe.wav")  # how Python hands over a non-UTF-8 file name


def test_undecodable_file_names_are_written_as_valid_utf8(cap: Capture) -> None:
    cap.logger.info("removed %s", UNDECODABLE, extra={"path": Path(UNDECODABLE), UNDECODABLE: 1, "lone": "\ud800"})
    [line] = cap.raw_lines()
    line.encode("utf-8")  # no lone surrogate left: a UTF-8 file or pipe can take it
    record = json.loads(line)
    assert record["message"] == "removed /tmp/clip-\\xff\\xfe.wav"
    assert record["path"] == "/tmp/clip-\\xff\\xfe.wav"
    assert record["/tmp/clip-\\xff\\xfe.wav"] == 1
    assert record["lone"] == "\\ud800"


def test_undecodable_file_name_reaches_log_file_in_a_real_process(tmp_path: Path) -> None:
    """Before: the line was lost from LOG_FILE and "--- Logging error ---" went to stderr."""
    log_file = tmp_path / "videogen.log"
    code = (
        "import os; from common.log import get_logger\n"
        "get_logger('common.sub').warning('removed %s', os.fsdecode(b'/tmp/clip-\\xff.wav'))\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=subprocess_env({"LOG_FILE": str(log_file)}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr
    lines = [json.loads(line) for line in log_file.read_bytes().decode("utf-8").splitlines()]
    assert [line["message"] for line in lines if line["module"] == "common.sub"] == ["removed /tmp/clip-\\xff.wav"]


# --------------------------------------------------------------------------- noisy third-party loggers


def test_httpx_and_httpcore_default_to_warning_and_the_knob_changes_it() -> None:
    config = build_logging_config("DEBUG")
    assert config["loggers"]["httpx"]["level"] == "WARNING"
    assert config["loggers"]["httpcore"]["level"] == "WARNING"
    assert config["loggers"]["django"]["level"] == "WARNING"
    louder = build_logging_config("DEBUG", logger_levels={"httpx": "INFO", "boto3": "ERROR"})
    assert louder["loggers"]["httpx"]["level"] == "INFO"
    assert louder["loggers"]["boto3"]["level"] == "ERROR"
    assert louder["loggers"]["httpcore"]["level"] == "WARNING"


def test_a_real_httpx_request_logs_no_info_line(tmp_path: Path, restore_logging: None) -> None:
    import http.server

    import httpx

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        for name, levels in (("quiet.log", None), ("loud.log", {"httpx": "INFO"})):
            log_file = tmp_path / name
            config = build_logging_config("DEBUG", str(log_file), logger_levels=levels)
            config["root"]["handlers"] = ["file"]
            logging.config.dictConfig(config)
            assert httpx.get(url).text == "ok"
            logging.getLogger("httpx").warning("a real problem")
            for h in logging.getLogger().handlers:
                h.flush()
            modules = [json.loads(line)["module"] for line in log_file.read_text().splitlines()]
            if levels is None:
                assert modules == ["httpx"]  # only the warning: no request line, no httpcore debug lines
            else:
                assert modules.count("httpx") == 2  # "HTTP Request: GET ..." at INFO, then the warning
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- guard: the formatter under fuzzing

# The configured secrets of the fuzz environment: production's, with REDIS_URL's password in the query string.
FUZZ_REDIS_URL = "redis://cache:6379/0?password=Query-Secret-Value-1"
FUZZ_SECRETS = (*(v for v in SECRET_VALUES if v != "Redis-Pa55word-Secret"), "Query-Secret-Value-1")
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())  # surrogates included
any_text = st.text(ANY_CHARACTER, max_size=40)


class RaisingRepr:
    """A ``__repr__``/``__str__`` that fails, with a secret in the error."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __repr__(self) -> str:
        raise ValueError(f"broken with {self.secret}")

    __str__ = __repr__


def _cyclic(items: list[Any]) -> list[Any]:
    items.append(items)
    return items


texts = st.one_of(
    any_text,
    st.builds(lambda a, s, b: a + s + b, any_text, st.sampled_from(FUZZ_SECRETS), any_text),
    st.builds(lambda s: f"redis://:{s}@h:6379/0?password={s}", st.sampled_from(FUZZ_SECRETS)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    texts,
    st.decimals(),
    st.uuids(),
    st.datetimes(),
    st.builds(RaisingRepr, st.sampled_from(FUZZ_SECRETS)),
    st.builds(Path, any_text),
)
keys = st.one_of(texts, st.integers(), st.none(), st.tuples(st.integers()), st.sampled_from(RECORD_ATTRIBUTES))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(keys, inner, max_size=4),
        st.frozensets(st.one_of(st.integers(), any_text), max_size=3),
        st.builds(_cyclic, st.lists(inner, max_size=3)),
    ),
    max_leaves=20,
)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_formatter_fuzz_valid_json_never_raises_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    use_environment(monkeypatch, {**PRODUCTION_ENV, "REDIS_URL": "redis://cache:6379/0?password=Query-Secret-Value-1"})
    formatter = JsonFormatter()
    logger = logging.getLogger("tests.log.fuzz")

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        message=st.one_of(texts, values),
        args=st.lists(values, max_size=3).map(tuple),
        extra=st.dictionaries(keys, values, max_size=6),
        job=st.one_of(st.none(), texts),
    )
    def check(message: Any, args: tuple[Any, ...], extra: dict[Any, Any], job: str | None) -> None:
        with job_context(job):
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, args, None, extra=extra)
            line = formatter.format(record)
        assert "\n" not in line
        line.encode("utf-8")  # valid UTF-8: no lone surrogate
        data = json.loads(line, parse_constant=refuse)
        assert list(data)[:6] == ["timestamp", "level", "module", "job_id", "stage", "message"]
        for secret in FUZZ_SECRETS:
            assert secret not in line
            assert all(secret not in text for text in _strings(data))

    check()


# --------------------------------------------------------------------------- guard: the fast redaction is the plain one


def _plain_redact(text: str, secrets: tuple[str, ...]) -> str:
    """Every pattern over the whole text, no prechecks: what :func:`redact` must give (its shortcuts only skip work)."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "[REDACTED]")
    text = log_redaction._BEARER.sub(r"\1 [REDACTED]", text)
    text = log_redaction._URL_TOKEN.sub(r"\1[REDACTED]", text)
    text = log_redaction._URL_PASSWORD.sub(r"\1[REDACTED]@", text)
    return log_redaction._KEY_SHAPES.sub("[REDACTED]", text)


# Whole matches with what may stand before them (a word character, a scheme run of digits and signs, U+0130
# that lower() lengthens, letters the ignore-case classes take), glued with loose pieces and any text:
# the edge cases of redact()'s shortcuts.
_before = st.sampled_from(["", "x", "1", " ", "+", "x.", "-", "_", "\u0130", "\u212a", "\u00e9", "://", "@"])
redaction_fragments = st.one_of(
    st.builds(
        lambda before, scheme, user, password, rest: f"{before}{scheme}://{user}:{password}@{rest}",
        _before,
        st.sampled_from(["http", "redis", "rediss", "s3", "H2", "1x", "+a", "\u212aey"]),
        st.sampled_from(["", "user", "u.x", "a@b"]),
        st.sampled_from(["pw", "p%40ss", "Query-Secret-Value-1", "x/y"]),
        st.sampled_from(["h", "h/p?token=abc", "[::1", "h:5432/db?password=zzz&x=1"]),
    ),
    st.builds(
        lambda before, word, space: f"{before}{word}{space}ABCDEFGH12345678",
        _before,
        st.sampled_from(["bearer", "Bearer", "BeArEr", "BEARER"]),
        st.sampled_from([" ", "\t", "  ", "", "\n"]),
    ),
    st.builds(
        lambda before, prefix: f"{before}{prefix}{'A' * 22}", _before, st.sampled_from(["sk-", "r8_", "sb_secret_"])
    ),
    st.sampled_from(["://", "@", ":", "/", "?", "&", "=", "token=", '"', "\\", "bearer", "sk-", "\u0130"]),
    st.text(ANY_CHARACTER, max_size=8),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(redaction_fragments, max_size=8).map("".join))
def test_redact_equals_the_plain_redaction(text: str) -> None:
    secrets = ("Query-Secret-Value-1",)
    assert redact(text, secrets) == _plain_redact(text, secrets)


# Whole seconds, just below them (the microseconds round up into the next second) and anything between.
moments = st.one_of(
    st.floats(0, 4e9),
    st.integers(0, 4_000_000_000).map(lambda s: s + 0.9999995),
    st.integers(0, 4_000_000_000).map(lambda s: s - 5e-7),
    st.integers(0, 4_000_000_000).map(float),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(moments, min_size=1, max_size=4))
def test_the_cached_timestamp_equals_the_plain_one(created: list[float]) -> None:
    for moment in created:  # several in a row: the cached second must never leak into the next moment
        assert log_module._timestamp(moment) == log_module._iso(dt.datetime.fromtimestamp(moment, dt.UTC))
