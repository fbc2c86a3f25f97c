"""Budget enforcement under real parallel workers: threads on SQLite and PostgreSQL, processes on PostgreSQL."""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from common.db import retry_locked
from common.errors import BudgetExceededError
from common.models import HoldStatus, Job, JobCost, JobCostHold
from common.services import charges, costs
from tests.services.costs_helpers import make_job, run_threads

pytestmark = pytest.mark.django_db(transaction=True)

CHARGE = Decimal("0.06")
ROOT = Path(__file__).resolve().parents[2]


def charge_loop(job_id, n: int, amount: Decimal = CHARGE, stage: str = "video_generation") -> int:
    accepted = 0
    for _ in range(n):
        try:
            costs.track_cost(job_id, stage, "svd", amount, enforce=True)
            accepted += 1
        except BudgetExceededError:
            pass
    return accepted


def ledger_sum(job_id) -> Decimal:
    """The exact ledger sum (a plain SUM adds floats on SQLite)."""
    return costs.money_from_sum(JobCost.objects.filter(job_id=job_id).aggregate(s=costs.money_sum())["s"])


def test_sixteen_threads_never_overspend():
    job = make_job("20.00")
    accepted = run_threads(16, lambda i: charge_loop(job.id, 100))
    job.refresh_from_db()
    assert sum(accepted) == 333
    assert job.total_cost == Decimal("19.98")
    assert ledger_sum(job.id) == job.total_cost
    assert JobCost.objects.filter(job_id=job.id).count() == 333


def test_reservations_and_settlements_interleaved_never_exceed_limit():
    job = make_job("5.00")
    refused = []

    def worker(i: int) -> int:
        done = 0
        for n in range(30):
            try:
                hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.20"))
            except BudgetExceededError:
                refused.append(i)
                continue
            if n % 3 == 0:
                costs.release(hold)
            else:
                costs.settle(hold, Decimal("0.15") if n % 2 else Decimal("0.20"))
                done += 1
            # Plain enforced charges interleave with the holds.
            try:
                costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.01"), enforce=True)
            except BudgetExceededError:
                refused.append(i)
        return done

    run_threads(8, worker)
    job.refresh_from_db()
    assert refused, "the budget should have run out"
    assert job.total_cost <= Decimal("5.00")
    assert ledger_sum(job.id) == job.total_cost
    assert job.reserved_cost == Decimal(0)
    assert not JobCostHold.objects.filter(job_id=job.id, status=HoldStatus.ACTIVE).exists()


def test_racing_duplicate_idempotency_keys_charge_once():
    job = make_job("20.00")
    rows = run_threads(
        12, lambda i: costs.track_cost(job.id, "video_generation", "svd", CHARGE, idempotency_key="clip-7").id
    )
    job.refresh_from_db()
    assert len(set(rows)) == 1
    assert job.total_cost == CHARGE
    assert JobCost.objects.filter(job_id=job.id).count() == 1


def test_threshold_warning_logged_once_under_concurrent_charges(caplog):
    job = make_job("10.00")
    with caplog.at_level(logging.WARNING, logger="common.costs"):
        run_threads(8, lambda i: charge_loop(job.id, 25, Decimal("0.05")))
    crossings = [r for r in caplog.records if getattr(r, "event", None) == "budget_threshold_crossed"]
    assert len(crossings) == 1
    assert crossings[0].job_id == str(job.id)
    assert crossings[0].threshold == "0.80"
    job.refresh_from_db()
    assert job.total_cost == Decimal("10.00")


PROCESS_SCRIPT = """
import json, os, sys
from decimal import Decimal
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")
django.setup()
from django.conf import settings
settings.DATABASES["default"]["NAME"] = os.environ["COSTS_TEST_DB"]
from common.errors import BudgetExceededError
from common.services import costs
job_id, n = sys.argv[1], int(sys.argv[2])
accepted = 0
for _ in range(n):
    try:
        costs.track_cost(job_id, "video_generation", "svd", Decimal("0.06"), enforce=True)
        accepted += 1
    except BudgetExceededError:
        pass
print(json.dumps({"accepted": accepted}))
"""


