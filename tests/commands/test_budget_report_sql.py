"""budget_report on PostgreSQL: the server-formatted per-job section writes the same bytes as the Python path.

The Python path (SQLite's, and PostgreSQL's with ``SERVER_FORMATTING = False``) is the reference: it
formats with :mod:`common.money` and decides states with :mod:`common.budget`. Every format is compared
byte for byte on amounts chosen to catch rounding (half-even ties of the share and of the percentage,
zero and huge budgets, six-place amounts, open, expired and released holds, a job stopped by its budget).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from common.budget import near_share
from common.errors import BudgetExceededError
from common.management.commands import _budget_report_sql as server
from common.management.commands import budget_report
from common.models import Job, JobCostHold, JobStatus
from common.services.charges import charge_record
from common.services.holds import hold_release, hold_reserve
from common.services.jobs import job_fail
from tests.services.costs_helpers import make_job

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the server path is PostgreSQL's"),
]

D = Decimal


def charge(job: Job, amount: str) -> None:
    charge_record(job_id=job.id, stage="video_generation", api_name="svd", cost=D(amount))


@pytest.fixture
def tricky():
    """Jobs whose figures exercise every formatting and rounding rule."""
    user = uuid.uuid4()
    jobs = {}
    for name, budget, spent in [
        ("share_tie_even", "1.00", "0.12345"),  # 0.12345 -> 0.1234 (half-even), not 0.1235
        ("share_tie_odd", "1.00", "0.12335"),  # -> 0.1234
        ("percent_tie", "1.00", "0.1225"),  # 12.25 % -> 12.2 %
        ("percent_tie_up", "1.00", "0.1235"),  # 12.35 % -> 12.4 %
        ("third", "3.00", "1.00"),  # 0.3333
        ("zero_budget", "0", "0.50"),  # no share: '-' / empty / null
        ("nothing", "20.00", "0"),
        ("six_places", "7.000001", "6.999999"),
        ("huge", "99999999.999999", "12345678.123456"),
        ("tiny_budget", "0.000001", "99999.5"),  # a share with many digits: wider than the column
        ("extreme", "0.000001", "99999999.999999"),  # the largest share there can be (64-bit arithmetic)
        ("near_exactly", "10.00", "8.00"),
    ]:
        job = make_job(budget, user_id=user)
        if D(spent):
            charge(job, spent)
        jobs[name] = job
    hold_reserve(job_id=jobs["nothing"].id, stage="video_generation", api_name="svd", estimate=D("0.063"))
    gone = hold_reserve(job_id=jobs["nothing"].id, stage="video_generation", api_name="svd", estimate=D("1.5"))
    hold_release(hold=gone)
    old = hold_reserve(job_id=jobs["third"].id, stage="video_generation", api_name="svd", estimate=D("0.25"))
    JobCostHold.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=2))
    stopped = make_job("1.00", status=JobStatus.PROCESSING)
    charge(stopped, "0.30")
    with pytest.raises(BudgetExceededError):
        charge_record(job_id=stopped.id, stage="video_generation", api_name="svd", cost=D("0.90"), enforce=True)
    job_fail(job_id=stopped.id, error=BudgetExceededError("over", job_id=stopped.id))
    jobs["stopped"] = stopped
    return jobs


def report(monkeypatch, server_side: bool, *args: str, color: bool = False) -> str:
    monkeypatch.setattr(budget_report, "SERVER_FORMATTING", server_side)
    out = io.StringIO()
    call_command("budget_report", *args, stdout=out, no_color=not color, force_color=color)
    text = out.getvalue()
    return re.sub(r'"generated_at": "[^"]*"', '"generated_at": "-"', text)


@pytest.mark.parametrize(
    "args",
    [
        ("--format", "csv"),
        ("--format", "json"),
        ("--format", "table"),
        ("--format", "csv", "--near-budget", "0.3"),
        ("--format", "json", "--status", "processing"),
        ("--format", "table", "--over-budget"),
        ("--format", "json", "--section", "jobs"),
    ],
)
def test_server_and_python_paths_write_the_same_bytes(tricky, monkeypatch, args):
    python = report(monkeypatch, False, *args)
    served = report(monkeypatch, True, *args)
    assert served == python
    assert str(tricky["stopped"].id) in served or "--status" in args


def test_the_same_bytes_in_colour(tricky, monkeypatch):
    python = report(monkeypatch, False, "--section", "jobs", color=True)
    assert "\x1b[" in python
    assert report(monkeypatch, True, "--section", "jobs", color=True) == python


def test_the_rounding_cases_come_out_as_the_money_rules_say(tricky, monkeypatch):
    jobs = {j["job_id"]: j for j in json.loads(report(monkeypatch, True, "--format", "json"))["jobs"]}

    def of(name: str) -> dict:
        return jobs[str(tricky[name].id)]

    assert of("share_tie_even")["share_used"] == "0.1234"
    assert of("share_tie_odd")["share_used"] == "0.1234"
    assert of("zero_budget")["share_used"] is None
    assert of("nothing")["reserved"] == "0.063"
    assert of("third")["reserved"] == "0.00"  # its hold expired
    assert of("huge")["budget"] == "99999999.999999"
    assert of("six_places")["spent"] == "6.999999"
    assert of("stopped")["budget_status"] == "over"
    assert of("near_exactly")["budget_status"] == "near"
    table = report(monkeypatch, True, "--section", "jobs")
    assert re.search(rf"{tricky['percent_tie'].id} .* 12\.2%  ok\n", table)
    assert re.search(rf"{tricky['percent_tie_up'].id} .* 12\.4%  ok\n", table)


def test_one_job_reads_only_that_jobs_rows(tricky):
    """``--job X``: the job id reaches the holds and ledger aggregates (no scan of other jobs' rows)."""
    job = tricky["third"]
    jobs = Job.objects.filter(id__in=[job.id])
    styles = {"over": "over", "near": "near"}
    sql, params = server.statement(jobs, fmt="csv", near=near_share(), now=timezone.now(), styles=styles)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    scans = []

    def walk(node: dict) -> None:
        if "Relation Name" in node:
            scans.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    relations = {n["Relation Name"] for n in scans}
    assert relations == {"jobs", "job_costs", "job_cost_holds"}
    for node in scans:
        conditions = " ".join(str(node.get(k, "")) for k in ("Index Cond", "Filter", "Recheck Cond"))
        assert str(job.id) in conditions, (node["Relation Name"], conditions)
