"""budget_report against `psql COPY` of the same aggregate, same run; peak memory at two sizes of jobs and holds.

Builds the data with generate_series SQL in two steps: a small size (--jobs/10 jobs, --rows/10 ledger
rows, one open hold per ten jobs), where peak memory and `--job X` are measured, then the full size
(default 1,000,000 jobs, 5,000,000 ledger rows, 100,000 open holds), where everything is measured.

Timed in interleaved rounds (median and spread, min-max, of --rounds >= 5): for each format, the
report (in this process, written to /dev/null) and `psql -c "COPY (...) TO STDOUT"` of the same
aggregate (the per-job rows with their open holds, and for CSV their ledger counts, ordered as the
report; the report's totals for the table and JSON; the grouped sections), unformatted; the ratio is
taken round by round. Also timed: the CSV through the Python formatting path (SQLite's, run on
PostgreSQL with SERVER_FORMATTING = False), the measure behind keeping the server-side formatting
(issue 13 item 9: kept only at >= 1.3x).

Peak memory (max RSS) is of `manage.py budget_report` run as its own process, at both sizes,
next to a run over no job (Django's own footprint).

Usage: .venv/bin/python bench/report.py [--jobs 1000000] [--rows 5000000] [--rounds 5]
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; the database
(VIDEOGEN_BENCH_DB_NAME or bench_videogen_report) is created, marked and dropped by this script.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._setup import ROOT, bench_database

FORMATS = ("csv", "table", "json")

# Jobs j0..j1: ids derived from their number, budgets 20 / 5 / 1.5 so some end near or over,
# created over the last 30 days; ledger rows r0..r1 spread over those jobs; a hold on one job in ten.
LOAD_SQL = [
    """
    INSERT INTO jobs (id, user_id, status, audio_url, user_prompt, progress, total_cost, budget_limit,
                      reserved_cost, created_at, updated_at)
    SELECT md5('job' || i)::uuid, md5((i %% 1000)::text)::uuid,
           (ARRAY['queued','processing','completed','failed','cancelled'])[1 + i %% 5],
           'bench.mp3', 'bench', 0, 0, (ARRAY[20, 5, 1.5])[1 + i %% 3]::numeric, 0,
           now() - (i %% 30) * interval '1 day' - (i %% 86400) * interval '1 second', now()
    FROM generate_series(%(j0)s::bigint, %(j1)s::bigint) AS i
    """,
    """
    INSERT INTO job_costs (id, job_id, stage_name, api_name, cost, timestamp)
    SELECT gen_random_uuid(),
           md5('job' || (%(j0)s::bigint + (g::bigint * 7919) %% (%(j1)s::bigint - %(j0)s::bigint + 1)))::uuid,
           s.stage, s.api, s.cost, now() - (g %% 30) * interval '1 day'
    FROM generate_series(%(r0)s::bigint, %(r1)s::bigint) AS g
    JOIN (VALUES (0, 'audio_analysis', 'whisper', 0.021), (1, 'scene_planning', 'gpt-4o', 0.03),
                 (2, 'reference_generation', 'sdxl', 0.0055), (3, 'prompt_generation', 'gpt-4-turbo', 0.01),
                 (4, 'video_generation', 'svd', 0.06), (5, 'video_generation', 'zeroscope', 0.10),
                 (6, 'video_generation', 'animatediff', 0.20), (7, 'composition', 'musicgen', 0.15))
         AS s (k, stage, api, cost) ON s.k = g %% 8
    """,
    """
    UPDATE jobs SET total_cost = l.total
    FROM (SELECT job_id, sum(cost) AS total FROM job_costs
          WHERE job_id IN (SELECT md5('job' || i)::uuid FROM generate_series(%(j0)s::bigint, %(j1)s::bigint) AS i)
          GROUP BY job_id) AS l
    WHERE l.job_id = jobs.id
    """,
    """
    INSERT INTO job_cost_holds (id, job_id, stage_name, api_name, amount, status, created_at)
    SELECT gen_random_uuid(), md5('job' || i)::uuid, 'video_generation', 'svd', 0.06, 'active', now()
    FROM generate_series(%(j0)s::bigint, %(j1)s::bigint) AS i WHERE i %% 10 = 0
    """,
    """
    UPDATE jobs SET reserved_cost = 0.06
    WHERE id IN (SELECT md5('job' || i)::uuid FROM generate_series(%(j0)s::bigint, %(j1)s::bigint) AS i
                 WHERE i %% 10 = 0)
    """,
    "VACUUM ANALYZE",
]

# The same aggregate as the report, unformatted: open holds as the selector defines them (active, younger
# than the TTL), the ledger counts for CSV, the totals for the table and JSON, and the grouped sections.
_HOLDS = (
    "SELECT job_id, sum(amount) AS total FROM job_cost_holds WHERE status = 'active'"
    " AND created_at > now() - interval '15 minutes' GROUP BY job_id"
)
_JOBS = (
    "SELECT j.id, j.user_id, j.status, j.total_cost, j.budget_limit, COALESCE(h.total, 0) AS held{charges}"
    f" FROM jobs j LEFT JOIN ({_HOLDS}) h ON h.job_id = j.id{{ledger}} ORDER BY j.created_at, j.id"
)
_TOTALS = (
    "SELECT count(*), sum(j.total_cost), sum(h.total), sum(j.budget_limit),"
    " count(*) FILTER (WHERE j.total_cost > j.budget_limit),"
    " count(*) FILTER (WHERE j.total_cost >= 0.8 * j.budget_limit AND j.total_cost <= j.budget_limit)"
    f" FROM jobs j LEFT JOIN ({_HOLDS}) h ON h.job_id = j.id"
)
_GROUPED = [
    "SELECT stage_name, count(*), sum(cost) FROM job_costs GROUP BY 1 ORDER BY 1",
    "SELECT api_name, count(*), sum(cost) FROM job_costs GROUP BY 1 ORDER BY 1",
    "SELECT j.user_id, count(*), sum(c.cost) FROM job_costs c JOIN jobs j ON j.id = c.job_id GROUP BY 1 ORDER BY 1",
    "SELECT (timestamp AT TIME ZONE 'UTC')::date, count(*), sum(cost) FROM job_costs GROUP BY 1 ORDER BY 1",
]
COPY_SQL = {
    "csv": [
        _JOBS.format(
            charges=", COALESCE(c.n, 0)",
            ledger=" LEFT JOIN (SELECT job_id, count(*) AS n FROM job_costs GROUP BY job_id) c ON c.job_id = j.id",
        ),
        *_GROUPED,
    ],
    "table": [_JOBS.format(charges="", ledger=""), _TOTALS, *_GROUPED],
    "json": [_JOBS.format(charges="", ledger=""), _TOTALS, *_GROUPED],
}


def psql_copy(url: str, fmt: str) -> float:
    """Seconds for `psql` to COPY the format's aggregate to /dev/null (one process, its start included)."""
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url]
    for sql in COPY_SQL[fmt]:
        command += ["-c", f"COPY ({sql}) TO STDOUT" + (" WITH (FORMAT csv)" if fmt == "csv" else "")]
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def report(*args: str, server: bool = True) -> float:
    """Seconds for budget_report in this process, written to /dev/null."""
    from django.core.management import call_command

    from common.management.commands import budget_report

    budget_report.SERVER_FORMATTING = server
    try:
        with open(os.devnull, "w") as out:
            start = time.perf_counter()
            call_command("budget_report", *args, stdout=out, no_color=True)
            return time.perf_counter() - start
    finally:
        budget_report.SERVER_FORMATTING = True


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


