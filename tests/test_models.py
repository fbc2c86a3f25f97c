"""The shared tables: what migrate creates, the database constraints (SQLite and PostgreSQL), the ledger."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from common.models import Job, JobCost, JobStage

USER = uuid.UUID("44444444-4444-4444-8444-444444444444")
CORE_TABLES = {"jobs", "job_stages", "job_costs"}
# The cost tracker's reservations table (issue 4) is the one other table the app may own.
OPTIONAL_TABLES = {"job_cost_holds"}


def new_job(**fields) -> Job:
    return Job.objects.create(user_id=USER, audio_url="a.mp3", user_prompt="p", **fields)


def other_apps_tables() -> set[str]:
    tables = {"django_migrations"}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label != "common":
            tables.add(model._meta.db_table)
    return tables


def common_tables_in_db() -> set[str]:
    return set(connection.introspection.table_names()) - other_apps_tables()


@pytest.mark.django_db
def test_the_common_app_owns_exactly_the_shared_tables():
    tables = common_tables_in_db()
    assert tables >= CORE_TABLES
    assert tables - CORE_TABLES <= OPTIONAL_TABLES, f"unexpected tables: {sorted(tables - CORE_TABLES)}"
    assert {m._meta.db_table for m in apps.get_app_config("common").get_models()} == tables


@pytest.mark.django_db(transaction=True)
def test_migrate_creates_exactly_the_shared_tables():
    try:
        call_command("migrate", "common", "zero", verbosity=0)
        assert common_tables_in_db() == set()
        call_command("migrate", "common", verbosity=0)
        tables = common_tables_in_db()
        assert tables >= CORE_TABLES
        assert tables - CORE_TABLES <= OPTIONAL_TABLES
    finally:
        call_command("migrate", "common", verbosity=0)


def rejects(constraint: str | None, write) -> None:
    """``write`` raises IntegrityError inside its own atomic block (naming ``constraint`` when given)."""
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        write()
    if constraint is not None:
        assert constraint in str(info.value), str(info.value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("constraint", "changes"),
    [
        ("jobs_progress_0_100", {"progress": 101}),
        ("jobs_total_cost_not_negative", {"total_cost": Decimal("-0.000001")}),
        ("jobs_budget_limit_not_negative", {"budget_limit": Decimal("-1")}),
        ("jobs_status_valid", {"status": "paused"}),
        (None, {"estimated_remaining": -1}),
        (None, {"progress": -1}),
        ("jobs_completed_after_created", {"completed_at": timezone.now() - dt.timedelta(days=1)}),
    ],
)
def test_job_constraints_reject_bad_rows(constraint, changes):
    job = new_job()
    rejects(constraint, lambda: Job.objects.filter(pk=job.pk).update(**changes))
    rejects(constraint, lambda: new_job(**changes))
    job.refresh_from_db()
    assert job.progress == 0
    assert job.status == "queued"


@pytest.mark.django_db
def test_job_reserved_cost_not_negative_when_present():
    if not any(f.name == "reserved_cost" for f in Job._meta.fields):
        pytest.skip("no reserved_cost column")
    job = new_job()
    rejects(None, lambda: Job.objects.filter(pk=job.pk).update(reserved_cost=Decimal("-1")))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("constraint", "fields"),
    [
        ("job_stages_cost_not_negative", {"cost": Decimal("-1")}),
        ("job_stages_status_valid", {"status": "skipped"}),
        (
            "job_stages_completed_after_started",
            {"started_at": timezone.now(), "completed_at": timezone.now() - dt.timedelta(seconds=1)},
        ),
        (None, {"duration_seconds": -3}),
        (None, {"attempts": -1}),
    ],
)
def test_stage_constraints_reject_bad_rows(constraint, fields):
    job = new_job()
    rejects(constraint, lambda: JobStage.objects.create(job=job, stage_name="audio_analysis", **fields))
    assert not JobStage.objects.exists()


@pytest.mark.django_db
def test_one_stage_row_per_job_and_name():
    job, other = new_job(), new_job()
    JobStage.objects.create(job=job, stage_name="audio_analysis")
    JobStage.objects.create(job=other, stage_name="audio_analysis")
    rejects("job_stages", lambda: JobStage.objects.create(job=job, stage_name="audio_analysis"))
    assert JobStage.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("constraint", "fields"),
    [
        ("job_costs_cost_not_negative", {"cost": Decimal("-0.01")}),
        ("job_costs_quantity_not_negative", {"cost": Decimal("1"), "quantity": Decimal("-1")}),
        ("job_costs_unit_price_not_negative", {"cost": Decimal("1"), "unit_price": Decimal("-0.0055")}),
    ],
)
def test_cost_constraints_reject_bad_rows(constraint, fields):
    job = new_job()
    rejects(constraint, lambda: JobCost.objects.create(job=job, stage_name="s", api_name="sdxl", **fields))
    assert not JobCost.objects.exists()


@pytest.mark.django_db
def test_idempotency_key_is_unique_per_job_only():
    job, other = new_job(), new_job()
    JobCost.objects.create(job=job, stage_name="s", api_name="a", cost=Decimal("1"), idempotency_key="k")
    JobCost.objects.create(job=other, stage_name="s", api_name="a", cost=Decimal("1"), idempotency_key="k")
    JobCost.objects.create(job=job, stage_name="s", api_name="a", cost=Decimal("1"))
    JobCost.objects.create(job=job, stage_name="s", api_name="a", cost=Decimal("1"))
    rejects(
        None,
        lambda: JobCost.objects.create(job=job, stage_name="s", api_name="a", cost=Decimal("1"), idempotency_key="k"),
    )
    assert JobCost.objects.filter(job=job).count() == 3


@pytest.mark.django_db
def test_money_keeps_six_places_exactly():
    job = new_job(budget_limit=Decimal("12.345678"))
    cost = JobCost.objects.create(job=job, stage_name="s", api_name="sdxl", cost=Decimal("0.0055"))
    job.refresh_from_db()
    cost.refresh_from_db()
    assert job.budget_limit == Decimal("12.345678")
    assert cost.cost == Decimal("0.0055")


@pytest.mark.django_db
def test_the_ledger_refuses_updates_and_deletes():
    job = new_job()
    cost = JobCost.objects.create(job=job, stage_name="s", api_name="sdxl", cost=Decimal("0.0055"))
    cost.cost = Decimal("0")
    with pytest.raises(TypeError, match="append-only"):
        cost.save()
    with pytest.raises(TypeError, match="append-only"):
        cost.delete()
    with pytest.raises(TypeError, match="append-only"):
        JobCost.objects.filter(pk=cost.pk).update(cost=Decimal("0"))
    with pytest.raises(TypeError, match="append-only"):
        JobCost.objects.filter(pk=cost.pk).delete()
    assert JobCost.objects.get(pk=cost.pk).cost == Decimal("0.0055")
    # A job with ledger rows cannot be deleted out from under them.
    with pytest.raises(ProtectedError), transaction.atomic():
        Job.objects.filter(pk=job.pk).delete()
    assert JobCost.objects.filter(pk=cost.pk).exists()


@pytest.mark.django_db
def test_budget_used_share_and_is_active():
    job = new_job(budget_limit=Decimal("20"), total_cost=Decimal("5"))
    assert job.budget_used_share == Decimal("0.25")
    assert job.is_active
    assert new_job(budget_limit=Decimal("0")).budget_used_share is None
    assert "queued" in str(job)


def test_stage_queries_do_not_join_jobs_for_their_default_ordering():
    # Ordering by "job" would apply Job's own ordering through a JOIN on every unordered stage query
    # (the estimate on each transition, the API's stage list, select_for_update of running stages).
    from common.models import JobStage

    sql = str(JobStage.objects.filter(stage_name="composition").query)
    assert "JOIN" not in sql.upper()
    assert 'ORDER BY "job_stages"."job_id" ASC, "job_stages"."started_at" ASC' in sql
