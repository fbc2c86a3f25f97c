"""Issue 16, "Done when": no thread pattern the README shows can exhaust the pool.

Every way the README runs database work on a thread (sections *Threads and database connections*, *Logging*,
*Workers*, *Resources and temp files*, *Health*) is run here on PostgreSQL with more threads than the pool has
connections (a real pool of two to four, tests/poolkit.py). A pattern that left a connection behind would make
the later threads wait and fail with the pool exhausted; each test also ends with no connection in use.
(``submit_in_context``, ``wrap_with_context`` and ``run_in_context`` are run the same way in tests/test_pool.py.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django.db
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client, override_settings

from common import db, selectors
from common.log import wrap_with_context
from common.maintenance import ResourceManager
from common.models import Job
from common.services import jobs
from common.services.leases import astage_lease, stage_lease
from tests.poolkit import small_pool

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

USER = uuid.UUID("66666666-6666-4666-8666-666666666666")
THREADS = 6  # three times the pool of two


def new_job() -> Job:
    job = jobs.job_create(user_id=USER, audio_url="https://example.com/a.mp3", user_prompt="rain on neon")
    connection.close()  # the main thread gives its connection back before the threads start
    return job


def one_after_another(target: Callable[[], None], count: int = THREADS) -> list[BaseException]:
    """Run ``target`` on ``count`` short-lived threads, one after the other; the errors they raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    for _ in range(count):
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(30)
    return errors


def in_use() -> int:
    status = db.pool_status()
    assert status is not None
    return int(status["in_use"])


# --------------------------------------------------------------------------- "Any other thread that uses the database"


def test_a_thread_that_releases_its_connections_in_finally() -> None:
    with small_pool(max_size=2, timeout=1):
        job = new_job()

        def work() -> None:
            try:
                jobs.job_update_progress(job_id=job.id, progress=1)
            finally:
                db.release_thread_connections()

        assert one_after_another(work) == []
        assert in_use() == 0


def test_a_thread_that_calls_close_old_connections_in_finally() -> None:
    with small_pool(max_size=2, timeout=1):
        job = new_job()

        def work() -> None:
            try:
                selectors.job_get(job_id=job.id)
            finally:
                django.db.close_old_connections()

        assert one_after_another(work) == []
        assert in_use() == 0


def test_releasing_connections_as_a_decorator_and_as_a_block() -> None:
    with small_pool(max_size=2, timeout=1):
        job = new_job()

        @db.releasing_connections()
        def render() -> None:
            selectors.job_get(job_id=job.id)

        def block() -> None:
            with db.releasing_connections():
                selectors.job_stages(job_id=job.id)

        assert one_after_another(render) == []
        assert one_after_another(block) == []
        # A plain executor's long-lived threads: each task gives its connection back when it ends.
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            assert len([f.result() for f in [pool.submit(render) for _ in range(3 * THREADS)]]) == 3 * THREADS
        assert in_use() == 0


def test_asyncio_to_thread_with_the_wrapped_function() -> None:
    # asyncio.to_thread's default executor keeps its threads: the README says to wrap the function.
    with small_pool(max_size=2, timeout=1):
        job = new_job()

        async def main() -> list[Any]:
            released = db.releasing_connections()(selectors.job_get)
            in_context = wrap_with_context(selectors.job_get)
            return await asyncio.gather(
                *(asyncio.to_thread(call, job_id=job.id) for call in (released, in_context) for _ in range(2 * THREADS))
            )

        assert {row.pk for row in asyncio.run(main())} == {job.id}
        assert in_use() == 0


# --------------------------------------------------------------------------- Workers: leases and their renewers


