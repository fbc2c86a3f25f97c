"""budget_report over 1,000,000 ledger rows and 50,000 jobs against a hand-written SQL aggregate, same run.

Prints both times (median of --rounds), the ratio, and the peak memory (max RSS)
of the report run as its own process over the full data, next to a run over a
handful of jobs (Django's own footprint). Goal: within 1.5x of the SQL, under 200 MB.

Usage: .venv/bin/python bench/report.py [--jobs 50000] [--rows 1000000] [--rounds 3]
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; the
database bench_videogen_report is created and dropped by this script.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._setup import ROOT, bench_database

LOAD_SQL = [
    # Jobs: budgets 20 / 5 / 1.5 so that some end near or over; created over the last 30 days.
    """
    INSERT INTO jobs (id, user_id, status, audio_url, user_prompt, progress, total_cost, budget_limit,
                      reserved_cost, created_at, updated_at)
    SELECT gen_random_uuid(), md5((i %% 1000)::text)::uuid,
           (ARRAY['queued','processing','completed','failed','cancelled'])[1 + i %% 5],
           'bench.mp3', 'bench', 0, 0, (ARRAY[20, 5, 1.5])[1 + i %% 3]::numeric, 0,
           now() - (i %% 30) * interval '1 day' - (i %% 86400) * interval '1 second', now()
    FROM generate_series(1, %(jobs)s) AS i
    """,
    "CREATE TEMP TABLE bench_jobs AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM jobs",
    "CREATE INDEX ON bench_jobs (n)",
    """
    INSERT INTO job_costs (id, job_id, stage_name, api_name, cost, timestamp)
    SELECT gen_random_uuid(), b.id, s.stage, s.api, s.cost, now() - (g %% 30) * interval '1 day'
    FROM generate_series(1, %(rows)s) AS g
    JOIN bench_jobs b ON b.n = 1 + (g::bigint * 7919) %% %(jobs)s
    JOIN (VALUES (0, 'audio_analysis', 'whisper', 0.021), (1, 'scene_planning', 'gpt-4o', 0.03),
                 (2, 'reference_generation', 'sdxl', 0.0055), (3, 'prompt_generation', 'gpt-4-turbo', 0.01),
                 (4, 'video_generation', 'svd', 0.06), (5, 'video_generation', 'zeroscope', 0.10),
                 (6, 'video_generation', 'animatediff', 0.20), (7, 'composition', 'musicgen', 0.15))
         AS s (k, stage, api, cost) ON s.k = g %% 8
    """,
    """
    UPDATE jobs SET total_cost = l.total
    FROM (SELECT job_id, sum(cost) AS total FROM job_costs GROUP BY job_id) AS l
    WHERE l.job_id = jobs.id
    """,
    # Open holds on one job in ten.
    """
    INSERT INTO job_cost_holds (id, job_id, stage_name, api_name, amount, status, created_at)
    SELECT gen_random_uuid(), id, 'video_generation', 'svd', 0.06, 'active', now()
    FROM bench_jobs WHERE n %% 10 = 0
    """,
    "UPDATE jobs SET reserved_cost = 0.06 WHERE id IN (SELECT job_id FROM job_cost_holds)",
    "ANALYZE",
]

# The same report, written by hand: per job with open holds, then by stage, API and day.
SQL_AGGREGATE = [
    """
    SELECT j.id, j.user_id, j.status, j.total_cost, j.budget_limit, h.total, j.created_at
    FROM jobs j
    LEFT JOIN (SELECT job_id, sum(amount) AS total FROM job_cost_holds
               WHERE status = 'active' AND created_at > now() - interval '15 minutes'
               GROUP BY job_id) h ON h.job_id = j.id
    ORDER BY j.created_at, j.id
    """,
    "SELECT stage_name, count(*), sum(cost) FROM job_costs GROUP BY 1 ORDER BY 1",
    "SELECT api_name, count(*), sum(cost) FROM job_costs GROUP BY 1 ORDER BY 1",
    "SELECT (timestamp AT TIME ZONE 'UTC')::date, count(*), sum(cost) FROM job_costs GROUP BY 1 ORDER BY 1",
]


class NullWriter(io.TextIOBase):
    """Counts what the report writes, keeps nothing."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, s: str) -> int:
        self.chars += len(s)
        return len(s)


def time_report(fmt: str) -> tuple[float, int]:
    from django.core.management import call_command

    out = NullWriter()
    start = time.perf_counter()
    call_command("budget_report", "--format", fmt, stdout=out)
    return time.perf_counter() - start, out.chars


def time_sql(url: str) -> tuple[float, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        rows = 0
        for sql in SQL_AGGREGATE:
            rows += len(conn.execute(sql).fetchall())
        return time.perf_counter() - start, rows


CHILD = """
import os, resource, sys, time
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")
import django
django.setup()
from django.core.management import call_command
start = time.perf_counter()
with open(os.devnull, "w") as out:
    call_command("budget_report", *sys.argv[1:], stdout=out)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def report_process(args: list[str]) -> tuple[float, float]:
    """Run budget_report in a fresh process; return (seconds, its peak RSS in MB)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "ERROR"},
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, rss_kb = done.stdout.split()
    return float(seconds), int(rss_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with bench_database("bench_videogen_report") as url:
        import psycopg

        start = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            for sql in LOAD_SQL:
                conn.execute(sql, {"jobs": args.jobs, "rows": args.rows})
            counts = conn.execute("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_costs)").fetchone()
        assert counts is not None
        print(f"budget_report vs hand-written SQL: {counts[0]} jobs, {counts[1]} ledger rows "
              f"(loaded in {time.perf_counter() - start:.1f}s), {args.rounds} rounds (median)")  # fmt: skip
        # A first run of each warms the caches.
        time_sql(url)
        time_report("csv")
        sql_times, report_times = [], {"csv": [], "json": [], "table": []}
        for _ in range(args.rounds):
            sql_times.append(time_sql(url)[0])
            for fmt, times in report_times.items():
                times.append(time_report(fmt)[0])
        sql = statistics.median(sql_times)
        print(f"hand-written SQL aggregate (fetch all rows)   {sql:6.2f}s")
        for fmt, times in report_times.items():
            t = statistics.median(times)
            print(f"budget_report --format {fmt:5}                  {t:6.2f}s   ratio {t / sql:.3f}")
        worst = max(statistics.median(t) for t in report_times.values()) / sql
        full_time, full_rss = report_process(["--format", "csv"])
        _, small_rss = report_process(["--format", "csv", "--job", "00000000-0000-0000-0000-000000000000"])
        print(f"peak memory (max RSS) of `manage.py budget_report --format csv` over all data: {full_rss:.0f} MB "
              f"({full_time:.1f}s as a process); over no jobs (Django alone): {small_rss:.0f} MB")  # fmt: skip
        print(f"goal: within 1.5x of the SQL: {'met' if worst <= 1.5 else 'NOT met'} (worst {worst:.3f}); "
              f"under 200 MB: {'met' if full_rss < 200 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
