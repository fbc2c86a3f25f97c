"""Shared helpers for the cost-tracking tests (kept out of conftest.py to avoid clashing with other areas)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import connection

from common.models import Job
from tests.poolkit import pool_for_threads


def make_job(budget: Decimal | str = "20.00", **fields: Any) -> Job:
    """Create a job with ``budget``."""
    return Job.objects.create(
        user_id=fields.pop("user_id", uuid.uuid4()),
        audio_url="https://example.test/song.mp3",
        user_prompt="a test video",
        budget_limit=Decimal(budget),
        **fields,
    )


def reload(job: Job) -> Job:
    """``job`` refreshed from the database."""
    job.refresh_from_db()
    return job


def run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in ``count`` threads started together; return results; re-raise the first error."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    with pool_for_threads(count):  # each thread keeps its connection for its whole loop
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return results
