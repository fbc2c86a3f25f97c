"""Admin for the pipeline's jobs and their cost ledger.

Jobs change state only through the lifecycle service (``common.services.jobs``),
so the admin shows them read-only apart from the budget, which it changes through
:func:`~common.services.jobs.job_set_budget` (the row locked, only the budget
written, so spend charged while the form was open is kept), and offers a "cancel"
action that calls :func:`~common.services.jobs.job_cancel`. The cost ledger is
append-only: nobody, superusers included, may add, change or delete a row here.
Every changelist column comes from the listed row itself, so a page of 100 jobs
costs the same number of queries as a page of one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Prefetch, QuerySet
from django.forms.formsets import BaseFormSet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from common.errors import ValidationError
from common.models import Job, JobCost, JobStage
from common.money import format_money, format_share, validate_money
from common.services.jobs import job_cancel, job_set_budget
from common.services.recovery import job_fail_worker_lost, job_requeue

__all__ = ["JobAdmin", "JobCostAdmin", "export_jobs_csv"]

CSV_HEADER = (
    "job_id",
    "user_id",
    "status",
    "current_stage",
    "progress",
    "total_cost",
    "budget_limit",
    "created_at",
    "completed_at",
    "cost_id",
    "cost_stage_name",
    "cost_api_name",
    "cost",
    "cost_quantity",
    "cost_unit",
    "cost_unit_price",
    "cost_timestamp",
    "cost_idempotency_key",
)


def _text(value: Any) -> str:
    """CSV cell: ``None`` as empty, Decimal as its exact string, datetimes in ISO 8601."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def export_jobs_csv(jobs: Iterable[Job]) -> str:
    """Return CSV text: one row per ledger row of each job (a job without costs gets one row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for job in jobs:
        head = [
            job.id,
            job.user_id,
            job.status,
            job.current_stage,
            job.progress,
            job.total_cost,
            job.budget_limit,
            job.created_at,
            job.completed_at,
        ]
        costs = list(job.costs.all())
        if not costs:
            writer.writerow([_text(v) for v in head] + [""] * 9)
        for cost in costs:
            tail = [
                cost.id,
                cost.stage_name,
                cost.api_name,
                cost.cost,
                cost.quantity,
                cost.unit,
                cost.unit_price,
                cost.timestamp,
                cost.idempotency_key,
            ]
            writer.writerow([_text(v) for v in head + tail])
    return buffer.getvalue()


class _ReadOnlyInline(admin.TabularInline):
    """An inline nobody may add to, change or delete from: the rows are written by the services only."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        """Rows are created by the lifecycle service or the cost tracker, not by hand."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        """Read-only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        """Never deleted by hand."""
        return False


class JobStageInline(_ReadOnlyInline):
    """A job's stages, read-only: stages change only through the lifecycle service."""

    model = JobStage
    ordering = ("started_at",)
    fields = (
        "stage_name",
        "status",
        "attempts",
        "started_at",
        "completed_at",
        "duration_seconds",
        "cost",
        "lease_owner",
        "lease_expires_at",
        "metadata",
    )
    readonly_fields = fields


class JobCostInline(_ReadOnlyInline):
    """A job's ledger rows, read-only for everybody (the ledger is append-only)."""

    model = JobCost
    ordering = ("timestamp",)
    fields = ("timestamp", "stage_name", "api_name", "cost", "quantity", "unit", "unit_price", "idempotency_key")
    readonly_fields = fields


