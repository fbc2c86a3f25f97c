"""Reserve+settle pairs per second against raw single-statement charges on the same tables (bench/costs.py).

Three variants, measured in interleaved rounds (each round runs every variant once, in a rotating
order, so load drift on a shared machine hits all of them), for 1, 4, 8 (and 16) worker threads,
(hot) all on one job and (spread) one job per worker:

* ``raw``: a hand-written single-statement enforced charge (conditional ``UPDATE jobs`` + ledger
  ``INSERT`` in one CTE) on a plain psycopg connection per thread, autocommit, prepared by psycopg:
  one round trip per charge, the physical limit of the same work;
* ``pair``: ``costs.reserve`` then ``costs.settle`` (the README's pattern for a paid call), the
  public API, through Django's pool;
* ``orm``: the same pair on the locked ORM path of before (``holds._reserve_locked`` /
  ``holds._settle_locked`` in a transaction each, which SQLite and the slow path still use).

Each worker loops for ``seconds`` after a common start; the rate is operations (charges or pairs)
per second. After each measurement the ledger sum must equal ``jobs.total_cost`` and nothing may stay
reserved. :func:`counts` prints the statements and round trips of one reserve+settle, read from the
libpq protocol trace (every message the client sends), and Django's own count of its statements.
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

RAW_SQL = """
WITH j AS (
    UPDATE jobs SET total_cost = total_cost + %(cost)s
    WHERE id = %(job)s AND total_cost + reserved_cost + %(cost)s <= budget_limit
    RETURNING id
)
INSERT INTO job_costs (id, job_id, stage_name, api_name, cost, timestamp)
SELECT %(id)s, j.id, 'video_generation', 'svd', %(cost)s, now() FROM j
"""
ESTIMATE = Decimal("0.08")
COST = Decimal("0.06")
VARIANTS = ("raw", "pair", "orm")


def make_jobs(n: int) -> list[uuid.UUID]:
    from common.models import Job

    return [
        Job.objects.create(
            user_id=uuid.uuid4(), audio_url="bench", user_prompt="bench", budget_limit=Decimal("99999999")
        ).id
        for _ in range(n)
    ]


def _timed(threads: int, seconds: float, setup: Callable[[int], Any], step: Callable[[Any], None]) -> float:
    """Run ``step(state)`` in ``threads`` threads for ``seconds`` after a common start; return operations/s."""
    from django.db import connection

    barrier = threading.Barrier(threads + 1)
    done = [0] * threads
    errors: list[BaseException] = []
    stop = threading.Event()

    def body(i: int) -> None:
        state = None
        try:
            state = setup(i)
            step(state)  # connect (and prepare) before the clock
            barrier.wait()
            n = 0
            while not stop.is_set():
                step(state)
                n += 1
            done[i] = n
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            close = getattr(state, "close", None)
            if close is not None:
                close()
            connection.close()

    workers = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return sum(done) / elapsed


def _raw(url: str, jobs: list[uuid.UUID], threads: int, seconds: float) -> float:
    import psycopg

    class State:
        def __init__(self, i: int) -> None:
            self.job = jobs[i % len(jobs)]
            self.conn = psycopg.connect(url, autocommit=True)

        def close(self) -> None:
            self.conn.close()

    def step(state: State) -> None:
        cur = state.conn.execute(RAW_SQL, {"cost": COST, "job": state.job, "id": uuid.uuid4()})
        if cur.rowcount != 1:
            raise RuntimeError("raw charge refused")

    return _timed(threads, seconds, State, step)


def _pair(jobs: list[uuid.UUID], threads: int, seconds: float) -> float:
    from common.services import costs

    def step(job: uuid.UUID) -> None:
        hold = costs.reserve(job, "video_generation", "svd", ESTIMATE)
        costs.settle(hold, COST)

    return _timed(threads, seconds, lambda i: jobs[i % len(jobs)], step)


def _orm(jobs: list[uuid.UUID], threads: int, seconds: float) -> float:
    from common.db import retry_locked
    from common.services import holds

    def step(job: uuid.UUID) -> None:
        hold = retry_locked(functools.partial(holds._reserve_locked, job, "video_generation", "svd", ESTIMATE, None))
        retry_locked(functools.partial(holds._settle_locked, hold.id, COST))

    return _timed(threads, seconds, lambda i: jobs[i % len(jobs)], step)


def check(jobs: list[uuid.UUID]) -> bool:
    """The ledger sums to ``jobs.total_cost`` and nothing stays reserved or held, for every job."""
    from common.models import HoldStatus, Job, JobCost, JobCostHold
    from common.money import money_from_sum, money_sum

    for job_id in jobs:
        total, reserved = Job.objects.values_list("total_cost", "reserved_cost").get(id=job_id)
        ledger = money_from_sum(JobCost.objects.filter(job_id=job_id).aggregate(s=money_sum())["s"])
        if ledger != total or reserved != 0:
            return False
        if JobCostHold.objects.filter(job_id=job_id, status=HoldStatus.ACTIVE).exists():
            return False
    return True


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def compare(url: str, workers: tuple[int, ...], rounds: int, seconds: float) -> tuple[bool, float]:
    """Print the pairs/s table; return (every ledger exact, the smallest median pair/raw ratio)."""
    print(
        f"\nreserve+settle pairs/s vs raw single-statement charges/s, {rounds} interleaved rounds of {seconds:g} s"
        " per variant; median [min-max]; ratios are per round (same round, same load)"
    )
    print(f"{'workers':>7} {'jobs':>6} {'raw /s':>18} {'pair /s':>18} {'orm /s':>18} {'pair/raw':>20} {'orm/raw':>20}")
    ok = True
    smallest = float("inf")
    for threads in workers:
        for layout, njobs in (("hot", 1), ("spread", threads)):
            if threads == 1 and layout == "spread":
                continue  # one worker: the same as hot
            rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for r in range(rounds):
                order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
                for name in order:
                    jobs = make_jobs(njobs)
                    if name == "raw":
                        rate = _raw(url, jobs, threads, seconds)
                    elif name == "pair":
                        rate = _pair(jobs, threads, seconds)
                    else:
                        rate = _orm(jobs, threads, seconds)
                    ok = check(jobs) and ok
                    rates[name].append(rate)
            pair_ratio = [p / b for p, b in zip(rates["pair"], rates["raw"], strict=True)]
            orm_ratio = [o / b for o, b in zip(rates["orm"], rates["raw"], strict=True)]
            smallest = min(smallest, statistics.median(pair_ratio))
            print(
                f"{threads:>7} {layout:>6} {spread(rates['raw']):>18} {spread(rates['pair']):>18}"
                f" {spread(rates['orm']):>18} {spread(pair_ratio, '{:.3f}'):>20} {spread(orm_ratio, '{:.3f}'):>20}"
            )
    return ok, smallest


def _traced(run: Callable[[], None]) -> tuple[Counter[str], int]:
    """The client's protocol messages while ``run`` runs (libpq trace) and Django's statement count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from psycopg import pq

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    fd, path = tempfile.mkstemp(suffix=".trace")
    try:
        pgconn.trace(fd)
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        with CaptureQueriesContext(connection) as captured:
            run()
        pgconn.untrace()
        os.close(fd)
        with open(path, encoding="utf-8", errors="replace") as trace:
            sent = Counter(line.split()[2] for line in trace if line.startswith("F\t") and len(line.split()) > 2)
    finally:
        os.unlink(path)
    return sent, len(captured.captured_queries)


