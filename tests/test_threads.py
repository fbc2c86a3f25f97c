"""Threads give their database connections back: the rule of submit_in_context, wrap_with_context, run_in_context.

On any thread but the main one, a connection opened during the call is given back when the
call ends, unless it is inside a transaction; a connection the thread held before is left
alone. Observed as the closes of each thread's Django connection (a spy that records, then
closes for real), so these run on SQLite too, whose in-memory test database Django never really
closes; tests/test_pool.py shows the effect with a real, small PostgreSQL pool.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from django.db import connection, connections, transaction

from common import db, selectors
from common.log import run_in_context, submit_in_context, wrap_with_context
from common.models import Job
from common.services import jobs

pytestmark = pytest.mark.django_db(transaction=True)

USER = uuid.UUID("55555555-5555-4555-8555-555555555555")
T = TypeVar("T")


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads whose default connection was closed (given back), in order."""
    names: list[str] = []
    wrapper_class = type(connections["default"])
    original = wrapper_class.close

    def close(self: Any) -> None:
        if self.alias == "default" and self.connection is not None:
            names.append(threading.current_thread().name)
        original(self)

    monkeypatch.setattr(wrapper_class, "close", close)
    return names


def is_open() -> bool:
    """Whether this thread's default connection is open."""
    return connection.connection is not None


def in_thread(func: Callable[[], T]) -> T:
    """Run ``func`` in a new (non-main) thread, give its connections back afterwards, return its result."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(func())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="worker")
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0]


@pytest.fixture
def job() -> Job:
    return jobs.job_create(user_id=USER, audio_url="https://example.com/a.mp3", user_prompt="paper boats")


def test_submit_in_context_gives_the_worker_threads_connection_back(job: Job, closed: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as pool:
        assert submit_in_context(pool, selectors.job_get, job_id=job.id).result().pk == job.id
    assert closed == ["render_0"]


def test_given_back_after_an_exception_too(closed: list[str]) -> None:
    def query_then_fail() -> None:
        selectors.job_stages(job_id=uuid.uuid4())
        raise RuntimeError("render failed")

    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as pool,
        pytest.raises(RuntimeError, match="render failed"),
    ):
        submit_in_context(pool, query_then_fail).result()
    assert closed == ["render_0"]


def test_wrap_with_context_in_another_thread(job: Job, closed: list[str]) -> None:
    wrapped = wrap_with_context(selectors.job_get)
    assert in_thread(lambda: (wrapped(job_id=job.id).pk, list(closed))) == (job.id, ["worker"])


def test_run_in_context_submitted_plainly(job: Job, closed: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plain") as pool:
        assert pool.submit(run_in_context, selectors.job_get, job_id=job.id).result().pk == job.id
    assert closed == ["plain_0"]


def test_a_connection_the_thread_held_before_is_left_alone(job: Job, closed: list[str]) -> None:
    def work() -> list[str]:
        selectors.job_stages(job_id=job.id)  # this thread opens its connection itself
        wrap_with_context(selectors.job_get)(job_id=job.id)
        run_in_context(selectors.job_get, job_id=job.id)
        return list(closed)

    assert in_thread(work) == []


def test_called_synchronously_inside_a_transaction_keeps_the_transaction(job: Job, closed: list[str]) -> None:
    # wrap_with_context called on the caller's own thread inside its atomic block: the transaction goes on.
    def work() -> tuple[int, bool, list[str]]:
        with transaction.atomic():
            jobs.job_update_progress(job_id=job.id, progress=7)
            seen = wrap_with_context(selectors.job_get)(job_id=job.id).progress  # sees the uncommitted write
            still = connection.in_atomic_block and is_open()
            jobs.job_update_progress(job_id=job.id, progress=9)
        return seen, still, list(closed)

    assert in_thread(work) == (7, True, [])
    assert Job.objects.get(pk=job.id).progress == 9


def test_a_transaction_opened_before_the_connection_is_not_cut(job: Job, closed: list[str]) -> None:
    # The first query of this thread happens inside the wrapped call, inside the caller's atomic block.
    def work() -> tuple[bool, list[str]]:
        with transaction.atomic():
            run_in_context(selectors.job_get, job_id=job.id)
            inside = connection.in_atomic_block and is_open()
            selectors.job_stages(job_id=job.id)  # the transaction still works
        return inside, list(closed)

    assert in_thread(work) == (True, [])


def test_the_main_thread_keeps_its_connection(job: Job, closed: list[str]) -> None:
    assert threading.current_thread() is threading.main_thread()
    connection.close()
    closed.clear()
    wrap_with_context(selectors.job_get)(job_id=job.id)
    run_in_context(selectors.job_get, job_id=job.id)
    assert closed == []
    assert is_open()


def test_release_thread_connections_closes_all_but_a_transaction(job: Job, closed: list[str]) -> None:
    def work() -> tuple[int, int, list[str]]:
        selectors.job_get(job_id=job.id)
        released = db.release_thread_connections()
        with transaction.atomic():
            selectors.job_get(job_id=job.id)
            kept = db.release_thread_connections()
        return released, kept, list(closed)

    assert in_thread(work) == (1, 0, ["worker"])


def test_releasing_connections_as_a_decorator(job: Job, closed: list[str]) -> None:
    @db.releasing_connections()
    def work() -> int:
        return selectors.job_get(job_id=job.id).progress

    assert in_thread(lambda: (work(), list(closed))) == (0, ["worker"])
    closed.clear()
    assert in_thread(lambda: (work(), list(closed))) == (0, ["worker"])  # a fresh guard for every call


def test_a_failing_close_is_logged_not_raised(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper_class = type(connections["default"])
    original = wrapper_class.close

    def broken_close(self: Any) -> None:
        if threading.current_thread().name == "worker" and not getattr(self, "_tested", False):
            self._tested = True
            raise RuntimeError("socket already gone")
        original(self)

    monkeypatch.setattr(wrapper_class, "close", broken_close)
    assert in_thread(lambda: wrap_with_context(selectors.job_get)(job_id=job.id).progress) == 0
