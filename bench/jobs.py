"""Job lifecycle transitions on PostgreSQL: round trips and statements per transition, transitions per second.

Part 1 counts, for each kind of transition, what one call sends to the server: round trips (one per
``ReadyForQuery`` in libpq's protocol trace, so the ``BEGIN``, ``COMMIT`` and ``SAVEPOINT`` that psycopg
and Django send count too), the SQL statements the server ran (``CommandComplete`` messages) and the
executes Django saw (``CaptureQueriesContext``). The time estimate is on and the stages have history.

Part 2 runs whole lifecycles (create, start + complete each of the 6 stages, complete: 14 transitions a
job) and prints transitions per second for the variants, measured in rounds interleaved job by job
(each round runs one job of each variant in turn, the order rotating, so a change of machine load hits
all of them alike): a plain Django implementation of the same transitions
(``select_for_update`` + ``save`` in ``transaction.atomic``, no estimate, no checks beyond the
state machine's), ours with the estimate switched off, ours with it on, and (where the code has the
medians cache) ours with it on and the medians read every transition (``ESTIMATE_CACHE_SECONDS = 0``);
with little history, then with ``--history`` completed runs per stage. Medians of ``--rounds`` rounds with their spread
(min-max), and the ratios: estimate on / off, ours / plain Django. Single thread: the row lock
serialises one job's transitions anyway.

Usage: .venv/bin/python -m bench.jobs [--jobs 40] [--history 3000] [--rounds 5]
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; the database
(VIDEOGEN_BENCH_DB_NAME, default bench_videogen_jobs) is created and dropped by this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._setup import bench_database

TRANSITIONS_PER_JOB = 14
OWNER_A, OWNER_B = "bench-worker-a", "bench-worker-b"


# --------------------------------------------------------------------------- the estimate switch


@contextmanager
def estimate_off() -> Iterator[None]:
    """Run the lifecycle without recomputing ``estimated_remaining`` (the baseline the estimate is measured on)."""
    from common.services import _lifecycle

    if hasattr(_lifecycle, "ESTIMATE"):  # the cached-median lifecycle: a module switch
        _lifecycle.ESTIMATE = False
        try:
            yield
        finally:
            _lifecycle.ESTIMATE = True
        return
    real = _lifecycle.job_estimate_remaining  # the lifecycle before: a median query per transition
    _lifecycle.job_estimate_remaining = lambda **kwargs: 0  # type: ignore[assignment]
    try:
        yield
    finally:
        _lifecycle.job_estimate_remaining = real


def forget_medians() -> None:
    """Drop this process's cached medians (after the bench writes history behind the services' back)."""
    try:
        from common.selectors.estimates import stage_medians_forget
    except ImportError:
        return
    stage_medians_forget()


# --------------------------------------------------------------------------- part 1: what one transition sends


@contextmanager
def protocol_trace() -> Iterator[dict[str, Any]]:
    """Trace the libpq protocol of this thread's connection; the dict gets round trips, statements, executes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from psycopg import pq

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    result: dict[str, Any] = {}
    with tempfile.TemporaryFile("w+") as log, CaptureQueriesContext(connection) as captured:
        pgconn.trace(log.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield result
        finally:
            pgconn.untrace()
        log.seek(0)
        lines = [line.split("\t") for line in log.read().splitlines()]
    result["round_trips"] = sum(1 for line in lines if line[0] == "B" and line[2].startswith("ReadyForQuery"))
    result["statements"] = [
        line[3].strip().strip('"').split(" ")[0]
        for line in lines
        if line[0] == "B" and line[2].startswith("CommandComplete")
    ]
    result["executes"] = len(captured.captured_queries)


def count_transitions() -> list[tuple[str, dict[str, Any]]]:
    """One call of each transition, traced (estimate on, history present, medians warm)."""
    from common.errors import PipelineError
    from common.models import JobStage
    from common.services import jobs, leases

    def new_job() -> Any:
        return jobs.job_create(user_id=uuid.uuid4(), audio_url="bench", user_prompt="bench")

    rows: list[tuple[str, dict[str, Any]]] = []

    def traced(label: str, call: Callable[[], object]) -> None:
        with protocol_trace() as counts:
            call()
        rows.append((label, counts))

    new_job()  # warm: connection, medians
    job = new_job()
    traced("job_create", new_job)
    traced("stage_start (new stage)", lambda: jobs.stage_start(job_id=job.id, stage_name="audio_analysis"))
    traced("job_update_progress", lambda: jobs.job_update_progress(job_id=job.id, progress=10))
    traced("stage_complete", lambda: jobs.stage_complete(job_id=job.id, stage_name="audio_analysis"))
    jobs.stage_start(job_id=job.id, stage_name="scene_planning")
    traced("stage_fail", lambda: jobs.stage_fail(job_id=job.id, stage_name="scene_planning"))
    traced(
        "stage_start (retry a failed stage)",
        lambda: jobs.stage_start(job_id=job.id, stage_name="scene_planning", owner=OWNER_A),
    )
    traced(
        "stage_heartbeat",
        lambda: leases.stage_heartbeat(job_id=job.id, stage_name="scene_planning", owner=OWNER_A),
    )
    JobStage.objects.filter(job=job, stage_name="scene_planning").update(
        lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    )
    traced(
        "stage_start (takeover, lease expired)",
        lambda: jobs.stage_start(job_id=job.id, stage_name="scene_planning", owner=OWNER_B),
    )
    traced(
        "stage_complete_leased",
        lambda: leases.stage_complete_leased(job_id=job.id, stage_name="scene_planning", owner=OWNER_B),
    )
    jobs.stage_start(job_id=job.id, stage_name="prompt_generation", owner=OWNER_A)
    traced(
        "stage_fail_leased",
        lambda: leases.stage_fail_leased(job_id=job.id, stage_name="prompt_generation", owner=OWNER_A),
    )
    traced("job_complete", lambda: jobs.job_complete(job_id=job.id, video_url="bench.mp4"))
    with no_receivers():
        spare = new_job()
        jobs.stage_start(job_id=spare.id, stage_name="audio_analysis")
        jobs.stage_complete(job_id=spare.id, stage_name="audio_analysis")
        traced("  the same without job_finished receivers", lambda: jobs.job_complete(job_id=spare.id, video_url="b"))
    failing = new_job()
    jobs.stage_start(job_id=failing.id, stage_name="audio_analysis")
    traced(
        "job_fail (one stage running)",
        lambda: jobs.job_fail(job_id=failing.id, error=PipelineError("bench", code="BENCH")),
    )
    cancelled = new_job()
    jobs.stage_start(job_id=cancelled.id, stage_name="audio_analysis")
    traced("job_cancel (one stage running)", lambda: jobs.job_cancel(job_id=cancelled.id))
    with no_receivers():
        spare = new_job()
        jobs.stage_start(job_id=spare.id, stage_name="audio_analysis")
        traced("  the same without job_finished receivers", lambda: jobs.job_cancel(job_id=spare.id))
    refused = new_job()
    traced(
        "refused: stage_complete never started",
        lambda: _expect_refusal(lambda: jobs.stage_complete(job_id=refused.id, stage_name="composition")),
    )
    return rows


@contextmanager
def no_receivers() -> Iterator[None]:
    """Disconnect ``job_finished``'s receivers (the cost tracker's hold release) to count the transition alone."""
    from common.services.jobs import job_finished

    saved = job_finished.receivers[:]
    job_finished.receivers.clear()
    job_finished.sender_receivers_cache.clear()
    try:
        yield
    finally:
        job_finished.receivers[:] = saved
        job_finished.sender_receivers_cache.clear()


def _expect_refusal(call: Callable[[], object]) -> None:
    from common.errors import ValidationError

    try:
        call()
    except ValidationError:
        return
    raise AssertionError("the bench expected this transition to be refused")


def print_counts(rows: list[tuple[str, dict[str, Any]]]) -> None:
    print(f"{'transition':<40} {'round trips':>11} {'statements':>10} {'executes':>8}  statements sent")
    for label, counts in rows:
        kinds = " ".join(counts["statements"])
        print(
            f"{label:<40} {counts['round_trips']:>11} {len(counts['statements']):>10} {counts['executes']:>8}  {kinds}"
        )
    lifecycle_rows = [c for label, c in rows if not label.startswith(("refused", " "))]
    trips = statistics.mean(c["round_trips"] for c in lifecycle_rows)
    statements = statistics.mean(len(c["statements"]) for c in lifecycle_rows)
    print(f"{'mean over the transitions above':<40} {trips:>11.2f} {statements:>10.2f}")


# --------------------------------------------------------------------------- part 2: transitions per second


def lifecycle(n: int) -> float:
    from common.conf import app_settings
    from common.services.jobs import job_complete, job_create, stage_complete, stage_start

    started = time.perf_counter()
    for _ in range(n):
        job = job_create(user_id=uuid.uuid4(), audio_url="bench", user_prompt="bench")
        for name in app_settings.PIPELINE_STAGES:
            stage_start(job_id=job.id, stage_name=name)
            stage_complete(job_id=job.id, stage_name=name)
        job_complete(job_id=job.id, video_url="bench.mp4")
    return n * TRANSITIONS_PER_JOB / (time.perf_counter() - started)


def plain_django_lifecycle(n: int) -> float:
    """The same 14 transitions written the plain Django way: lock with select_for_update, check, save."""
    from django.db import transaction
    from django.utils import timezone

    from common.conf import app_settings
    from common.models import Job, JobStage

    started = time.perf_counter()
    for _ in range(n):
        with transaction.atomic():
            job = Job.objects.create(user_id=uuid.uuid4(), audio_url="bench", user_prompt="bench")
        for name in app_settings.PIPELINE_STAGES:
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job.pk)
                assert job.status in ("queued", "processing")
                stage, _ = JobStage.objects.select_for_update().get_or_create(job=job, stage_name=name)
                assert stage.status != "completed"
                stage.status, stage.started_at, stage.attempts = "processing", timezone.now(), stage.attempts + 1
                stage.save(update_fields=["status", "started_at", "attempts"])
                job.status, job.current_stage = "processing", name
                job.save(update_fields=["status", "current_stage", "updated_at"])
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job.pk)
                assert job.status == "processing"
                stage = JobStage.objects.select_for_update().get(job=job, stage_name=name)
                assert stage.status == "processing"
                now = timezone.now()
                stage.status, stage.completed_at = "completed", now
                stage.duration_seconds = round((now - stage.started_at).total_seconds())
                stage.save(update_fields=["status", "completed_at", "duration_seconds"])
                job.save(update_fields=["updated_at"])
        with transaction.atomic():
            job = Job.objects.select_for_update().get(pk=job.pk)
            assert job.status == "processing"
            assert not JobStage.objects.filter(job=job, status="processing").exists()
            job.status, job.progress, job.video_url, job.completed_at = "completed", 100, "b.mp4", timezone.now()
            job.save(update_fields=["status", "progress", "video_url", "completed_at", "updated_at"])
    return n * TRANSITIONS_PER_JOB / (time.perf_counter() - started)


