"""``manage.py reconcile_costs``: lists jobs whose totals disagree with the ledger; ``--fix`` repairs them."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from common.models import Job
from common.services import costs
from tests.services.costs_helpers import make_job

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("reconcile_costs", *args, stdout=out, no_color=True)
    return out.getvalue()


@pytest.fixture
def jobs():
    good = make_job("5.00")
    for _ in range(3):
        costs.track_cost(good.id, "video_generation", "svd", Decimal("0.06"))
    drifted = make_job("5.00")
    costs.track_cost(drifted.id, "video_generation", "svd", Decimal("0.06"))
    costs.track_cost(drifted.id, "reference_generation", "sdxl", Decimal("0.0055"))
    held = make_job("5.00")
    costs.reserve(held.id, "video_generation", "svd", Decimal("0.30"))
    # Someone edited the totals behind the tracker's back.
    Job.objects.filter(id=drifted.id).update(total_cost=Decimal("1.00"))
    Job.objects.filter(id=held.id).update(reserved_cost=Decimal("0"))
    return {"good": good, "drifted": drifted, "held": held}


def test_all_consistent_exits_zero():
    job = make_job()
    costs.track_cost(job.id, "s", "svd", Decimal("0.06"))
    assert "all jobs match the ledger" in run()
    assert json.loads(run("--format", "json")) == {"mismatches": [], "fixed": None}


def test_mismatches_listed_with_exit_status_one(jobs):
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("reconcile_costs", stdout=out)
    assert info.value.returncode == 1
    assert "2 job(s) do not match the ledger" in str(info.value)
    text = out.getvalue()
    assert f"{jobs['drifted'].id}  total_cost 1.00  ledger 0.0655  difference 0.9345" in text
    assert f"{jobs['held'].id}" in text
    assert str(jobs["good"].id) not in text


def test_json_lists_exact_figures(jobs):
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("reconcile_costs", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    by_job = {m["job_id"]: m for m in data["mismatches"]}
    assert by_job[str(jobs["drifted"].id)] == {
        "job_id": str(jobs["drifted"].id),
        "total_cost": "1.00",
        "ledger_total": "0.0655",
        "difference": "0.9345",
        "reserved_cost": "0.00",
        "open_holds": "0.00",
    }
    assert by_job[str(jobs["held"].id)]["open_holds"] == "0.30"


def test_fix_repairs_from_ledger_and_logs(jobs, caplog):
    with caplog.at_level(logging.WARNING, logger="common.costs"):
        text = run("--fix")
    assert "2 mismatch(es) repaired" in text
    drifted = Job.objects.get(id=jobs["drifted"].id)
    assert drifted.total_cost == Decimal("0.0655")
    assert Job.objects.get(id=jobs["held"].id).reserved_cost == Decimal("0.30")
    events = [r for r in caplog.records if getattr(r, "event", None) == "cost_reconciled"]
    assert len(events) == 2
    assert "all jobs match the ledger" in run()
    # A negative drift (the job claims less than the ledger) is shown with its sign.
    Job.objects.filter(id=drifted.id).update(total_cost=Decimal("0"))
    data = json.loads(run("--format", "json", "--fix"))
    assert data["mismatches"][0]["difference"] == "-0.0655"
    assert data["fixed"] == [str(drifted.id)]


def test_job_filter(jobs):
    assert "all jobs match the ledger" in run("--job", str(jobs["good"].id))
    with pytest.raises(CommandError):
        run("--job", str(jobs["drifted"].id))
    with pytest.raises(CommandError, match="--job 'x' is not a valid UUID"):
        run("--job", "x")