def start_processes(job_id, count: int = 4, charges: int = 100) -> list[subprocess.Popen[str]]:
    """Start ``count`` Python processes, each trying ``charges`` enforced charges on the job (test database)."""
    env = {**os.environ, "COSTS_TEST_DB": connection.settings_dict["NAME"]}
    return [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_SCRIPT, str(job_id), str(charges)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def accepted_by(procs: list[subprocess.Popen[str]]) -> int:
    """Wait for the processes; return how many charges they got accepted in all."""
    accepted = 0
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        accepted += json.loads(out.strip().splitlines()[-1])["accepted"]
    return accepted


@pytest.mark.postgres
def test_four_processes_never_overspend():
    job = make_job("20.00")
    accepted = accepted_by(start_processes(job.id))
    # 400 tries of 0.06 = 24.00 wanted; exactly 333 fit in 20.00.
    job.refresh_from_db()
    assert accepted == 333
    assert job.total_cost == Decimal("19.98")
    assert ledger_sum(job.id) == job.total_cost


@pytest.mark.postgres
def test_four_processes_with_sixteen_threads_in_all():
    """Processes and threads together: 4 processes x 100 charges plus 4 local threads x 25."""
    job = make_job("20.00")
    procs = start_processes(job.id)
    # Threads in this process charge the same job while the processes run.
    local = sum(run_threads(4, lambda i: charge_loop(job.id, 25)))
    total = local + accepted_by(procs)
    job.refresh_from_db()
    assert total == 333
    assert job.total_cost == Decimal("19.98")
    assert ledger_sum(job.id) == job.total_cost
    assert Job.objects.filter(id=job.id, reserved_cost=0).exists()


def test_unique_job_ids_are_independent():
    jobs = [make_job("1.00") for _ in range(4)]
    accepted = run_threads(4, lambda i: charge_loop(jobs[i].id, 20, Decimal("0.10")))
    assert accepted == [10, 10, 10, 10]
    for job in jobs:
        job.refresh_from_db()
        assert job.total_cost == Decimal("1.00")


@pytest.mark.postgres
def test_charge_statement_alone_is_prepared_and_the_connection_setting_restored():
    """The hot path prepares its own statement; Django's queries stay unprepared, also after a failed charge."""
    job = make_job("20.00")
    costs.track_cost(job.id, "video_generation", "svd", CHARGE, enforce=True)
    first = costs.track_cost(job.id, "video_generation", "svd", CHARGE, enforce=True, idempotency_key="clip-1")
    # A duplicate key fails inside the prepared statement (unique violation): the first row comes back.
    assert costs.track_cost(job.id, "video_generation", "svd", CHARGE, enforce=True, idempotency_key="clip-1") == first
    assert connection.connection.prepare_threshold is None
    assert costs.get_total_cost(job.id) == 2 * CHARGE
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert prepared
    assert all(statement.lstrip().startswith("WITH j AS (") for statement in prepared), prepared


@pytest.mark.postgres
def test_prepared_charge_statement_can_be_switched_off_for_poolers():
    """COST_PREPARED_STATEMENTS=False (pgbouncer in transaction mode): the charge works and prepares nothing."""
    job = make_job("20.00")
    # Observe, never DEALLOCATE: psycopg's own cache of what it prepared must stay true for later tests.
    # Every prepared statement of the session and how often it ran (a prepared run adds a plan).
    usage = "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements ORDER BY name"
    costs.track_cost(job.id, "video_generation", "svd", CHARGE, enforce=True)  # prepared: the statements exist
    with connection.cursor() as cursor:
        cursor.execute(usage)
        before = cursor.fetchall()
    with override_settings(VIDEOGEN_COMMON={"COST_PREPARED_STATEMENTS": False}):
        costs.track_cost(job.id, "video_generation", "svd", CHARGE, enforce=True)
        costs.track_cost(job.id, "video_generation", "svd", CHARGE, enforce=True, idempotency_key="clip-1")
    assert connection.connection.prepare_threshold is None
    assert costs.get_total_cost(job.id) == 3 * CHARGE
    with connection.cursor() as cursor:
        cursor.execute(usage)
        assert cursor.fetchall() == before  # nothing new prepared, nothing prepared executed


@pytest.mark.postgres
def test_charge_cursors_go_with_their_threads_and_connections():
    """The cached charge cursor does not keep closed connections alive."""
    job = make_job("20.00")

    def charge_then_drop_connection(i: int) -> None:
        costs.track_cost(job.id, "video_generation", "svd", CHARGE, enforce=True)
        connection.connection.close()  # the pool discards it; a cursor must not keep it (and its entry) alive

    gc.collect()
    before = len(charges._CURSORS)
    run_threads(4, charge_then_drop_connection)
    gc.collect()
    assert len(charges._CURSORS) <= before
    assert costs.get_total_cost(job.id) == 4 * CHARGE


def test_reserved_cost_stays_the_sum_of_open_holds_under_concurrent_hold_traffic():
    """jobs.reserved_cost is derived state: after racing reserve/settle/release/charge (some holds left open,
    one expired later) it equals the sum of the active holds, and reconcile_costs finds nothing to repair."""
    job = make_job("50.00")

    def worker(i: int) -> None:
        for n in range(9):
            hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.20"))
            if n % 3 == 0:
                costs.release(hold)
            elif n % 3 == 1:
                costs.settle(hold, Decimal("0.15"))
            # n % 3 == 2: left open, as by a worker still generating
            costs.track_cost(job.id, "composition", "gpt-4-turbo", Decimal("0.01"), enforce=True)

    def open_holds() -> Decimal:
        active = JobCostHold.objects.filter(job_id=job.id, status=HoldStatus.ACTIVE)
        return sum(active.values_list("amount", flat=True), Decimal(0))

    run_threads(8, worker)
    job.refresh_from_db()
    assert open_holds() == Decimal("4.80")  # 8 workers x 3 open holds x 0.20
    assert job.reserved_cost == open_holds()
    assert job.total_cost == ledger_sum(job.id) == Decimal("4.32")  # 8 x (3 x 0.15 + 9 x 0.01)
    # A crashed worker's hold goes stale; the next locked operation expires it and recomputes the sum.
    stale = JobCostHold.objects.filter(job_id=job.id, status=HoldStatus.ACTIVE).first()
    assert stale is not None
    JobCostHold.objects.filter(id=stale.id).update(created_at=timezone.now() - timedelta(hours=1))
    costs.reserve(job.id, "video_generation", "svd", Decimal("0.20"))
    job.refresh_from_db()
    assert job.reserved_cost == open_holds() == Decimal("4.80")
    call_command("reconcile_costs", stdout=io.StringIO())  # raises CommandError (exit 1) on any mismatch


@pytest.mark.postgres  # the lifecycle services do not retry SQLite's shared-cache "table is locked" (tests only)
def test_budget_edits_racing_enforced_charges_lose_no_spend():
    """Operators raising and lowering the budget while 6 workers charge: every accepted charge stays counted."""
    from common.services import jobs

    job = make_job("1.00")
    budgets = [Decimal("3.00"), Decimal("2.00"), Decimal("4.00"), Decimal("1.50"), Decimal("5.00")]

    def work(i: int) -> int:
        if i == 0:
            for budget in budgets:
                jobs.job_set_budget(job_id=job.id, budget_limit=budget, changed_by="operator")
            return 0
        return charge_loop(job.id, 40, Decimal("0.01"))

    accepted = run_threads(7, work)
    job.refresh_from_db()
    assert job.budget_limit == Decimal("5.00")
    assert job.total_cost == Decimal("0.01") * sum(accepted)
    assert ledger_sum(job.id) == job.total_cost
    assert JobCost.objects.filter(job_id=job.id).count() == sum(accepted)
    assert job.total_cost <= Decimal("5.00")


def test_keep_alive_racing_charges_keeps_the_hold_counted():
    """A worker renews its hold while others charge; the hold is never lost and the budget never exceeded."""
    job = make_job("1.00")
    with override_settings(VIDEOGEN_COMMON={"RESERVATION_TTL_SECONDS": 60}):
        hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.50"))

        def work(i: int) -> int:
            if i == 0:
                for _ in range(20):
                    # 50 s into its 60 s term (retried like the services retry SQLite's "table is locked").
                    retry_locked(
                        lambda: JobCostHold.objects.filter(id=hold.id).update(
                            created_at=timezone.now() - timedelta(seconds=50)
                        )
                    )
                    costs.renew_hold(hold)
                return 0
            return charge_loop(job.id, 30, Decimal("0.01"))

        accepted = run_threads(5, work)
        costs.settle(hold, Decimal("0.50"))
    job.refresh_from_db()
    assert sum(accepted) == 50  # exactly the half not held
    assert job.total_cost == Decimal("1.00")
    assert ledger_sum(job.id) == job.total_cost
    assert job.reserved_cost == 0
