"""``manage.py demo``: the simulated pipeline runs, one job hits its budget, the report is printed; repeatable."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command

from common.models import Job, JobCost, JobCostHold, JobStage, JobStatus, StageStatus
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


def test_demo_reads_well_a_summary_last_and_realistic_data(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 15 item 6: warnings only by default, the summary last, progress and durations as a run leaves them."""
    caplog.set_level(logging.DEBUG)
    text = run_demo()
    assert [r.levelname for r in caplog.records if r.name.startswith("common")] == ["WARNING", "WARNING"]
    tail = text[text.index("\nSummary\n") :]
    assert "Budget report" not in tail  # the summary comes after the report
    assert "FAILED BUDGET_EXCEEDED at video_generation" in tail
    assert "/admin/spend/" in tail
    assert text.rstrip().endswith("`-v 2` shows the JSON logs.")
    failed = Job.objects.get(status=JobStatus.FAILED)
    # The failed job shows the progress it reached: four stages done and some clips (of six stages).
    assert 66 <= failed.progress < 83
    assert f"{failed.progress}% done" in tail
    assert failed.current_stage == "video_generation"
    for stage in JobStage.objects.all():
        assert stage.duration_seconds is not None
        assert stage.duration_seconds >= 1, (stage.stage_name, stage.duration_seconds)


def test_demo_shows_every_log_line_at_verbosity_2(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call_command("demo", "--delay", "0", "--clips", "4", "--stage-seconds", "0", "-v", "2", stdout=io.StringIO())
    levels = {r.levelname for r in caplog.records if r.name.startswith("common")}
    assert "INFO" in levels  # "job created", "stage started" ... (4 clips: no budget is hit)
    assert logging.getLogger("common").level == logging.NOTSET  # restored after the run
