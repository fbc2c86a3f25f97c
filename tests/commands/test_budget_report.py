"""``manage.py budget_report``: every format, filter and exit status, through call_command."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from common.errors import BudgetExceededError
from common.management.commands import budget_report
from common.models import Job, JobCost, JobCostHold, JobStatus
from common.services import costs
from common.services.jobs import job_fail
from tests.services.costs_helpers import make_job

pytestmark = pytest.mark.django_db


def run(*args: str, **options) -> str:
    out = io.StringIO()
    call_command("budget_report", *args, stdout=out, no_color=True, **options)
    return out.getvalue()


def as_json(*args: str) -> dict:
    return json.loads(run("--format", "json", *args))


@pytest.fixture
def ledger():
    """Three jobs: one over budget, one near (90 %), one fresh with a hold; a fourth created last week."""
    user = uuid.uuid4()
    over = make_job("1.00", user_id=user, status=JobStatus.FAILED)
    for _ in range(5):
        costs.track_cost(over.id, "video_generation", "svd", Decimal("0.25"))
    near = make_job("1.00", user_id=user, status=JobStatus.PROCESSING)
    costs.track_cost(near.id, "reference_generation", "sdxl", Decimal("0.0055"))
    costs.track_cost(near.id, "video_generation", "svd", Decimal("0.8945"))
    fresh = make_job("20.00")
    costs.reserve(fresh.id, "video_generation", "animatediff", Decimal("0.20"))
    old = make_job("20.00", status=JobStatus.COMPLETED)
    costs.track_cost(old.id, "audio_analysis", "whisper", Decimal("0.018"))
    week_ago = timezone.now() - timedelta(days=7)
    Job.objects.filter(id=old.id).update(created_at=week_ago)
    # The ledger is append-only through the ORM; move the old row back in time with SQL.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE job_costs SET timestamp = %s WHERE job_id = %s", [week_ago, old.id.hex])
    assert JobCost.objects.get(job_id=old.id).timestamp == week_ago
    return {"over": over, "near": near, "fresh": fresh, "old": old, "user": user}


def test_json_has_every_section_with_exact_strings(ledger):
    data = as_json()
    jobs = {j["job_id"]: j for j in data["jobs"]}
    assert len(jobs) == 4
    over = jobs[str(ledger["over"].id)]
    assert over == {
        **over,
        "spent": "1.25",
        "reserved": "0.00",
        "budget": "1.00",
        "share_used": "1.2500",
        "budget_status": "over",
        "status": "failed",
    }
    assert jobs[str(ledger["near"].id)]["budget_status"] == "near"
    assert jobs[str(ledger["near"].id)]["spent"] == "0.90"
    assert jobs[str(ledger["fresh"].id)]["reserved"] == "0.20"
    assert data["summary"] == {
        "jobs": 4,
        "spent": "2.168",
        "reserved": "0.20",
        "budget": "42.00",
        "over_budget": 1,
        "near_budget": 1,
    }
    assert {r["stage"]: r["total"] for r in data["by_stage"]} == {
        "audio_analysis": "0.018",
        "reference_generation": "0.0055",
        "video_generation": "2.1445",
    }
    assert {r["api"]: (r["charges"], r["total"]) for r in data["by_api"]} == {
        "sdxl": (1, "0.0055"),
        "svd": (6, "2.1445"),
        "whisper": (1, "0.018"),
    }
    assert len(data["by_day"]) == 2
    assert sum(r["charges"] for r in data["by_day"]) == 8


def test_table_format(ledger):
    text = run()
    assert "Jobs" in text
    assert "By stage" in text
    assert "By API" in text
    assert "By day" in text
    assert str(ledger["over"].id) in text
    assert "125.0%" in text
    # Amounts in the table have all six places, so that they line up (issue 15.5).
    assert "4 job(s): spent 2.168000, reserved 0.200000, 1 over budget, 1 near budget (>= 80.0%)" in text
    assert "video_generation                  6         2.144500" in text


def test_csv_format_is_one_table(ledger):
    rows = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    sections = {r["section"] for r in rows}
    assert sections == {"job", "stage", "api", "user", "day"}
    job = next(r for r in rows if r["key"] == str(ledger["near"].id))
    assert job["spent"] == "0.90"
    assert job["budget_status"] == "near"
    svd = next(r for r in rows if r["section"] == "api" and r["key"] == "svd")
    assert (svd["charges"], svd["spent"]) == ("6", "2.1445")


def test_sections_option(ledger):
    rows = list(csv.DictReader(io.StringIO(run("--format", "csv", "--section", "api"))))
    assert {r["section"] for r in rows} == {"api"}
    data = as_json("--section", "jobs")
    assert "by_stage" not in data
    assert len(data["jobs"]) == 4


def test_filters_job_user_status(ledger):
    assert [j["job_id"] for j in as_json("--job", str(ledger["near"].id))["jobs"]] == [str(ledger["near"].id)]
    data = as_json("--job", str(ledger["near"].id), "--job", str(ledger["over"].id))
    assert len(data["jobs"]) == 2
    assert {r["api"] for r in data["by_api"]} == {"svd", "sdxl"}
    assert len(as_json("--user", str(ledger["user"]))["jobs"]) == 2
    by_status = as_json("--status", "failed", "--status", "completed")
    assert {j["status"] for j in by_status["jobs"]} == {"failed", "completed"}
    assert {r["stage"] for r in by_status["by_stage"]} == {"video_generation", "audio_analysis"}


def test_filters_over_and_near_budget(ledger):
    over = as_json("--over-budget")
    assert [j["job_id"] for j in over["jobs"]] == [str(ledger["over"].id)]
    assert over["by_api"] == [{"api": "svd", "charges": 5, "total": "1.25"}]
    near = as_json("--near-budget", "0.9")
    assert {j["job_id"] for j in near["jobs"]} == {str(ledger["over"].id), str(ledger["near"].id)}
    assert as_json("--near-budget", "0.95")["summary"]["jobs"] == 1
    # The share also marks which jobs count as "near".
    assert as_json("--near-budget", "0.5")["near_budget_share"] == "0.5"


def test_since_until_window(ledger):
    today = timezone.now().date()
    data = as_json("--since", today.isoformat())
    assert len(data["jobs"]) == 3
    assert len(data["by_day"]) == 1
    earlier = as_json("--until", today.isoformat())
    assert [j["job_id"] for j in earlier["jobs"]] == [str(ledger["old"].id)]
    assert earlier["by_api"] == [{"api": "whisper", "charges": 1, "total": "0.018"}]
    assert as_json("--since", (timezone.now() + timedelta(days=1)).isoformat())["summary"]["jobs"] == 0


def test_fail_on_over_budget_exit_status(ledger):
    with pytest.raises(CommandError) as info:
        run("--fail-on-over-budget")
    assert info.value.returncode == 1
    assert "1 job(s) over budget" in str(info.value)
    # Nothing over among the filtered jobs: exit 0.
    run("--fail-on-over-budget", "--job", str(ledger["near"].id))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since 'yesterday' is not a date"),
        (("--until", "2026-13-01"), "--until '2026-13-01' is not a date"),
        (("--job", "42"), "--job '42' is not a valid UUID"),
        (("--user", "bob"), "--user 'bob' is not a valid UUID"),
        (("--near-budget", "lots"), "--near-budget 'lots' is not a number"),
        (("--near-budget", "-1"), "must be a share between 0 and 10"),
        (("--since", "2026-02-01", "--until", "2026-01-01"), "--since must be before --until"),
    ],
)
def test_bad_options_are_named(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run(*args)


def test_empty_database_reports_zero():
    data = as_json()
    assert data["jobs"] == []
    assert data["summary"]["spent"] == "0.00"
    assert "0 job(s)" in run()
    assert run("--format", "csv").strip() == ",".join(
        ["section", "key", "user_id", "status", "charges", "spent", "reserved", "budget", "share_used", "budget_status"]
    )


def test_expired_holds_do_not_count_as_reserved():
    job = make_job("1.00")
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.50"))
    JobCostHold.objects.filter(id=hold.id).update(created_at=timezone.now() - timedelta(days=1))
    assert as_json()["jobs"][0]["reserved"] == "0.00"


# --------------------------------------------------------------------------- issue 15.5: the table and options


def test_table_headers_name_each_column_once(ledger):
    header = run("--section", "jobs").splitlines()[1].split()
    assert header == ["job_id", "status", "spent", "reserved", "budget", "used", "state"]
    assert len(header) == len(set(header))


def test_table_amounts_have_six_places_everywhere(ledger):
    text = run()
    amounts = re.findall(r"(?<![\w.-])\d+\.\d+(?![\w%])", text)
    assert amounts  # the check below is not vacuous
    assert {len(a.split(".")[1]) for a in amounts} == {6}
    # Right-aligned with six places, the decimal points line up in each column.
    job_lines = [line for line in text.splitlines() if str(ledger["near"].id) in line or str(ledger["over"].id) in line]
    assert len({line.index(".") for line in job_lines}) == 1


def test_a_job_stopped_by_its_budget_is_over():
    job = make_job("1.00", status=JobStatus.PROCESSING)
    costs.track_cost(job.id, "video_generation", "svd", Decimal("0.85"))
    with pytest.raises(BudgetExceededError):
        costs.track_cost(job.id, "video_generation", "svd", Decimal("0.20"), enforce=True)
    job_fail(job_id=job.id, error=BudgetExceededError("the budget", job_id=job.id))
    assert as_json()["jobs"][0]["budget_status"] == "over"
    assert as_json()["summary"]["over_budget"] == 1
    assert next(csv.DictReader(io.StringIO(run("--format", "csv"))))["budget_status"] == "over"
    assert re.search(r"85\.0%  over\n", run())
    assert len(as_json("--over-budget")["jobs"]) == 1
    with pytest.raises(CommandError):
        run("--fail-on-over-budget")


def test_no_blank_line_leads_when_the_jobs_section_is_left_out(ledger):
    text = run("--section", "api")
    assert text.startswith("By API\n")
    both = run("--section", "api", "--section", "day")
    assert both.startswith("By API\n")
    assert "\n\nBy day\n" in both  # sections are still separated


def test_csv_job_rows_count_their_charges(ledger):
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(run("--format", "csv"))) if r["section"] == "job"}
    assert rows[str(ledger["over"].id)]["charges"] == "5"
    assert rows[str(ledger["near"].id)]["charges"] == "2"
    assert rows[str(ledger["fresh"].id)]["charges"] == "0"  # a hold is not a charge
    assert sum(int(r["charges"]) for r in rows.values()) == JobCost.objects.count()


@pytest.mark.parametrize("args", [("--section", "api", "stage"), ("--section", "api", "--section", "stage")])
def test_section_takes_both_forms(ledger, args):
    data = as_json(*args)
    assert "by_api" in data
    assert "by_stage" in data
    assert "jobs" not in data
    assert "by_day" not in data


def test_the_readme_synopsis_runs(ledger):
    """Every option of the README's synopsis line for budget_report is accepted as written there."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    synopsis = readme[readme.index("manage.py budget_report [") :].split("\nmanage.py reconcile_costs")[0]
    sections = re.search(r"\[--section ([a-z|]+) \.\.\.\]", synopsis)
    assert sections is not None
    names = sections.group(1).split("|")
    assert names == list(budget_report.SECTIONS)
    data = as_json("--section", *names)
    assert {"jobs", "by_stage", "by_api", "by_user", "by_day"} <= set(data)


def test_by_user_groups_the_ledger_by_the_jobs_user(ledger):
    by_user = {r["user"]: (r["charges"], r["total"]) for r in as_json()["by_user"]}
    assert by_user[str(ledger["user"])] == (7, "2.15")
    assert sum(c for c, _ in by_user.values()) == JobCost.objects.count()