def counts() -> None:
    """Print statements and round trips of one reserve+settle (new path, old ORM path) and one raw charge."""
    from common.db import retry_locked
    from common.services import costs, holds

    [job] = make_jobs(1)
    # Warm each path once (psycopg prepares its statement on first use), then trace the second run.
    for _ in range(2):
        new_path = _traced(lambda: costs.settle(costs.reserve(job, "video_generation", "svd", ESTIMATE), COST))
        charge = _traced(lambda: costs.track_cost(job, "video_generation", "svd", COST, enforce=True))

    def old() -> None:
        hold = retry_locked(functools.partial(holds._reserve_locked, job, "video_generation", "svd", ESTIMATE, None))
        retry_locked(functools.partial(holds._settle_locked, hold.id, COST))

    old_path = _traced(old)
    print("\nstatements and round trips (libpq protocol trace of one call on a warm connection; Django's count):")
    for label, (sent, django) in (
        ("reserve+settle, ORM path (before)", old_path),
        ("reserve+settle, one statement each (after)", new_path),
        ("enforced charge (track_cost), for reference", charge),
    ):
        statements = sent["Execute"] + sent["Query"]
        trips = sent["Sync"] + sent["Query"]
        messages = ", ".join(f"{name} {n}" for name, n in sorted(sent.items()))
        print(
            f"  {label:45s} statements {statements:2d}, round trips {trips:2d}, Django-captured {django:2d}"
            f"   (client messages: {messages})"
        )


