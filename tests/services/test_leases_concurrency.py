"""Races with real threads and processes: takeover vs a late heartbeat, two takeovers, recovery vs a heartbeat,
and the hold sweep vs settles and charges. Each asserts exactly one winner, or exact money."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from common.errors import BudgetExceededError, LeaseLostError, ValidationError
from common.models import HoldStatus, Job, JobCost, JobCostHold, JobStage
from common.services import costs
from common.services.jobs import stage_start
from common.services.leases import stage_heartbeat
from common.services.recovery import job_requeue
from tests.services.costs_helpers import run_threads
from tests.services.lease_helpers import new_job, silence

pytestmark = pytest.mark.django_db(transaction=True)

STAGE = "video_generation"
ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 25


def dead_stage(owner: str = "dead-worker") -> Job:
    """A job whose stage was started by ``owner`` and whose lease then ran out."""
    job = new_job()
    stage_start(job_id=job.id, stage_name=STAGE, owner=owner)
    silence(job.id)
    return job


def ledger_sum(job_id) -> Decimal:
    return costs.money_from_sum(JobCost.objects.filter(job_id=job_id).aggregate(s=costs.money_sum())["s"])


# --------------------------------------------------------------------------- threads
# The lifecycle races run on PostgreSQL (row locks); SQLite's in-memory test database locks whole tables.


@pytest.mark.postgres
def test_takeover_racing_a_late_heartbeat_has_exactly_one_winner():
    for _ in range(ROUNDS):
        job = dead_stage("worker-a")

        def race(i: int, job_id=job.id) -> str:
            try:
                if i == 0:
                    stage_heartbeat(job_id=job_id, stage_name=STAGE, owner="worker-a")
                    return "worker-a"
                stage_start(job_id=job_id, stage_name=STAGE, owner="worker-b")
                return "worker-b"
            except LeaseLostError:
                return "lost" if i == 0 else "unexpected"
            except ValidationError as exc:
                return "refused" if i == 1 and exc.details["reason"] == "lease_held" else "unexpected"

        beat, takeover = run_threads(2, race)
        assert (beat, takeover) in {("worker-a", "refused"), ("lost", "worker-b")}, (beat, takeover)
        winner = beat if beat == "worker-a" else takeover
        row = JobStage.objects.get(job_id=job.id, stage_name=STAGE)
        assert row.lease_owner == winner
        assert row.attempts == (1 if winner == "worker-a" else 2)


@pytest.mark.postgres
def test_eight_workers_taking_over_one_expired_stage_only_one_wins():
    for _ in range(5):
        job = dead_stage()

        def take(i: int, job_id=job.id) -> bool | str:
            try:
                stage_start(job_id=job_id, stage_name=STAGE, owner=f"worker-{i}")
            except ValidationError as exc:
                return exc.details["reason"]
            return True

        won = run_threads(8, take)
        assert won.count(True) == 1
        assert won.count("lease_held") == 7
        row = JobStage.objects.get(job_id=job.id, stage_name=STAGE)
        assert row.lease_owner == f"worker-{won.index(True)}"
        assert row.attempts == 2


@pytest.mark.postgres
def test_requeue_racing_a_late_heartbeat_has_exactly_one_winner():
    for _ in range(ROUNDS):
        job = dead_stage("worker-a")

        def race(i: int, job_id=job.id) -> str:
            if i == 0:
                try:
                    stage_heartbeat(job_id=job_id, stage_name=STAGE, owner="worker-a")
                except LeaseLostError:
                    return "lost"
                return "renewed"
            try:
                job_requeue(job_id=job_id)
            except ValidationError as exc:
                return "skipped" if exc.code == "JOB_NOT_STALE" else exc.code
            return "requeued"

        beat, requeue = run_threads(2, race)
        assert (beat, requeue) in {("renewed", "skipped"), ("lost", "requeued")}, (beat, requeue)
        row = JobStage.objects.get(job_id=job.id, stage_name=STAGE)
        status = Job.objects.get(id=job.id).status
        if requeue == "requeued":
            assert (row.status, status) == ("pending", "queued")
        else:
            assert (row.status, status, row.lease_owner) == ("processing", "processing", "worker-a")


def test_hold_sweep_racing_settles_releases_and_charges_keeps_money_exact():
    """TTL 0: every open hold is expirable at every moment, so sweeps race each settle, release and charge."""
    job = new_job("100.00")
    with override_settings(VIDEOGEN_COMMON={"RESERVATION_TTL_SECONDS": 0}):

        def work(i: int) -> Decimal:
            spent = Decimal(0)
            if i >= 6:  # two sweepers
                for _ in range(40):
                    costs.expire_holds()
                return spent
            for n in range(15):
                hold = costs.reserve(job.id, STAGE, "svd", Decimal("0.20"))
                if n % 4 == 0:
                    costs.release(hold)
                else:
                    actual = Decimal("0.15") if n % 2 else Decimal("0.25")
                    spent += costs.settle(hold, actual).cost
                with contextlib.suppress(BudgetExceededError):
                    spent += costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.01"), enforce=True).cost
            return spent

        spent = sum(run_threads(8, work), Decimal(0))
        costs.expire_holds()
    job.refresh_from_db()
    assert job.total_cost == spent == ledger_sum(job.id)
    assert job.reserved_cost == Decimal(0)
    holds = JobCostHold.objects.filter(job_id=job.id)
    assert not holds.filter(status=HoldStatus.ACTIVE).exists()
    settled = holds.filter(status=HoldStatus.SETTLED).count()
    assert settled == 6 * 11 == JobCost.objects.filter(job_id=job.id, idempotency_key__startswith="hold:").count()
    assert holds.count() == 6 * 15


# --------------------------------------------------------------------------- processes (PostgreSQL)

PROCESS_SCRIPT = """
import json, os, sys, time
from decimal import Decimal
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")
django.setup()
from django.conf import settings
settings.DATABASES["default"]["NAME"] = os.environ["LEASES_TEST_DB"]
from common.errors import BudgetExceededError, LeaseLostError, ValidationError
from common.services import costs
from common.services.jobs import stage_start
from common.services.leases import stage_heartbeat

