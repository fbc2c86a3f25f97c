"""``manage.py demo``: the simulated pipeline runs, one job hits its budget, the report is printed; repeatable."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from common.models import Job, JobCost, JobCostHold, JobStatus, StageStatus
from common.services import costs

pytestmark = pytest.mark.django_db(transaction=True)


def run_demo() -> str:
    out = io.StringIO()
    call_command("demo", "--delay", "0", "--clips", "20", "--workers", "4", stdout=out, no_color=True)
    return out.getvalue()


def test_demo_runs_pipeline_and_one_job_hits_its_budget():
    text = run_demo()
    assert "FAILED BUDGET_EXCEEDED" in text
    assert "Budget report for this run" in text
    assert "By API" in text
    jobs = list(Job.objects.all())
    assert len(jobs) == 3
    failed = [j for j in jobs if j.status == JobStatus.FAILED]
    assert len(failed) == 1
    assert failed[0].error_code == "BUDGET_EXCEEDED"
    assert failed[0].total_cost <= failed[0].budget_limit
    assert failed[0].stages.get(stage_name="video_generation").status == StageStatus.FAILED
    completed = [j for j in jobs if j.status == JobStatus.COMPLETED]
    assert len(completed) == 2
    for job in jobs:
        ledger = costs.money_from_sum(JobCost.objects.filter(job=job).aggregate(s=costs.money_sum())["s"])
        assert ledger == job.total_cost
        assert job.reserved_cost == 0
    for job in completed:
        assert list(job.stages.order_by("started_at").values_list("stage_name", flat=True)) == [
            "audio_analysis",
            "scene_planning",
            "reference_generation",
            "prompt_generation",
            "video_generation",
            "composition",
        ]
        assert all(s.status == StageStatus.COMPLETED for s in job.stages.all())
    # The reservation job released the hold of its failing clip and settled the others.
    assert JobCostHold.objects.filter(status="released").count() == 1


def test_demo_is_repeatable():
    run_demo()
    second = run_demo()
    assert "FAILED BUDGET_EXCEEDED" in second
    assert Job.objects.count() == 6
    # Each run's report shows only its own three jobs.
    assert "3 job(s)" in second
