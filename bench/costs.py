"""Enforced charges and reservations per second: the cost tracker against raw single-statement SQL, same run.

1. Enforced charges: 8 threads, (a) all charging one job, (b) one job per thread. The baseline
   is one statement per charge (conditional UPDATE of jobs.total_cost plus the ledger INSERT in
   one CTE, autocommit, psycopg prepared statements).
2. Reservations (bench/_holds.py): reserve+settle pairs per second through ``costs.reserve`` /
   ``costs.settle`` against that raw charge and against the locked ORM path of before, at 1, 4, 8
   and 16 worker threads, hot job and one job per worker, in interleaved rounds (median and
   [min-max]); then the statements and round trips of one reserve+settle, before and after.
3. The pool: the bench's pool holds --pool-size connections (default: the most threads + 2, the
   README's rule), opened before the clock; every measurement prints how many connection
   requests had to wait (psycopg_pool's ``requests_queued``), which must be 0.

After each run the ledger sum must equal jobs.total_cost (and nothing may stay reserved).

Usage: .venv/bin/python bench/costs.py [--threads 8] [--charges 400] [--rounds 5]
       [--workers 1,4,8,16] [--hold-rounds 5] [--seconds 1] [--pool-size N] [--only charges|holds]
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; the database
(VIDEOGEN_BENCH_DB_NAME, default bench_videogen) is created, marked and dropped by this script.
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

from bench import _holds
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


def open_pool(size: int) -> dict:
    """Give the bench's process a pool of ``size`` connections, all opened now (before any clock)."""
    from django.db import connections

    wrapper = connections["default"]
    connections.close_all()
    wrapper.close_pool()
    wrapper.settings_dict["OPTIONS"]["pool"].update(min_size=size, max_size=size)
    pool = wrapper.pool
    pool.open(wait=True, timeout=30)  # all min_size connections open
    return pool_counters()


def pool_counters() -> dict:
    from common import db

    status = db.pool_status() or {}
    return {"max_size": status.get("max_size"), **status.get("stats", {})}


def pool_waits(before: dict, after: dict) -> str:
    queued = after.get("requests_queued", 0) - before.get("requests_queued", 0)
    waited = after.get("requests_wait_ms", 0) - before.get("requests_wait_ms", 0)
    requests = after.get("requests_num", 0) - before.get("requests_num", 0)
    return f"{requests} connection requests, {queued} waited ({waited} ms waiting)"


def charges(url: str, args: argparse.Namespace) -> bool:
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
        # Per-round ratios (the same round, the same load), their median and spread.
        per_round = [t / b for t, b in zip(rates["tracker"], rates["baseline"], strict=True)]
        unprepared_round = [u / b for u, b in zip(rates["unprepared"], rates["baseline"], strict=True)]
        ratios.append(statistics.median(per_round))
        print(
            f"{label:28s} tracker {tracker:8.0f}/s   baseline {baseline:8.0f}/s"
            f"   ratio {_holds.spread(per_round, '{:.3f}')}"
            f"   (rounds: tracker {', '.join(f'{r:.0f}' for r in rates['tracker'])};"
            f" baseline {', '.join(f'{r:.0f}' for r in rates['baseline'])})"
        )
        print(
            f"{'':28s} unprepared {unprepared:5.0f}/s   ratio {_holds.spread(unprepared_round, '{:.3f}')}"
            f"   (COST_PREPARED_STATEMENTS off; rounds: {', '.join(f'{r:.0f}' for r in rates['unprepared'])})"
        )
    print(f"goal: tracker >= 0.80 x baseline (median per-round ratio): {'met' if min(ratios) >= 0.8 else 'NOT met'}")
    return all_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--charges", type=int, default=400, help="charges per thread per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median rate is reported")
    parser.add_argument("--workers", default="1,4,8,16", help="worker threads of the reservation bench")
    parser.add_argument("--hold-rounds", type=int, default=5, help="interleaved rounds of the reservation bench")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one reservation measurement")
    parser.add_argument("--pool-size", type=int, default=0, help="connections in the pool (0: most threads + 2)")
    parser.add_argument("--only", choices=("charges", "holds"), default=None)
    args = parser.parse_args()
    workers = tuple(int(w) for w in args.workers.split(","))
    size = args.pool_size or max(*workers, args.threads) + 2
    with bench_database() as url:
        before = open_pool(size)
        print(f"pool: {size} connections opened before the clock (README: pool >= threads using the DB + headroom)")
        all_ok = True
        if args.only in (None, "charges"):
            all_ok = charges(url, args) and all_ok
            print(f"pool during the charge bench: {pool_waits(before, pool_counters())}")
        if args.only in (None, "holds"):
            _holds.counts()
            _holds.profile(url)
            middle = pool_counters()
            ok, smallest = _holds.compare(url, workers, args.hold_rounds, args.seconds)
            all_ok = all_ok and ok
            print(
                "goal: reserve+settle pairs >= 0.40 x raw charges at every point:"
                f" {'met' if smallest >= 0.4 else 'NOT met'}"
                f" (smallest median ratio {smallest:.3f})"
            )
            print(
                f"pool during the reservation bench (up to {max(workers)} threads):"
                f" {pool_waits(middle, pool_counters())}"
            )
        if args.only in (None, "holds"):
            # The control: the shipped pool of 10 under 16 threads that give their connection back after each
            # pair, so the counters above are shown to see waiting when there is some.
            before = open_pool(10)
            rate = _holds.churn(16, args.seconds)
            print(f"control, pool of 10, 16 threads ({rate:.0f} pairs/s): {pool_waits(before, pool_counters())}")
        print(f"ledger sum == jobs.total_cost, nothing left reserved, for every job: {'yes' if all_ok else 'NO'}")
        if not all_ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