def add_history(rows_per_stage: int) -> None:
    from common.conf import app_settings
    from common.models import Job, JobStage

    now = dt.datetime.now(dt.UTC)
    jobs = Job.objects.bulk_create(
        Job(user_id=uuid.uuid4(), audio_url="h", user_prompt="h", status="completed") for _ in range(rows_per_stage)
    )
    for name in app_settings.PIPELINE_STAGES:
        JobStage.objects.bulk_create(
            JobStage(
                job=job,
                stage_name=name,
                status="completed",
                started_at=now - dt.timedelta(seconds=60 + i),
                completed_at=now - dt.timedelta(seconds=i),
                duration_seconds=60,
            )
            for i, job in enumerate(jobs)
        )
    forget_medians()


def _summary(rates: list[float]) -> str:
    return f"median {statistics.median(rates):8.1f}/s   spread {min(rates):7.1f}-{max(rates):7.1f}"


@contextmanager
def medians_uncached() -> Iterator[None]:
    """The estimate on, its medians read from the history every transition (``ESTIMATE_CACHE_SECONDS = 0``).

    Patched rather than set with ``override_settings``: a settings change drops the cached medians, which
    would make the next job of the cached variant reload them.
    """
    from common.selectors import estimates

    real = estimates._ttl
    estimates._ttl = lambda: 0.0  # type: ignore[assignment]
    try:
        yield
    finally:
        estimates._ttl = real  # type: ignore[assignment]