class JobBudgetForm(forms.ModelForm):
    """The job change form: the budget is checked with the cost tracker's money rules."""

    class Meta:
        model = Job
        fields = ("budget_limit",)

    def clean_budget_limit(self) -> Decimal:
        """A non-negative amount with at most 6 decimal places and 8 integer digits."""
        value = self.cleaned_data["budget_limit"]
        try:
            return validate_money(value, name="budget_limit")
        except ValidationError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs: status, stage, progress and spend against budget; cancel or export the selection."""

    list_display = (
        "id",
        "status",
        "current_stage",
        "progress",
        "total_cost",
        "budget_limit",
        "budget_used",
        "created_at",
    )
    list_filter = ("status", ("current_stage", admin.AllValuesFieldListFilter), "created_at")
    search_fields = ("=id", "=user_id", "user_prompt")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 100
    show_full_result_count = False
    form = JobBudgetForm
    actions = ("cancel_jobs", "export_csv", "requeue_stale_jobs", "fail_stale_jobs")
    inlines = (JobStageInline, JobCostInline)
    fieldsets = (
        (None, {"fields": ("id", "user_id", "status", "current_stage", "progress", "estimated_remaining")}),
        ("Request", {"fields": ("audio_url", "user_prompt")}),
        ("Money", {"fields": ("total_cost", "reserved_cost", "budget_limit", "budget_used")}),
        ("Outcome", {"fields": ("video_url", "error_code", "error_message")}),
        ("Times", {"fields": ("created_at", "updated_at", "completed_at")}),
    )
    # Everything but the budget is written by the pipeline; raising a budget is an operator's call.
    readonly_fields = (
        "id",
        "user_id",
        "status",
        "current_stage",
        "progress",
        "estimated_remaining",
        "audio_url",
        "user_prompt",
        "total_cost",
        "reserved_cost",
        "budget_used",
        "video_url",
        "error_code",
        "error_message",
        "created_at",
        "updated_at",
        "completed_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Jobs are created by the API through ``job_create``."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        """A job's ledger must outlive it, so jobs are cancelled, never deleted, here."""
        return False

    def save_model(self, request: HttpRequest, obj: Job, form: forms.ModelForm, change: bool) -> None:
        """Change the budget through ``job_set_budget``; never save the row the form was built from.

        ``ModelAdmin.save_model`` would write every column of the row loaded at the start of the
        request, erasing spend charged since then (issue 10 item 2).
        """
        old, new = _budget_change(form)
        if not change or new is None or new == old:
            return
        saved = job_set_budget(job_id=obj.pk, budget_limit=new, changed_by=_who(request))
        for field in ("budget_limit", "total_cost", "reserved_cost", "updated_at"):
            setattr(obj, field, getattr(saved, field))

    def construct_change_message(
        self, request: HttpRequest, form: forms.Form, formsets: Iterable[BaseFormSet], add: bool = False
    ) -> list[dict[str, dict[str, list[str]]]]:
        """The history line for a budget change names both figures ("Changed budget limit from 5.00 to 8.00.")."""
        if add:
            return super().construct_change_message(request, form, formsets, add)
        old, new = _budget_change(form)
        if new is None or new == old:
            return []  # "No fields changed."
        return [{"changed": {"fields": [f"budget limit from {format_money(old)} to {format_money(new)}"]}}]

    @admin.display(description="Budget used")
    def budget_used(self, obj: Job) -> str:
        """Share of the budget spent, as a percentage ("-" for a zero budget)."""
        return format_share(obj.budget_used_share)

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Cancel each selected job through the lifecycle service; finished jobs are skipped."""
        cancelled = skipped = 0
        for job_id in queryset.values_list("id", flat=True):
            try:
                job_cancel(job_id=job_id, reason=f"Cancelled in the admin by {request.user}")
            except ValidationError:
                skipped += 1
            else:
                cancelled += 1
        level = messages.SUCCESS if cancelled else messages.WARNING
        self.message_user(
            request,
            f"Cancelled {cancelled} job(s); skipped {skipped} already completed, failed or cancelled.",
            level,
        )

    def _recover(self, request: HttpRequest, queryset: QuerySet[Job], recover: Callable[..., Job], done: str) -> None:
        """Run a recovery service on each selected job; jobs that are not stale are skipped."""
        recovered = skipped = 0
        for job_id in queryset.values_list("id", flat=True):
            try:
                recover(job_id=job_id)
            except ValidationError:
                skipped += 1
            else:
                recovered += 1
        level = messages.SUCCESS if recovered else messages.WARNING
        self.message_user(
            request,
            f"{done} {recovered} stale job(s); skipped {skipped} that are not stale (finished, or their worker is"
            " alive).",
            level,
        )

    @admin.action(description="Requeue selected stale jobs (lease expired or queued too long)", permissions=["change"])
    def requeue_stale_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Return each selected stale job to the queue through ``job_requeue`` (running stages back to pending)."""
        self._recover(request, queryset, job_requeue, "Requeued")

    @admin.action(description="Fail selected stale jobs (WORKER_LOST)", permissions=["change"])
    def fail_stale_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Fail each selected stale job with code ``WORKER_LOST`` through ``job_fail_worker_lost``."""
        self._recover(request, queryset, job_fail_worker_lost, "Failed")

    @admin.action(description="Export selected jobs with their costs as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse:
        """Download the selected jobs and their ledger rows as CSV (amounts as exact decimals)."""
        jobs = queryset.order_by("-created_at").prefetch_related(
            Prefetch("costs", queryset=JobCost.objects.order_by("timestamp", "id"))
        )
        response = HttpResponse(export_jobs_csv(jobs), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="jobs-{stamp}.csv"'
        return response


def _budget_change(form: forms.BaseForm) -> tuple[Decimal | None, Decimal | None]:
    """The budget as loaded for this request and as submitted (compared as amounts, not as text)."""
    return form.initial.get("budget_limit"), form.cleaned_data.get("budget_limit")


def _who(request: HttpRequest) -> str:
    """The operator's name for the budget log (the admin history keeps the user id as well)."""
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and hasattr(user, "get_username") else ""
    return f"admin:{name or '?'}"


@admin.register(JobCost)
class JobCostAdmin(admin.ModelAdmin):
    """The cost ledger: view only, for everybody (superusers included)."""

    list_display = ("timestamp", "job_id", "stage_name", "api_name", "cost", "quantity", "unit", "unit_price")
    list_filter = ("stage_name", "api_name", "timestamp")
    search_fields = ("=job__id", "=idempotency_key", "api_name")
    date_hierarchy = "timestamp"
    ordering = ("-timestamp",)
    list_per_page = 100
    show_full_result_count = False
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        """The ledger is append-only and written by the cost tracker only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobCost | None = None) -> bool:
        """Ledger rows are never changed."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JobCost | None = None) -> bool:
        """Ledger rows are never deleted."""
        return False
