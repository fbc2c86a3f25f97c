"""Admin for the pipeline's jobs: the changelist an operator scans and the job page.

Jobs change state only through the lifecycle service (``common.services.jobs``),
so the admin shows them read-only apart from the budget, which it changes through
:func:`~common.services.jobs.job_set_budget` (the row locked, only the budget
written, so spend charged while the form was open is kept), and offers a "cancel"
action that calls :func:`~common.services.jobs.job_cancel`. Every changelist column
comes from the listed row itself (the share used is an annotation), so a page of 100
jobs costs the same number of queries as a page of one. Money is shown in dollars and
cents in the list and exactly on the job page and in the CSV export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import admin, messages
from django.db.models import Prefetch, QuerySet
from django.forms.formsets import BaseFormSet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from common.admin.budget import budget_share_expression, job_state
from common.admin.display import CONSOLE_CSS, dollars, moment, share_bar, short_id, wrappable
from common.admin.export import export_jobs_csv
from common.admin.job_page import money_block, recent_charges, stage_notes
from common.budget import STATES, budget_state_expr, near_share
from common.errors import ValidationError
from common.models import Job, JobCost, JobStage
from common.money import format_money, format_share, validate_money
from common.services.jobs import job_cancel, job_set_budget
from common.services.recovery import job_fail_worker_lost, job_requeue

__all__ = ["BudgetListFilter", "JobAdmin", "JobStageInline"]


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
    """A job's stages, read-only: stages change only through the lifecycle service.

    The metadata is shown for a person (:func:`~common.admin.job_page.stage_notes`): a failed
    stage's error as its code, message and details, not as a JSON blob.
    """

    model = JobStage
    ordering = ("started_at",)
    fields = ("stage_name", "status", "attempts", "started", "duration", "spent", "lease", "notes")
    readonly_fields = fields

    @admin.display(description="Started")
    def started(self, stage: JobStage) -> SafeString:
        """When the stage (last) started."""
        return moment(stage.started_at)

    @admin.display(description="Duration")
    def duration(self, stage: JobStage) -> str:
        """Whole seconds from start to end ("-" while it runs)."""
        return "-" if stage.duration_seconds is None else f"{stage.duration_seconds} s"

    @admin.display(description="Cost")
    def spent(self, stage: JobStage) -> str:
        """The stage's cost rolled up from the ledger, exact."""
        return f"${format_money(stage.cost)}"

    @admin.display(description="Lease")
    def lease(self, stage: JobStage) -> SafeString:
        """The worker holding the stage and until when ("-" when none)."""
        if not stage.lease_owner:
            return format_html("{}", "-")
        return format_html("{} until {}", stage.lease_owner, moment(stage.lease_expires_at))

    @admin.display(description="Notes")
    def notes(self, stage: JobStage) -> SafeString:
        """The stage's metadata, its error spelled out."""
        return stage_notes(stage)


