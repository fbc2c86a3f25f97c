"""Job lifecycle transitions per second on PostgreSQL, and what the time estimate costs.

Each job runs the whole lifecycle (create, start + complete each of the 6 stages, complete:
14 transitions, each one locked transaction). The baseline is the same run with the
estimate switched off (``estimated_remaining`` not recomputed), measured in the same
process in rounds interleaved with the estimate's (so a change of machine load hits
both); with little history, then with a history of completed stages. Single thread:
the row lock serialises one job's transitions anyway.

Usage: .venv/bin/python bench/jobs.py [--jobs 40] [--history 3000] [--rounds 3]
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; the
database bench_videogen_jobs is created and dropped by this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._setup import bench_database

TRANSITIONS_PER_JOB = 14


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


def compare(label: str, n: int, rounds: int) -> float:
    """Rounds of the lifecycle with the estimate off (baseline) and on, interleaved so load drift hits both."""
    from common.services import _lifecycle

    real_estimate = _lifecycle.job_estimate_remaining
    baseline: list[float] = []
    estimate: list[float] = []
    for _ in range(rounds):
        _lifecycle.job_estimate_remaining = lambda **kwargs: 0  # type: ignore[assignment]
        try:
            baseline.append(lifecycle(n))
        finally:
            _lifecycle.job_estimate_remaining = real_estimate
        estimate.append(lifecycle(n))
    for name, rates in (("baseline: estimate switched off", baseline), (f"estimate, {label}", estimate)):
        print(f"{name:<44} median {statistics.median(rates):8.1f} transitions/s   best {max(rates):8.1f}")
    return statistics.median(estimate) / statistics.median(baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--history", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with bench_database("bench_videogen_jobs"):
        print(f"{args.jobs} jobs x {TRANSITIONS_PER_JOB} transitions, {args.rounds} rounds, PostgreSQL")
        lifecycle(5)  # warm up connections and caches
        small = compare("little history", args.jobs, args.rounds)
        add_history(args.history)
        big = compare(f"{args.history} completed runs per stage", args.jobs, args.rounds)
        print(f"ratio to baseline: little history {small:.2f}, large history {big:.2f}")


if __name__ == "__main__":
    main()