def report_process(*args: str) -> tuple[float, float]:
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


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):7.3f}  (min {min(values):.3f}, max {max(values):.3f})"


def load(url: str, first_job: int, last_job: int, first_row: int, last_row: int) -> tuple[int, int, int, float]:
    import psycopg

    start = time.perf_counter()
    span = {"j0": first_job, "j1": last_job, "r0": first_row, "r1": last_row}
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in LOAD_SQL:
            conn.execute(sql, span)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_costs),"
            " (SELECT count(*) FROM job_cost_holds WHERE status = 'active')"
        ).fetchone()
    assert counts is not None
    return counts[0], counts[1], counts[2], time.perf_counter() - start


def memory(label: str, one_job: str) -> dict[str, float]:
    peaks = {}
    for fmt in FORMATS:
        seconds, peaks[fmt] = report_process("--format", fmt)
        print(f"  {label}: peak RSS budget_report --format {fmt:5} {peaks[fmt]:6.1f} MB ({seconds:.1f}s as a process)")
    _, alone = report_process("--format", "csv", "--job", "00000000-0000-0000-0000-000000000000")
    print(f"  {label}: peak RSS over no job (Django alone)         {alone:6.1f} MB")
    times = [report("--format", "json", "--job", one_job) for _ in range(5)]
    print(f"  {label}: budget_report --job X (one job), seconds:   {spread(times)}")
    return peaks


