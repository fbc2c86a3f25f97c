"""The admin: job changelist/detail as a staff user, the read-only ledger, actions, constant query counts."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from common.admin import CSV_HEADER, JobAdmin, JobCostAdmin
from common.models import Job, JobCost, JobStage
from common.services.jobs import job_create, stage_complete, stage_start

pytestmark = pytest.mark.django_db

USER = uuid.UUID("55555555-5555-4555-8555-555555555555")
JOBS_URL = reverse("admin:common_job_changelist")
COSTS_URL = reverse("admin:common_jobcost_changelist")


@pytest.fixture
def staff() -> Client:
    user = User.objects.create_user("operator", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_job", "change_job", "view_jobcost", "view_jobstage"])
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser() -> Client:
    user = User.objects.create_superuser("root", email=None, password=None)
    client = Client()
    client.force_login(user)
    return client


def make_job(*, prompt: str = "neon city at night", costs: int = 2, budget: str = "20") -> Job:
    job = job_create(user_id=USER, audio_url="https://example.com/a.mp3", user_prompt=prompt, budget_limit=budget)
    stage_start(job_id=job.id, stage_name="reference_generation")
    for i in range(costs):
        JobCost.objects.create(
            job=job,
            stage_name="reference_generation",
            api_name="sdxl",
            cost=Decimal("0.0055"),
            quantity=Decimal("1"),
            unit="image",
            unit_price=Decimal("0.0055"),
            idempotency_key=f"img-{i}",
        )
    stage_complete(job_id=job.id, stage_name="reference_generation")
    Job.objects.filter(pk=job.pk).update(total_cost=Decimal("0.0055") * costs)
    job.refresh_from_db()
    return job


def test_job_changelist_shows_status_stage_progress_money_and_share(staff):
    job = make_job(budget="0.044")
    response = staff.get(JOBS_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert str(job.id) in html
    assert "reference_generation" in html
    assert "25.0%" in html  # 0.011 of 0.044
    columns = ("Job", "User", "Status", "Stage", "Progress", "Spent", "Budget", "Budget used", "Error")
    for column in (*columns, "Created"):
        assert column in html


def test_zero_budget_shows_a_dash():
    job = make_job(budget="0")
    shown = JobAdmin(Job, django_admin.site).budget_used(job)
    assert shown == '<span class="vg-share vg-share--over" title="no budget">-</span>'  # spent 0.011 of 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=processing", {"first"}),
        ("status__exact=failed", set()),
        ("current_stage=reference_generation", {"first"}),
        ("today", {"first", "second"}),
        ("created_at__year=1999", set()),
        ("q=neon", {"first"}),
        ("q=garden", {"second"}),
        ("q=" + str(USER), {"first", "second"}),
        ("q=not-a-uuid", set()),
    ],
)
def test_job_filters_and_search(staff, query, expected):
    jobs = {"first": make_job(prompt="neon city"), "second": make_job(prompt="quiet garden", costs=0)}
    Job.objects.filter(pk=jobs["second"].pk).update(current_stage=None, status="queued")
    if query == "today":
        midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        query = urlencode({"created_at__gte": str(midnight), "created_at__lt": str(midnight + dt.timedelta(days=1))})
    response = staff.get(f"{JOBS_URL}?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    shown = {name for name, job in jobs.items() if str(job.id) in html}
    assert shown == expected


def test_search_by_job_id(staff):
    job, other = make_job(), make_job()
    html = staff.get(f"{JOBS_URL}?q={job.id}").content.decode()
    assert str(job.id) in html
    assert str(other.id) not in html


def test_job_detail_shows_stages_and_costs_read_only(staff):
    job = make_job()
    response = staff.get(reverse("admin:common_job_change", args=[job.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "reference_generation" in html
    assert "img-0" in html
    assert "img-1" in html
    assert "0.005500" in html or "0.0055" in html
    assert 'name="costs-0-cost"' not in html  # no editable ledger fields
    assert 'name="stages-0-status"' not in html
    assert 'name="budget_limit"' in html  # the one field an operator may change
    assert 'name="status"' not in html


def test_staff_may_raise_a_budget(staff):
    job = make_job()
    url = reverse("admin:common_job_change", args=[job.pk])
    data = {
        "budget_limit": "35.5",
        "stages-TOTAL_FORMS": "1",
        "stages-INITIAL_FORMS": "1",
        "stages-MIN_NUM_FORMS": "0",
        "stages-MAX_NUM_FORMS": "1000",
        "stages-0-id": str(JobStage.objects.get(job=job).pk),
        "stages-0-job": str(job.pk),
        "costs-TOTAL_FORMS": "2",
        "costs-INITIAL_FORMS": "2",
        "costs-MIN_NUM_FORMS": "0",
        "costs-MAX_NUM_FORMS": "1000",
    }
    for i, cost in enumerate(JobCost.objects.filter(job=job).order_by("timestamp")):
        data[f"costs-{i}-id"] = str(cost.pk)
        data[f"costs-{i}-job"] = str(job.pk)
    response = staff.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    job.refresh_from_db()
    assert job.budget_limit == Decimal("35.5")
    assert JobCost.objects.filter(job=job).count() == 2


def test_nobody_adds_or_deletes_jobs_here(superuser):
    job = make_job()
    assert superuser.get(reverse("admin:common_job_add")).status_code == 403
    assert superuser.get(reverse("admin:common_job_delete", args=[job.pk])).status_code == 403


def test_ledger_is_read_only_even_for_superusers(superuser):
    job = make_job()
    cost = JobCost.objects.filter(job=job).first()
    assert superuser.get(COSTS_URL).status_code == 200
    assert superuser.get(reverse("admin:common_jobcost_add")).status_code == 403
    assert superuser.get(reverse("admin:common_jobcost_delete", args=[cost.pk])).status_code == 403
    view = superuser.get(reverse("admin:common_jobcost_change", args=[cost.pk]))
    assert view.status_code == 200
    html = view.content.decode()
    assert 'name="_save"' not in html
    assert 'name="cost"' not in html
    posted = superuser.post(reverse("admin:common_jobcost_change", args=[cost.pk]), {"cost": "0"})
    assert posted.status_code == 403
    assert JobCost.objects.get(pk=cost.pk).cost == Decimal("0.0055")
    request = RequestFactory().get("/")
    request.user = User.objects.get(username="root")
    model_admin = JobCostAdmin(JobCost, django_admin.site)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, cost)
    assert not model_admin.has_delete_permission(request, cost)
    assert model_admin.get_actions(request) == {}


def test_inlines_are_read_only_even_for_superusers(superuser):
    job = make_job()
    html = superuser.get(reverse("admin:common_job_change", args=[job.pk])).content.decode()
    assert "img-0" in html
    assert "reference_generation" in html
    for field in ("costs-0-cost", "costs-0-DELETE", "stages-0-status", "stages-0-DELETE"):
        assert f'name="{field}"' not in html
    request = RequestFactory().get("/")
    request.user = User.objects.get(username="root")
    for inline in JobAdmin(Job, django_admin.site).get_inline_instances(request, job):
        assert not inline.has_add_permission(request, job)
        assert not inline.has_change_permission(request, job)
        assert not inline.has_delete_permission(request, job)


def test_ledger_changelist_and_filters(staff):
    job = make_job()
    response = staff.get(f"{COSTS_URL}?api_name=sdxl&q={job.id}")
    assert response.status_code == 200
    assert str(job.id) in response.content.decode()


def post_action(client: Client, action: str, jobs: list[Job]):
    return client.post(
        JOBS_URL,
        {"action": action, "_selected_action": [str(j.pk) for j in jobs], "index": 0},
        follow=action == "cancel_jobs",
    )


def test_cancel_action_goes_through_the_lifecycle(staff):
    active, queued = make_job(), job_create(user_id=USER, audio_url="a", user_prompt="p")
    finished = make_job()
    Job.objects.filter(pk=finished.pk).update(status="completed", progress=100)
    response = post_action(staff, "cancel_jobs", [active, queued, finished])
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Cancelled 2 job(s); skipped 1 already completed, failed or cancelled."]
    statuses = {j.pk: j.status for j in Job.objects.all()}
    assert statuses == {active.pk: "cancelled", queued.pk: "cancelled", finished.pk: "completed"}
    assert Job.objects.get(pk=active.pk).error_code == "JOB_CANCELLED"


def test_cancel_action_with_nothing_to_cancel_warns(staff):
    finished = make_job()
    Job.objects.filter(pk=finished.pk).update(status="failed")
    response = post_action(staff, "cancel_jobs", [finished])
    assert [str(m) for m in response.context["messages"]] == [
        "Cancelled 0 job(s); skipped 1 already completed, failed or cancelled."
    ]


def test_export_action_writes_exact_csv(staff):
    with_costs, without = make_job(costs=2), make_job(costs=0)
    response = post_action(staff, "export_csv", [with_costs, without])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="jobs-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert tuple(rows[0]) == CSV_HEADER
    by_job: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_job.setdefault(row["job_id"], []).append(row)
    assert len(by_job[str(with_costs.id)]) == 2
    assert by_job[str(without.id)] == [
        {**by_job[str(without.id)][0], "cost_id": "", "cost": "", "cost_api_name": ""},
    ]
    stored = {str(c.id): c for c in JobCost.objects.filter(job=with_costs)}
    for row in by_job[str(with_costs.id)]:
        cost = stored[row["cost_id"]]
        assert row["cost"] == str(cost.cost)  # the exact decimal, never a float
        assert Decimal(row["cost"]) == Decimal("0.0055")
        assert row["cost_unit_price"] == str(cost.unit_price)
        assert row["total_cost"] == str(Job.objects.get(pk=with_costs.pk).total_cost)
        assert Decimal(row["total_cost"]) == Decimal("0.011")
        assert row["cost_idempotency_key"] in {"img-0", "img-1"}


def add_jobs(n: int) -> None:
    """``n`` more processing jobs, each with a stage and a ledger row (bulk, to keep the test quick)."""
    jobs = Job.objects.bulk_create(
        Job(user_id=USER, audio_url="a", user_prompt=f"job {i}", status="processing", current_stage="composition")
        for i in range(n)
    )
    JobStage.objects.bulk_create(JobStage(job=j, stage_name="composition", status="processing") for j in jobs)
    JobCost.objects.bulk_create(JobCost(job=j, stage_name="composition", api_name="ffmpeg", cost=1) for j in jobs)


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", [JOBS_URL, COSTS_URL, JOBS_URL + "?status__exact=processing&q=neon"])
def test_changelists_make_the_same_number_of_queries_for_1_and_100_jobs(staff, url):
    make_job()
    count_queries(staff, url)  # warm caches (content types, permissions)
    one = count_queries(staff, url)
    add_jobs(99)
    assert Job.objects.count() == 100
    hundred = count_queries(staff, url)
    assert hundred == one, f"{url}: {one} queries for 1 job, {hundred} for 100"


def test_export_makes_the_same_number_of_queries_for_1_and_100_jobs(staff):
    make_job()

    def export_queries() -> int:
        jobs = list(Job.objects.all())
        with CaptureQueriesContext(connection) as ctx:
            response = post_action(staff, "export_csv", jobs)
        assert response.status_code == 200
        return len(ctx.captured_queries)

    export_queries()
    one = export_queries()
    add_jobs(99)
    assert export_queries() == one


# --------------------------------------------------------------------------- budget edits (issue 10 item 2)


def charge_from_another_connection(job_id, amount: str) -> None:
    """A worker's real charge: its own thread and database connection, committed before this returns."""
    from common.services import costs
    from tests.services.costs_helpers import run_threads

    run_threads(1, lambda i: costs.track_cost(job_id, "video_generation", "svd", Decimal(amount)))


