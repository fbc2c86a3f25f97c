"""The reconciliation read and its repair: jobs whose stored money disagrees with the ledger or the open holds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.errors import ValidationError
from common.models import Job
from common.selectors import job_ledger_total, jobs_cost_mismatches
from common.services import costs
from common.services.reconcile import job_costs_repair
from tests.services.costs_helpers import make_job

pytestmark = pytest.mark.django_db


def drifted_job() -> Job:
    job = make_job("5.00")
    costs.track_cost(job.id, "video_generation", "svd", Decimal("0.06"))
    costs.reserve(job.id, "video_generation", "svd", Decimal("0.30"))
    Job.objects.filter(id=job.id).update(total_cost=Decimal("1.00"), reserved_cost=Decimal("0"))
    return job


def test_only_the_jobs_that_disagree_are_found_with_exact_figures():
    good = make_job("5.00")
    costs.track_cost(good.id, "video_generation", "svd", Decimal("0.06"))
    bad = drifted_job()
    [found] = list(jobs_cost_mismatches())
    assert found.job_id == bad.id
    assert found.to_dict() == {
        "job_id": str(bad.id),
        "total_cost": "1.00",
        "ledger_total": "0.06",
        "difference": "0.94",
        "reserved_cost": "0.00",
        "open_holds": "0.30",
    }
    assert list(jobs_cost_mismatches(job_ids=[good.id])) == []
    assert [m.job_id for m in jobs_cost_mismatches(job_ids=[str(bad.id)])] == [bad.id]


def test_the_read_is_one_query_whatever_the_number_of_jobs():
    for _ in range(5):
        drifted_job()
    with CaptureQueriesContext(connection) as queries:
        assert len(list(jobs_cost_mismatches())) == 5
    # One statement over the jobs (on PostgreSQL it runs on a server-side cursor, read in chunks).
    assert len([q for q in queries.captured_queries if 'FROM "jobs"' in q["sql"]]) == 1


def test_repair_sets_both_totals_from_the_ledger_and_the_open_holds():
    job = drifted_job()
    repaired = job_costs_repair(job_id=job.id)
    assert repaired is not None
    assert (repaired.total_cost, repaired.ledger_total) == (Decimal("1.00"), Decimal("0.06"))
    job.refresh_from_db()
    assert (job.total_cost, job.reserved_cost) == (Decimal("0.06"), Decimal("0.30"))
    assert job_ledger_total(job_id=job.id) == Decimal("0.06")
    assert job_costs_repair(job_id=job.id) is None  # nothing left to repair
    assert list(jobs_cost_mismatches()) == []


def test_bad_job_ids_are_refused_by_name():
    with pytest.raises(ValidationError, match="job_ids must be a list"):
        jobs_cost_mismatches(job_ids="not-a-list")  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as caught:
        job_costs_repair(job_id="nope")
    assert caught.value.code == "INVALID_JOB_ID"