role, owner, job_ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
time.sleep(max(0.0, float(sys.argv[4]) - time.time()))  # all processes start their loops together
out = {}
if role == "beat":
    for job_id in job_ids:
        try:
            stage_heartbeat(job_id=job_id, stage_name="video_generation", owner=owner)
            out[job_id] = "won"
        except LeaseLostError:
            out[job_id] = "lost"
elif role == "take":
    for job_id in reversed(job_ids):  # the heartbeats go forward: the two meet (and race) in the middle
        try:
            stage_start(job_id=job_id, stage_name="video_generation", owner=owner)
            out[job_id] = "won"
        except ValidationError as exc:
            assert exc.details["reason"] == "lease_held", exc
            out[job_id] = "lost"
elif role == "sweep":
    out["expired"] = sum(costs.expire_holds() for _ in range(int(owner)))
elif role == "spend":
    job_id = job_ids[0]
    ttl = 15 * 60
    spent = Decimal(0)
    from datetime import timedelta
    from django.utils import timezone
    from common.models import JobCostHold
    for n in range(30):
        hold = costs.reserve(job_id, "video_generation", "svd", Decimal("0.20"))
        # Make the hold old enough to expire: the sweepers race the settle below.
        JobCostHold.objects.filter(id=hold.id).update(created_at=timezone.now() - timedelta(seconds=ttl + 1))
        if n % 5 == 0:
            costs.release(hold)
        else:
            spent += costs.settle(hold, Decimal("0.15") if n % 2 else Decimal("0.25")).cost
        try:
            spent += costs.track_cost(job_id, "composition", "gpt-4-turbo", Decimal("0.01"), enforce=True).cost
        except BudgetExceededError:
            pass
    out["spent"] = str(spent)
print(json.dumps(out))
"""


def start(role: str, owner: str, job_ids: list[str], at: float) -> subprocess.Popen[str]:
    """Start a process that runs ``role`` from the moment ``at`` (``time.time()``), after importing Django."""
    env = {**os.environ, "LEASES_TEST_DB": connection.settings_dict["NAME"]}
    return subprocess.Popen(
        [sys.executable, "-c", PROCESS_SCRIPT, role, owner, ",".join(job_ids), str(at)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def results(proc: subprocess.Popen[str]) -> dict[str, str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.postgres
def test_processes_takeover_racing_late_heartbeats_exactly_one_owner_per_stage():
    jobs = [str(dead_stage("worker-a").id) for _ in range(40)]
    at = time.time() + 4
    owners = ("worker-a", "worker-b", "worker-c")
    procs = [start("beat" if owner == "worker-a" else "take", owner, jobs, at) for owner in owners]
    outcomes = [results(p) for p in procs]
    for job_id in jobs:
        winners = [owner for owner, out in zip(owners, outcomes, strict=True) if out[job_id] == "won"]
        assert len(winners) == 1, (job_id, [out[job_id] for out in outcomes])
        row = JobStage.objects.get(job_id=job_id, stage_name=STAGE)
        assert row.lease_owner == winners[0]
        assert row.attempts == (1 if winners[0] == "worker-a" else 2)


@pytest.mark.postgres
def test_processes_hold_sweep_racing_settles_and_charges_keeps_money_exact():
    job = new_job("100.00")
    at = time.time() + 4
    spenders = [start("spend", "-", [str(job.id)], at) for _ in range(3)]
    sweepers = [start("sweep", "150", [str(job.id)], at) for _ in range(2)]
    spent = sum((Decimal(results(p)["spent"]) for p in spenders), Decimal(0))
    swept = sum(int(results(p)["expired"]) for p in sweepers)
    costs.expire_holds()
    job.refresh_from_db()
    assert job.total_cost == spent == ledger_sum(job.id)
    assert job.reserved_cost == Decimal(0)
    holds = JobCostHold.objects.filter(job_id=job.id)
    assert holds.count() == 90
    assert not holds.filter(status=HoldStatus.ACTIVE).exists()
    # Every settle records its cost, expired or not; a release of a hold the sweep closed first changes nothing.
    settled = holds.filter(status=HoldStatus.SETTLED).count()
    assert settled == 3 * 24 == JobCost.objects.filter(job_id=job.id, idempotency_key__startswith="hold:").count()
    assert holds.filter(status__in=(HoldStatus.RELEASED, HoldStatus.EXPIRED)).count() == 3 * 6
    assert swept >= 0
