"""Reservations at one statement per step on PostgreSQL (issue 14 item 1), exact under processes.

The rules themselves (refusals, expiry, keep-alive, finished jobs) are tested on both databases in
test_holds.py and test_costs_rules.py; here: that the common case is one round trip per step, that
what the single statement does not take still gets the locked path's answer, and exact totals when
four processes reserve and settle on one job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.errors import BudgetExceededError, ValidationError
from common.models import HoldStatus, Job, JobCost, JobCostHold
from common.money import money_from_sum, money_sum
from common.services import costs
from tests.services.costs_helpers import make_job, reload, run_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def protocol() -> Iterator[Counter[str]]:
    """Count the messages this connection sends to the server inside the block (libpq's trace)."""
    from psycopg import pq

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    sent: Counter[str] = Counter()
    fd, path = tempfile.mkstemp(suffix=".trace")
    try:
        pgconn.trace(fd)
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        yield sent
        pgconn.untrace()
        with open(path, encoding="utf-8", errors="replace") as trace:
            sent.update(line.split()[2] for line in trace if line.startswith("F\t") and len(line.split()) > 2)
    finally:
        os.close(fd)
        os.unlink(path)


def round_trips(call: Callable[[], Any]) -> tuple[int, int, Any]:
    """(round trips to the server, Django's own statements, the result) of ``call``."""
    with protocol() as sent, CaptureQueriesContext(connection) as django:
        result = call()
    return sent["Sync"] + sent["Query"], len(django.captured_queries), result


def ledger_sum(job_id) -> Decimal:
    return money_from_sum(JobCost.objects.filter(job_id=job_id).aggregate(s=money_sum())["s"])


def test_reserve_settle_and_release_take_one_round_trip_each():
    job = make_job("5.00")
    costs.settle(costs.reserve(job.id, "video_generation", "svd", Decimal("0.10")), Decimal("0.10"))  # warm
    costs.release(costs.reserve(job.id, "video_generation", "svd", Decimal("0.10")))
    trips, django, hold = round_trips(lambda: costs.reserve(job.id, "video_generation", "svd", Decimal("0.30")))
    assert (trips, django) == (1, 0)
    assert hold.status == HoldStatus.ACTIVE
    assert hold.amount == Decimal("0.30")
    stored = JobCostHold.objects.get(id=hold.id)
    fields = [f.attname for f in JobCostHold._meta.concrete_fields]
    assert [getattr(hold, f) for f in fields] == [getattr(stored, f) for f in fields]  # what the statement wrote
    trips, django, row = round_trips(lambda: costs.settle(hold, Decimal("0.25")))
    assert (trips, django) == (1, 0)
    assert (row.cost, row.idempotency_key, row.stage_name, row.api_name) == (
        Decimal("0.25"),
        f"hold:{hold.id}",
        "video_generation",
        "svd",
    )
    ledger = JobCost.objects.get(id=row.id)
    fields = [f.attname for f in JobCost._meta.concrete_fields]
    assert [getattr(row, f) for f in fields] == [getattr(ledger, f) for f in fields]
    stored = JobCostHold.objects.get(id=hold.id)
    assert (stored.status, stored.settled_cost_id) == (HoldStatus.SETTLED, row.id)
    other = costs.reserve(job.id, "video_generation", "svd", Decimal("0.40"))
    trips, django, released = round_trips(lambda: costs.release(other.id))
    assert (trips, django) == (1, 0)
    assert released.status == HoldStatus.RELEASED
    assert released.closed_at == JobCostHold.objects.get(id=other.id).closed_at
    job = reload(job)
    assert (job.total_cost, job.reserved_cost) == (Decimal("0.35"), Decimal(0))
    assert ledger_sum(job.id) == job.total_cost


def test_what_the_statement_does_not_take_gets_the_locked_paths_answer():
    """Over budget, a finished job, a closed hold, an unknown one: the same errors and results as before."""
    job = make_job("1.00")
    hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.80"))
    with pytest.raises(BudgetExceededError) as info:
        costs.reserve(job.id, "video_generation", "svd", Decimal("0.21"))
    assert info.value.details == {"spent": "0.00", "reserved": "0.80", "attempted": "0.21", "limit": "1.00"}
    first = costs.settle(hold, Decimal("0.80"))
    assert costs.settle(hold.id, Decimal("0.80")).id == first.id  # settled again: the first row, nothing charged
    assert costs.release(hold).status == HoldStatus.SETTLED
    assert reload(job).total_cost == Decimal("0.80")
    Job.objects.filter(id=job.id).update(status="cancelled")
    with pytest.raises(ValidationError) as finished:
        costs.reserve(job.id, "video_generation", "svd", Decimal("0.01"))
    assert finished.value.code == "JOB_FINISHED"


def test_a_stale_hold_sends_every_step_to_the_lazy_expiry_first():
    """A hold past its term is closed as expired by the next step on its job, fast path or not."""
    job = make_job("5.00")
    live = costs.reserve(job.id, "video_generation", "svd", Decimal("0.50"))
    for step in (
        lambda: costs.reserve(job.id, "video_generation", "svd", Decimal("0.10")),
        lambda: costs.settle(live, Decimal("0.50")),
        lambda: costs.release(costs.reserve(job.id, "video_generation", "svd", Decimal("0.10"))),
    ):
        stale = costs.reserve(job.id, "video_generation", "svd", Decimal("1.00"))
        JobCostHold.objects.filter(id=stale.id).update(created_at=timezone.now() - timedelta(hours=1))
        step()
        assert JobCostHold.objects.get(id=stale.id).status == HoldStatus.EXPIRED
        held = sum(
            JobCostHold.objects.filter(job_id=job.id, status=HoldStatus.ACTIVE).values_list("amount", flat=True),
            Decimal(0),
        )
        assert reload(job).reserved_cost == held


def test_a_step_inside_the_callers_transaction_rolls_back_with_it():
    job = make_job("1.00")

    def pay_then_fail() -> None:
        with transaction.atomic():
            costs.settle(costs.reserve(job.id, "video_generation", "svd", Decimal("0.40")), Decimal("0.40"))
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        pay_then_fail()
    job = reload(job)
    assert (job.total_cost, job.reserved_cost) == (Decimal(0), Decimal(0))
    assert not JobCostHold.objects.filter(job_id=job.id).exists()
    assert not JobCost.objects.filter(job_id=job.id).exists()


def test_threads_reserving_and_settling_one_job_stop_at_the_budget_exactly():
    """8 threads x 20 pairs of 0.20 on 6.00: exactly 30 pairs fit.

    A reservation is refused only when spent + held is 6.00, and every hold is settled at its estimate,
    so the job ends at 6.00 exactly whatever the interleaving.
    """
    job = make_job("6.00")

    def work(i: int) -> int:
        done = 0
        for _ in range(20):
            try:
                hold = costs.reserve(job.id, "video_generation", "svd", Decimal("0.20"))
            except BudgetExceededError:
                continue
            costs.settle(hold, Decimal("0.20"))
            done += 1
        return done

    settled = sum(run_threads(8, work))
    job = reload(job)
    assert settled == 30
    assert job.total_cost == Decimal("6.00") == ledger_sum(job.id)
    assert job.reserved_cost == 0
    assert not JobCostHold.objects.filter(job_id=job.id, status=HoldStatus.ACTIVE).exists()


PAIRS_SCRIPT = """
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
settled = 0
for _ in range(n):
    try:
        with costs.reservation(job_id, "video_generation", "svd", Decimal("0.20")) as held:
            held.settle(Decimal("0.20"))
        settled += 1
    except BudgetExceededError:
        pass
print(json.dumps({"settled": settled}))
"""


def test_four_processes_reserving_and_settling_never_overspend():
    """4 processes x 40 reservation() blocks of 0.20 on 6.00 (160 tries): exactly 30 settle, 6.00 spent."""
    job = make_job("6.00")
    env = {**os.environ, "COSTS_TEST_DB": connection.settings_dict["NAME"]}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PAIRS_SCRIPT, str(job.id), "40"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    settled = 0
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        settled += json.loads(out.strip().splitlines()[-1])["settled"]
    job = reload(job)
    assert settled == 30
    assert job.total_cost == Decimal("6.00") == ledger_sum(job.id)
    assert JobCost.objects.filter(job_id=job.id).count() == 30
    assert JobCostHold.objects.filter(job_id=job.id, status=HoldStatus.SETTLED).count() == 30
    assert job.reserved_cost == 0
    assert not JobCostHold.objects.filter(job_id=job.id, status=HoldStatus.ACTIVE).exists()


def test_a_limit_replaces_the_budget_in_the_single_statement():
    job = make_job("1.00")
    costs.release(costs.reserve(job.id, "s", "svd", Decimal("0.10"), limit=Decimal("2.00")))  # prepared on first use
    trips, _, hold = round_trips(
        lambda: costs.reserve(job.id, "video_generation", "svd", Decimal("1.50"), limit=Decimal("2.00"))
    )
    assert trips == 1
    assert reload(job).reserved_cost == Decimal("1.50")
    with pytest.raises(BudgetExceededError) as info:
        costs.reserve(job.id, "video_generation", "svd", Decimal("0.51"), limit=Decimal("2.00"))
    assert info.value.details["limit"] == "2.00"
    costs.release(hold)
    assert reload(job).reserved_cost == 0


def test_with_prepared_statements_off_the_steps_prepare_nothing():
    """COST_PREPARED_STATEMENTS=False (a pooler that cannot keep them): still one statement each, none prepared."""
    from django.test import override_settings

    job = make_job("1.00")
    usage = "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements ORDER BY name"
    costs.settle(costs.reserve(job.id, "video_generation", "svd", Decimal("0.10")), Decimal("0.10"))
    with connection.cursor() as cursor:
        cursor.execute(usage)
        before = cursor.fetchall()
    with override_settings(VIDEOGEN_COMMON={"COST_PREPARED_STATEMENTS": False}):
        trips, django, hold = round_trips(lambda: costs.reserve(job.id, "video_generation", "svd", Decimal("0.20")))
        assert (trips, django) == (1, 0)
        costs.settle(hold, Decimal("0.20"))
        costs.release(costs.reserve(job.id, "video_generation", "svd", Decimal("0.20")))
    assert connection.connection.prepare_threshold is None
    with connection.cursor() as cursor:
        cursor.execute(usage)
        assert cursor.fetchall() == before
    job = reload(job)
    assert (job.total_cost, job.reserved_cost) == (Decimal("0.30"), Decimal(0))