def ledger_sum(job_id) -> Decimal:
    from common.services import costs

    return costs.money_from_sum(JobCost.objects.filter(job_id=job_id).aggregate(s=costs.money_sum())["s"])


def operator() -> User:
    user = User.objects.create_user("operator", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_job", "change_job"]))
    return User.objects.get(pk=user.pk)  # fresh, so the permission cache is empty


@pytest.mark.django_db(transaction=True)
def test_budget_edit_keeps_a_charge_committed_between_the_admins_load_and_save():
    """The admin's own steps (get_object, then the form, save_form and save_model), a worker charging in between."""
    from common.services import costs

    job = make_job(costs=0, budget="5")
    costs.track_cost(job.id, "video_generation", "svd", Decimal("5.00"))
    request = RequestFactory().post("/")
    request.user = operator()
    model_admin = JobAdmin(Job, django_admin.site)
    loaded = model_admin.get_object(request, str(job.pk))  # what the change view edits
    charge_from_another_connection(job.id, "1.00")  # committed meanwhile
    form = model_admin.get_form(request, loaded, change=True)({"budget_limit": "8"}, instance=loaded)
    assert form.is_valid(), form.errors
    model_admin.save_model(request, model_admin.save_form(request, form, change=True), form, change=True)
    job.refresh_from_db()
    assert job.budget_limit == Decimal("8")
    assert job.total_cost == Decimal("6.00")  # seen before the fix: 5.00, with 6.00 in the ledger
    assert ledger_sum(job.id) == job.total_cost


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_budget_edit_over_http_keeps_a_concurrent_charge_and_records_who(monkeypatch):
    """The whole change view (one transaction on PostgreSQL); a worker's charge commits after the row was read."""
    from django.contrib.admin.models import LogEntry

    from common.services import costs

    job = make_job(costs=0, budget="5")
    costs.track_cost(job.id, "video_generation", "svd", Decimal("5.00"))
    user = operator()
    client = Client()
    client.force_login(user)
    load = JobAdmin.get_object

    def load_then_charge(self, request, object_id, from_field=None):
        loaded = load(self, request, object_id, from_field)
        if request.method == "POST":
            charge_from_another_connection(job.id, "1.00")
        return loaded

    monkeypatch.setattr(JobAdmin, "get_object", load_then_charge)
    response = client.post(reverse("admin:common_job_change", args=[job.pk]), change_form_data(job, "8"))
    assert response.status_code == 302, response.content.decode()[:2000]
    job.refresh_from_db()
    assert (job.budget_limit, job.total_cost) == (Decimal("8"), Decimal("6.00"))
    assert ledger_sum(job.id) == job.total_cost
    entry = LogEntry.objects.get(object_id=str(job.pk))
    assert entry.user_id == user.pk
    assert entry.get_change_message() == "Changed budget limit from 5.00 to 8.00."


def change_form_data(job: Job, budget: str) -> dict[str, str]:
    data = {
        "budget_limit": budget,
        "stages-TOTAL_FORMS": "0",
        "stages-INITIAL_FORMS": "0",
        "stages-MIN_NUM_FORMS": "0",
        "stages-MAX_NUM_FORMS": "1000",
        "costs-TOTAL_FORMS": "0",
        "costs-INITIAL_FORMS": "0",
        "costs-MIN_NUM_FORMS": "0",
        "costs-MAX_NUM_FORMS": "1000",
    }
    stages = list(JobStage.objects.filter(job=job))
    ledger = list(JobCost.objects.filter(job=job).order_by("timestamp"))
    data["stages-TOTAL_FORMS"] = data["stages-INITIAL_FORMS"] = str(len(stages))
    data["costs-TOTAL_FORMS"] = data["costs-INITIAL_FORMS"] = str(len(ledger))
    for i, stage in enumerate(stages):
        data[f"stages-{i}-id"], data[f"stages-{i}-job"] = str(stage.pk), str(job.pk)
    for i, cost in enumerate(ledger):
        data[f"costs-{i}-id"], data[f"costs-{i}-job"] = str(cost.pk), str(job.pk)
    return data


@pytest.mark.parametrize(
    ("budget", "fragment"),
    [("-1", "must not be negative"), ("NaN", "Enter a number"), ("1e9", "8 digits before the decimal point")],
)
def test_a_bad_budget_is_a_form_error_and_changes_nothing(staff, budget, fragment):
    job = make_job()
    before = Job.objects.filter(pk=job.pk).values().get()
    response = staff.post(reverse("admin:common_job_change", args=[job.pk]), change_form_data(job, budget))
    assert response.status_code == 200  # the form again, with the error
    html = response.content.decode()
    assert "budget_limit" in html
    assert any(fragment in str(e) for e in response.context["adminform"].form.errors["budget_limit"]), html[:3000]
    assert Job.objects.filter(pk=job.pk).values().get() == before


def test_saving_an_unchanged_budget_writes_nothing(staff):
    job = make_job()
    before = Job.objects.filter(pk=job.pk).values().get()
    response = staff.post(reverse("admin:common_job_change", args=[job.pk]), change_form_data(job, "20"))
    assert response.status_code == 302
    assert Job.objects.filter(pk=job.pk).values().get() == before