def rounds(url: str, count: int, python_path: bool) -> None:
    """Interleaved rounds: each format's report next to its psql COPY, ratios taken round by round."""
    measured: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    steps: list[tuple[str, Callable[[], float]]] = []
    for fmt in FORMATS:
        steps.append((f"psql COPY, {fmt} aggregate", lambda fmt=fmt: psql_copy(url, fmt)))
        steps.append((f"budget_report --format {fmt}", lambda fmt=fmt: report("--format", fmt)))
    if python_path:
        steps.append(("budget_report --format csv, Python path", lambda: report("--format", "csv", server=False)))
    for name, step in steps:  # warm the caches
        if "Python" not in name:
            step()
    for _ in range(count):
        for name, step in steps:
            measured.setdefault(name, []).append(step())
        for fmt in FORMATS:
            ratios.setdefault(fmt, []).append(
                measured[f"budget_report --format {fmt}"][-1] / measured[f"psql COPY, {fmt} aggregate"][-1]
            )
        if python_path:
            ratios.setdefault("python", []).append(
                measured["budget_report --format csv, Python path"][-1] / measured["budget_report --format csv"][-1]
            )
    for name, values in measured.items():
        print(f"  {name:42} seconds {spread(values)}")
    for fmt in FORMATS:
        print(f"  ratio budget_report / psql COPY, {fmt:5}          {spread(ratios[fmt])}")
    worst = max(statistics.median(r) for k, r in ratios.items() if k != "python")
    print(f"  goal within 1.5x of psql COPY: {'met' if worst <= 1.5 else 'NOT met'} (worst median {worst:.3f})")
    if python_path:
        speedup = statistics.median(ratios["python"])
        print(f"  server-side formatting vs the Python path, csv: {spread(ratios['python'])} x faster")
        print(f"  keep the server-side formatting (>= 1.3x): {'yes' if speedup >= 1.3 else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-python-path", action="store_true", help="skip timing the Python formatting path")
    args = parser.parse_args()
    # A background run ignores SIGINT; on SIGTERM leave through the normal exit, so the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    small_jobs, small_rows = max(args.jobs // 10, 10), max(args.rows // 10, 10)
    with bench_database("bench_videogen_report") as url:
        one_job = "00000000-0000-0000-0000-000000000000"
        import psycopg

        jobs, rows, holds, seconds = load(url, 1, small_jobs, 1, small_rows)
        small_count = jobs
        with psycopg.connect(url) as conn:
            found = conn.execute("SELECT id::text FROM jobs ORDER BY created_at DESC LIMIT 1").fetchone()
            one_job = found[0] if found else one_job
        print(f"small: {jobs} jobs, {rows} ledger rows, {holds} open holds (loaded in {seconds:.0f}s)")
        small = memory("small", one_job)
        jobs, rows, holds, seconds = load(url, small_jobs + 1, args.jobs, small_rows + 1, args.rows)
        print(f"full: {jobs} jobs, {rows} ledger rows, {holds} open holds (loaded in {seconds:.0f}s)")
        full = memory("full ", one_job)
        growth = max(full[f] / small[f] for f in FORMATS)
        print(
            f"  memory: full / small peak RSS, worst format {growth:.2f}x"
            f" (for {jobs / small_count:.0f}x the jobs and holds)"
        )
        print(f"full size, {args.rounds} interleaved rounds:")
        rounds(url, args.rounds, not args.no_python_path)


if __name__ == "__main__":
    main()