class BudgetListFilter(admin.SimpleListFilter):
    """``ok`` / ``near`` / ``over`` budget (the rule of :mod:`common.budget`; near from the first warning threshold)."""

    title = "budget"
    parameter_name = "budget"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        """The three states, the threshold named."""
        mark = format_share(near_share())
        return [
            ("ok", f"ok (under {mark})"),
            ("near", f"near (at or above {mark})"),
            ("over", "over (or stopped by it)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        """The jobs in the chosen state (all of them when none is chosen)."""
        value = self.value()
        if value in STATES:
            return queryset.annotate(budget_state=budget_state_expr()).filter(budget_state=value)
        return queryset


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
        "job",
        "user",
        "status",
        "stage",
        "progress_shown",
        "spent",
        "budget",
        "budget_used",
        "error",
        "created",
    )
    list_display_links = ("job",)
    list_filter = ("status", BudgetListFilter, ("current_stage", admin.AllValuesFieldListFilter), "created_at")
    search_fields = ("=id", "=user_id", "user_prompt")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 100
    show_full_result_count = False
    form = JobBudgetForm
    actions = ("cancel_jobs", "export_csv", "requeue_stale_jobs", "fail_stale_jobs")
    inlines = (JobStageInline,)
    fieldsets = (
        (None, {"fields": ("id", "user_id", "status", "current_stage", "progress", "estimated_remaining")}),
        ("Outcome", {"fields": ("video_url", "error_code", "error_message")}),
        ("Money", {"fields": ("money", "budget_limit")}),
        ("Ledger", {"fields": ("charges",)}),
        ("Request", {"fields": ("audio_url", "user_prompt")}),
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
        "money",
        "charges",
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

    class Media:
        css = {"all": (CONSOLE_CSS,)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        """The jobs with their share of the budget used, to sort by it."""
        return super().get_queryset(request).annotate(budget_share=budget_share_expression())

    @admin.display(description="Job", ordering="id")
    def job(self, obj: Job) -> SafeString:
        """The job's short id (the full id in the tooltip), the link to its page."""
        return short_id(obj.id)

    @admin.display(description="User", ordering="user_id")
    def user(self, obj: Job) -> SafeString:
        """The user's short id, linking to the changelist of that user's jobs."""
        return format_html('<a href="?user_id={}">{}</a>', obj.user_id, short_id(obj.user_id))

    @admin.display(description="Stage", ordering="current_stage")
    def stage(self, obj: Job) -> SafeString:
        """The stage the job is in (or stopped in), allowed to wrap after its underscores."""
        return wrappable(obj.current_stage or "-")

    @admin.display(description="Error", ordering="error_code")
    def error(self, obj: Job) -> SafeString:
        """The error code of a failed or cancelled job, its message in the tooltip."""
        if not obj.error_code:
            return format_html("{}", "-")
        return format_html(
            '<code class="vg-code" title="{}">{}</code>', obj.error_message or "", wrappable(obj.error_code)
        )

    @admin.display(description="Progress", ordering="progress")
    def progress_shown(self, obj: Job) -> str:
        """Progress in percent."""
        return f"{obj.progress}%"

    @admin.display(description="Spent", ordering="total_cost")
    def spent(self, obj: Job) -> SafeString:
        """What the job has spent, in dollars and cents (exact in the tooltip)."""
        return dollars(obj.total_cost)

    @admin.display(description="Budget", ordering="budget_limit")
    def budget(self, obj: Job) -> SafeString:
        """The job's budget, in dollars and cents."""
        return dollars(obj.budget_limit)

    @admin.display(description="Budget used", ordering="budget_share")
    def budget_used(self, obj: Job) -> SafeString:
        """Share of the budget spent as a bar coloured ok/near/over, with the percentage ("-" for a zero budget)."""
        return share_bar(obj.budget_used_share, job_state(obj))

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj: Job) -> SafeString:
        """When the job was created, compact."""
        return moment(obj.created_at)

    @admin.display(description="Money")
    def money(self, obj: Job) -> SafeString:
        """Spent, open holds, budget, remaining, share used, and spend by stage and by API (exact amounts)."""
        return money_block(obj)

    @admin.display(description="Latest charges")
    def charges(self, obj: Job) -> SafeString:
        """The latest ledger rows and a link to all of them in the ledger."""
        return recent_charges(obj)

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Cancel each selected job through the lifecycle service; finished jobs are skipped."""
        reason = f"Cancelled in the admin by {request.user}"
        done, skipped = self._each(queryset, lambda job_id: job_cancel(job_id=job_id, reason=reason))
        self._report(
            request, done, f"Cancelled {done} job(s); skipped {skipped} already completed, failed or cancelled."
        )

    def _recover(self, request: HttpRequest, queryset: QuerySet[Job], recover: Callable[..., Job], done: str) -> None:
        """Run a recovery service on each selected job; jobs that are not stale are skipped."""
        recovered, skipped = self._each(queryset, lambda job_id: recover(job_id=job_id))
        self._report(
            request,
            recovered,
            f"{done} {recovered} stale job(s); skipped {skipped} that are not stale (finished, or their worker is"
            " alive).",
        )

    @staticmethod
    def _each(queryset: QuerySet[Job], act: Callable[[UUID], object]) -> tuple[int, int]:
        """Apply a service to each selected job: (how many it took, how many it refused with ValidationError)."""
        done = skipped = 0
        for job_id in queryset.values_list("id", flat=True):
            try:
                act(job_id)
            except ValidationError:
                skipped += 1
            else:
                done += 1
        return done, skipped

    def _report(self, request: HttpRequest, done: int, message: str) -> None:
        self.message_user(request, message, messages.SUCCESS if done else messages.WARNING)

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
