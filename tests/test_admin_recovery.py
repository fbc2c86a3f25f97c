"""The admin's recovery actions: requeue or fail the selected stale jobs through the recovery services."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from common.models import Job, JobCostHold, JobStage
from common.services import costs
from common.services.jobs import stage_start
from tests.services.lease_helpers import new_job, silence

pytestmark = pytest.mark.django_db

JOBS_URL = reverse("admin:common_job_changelist")
STAGE = "video_generation"


@pytest.fixture
def staff() -> Client:
    user = User.objects.create_user("operator", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_job", "change_job", "view_jobstage"]))
    client = Client()
    client.force_login(user)
    return client


def running(owner: str) -> Job:
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner=owner)
    costs.reserve(job.id, STAGE, "svd", Decimal("0.50"))
    return job


def act(client: Client, action: str, jobs: list[Job]) -> list[str]:
    response = client.post(
        JOBS_URL, {"action": action, "_selected_action": [str(j.pk) for j in jobs], "index": 0}, follow=True
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_requeue_action_requeues_the_stale_and_skips_the_live(staff):
    dead, alive = running("dead-host:1"), running("live-host:2")
    silence(dead.id)
    assert act(staff, "requeue_stale_jobs", [dead, alive]) == [
        "Requeued 1 stale job(s); skipped 1 that are not stale (finished, or their worker is alive)."
    ]
    assert Job.objects.get(id=dead.id).status == "queued"
    assert JobStage.objects.get(job_id=dead.id).status == "pending"
    assert Job.objects.get(id=dead.id).reserved_cost == Decimal(0)
    assert Job.objects.get(id=alive.id).status == "processing"
    assert JobCostHold.objects.filter(job_id=alive.id, status="active").count() == 1


def test_fail_action_fails_with_worker_lost(staff):
    dead = running("dead-host:1")
    silence(dead.id)
    assert act(staff, "fail_stale_jobs", [dead]) == [
        "Failed 1 stale job(s); skipped 0 that are not stale (finished, or their worker is alive)."
    ]
    job = Job.objects.get(id=dead.id)
    assert (job.status, job.error_code, job.reserved_cost) == ("failed", "WORKER_LOST", Decimal(0))


def test_nothing_stale_warns(staff):
    alive = running("live-host:2")
    assert act(staff, "fail_stale_jobs", [alive]) == [
        "Failed 0 stale job(s); skipped 1 that are not stale (finished, or their worker is alive)."
    ]
    assert Job.objects.get(id=alive.id).status == "processing"


def test_view_only_staff_cannot_run_the_actions():
    user = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_job"]))
    client = Client()
    client.force_login(user)
    dead = running("dead-host:1")
    silence(dead.id)
    client.post(JOBS_URL, {"action": "requeue_stale_jobs", "_selected_action": [str(dead.pk)], "index": 0})
    assert Job.objects.get(id=dead.id).status == "processing"


def test_the_detail_page_shows_the_stage_lease(staff):
    job = running("worker-host:77")
    page = staff.get(reverse("admin:common_job_change", args=[job.pk])).content.decode()
    assert "worker-host:77" in page
