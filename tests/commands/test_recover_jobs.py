"""``manage.py recover_jobs``: lists stale jobs, sweeps holds, ``--requeue`` / ``--fail``, ``--dry-run``, ``--json``."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from common.models import HoldStatus, Job, JobCostHold, JobStage
from common.services import costs
from common.services.jobs import stage_start
from tests.services.lease_helpers import new_job, silence, untouched_for

pytestmark = pytest.mark.django_db

STAGE = "video_generation"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("recover_jobs", *args, stdout=out, no_color=True)
    return out.getvalue()


@pytest.fixture
def world():
    """A job whose worker died holding a hold, a live job with an expired hold, a queued job nobody started."""
    dead = new_job()
    stage_start(job_id=dead.id, stage_name=STAGE, owner="host-a:11")
    dead_hold = costs.reserve(dead.id, STAGE, "svd", Decimal("0.60"))
    silence(dead.id)
    alive = new_job()
    stage_start(job_id=alive.id, stage_name=STAGE, owner="host-b:12")
    old_hold = costs.reserve(alive.id, STAGE, "svd", Decimal("0.40"))
    JobCostHold.objects.filter(id=old_hold.id).update(created_at=timezone.now() - timedelta(hours=1))
    queued = new_job()
    untouched_for(queued.id, 4000)
    return {"dead": dead, "alive": alive, "queued": queued, "dead_hold": dead_hold, "old_hold": old_hold}


def test_lists_stale_jobs_and_sweeps_expired_holds(world):
    text = run()
    assert "holds: expired 1" in text
    assert str(world["dead"].id) in text
    assert "lease_expired" in text
    assert "host-a:11" in text
    assert str(world["queued"].id) in text
    assert "queued_stale" in text
    assert str(world["alive"].id) not in text
    assert "2 stale job(s); --requeue or --fail to recover them" in text
    assert JobCostHold.objects.get(id=world["old_hold"].id).status == HoldStatus.EXPIRED
    assert Job.objects.get(id=world["dead"].id).status == "processing"  # listing changes no job


def test_json_requeue(world):
    data = json.loads(run("--requeue", "--json"))
    assert data["action"] == "requeue"
    assert data["dry_run"] is False
    assert data["holds_expired"] == 1
    assert sorted(data["done"]) == sorted([str(world["dead"].id), str(world["queued"].id)])
    assert {s["kind"] for s in data["stale"]} == {"lease_expired", "queued_stale"}
    assert JobStage.objects.get(job_id=world["dead"].id).status == "pending"
    dead = Job.objects.get(id=world["dead"].id)
    assert (dead.status, dead.reserved_cost) == ("queued", Decimal(0))
    assert JobCostHold.objects.get(id=world["dead_hold"].id).status == HoldStatus.RELEASED
    assert json.loads(run("--json"))["stale"] == []


def test_fail(world):
    text = run("--fail")
    assert "2 job(s) failed, 0 skipped" in text
    for key in ("dead", "queued"):
        job = Job.objects.get(id=world[key].id)
        assert (job.status, job.error_code) == ("failed", "WORKER_LOST")
    assert Job.objects.get(id=world["alive"].id).status == "processing"
    assert Job.objects.get(id=world["dead"].id).reserved_cost == Decimal(0)


def test_dry_run_changes_nothing(world):
    before = {j.id: (j.status, j.reserved_cost, j.updated_at) for j in Job.objects.all()}
    text = run("--requeue", "--dry-run")
    assert "holds: would expire 1" in text
    assert "2 stale job(s) would be requeued (dry run: nothing changed)" in text
    data = json.loads(run("--fail", "--dry-run", "--json"))
    assert data["done"] == []
    assert data["dry_run"] is True
    assert {j.id: (j.status, j.reserved_cost, j.updated_at) for j in Job.objects.all()} == before
    assert JobCostHold.objects.filter(status=HoldStatus.ACTIVE).count() == 2


def test_one_job(world):
    data = json.loads(run("--requeue", "--json", "--job", str(world["queued"].id)))
    assert data["done"] == [str(world["queued"].id)]
    assert Job.objects.get(id=world["dead"].id).status == "processing"


def test_nothing_stale():
    assert "no stale jobs" in run()


def test_bad_arguments():
    with pytest.raises(CommandError, match="not a valid UUID"):
        run("--job", "nope")
    with pytest.raises(CommandError):
        run("--requeue", "--fail")
