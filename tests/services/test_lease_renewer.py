"""The lease renewer is a thread of ``common``: what is logged there carries the worker's job context.

Its own lines name the job explicitly; a line logged by what a beat calls (the database layer saying the pool is
exhausted, a retry) must too, or a worker's log has lines without ``job_id`` exactly when something goes wrong.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from django.test import override_settings

from common import db
from common.log import JsonFormatter, job_context
from common.services.leases import stage_lease
from tests.poolkit import small_pool
from tests.services.lease_helpers import new_job

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class _JsonLines(logging.Handler):
    """Format each record as it is emitted, on the emitting thread (where the job context is)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_lines_logged_during_a_beat_carry_the_workers_job_context():
    job = new_job()
    handler = _JsonLines()
    root = logging.getLogger()
    root.addHandler(handler)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with (
                job_context(job.id, stage="video_generation"),
                stage_lease(job_id=job.id, stage_name="video_generation", renew_every=0.05),
            ):
                # This thread holds the pool's only connection: the renewer's beats wait, fail and are logged.
                deadline = time.monotonic() + 20
                while not any(line["module"] == "common.db" for line in handler.lines):
                    assert time.monotonic() < deadline, "no beat failed"
                    time.sleep(0.02)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.release_thread_connections()

    try:
        with small_pool(max_size=1, timeout=0.2), override_settings(VIDEOGEN_COMMON={"JOB_LEASE_SECONDS": 30}):
            thread = threading.Thread(target=worker)
            thread.start()
            thread.join(60)
    finally:
        root.removeHandler(handler)
    assert errors == []
    exhausted = [line for line in handler.lines if line["module"] == "common.db"]
    assert exhausted
    assert {(line["job_id"], line["stage"]) for line in exhausted} == {(str(job.id), "video_generation")}