def test_worker_threads_in_stage_leases_with_renewers_beating() -> None:
    """Three threads inside ``stage_lease`` blocks hold a connection each; their renewers share the fourth.

    A renewer that kept its connection between beats would need a connection of its own for the whole stage:
    six threads on a pool of four, so two renewals would wait, fail (``lease_renewal_failed``) and the leases
    would run out while their workers were alive.
    """
    workers = 3
    with small_pool(max_size=4, timeout=1), override_settings(VIDEOGEN_COMMON={"JOB_LEASE_SECONDS": 30}):
        job_ids = [new_job().id for _ in range(workers)]
        renewed: dict[int, int] = {}
        errors: list[BaseException] = []
        failures: list[logging.LogRecord] = []
        handler = _Collect(failures, "lease_renewal_failed")
        logging.getLogger("common.services.leases").addHandler(handler)

        together = threading.Barrier(workers)

        def work(i: int) -> None:
            try:
                with stage_lease(job_id=job_ids[i], stage_name="video_generation", renew_every=0.02) as lease:
                    together.wait(timeout=20)  # all three blocks run at once
                    first, beats = lease.expires_at, 0
                    deadline = time.monotonic() + 20
                    while beats < 3 and time.monotonic() < deadline:  # the worker uses its connection meanwhile
                        selectors.job_get(job_id=job_ids[i])
                        if lease.expires_at != first:
                            beats, first = beats + 1, lease.expires_at
                        time.sleep(0.01)
                    renewed[i] = beats
                    together.wait(timeout=30)  # nobody leaves (and frees connections) before all have seen 3 beats
            except BaseException as exc:
                errors.append(exc)
            finally:
                db.release_thread_connections()

        try:
            threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            logging.getLogger("common.services.leases").removeHandler(handler)
        assert errors == []
        assert failures == []
        assert renewed == dict.fromkeys(range(workers), 3)
        assert in_use() == 0


def test_async_workers_share_one_connection() -> None:
    """The README: the ``a``-twins run in asgiref's one worker thread, which keeps one connection for the process."""
    with small_pool(max_size=2, timeout=1):
        job_ids = [new_job().id for _ in range(THREADS)]

        async def work(job_id: uuid.UUID) -> str:
            async with astage_lease(job_id=job_id, stage_name="audio_analysis", renew_every=0.01) as lease:
                for _ in range(5):
                    await selectors.ajob_get(job_id=job_id)
                    await asyncio.sleep(0.005)
            await jobs.ajob_update_progress(job_id=job_id, progress=10)
            return str(lease.stage.status)

        async def main() -> list[str]:
            try:
                return await asyncio.gather(*(work(job_id) for job_id in job_ids))
            finally:
                await sync_to_async(db.release_thread_connections)()  # "when an async worker stops"

        assert asyncio.run(main()) == ["completed"] * THREADS
        assert in_use() == 0


# --------------------------------------------------------------------------- Resources, Health


def test_the_resource_monitor_thread_started_and_stopped_more_times_than_connections(tmp_path: Any) -> None:
    with (
        small_pool(max_size=2, timeout=1),
        override_settings(VIDEOGEN_COMMON={"TEMP_DIR": str(tmp_path / "t"), "CACHE_DIR": str(tmp_path / "c")}),
    ):
        (tmp_path / "t").mkdir()
        (tmp_path / "c").mkdir()
        manager = ResourceManager()
        for _ in range(THREADS):
            before = manager.cleanups_run
            manager.start_monitoring_thread(interval=0.01, cleanup_interval_hours=1)
            deadline = time.monotonic() + 20
            while manager.cleanups_run == before and time.monotonic() < deadline:  # it read the live jobs
                time.sleep(0.01)
            assert manager.stop(timeout=10)
            assert manager.cleanups_run == before + 1
        assert in_use() == 0


def test_readiness_probes_more_times_than_connections() -> None:
    # /health/ready runs its checks on threads of a new executor per request.
    with small_pool(max_size=2, timeout=1):
        for _ in range(THREADS):
            body = Client().get("/health/ready").json()
            assert body["checks"]["database"]["status"] == "ok", body
        assert in_use() == 0


class _Collect(logging.Handler):
    """Keep the records of one ``event``."""

    def __init__(self, into: list[logging.LogRecord], event: str) -> None:
        super().__init__()
        self.into, self.event = into, event

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == self.event:
            self.into.append(record)