def profile(url: str, samples: int = 150) -> None:
    """Print the database's own work per statement: raw charge, reserve, settle (EXPLAIN ANALYZE, WAL, BUFFERS).

    Commit (the WAL flush) is not in these figures: a raw charge commits once, a reserve+settle pair twice.
    """
    import psycopg
    from django.utils import timezone

    from common.selectors.costs import hold_cutoff
    from common.services import _holds_pg

    jobs = make_jobs(3)
    with psycopg.connect(url, autocommit=True) as conn:

        def explain(sql: str, params: dict[str, Any]) -> tuple[float, float, float, float]:
            row = conn.execute("EXPLAIN (ANALYZE, WAL, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
            plan = row[0][0] if row else {}
            top = plan["Plan"]
            buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
            return top.get("WAL Records", 0), top.get("WAL Bytes", 0), buffers, plan["Execution Time"]

        seen: dict[str, list[tuple[float, float, float, float]]] = {"raw charge": [], "reserve": [], "settle": []}
        for i in range(samples + 30):
            job = jobs[i % len(jobs)]
            raw = explain(RAW_SQL, {"cost": COST, "job": job, "id": uuid.uuid4()})
            now = timezone.now()
            hold = uuid.uuid4()
            reserve_params = {
                "amount": ESTIMATE,
                "job": job,
                "id": hold,
                "stage": "video_generation",
                "api": "svd",
                "now": now,
                "cutoff": hold_cutoff(now),
            }
            reserve = explain(_holds_pg.RESERVE_SQL[False], reserve_params)
            now = timezone.now()
            settle_params = {
                "hold": hold,
                "status": "settled",
                "cost_id": uuid.uuid4(),
                "cost": COST,
                "now": now,
                "cutoff": hold_cutoff(now),
                "key": f"hold:{hold}",
            }
            settle = explain(_holds_pg.SETTLE_SQL, settle_params)
            if i >= 30:  # after a warm-up
                for name, figures in (("raw charge", raw), ("reserve", reserve), ("settle", settle)):
                    seen[name].append(figures)
    print(f"\ndatabase work per statement (EXPLAIN ANALYZE, WAL, BUFFERS; mean of {samples}, execution median):")
    means = {}
    for name, rows in seen.items():
        records, wal, buffers = (statistics.mean(row[k] for row in rows) for k in range(3))
        means[name] = (records, wal, buffers, statistics.median(row[3] for row in rows))
        print(
            f"  {name:10s} WAL records {records:5.1f}  WAL bytes {wal:6.0f}  buffers {buffers:5.1f}"
            f"  execution {means[name][3]:.3f} ms"
        )
    pair = [means["reserve"][k] + means["settle"][k] for k in range(4)]
    print(
        "  reserve+settle / raw charge: "
        + ", ".join(
            f"{label} {pair[k] / means['raw charge'][k]:.2f}x"
            for k, label in enumerate(("WAL records", "WAL bytes", "buffers", "execution"))
        )
        + "; commits 2 vs 1"
    )


def churn(threads: int, seconds: float) -> float:
    """Pairs/s with every thread giving its connection back after each pair (so a small pool makes threads wait)."""
    from django.db import connection

    from common.services import costs

    jobs = make_jobs(threads)

    def step(job: uuid.UUID) -> None:
        costs.settle(costs.reserve(job, "video_generation", "svd", ESTIMATE), COST)
        connection.close()  # back to the pool

    return _timed(threads, seconds, lambda i: jobs[i], step)
