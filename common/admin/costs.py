"""Admin for the cost ledger: view only, for everybody (superusers included).

Each row links to its job; the sum of the rows the filters select is shown above the list (one
aggregate query over the changelist's own queryset, whatever the number of rows); the detail page
shows every field, the timestamp included, with exact amounts.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from common.admin.display import CONSOLE_CSS, dollars, exact_dollars, moment, short_id
from common.models import JobCost
from common.money import format_dollars, format_money, money_from_sum, money_sum

__all__ = ["JobCostAdmin", "ledger_sum"]


def ledger_sum(changelist: ChangeList) -> dict[str, Any]:
    """The count and exact sum of the rows a ledger changelist's filters and search select (one query)."""
    totals = changelist.queryset.order_by().aggregate(rows=Count("id"), total=money_sum("cost"))
    total = money_from_sum(totals["total"])
    return {"rows": totals["rows"], "total": total, "dollars": format_dollars(total), "exact": format_money(total)}


@admin.register(JobCost)
class JobCostAdmin(admin.ModelAdmin):
    """The cost ledger: each row links to its job, the filtered rows' sum above the list; view only."""

    list_display = ("when", "job_link", "stage_name", "api_name", "amount", "quantity", "unit", "unit_price_shown")
    list_display_links = ("when",)
    list_filter = ("stage_name", "api_name", "timestamp", "job__status")
    search_fields = ("=job__id", "=idempotency_key", "api_name")
    date_hierarchy = "timestamp"
    ordering = ("-timestamp",)
    list_per_page = 100
    list_select_related = False
    show_full_result_count = False
    actions = None
    fields = (
        "id",
        "job_link",
        "timestamp",
        "stage_name",
        "api_name",
        "cost_exact",
        "quantity",
        "unit",
        "unit_price_exact",
        "idempotency_key",
    )
    readonly_fields = fields

    class Media:
        css = {"all": (CONSOLE_CSS,)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        """The ledger is append-only and written by the cost tracker only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobCost | None = None) -> bool:
        """Ledger rows are never changed."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JobCost | None = None) -> bool:
        """Ledger rows are never deleted."""
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The changelist, with the sum of the rows its filters select (``ledger_sum`` in the context)."""
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data and "cl" in response.context_data:
            response.context_data["ledger_sum"] = ledger_sum(response.context_data["cl"])
        return response

    @admin.display(description="Recorded", ordering="timestamp")
    def when(self, obj: JobCost) -> SafeString:
        """When the charge was recorded (the link to the row)."""
        return moment(obj.timestamp)

    @admin.display(description="Job", ordering="job_id")
    def job_link(self, obj: JobCost) -> SafeString:
        """The job's short id, linking to the job's page."""
        return format_html(
            '<a class="vg-job-link" href="{}">{}</a>',
            reverse("admin:common_job_change", args=[obj.job_id]),
            short_id(obj.job_id),
        )

    @admin.display(description="Cost", ordering="cost")
    def amount(self, obj: JobCost) -> SafeString:
        """The charge in dollars and cents (exact in the tooltip and on the row's page)."""
        return dollars(obj.cost)

    @admin.display(description="Unit price", ordering="unit_price")
    def unit_price_shown(self, obj: JobCost) -> str:
        """The unit price, exact: prices are fractions of a cent (0.0055 per image), cents would read 0.01."""
        return "-" if obj.unit_price is None else exact_dollars(obj.unit_price)

    @admin.display(description="Cost")
    def cost_exact(self, obj: JobCost) -> str:
        """The charge, exact."""
        return exact_dollars(obj.cost)

    @admin.display(description="Unit price")
    def unit_price_exact(self, obj: JobCost) -> str:
        """The unit price, exact."""
        return "-" if obj.unit_price is None else exact_dollars(obj.unit_price)
