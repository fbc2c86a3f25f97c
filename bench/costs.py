"""Enforced charges per second: the cost tracker against the fastest correct raw-SQL baseline, same run.

8 threads, (a) all charging one job, (b) one job per thread, on PostgreSQL. The
baseline is one statement per charge (conditional UPDATE of jobs.total_cost plus
the ledger INSERT in one CTE, autocommit, psycopg prepared statements). After
each run the ledger sum must equal jobs.total_cost.

Usage: .venv/bin/python bench/costs.py [--threads 8] [--charges 400] [--rounds 3]
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; the
database bench_videogen is created and dropped by this script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._setup import bench_database

BASELINE_SQL = """
WITH j AS (
    UPDATE jobs SET total_cost = total_cost + %(cost)s
    WHERE id = %(job)s AND total_cost + %(cost)s <= budget_limit
    RETURNING id
)
INSERT INTO job_costs (id, job_id, stage_name, api_name, cost, timestamp)
SELECT %(id)s, j.id, 'video_generation', 'svd', %(cost)s, now() FROM j
"""
CHARGE = Decimal("0.06")


def make_jobs(n: int) -> list[uuid.UUID]:
    from common.models import Job

    return [
        Job.objects.create(
            user_id=uuid.uuid4(), audio_url="bench", user_prompt="bench", budget_limit=Decimal("99999999")
        ).id
        for _ in range(n)
    ]


def run_threads(threads: int, target) -> float:
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            target(i, barrier)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def tracker_run(job_ids: list[uuid.UUID], threads: int, charges: int) -> float:
    from django.db import connection

    from common.services.costs import track_cost

    def work(i: int, barrier: threading.Barrier) -> None:
        job = job_ids[i % len(job_ids)]
        track_cost(job, "video_generation", "svd", CHARGE, enforce=True)  # connect before the clock
        barrier.wait()
        try:
            for _ in range(charges):
                track_cost(job, "video_generation", "svd", CHARGE, enforce=True)
        finally:
            connection.close()

    return run_threads(threads, work)


def baseline_run(url: str, job_ids: list[uuid.UUID], threads: int, charges: int) -> float:
    import psycopg

    def work(i: int, barrier: threading.Barrier) -> None:
        job = job_ids[i % len(job_ids)]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(BASELINE_SQL, {"cost": CHARGE, "job": job, "id": uuid.uuid4()})
            barrier.wait()
            for _ in range(charges):
                cur = conn.execute(BASELINE_SQL, {"cost": CHARGE, "job": job, "id": uuid.uuid4()})
                if cur.rowcount != 1:
                    raise RuntimeError("baseline charge refused")

    return run_threads(threads, work)


def check_ledger(job_ids: list[uuid.UUID]) -> tuple[bool, int]:
    from django.db.models import Count, Sum

    from common.models import Job, JobCost

    ok = True
    rows = 0
    for job_id in job_ids:
        agg = JobCost.objects.filter(job_id=job_id).aggregate(s=Sum("cost"), n=Count("id"))
        total = Job.objects.values_list("total_cost", flat=True).get(id=job_id)
        ok = ok and (agg["s"] or 0) == total
        rows += agg["n"]
    return ok, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--charges", type=int, default=400, help="charges per thread per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median rate is reported")
    args = parser.parse_args()
    with bench_database() as url:
        from django.db import connection
        from django.test import override_settings

        print(
            f"cost tracker vs raw SQL baseline: PostgreSQL {connection.cursor().connection.info.server_version}, "
            f"{args.threads} threads x {args.charges} enforced charges of {CHARGE}, {args.rounds} rounds (median)"
        )
        connection.close()
        total = args.threads * args.charges
        all_ok = True
        ratios = []
        for label, njobs in (("(a) one job, all threads", 1), ("(b) one job per thread", args.threads)):
            rates: dict[str, list[float]] = {"tracker": [], "unprepared": [], "baseline": []}
            for _ in range(args.rounds):
                for name in ("baseline", "tracker", "unprepared"):
                    jobs = make_jobs(njobs)
                    if name == "baseline":
                        elapsed = baseline_run(url, jobs, args.threads, args.charges)
                    else:
                        # "unprepared": the tracker with COST_PREPARED_STATEMENTS off, to show what preparing buys.
                        prepared = {"COST_PREPARED_STATEMENTS": name == "tracker"}
                        with override_settings(VIDEOGEN_COMMON=prepared):
                            elapsed = tracker_run(jobs, args.threads, args.charges)
                    ok, rows = check_ledger(jobs)
                    all_ok = all_ok and ok and rows == total + args.threads
                    rates[name].append(total / elapsed)
            tracker = statistics.median(rates["tracker"])
            unprepared = statistics.median(rates["unprepared"])
            baseline = statistics.median(rates["baseline"])
            ratios.append(tracker / baseline)
            print(
                f"{label:28s} tracker {tracker:8.0f}/s   baseline {baseline:8.0f}/s   ratio {tracker / baseline:.3f}"
                f"   (rounds: tracker {', '.join(f'{r:.0f}' for r in rates['tracker'])};"
                f" baseline {', '.join(f'{r:.0f}' for r in rates['baseline'])})"
            )
            print(
                f"{'':28s} unprepared {unprepared:5.0f}/s   ratio {unprepared / baseline:.3f}"
                f"   (COST_PREPARED_STATEMENTS off; rounds: {', '.join(f'{r:.0f}' for r in rates['unprepared'])})"
            )
        print(f"ledger sum == jobs.total_cost for every job: {'yes' if all_ok else 'NO'}")
        print(f"goal: tracker >= 0.80 x baseline: {'met' if min(ratios) >= 0.8 else 'NOT met'}")
        if not all_ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