def _variants() -> dict[str, Callable[[], float]]:
    """Each variant runs one job's 14 transitions and returns the seconds they took."""

    def ours(switch: Callable[[], Any] | None = None) -> Callable[[], float]:
        def run() -> float:
            if switch is None:
                return TRANSITIONS_PER_JOB / lifecycle(1)
            with switch():
                return TRANSITIONS_PER_JOB / lifecycle(1)

        return run

    variants = {
        "plain Django": lambda: TRANSITIONS_PER_JOB / plain_django_lifecycle(1),
        "estimate off": ours(estimate_off),
        "estimate on": ours(),
    }
    if importlib.util.find_spec("common.selectors.estimates") is not None:  # not in the code before
        variants["on, no cache"] = ours(medians_uncached)
    return variants


def compare(label: str, n: int, rounds: int) -> dict[str, float]:
    """Rounds of ``n`` jobs a variant, interleaved job by job (the order rotating), so load drift hits all alike."""
    variants = _variants()
    names = list(variants)
    rates: dict[str, list[float]] = {name: [] for name in names}
    on_off: list[float] = []
    for _ in range(rounds):
        seconds = dict.fromkeys(names, 0.0)
        for i in range(n):
            for k in range(len(names)):
                name = names[(i + k) % len(names)]
                seconds[name] += variants[name]()
        for name in names:
            rates[name].append(n * TRANSITIONS_PER_JOB / seconds[name])
        on_off.append(rates["estimate on"][-1] / rates["estimate off"][-1])
    print(f"-- {label}")
    for name, values in rates.items():
        print(f"   {name:<14} {_summary(values)}")
    ratios = {
        "on/off": statistics.median(on_off),
        "on/plain": statistics.median(rates["estimate on"]) / statistics.median(rates["plain Django"]),
        "off/plain": statistics.median(rates["estimate off"]) / statistics.median(rates["plain Django"]),
    }
    print(
        f"   estimate on / off: median of per-round ratios {ratios['on/off']:.2f}"
        f" (spread {min(on_off):.2f}-{max(on_off):.2f});"
        f"  ours / plain Django: estimate on {ratios['on/plain']:.2f}, off {ratios['off/plain']:.2f}"
    )
    if "on, no cache" in rates:
        cache = [on / off for on, off in zip(rates["estimate on"], rates["on, no cache"], strict=True)]
        print(
            f"   the medians cache: estimate on with / without it, median of per-round ratios"
            f" {statistics.median(cache):.2f} (spread {min(cache):.2f}-{max(cache):.2f})"
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--history", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--counts-only", action="store_true", help="only part 1 (round trips per transition)")
    args = parser.parse_args()
    with bench_database("bench_videogen_jobs"):
        from django.db import connection

        print(f"PostgreSQL {connection.cursor().connection.info.server_version}, pid {os.getpid()}")
        add_history(50)
        print("== round trips and statements per transition (estimate on, 50 completed runs per stage)")
        print_counts(count_transitions())
        if args.counts_only:
            return
        print(f"== {args.jobs} jobs x {TRANSITIONS_PER_JOB} transitions a round, {args.rounds} interleaved rounds")
        lifecycle(5)  # warm up connections and caches
        plain_django_lifecycle(5)
        compare("little history (50 runs per stage)", args.jobs, args.rounds)
        add_history(args.history)
        compare(f"{args.history + 50} completed runs per stage", args.jobs, args.rounds)


if __name__ == "__main__":
    main()
