"""The PostgreSQL connection pool under more threads than connections: a real pool, real threads.

Each test swaps in a pool of two connections with a short wait (tests/poolkit.py), so an
exhausted pool fails in a fraction of a second instead of hanging the suite.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from psycopg_pool import PoolTimeout

from common import db, selectors
from common.errors import GenerationError, PipelineError, ServiceUnavailableError
from common.health import DatabaseCheck, run_checks
from common.log import get_job_id, job_context, run_in_context, submit_in_context, wrap_with_context
from common.models import Job
from common.services import jobs
from tests.poolkit import holding, small_pool, wait_for_waiters
from tests.servicekit import closed_port

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

USER = uuid.UUID("44444444-4444-4444-8444-444444444444")


def new_job() -> Job:
    """A queued job, created on the main thread, whose connection is then given back."""
    job = jobs.job_create(user_id=USER, audio_url="https://example.com/a.mp3", user_prompt="rain on neon")
    connection.close()
    return job


def chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


# --------------------------------------------------------------------------- threads give connections back


class TestThreadsGiveConnectionsBack:
    def test_the_readme_submit_in_context_pattern_never_exhausts_the_pool(self) -> None:
        # The README's pattern: a short-lived ThreadPoolExecutor per piece of work, submit_in_context, no close.
        # Three times as many threads as connections, one after the other.
        with small_pool(max_size=2, timeout=2):
            job = new_job()
            seen: list[str | None] = []

            def render(n: int) -> int:
                seen.append(get_job_id())
                return selectors.job_get(job_id=job.id).progress + n

            with job_context(job.id, stage="video_generation"):
                for n in range(6):
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        assert submit_in_context(pool, render, n).result() == n
            status = db.pool_status()
        assert seen == [str(job.id)] * 6
        assert status is not None
        assert status["in_use"] == 0
        assert status["stats"].get("requests_errors", 0) == 0

    def test_more_threads_than_connections_at_once(self) -> None:
        with small_pool(max_size=2, timeout=5):
            job = new_job()
            with ThreadPoolExecutor(max_workers=5) as pool:
                futures = [submit_in_context(pool, selectors.job_get, job_id=job.id) for _ in range(20)]
                assert {f.result().pk for f in futures} == {job.id}
            assert db.pool_status()["in_use"] == 0

    def test_wrap_with_context_in_plain_threads(self) -> None:
        with small_pool(max_size=2, timeout=2):
            job = new_job()
            errors: list[BaseException] = []

            def work() -> None:
                try:
                    jobs.job_update_progress(job_id=job.id, progress=1)
                except BaseException as exc:
                    errors.append(exc)

            wrapped = wrap_with_context(work)
            for _ in range(5):
                thread = threading.Thread(target=wrapped)
                thread.start()
                thread.join(10)
            assert errors == []
            assert db.pool_status()["in_use"] == 0

    def test_run_in_context_submitted_to_a_plain_executor(self) -> None:
        with small_pool(max_size=2, timeout=2):
            job = new_job()
            for _ in range(5):
                with ThreadPoolExecutor(max_workers=1) as pool:
                    assert pool.submit(run_in_context, selectors.job_stages, job_id=job.id).result() == []
            assert db.pool_status()["in_use"] == 0


# --------------------------------------------------------------------------- an exhausted pool


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("stages.stage_start", lambda job: jobs.stage_start(job_id=job.id, stage_name="audio_analysis")),
        ("jobs.job_fail", lambda job: jobs.job_fail(job_id=job.id, error=GenerationError("clip failed"))),
        ("selectors.job_get", lambda job: selectors.job_get(job_id=job.id)),
    ],
)
def test_an_exhausted_pool_is_service_unavailable_naming_the_pool(
    operation: str, call: Callable[[Job], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="common.db")
    with small_pool(max_size=2, timeout=0.3):
        job = new_job()
        with holding(2), pytest.raises(ServiceUnavailableError) as caught:
            call(job)
    error = caught.value
    assert error.retryable
    assert error.code == "SERVICE_UNAVAILABLE"
    assert error.job_id == job.id
    assert error.details["reason"] == "pool_exhausted"
    assert error.details["operation"] == operation
    assert error.details["pool"]["max_size"] == 2
    assert error.details["pool"]["in_use"] == 2
    assert error.message.startswith(f"{operation}: this process's database connection pool 'test-small' is exhausted")
    assert "all 2 connections are in use" in error.message
    assert "DATABASE_POOL_SIZE" in error.message
    assert "database is unavailable" not in error.message
    assert any(r.levelno == logging.ERROR and "exhausted" in r.getMessage() for r in caplog.records)
    assert Job.objects.get(pk=job.id).status == "queued"  # nothing was written


def test_the_message_counts_the_threads_waiting() -> None:
    with small_pool(max_size=2, timeout=10):
        job = new_job()
        outcome: list[Any] = []
        with holding(2) as holders:
            waiter = threading.Thread(target=lambda: outcome.append(selectors.job_get(job_id=job.id).pk))
            waiter.start()
            wait_for_waiters(1)
            with db.wait_limit(0.2), pytest.raises(ServiceUnavailableError) as caught:
                selectors.job_get(job_id=job.id)
            holders[0].release()  # the waiting thread gets this connection
            waiter.join(10)
        connection.close()
    assert "1 other thread(s) are waiting" in caught.value.message
    assert caught.value.details["pool"]["waiting"] == 1
    assert outcome == [job.id]


def test_an_unreachable_database_is_not_reported_as_an_exhausted_pool() -> None:
    with small_pool(max_size=2, timeout=0.5, port=closed_port()), pytest.raises(ServiceUnavailableError) as caught:
        selectors.job_get(job_id=uuid.uuid4())
    error = caught.value
    assert error.details["reason"] == "unreachable"
    assert "the database is unavailable: the database is unreachable" in error.message
    assert "exhausted" not in error.message
    assert error.retry_after is not None


def test_the_wait_is_the_pools_timeout_then_a_clear_error() -> None:
    # DATABASE_POOL_TIMEOUT is the pool's "timeout": psycopg's own message says how long it waited.
    with small_pool(max_size=1, timeout=0.25), holding(1), pytest.raises(ServiceUnavailableError) as caught:
        selectors.job_stages(job_id=uuid.uuid4())
    timeouts = [e for e in chain(caught.value) if type(e) is PoolTimeout]
    assert timeouts
    assert {str(e) for e in timeouts} == {"couldn't get a connection after 0.25 sec"}
    assert "none came back within 0.25 s" in caught.value.message
    # No usable connection, as code that only asks is_connection_error (the API's 503 rule) sees it.
    assert db.is_connection_error(caught.value.__cause__)


def test_a_slow_wait_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="common.db")
    with override_settings(VIDEOGEN_COMMON={"DB_POOL_WAIT_WARNING_SECONDS": 0.05}), small_pool(max_size=2, timeout=10):
        job = new_job()
        with holding(2) as holders:

            def give_one_back_late() -> None:
                wait_for_waiters(1)
                time.sleep(0.1)  # the waiter cannot have a connection before this: its wait is at least 0.1 s
                holders[0].release()

            releaser = threading.Thread(target=give_one_back_late)
            releaser.start()
            assert selectors.job_get(job_id=job.id).pk == job.id
            releaser.join(10)
            connection.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "waited" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].waited_seconds >= 0.1
    assert warnings[0].pool["max_size"] == 2


def test_no_warning_below_the_threshold(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="common.db")
    with override_settings(VIDEOGEN_COMMON={"DB_POOL_WAIT_WARNING_SECONDS": None}), small_pool(max_size=2, timeout=2):
        new_job()
        selectors.job_stages(job_id=uuid.uuid4())
        connection.close()
    assert not [r for r in caplog.records if "waited" in r.getMessage()]


# --------------------------------------------------------------------------- health


class TestHealthWithAnExhaustedPool:
    def test_health_check_timeout_bounds_getting_a_connection(self) -> None:
        # The pool itself would wait 5 s; the check must give up after its own 0.2 s.
        with small_pool(max_size=2, timeout=5), holding(2):
            assert db.health_check(timeout=0.2) is False
            with pytest.raises(ServiceUnavailableError) as caught:
                db.ping(timeout=0.2)
        timeouts = {str(e) for e in chain(caught.value) if type(e) is PoolTimeout}
        assert timeouts == {"couldn't get a connection after 0.20 sec"}
        assert caught.value.details["reason"] == "pool_exhausted"
        assert "exhausted" in caught.value.message

    def test_the_readiness_check_says_the_pool_is_exhausted(self) -> None:
        with small_pool(max_size=2, timeout=5), holding(2):
            report = run_checks([DatabaseCheck(timeout=0.3)])
        (result,) = report.results
        assert result.status == "error"
        assert "pool 'test-small' is exhausted" in result.message

    def test_the_database_check_shows_the_pool(self) -> None:
        with small_pool(max_size=2, timeout=2), holding(1):
            details = DatabaseCheck().run()
        assert details is not None
        pool = details["pool"]
        assert (pool["name"], pool["max_size"]) == ("test-small", 2)
        assert pool["in_use"] == 1  # the holder's; the check gave its own back
        assert pool["idle"] == 1
        assert pool["waiting"] == 0
        assert pool["stats"]["requests_num"] >= 2


def test_pipeline_errors_only_from_services_with_the_pool_exhausted() -> None:
    # Every lifecycle call answers with a PipelineError, never a django.db error, while no connection is free.
    with small_pool(max_size=1, timeout=0.2):
        job = new_job()
        calls: list[Callable[[], Any]] = [
            lambda: jobs.job_create(user_id=USER, audio_url="a", user_prompt="p"),
            lambda: jobs.job_update_progress(job_id=job.id, progress=5),
            lambda: jobs.job_complete(job_id=job.id, video_url="v"),
            lambda: jobs.job_cancel(job_id=job.id),
            lambda: jobs.stage_complete(job_id=job.id, stage_name="audio_analysis"),
            lambda: jobs.stage_fail(job_id=job.id, stage_name="audio_analysis"),
            lambda: selectors.job_estimate_remaining(job_id=job.id),
            lambda: selectors.stage_median_duration(stage_name="composition"),
        ]
        with holding(1):
            for call in calls:
                with pytest.raises(PipelineError) as caught:
                    call()
                assert isinstance(caught.value, ServiceUnavailableError), caught.value
                assert caught.value.details["reason"] == "pool_exhausted"


def test_atomic_and_retry_helpers_report_an_exhausted_pool_without_retrying() -> None:
    attempts: list[int] = []

    @db.retry_on_connection_error
    def read() -> None:
        attempts.append(1)
        selectors_free_query()

    with small_pool(max_size=1, timeout=0.2), holding(1):
        with pytest.raises(ServiceUnavailableError) as in_atomic, db.atomic():
            selectors_free_query()
        with pytest.raises(ServiceUnavailableError) as retried:
            read()
    assert in_atomic.value.details["reason"] == "pool_exhausted"
    assert retried.value.details["reason"] == "pool_exhausted"
    assert attempts == [1]  # it already waited the pool's timeout: not retried


def selectors_free_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_wait_limit_shortens_the_wait_for_one_block() -> None:
    with (
        small_pool(max_size=1, timeout=5),
        holding(1),
        db.wait_limit(0.1),
        db.wait_limit(3),  # a longer inner limit does not extend the outer one
        pytest.raises(ServiceUnavailableError) as caught,
    ):
        selectors.job_stages(job_id=uuid.uuid4())
    assert "none came back within 0.1 s" in caught.value.message


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), "1", True])
def test_wait_limit_needs_a_positive_number(seconds: object) -> None:
    from common.errors import ValidationError

    with pytest.raises(ValidationError, match="wait_limit"):
        db.wait_limit(seconds)  # type: ignore[arg-type]


def test_a_pool_not_opened_yet_has_no_connections_in_use() -> None:
    with small_pool(max_size=2, timeout=1):
        status = db.pool_status()
    assert status is not None
    assert (status["open"], status["in_use"], status["idle"]) == (0, 0, 0)
