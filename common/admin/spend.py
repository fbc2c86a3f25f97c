"""The spend page at ``/admin/spend/``: what was spent, on what, and which jobs are near or over budget.

Staff only (the admin's login), and the user must be allowed to view jobs and the ledger. Every
figure comes from the shared spend selectors (:mod:`common.selectors.spend`, the queries
``budget_report`` runs too), one query each, so the page costs the same number of queries whatever
the number of jobs and ledger rows:

* totals for today, the last 7 and 30 days (UTC calendar days, today included, so they are sums of
  the per-day chart's bars) and all time, and the open holds (reserved) now;
* charts drawn on the server as inline SVG (:mod:`common.admin.charts`): spend per day over the last
  30 days, and spend by stage and by API in the chosen period;
* the jobs near or over their budget (created in the period), and the top jobs and users by spend in
  the period, each linking to the job's page or the filtered jobs changelist.

The filters (a GET form, no script): the period (today, 7 or 30 days, all time) and the jobs' status.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from common.admin.charts import Bar, column_chart, row_chart
from common.admin.display import CONSOLE_CSS
from common.budget import near_share
from common.models import JobStatus
from common.money import format_dollars, format_money, format_share
from common.selectors.spend import (
    DaySpend,
    HoldsTotal,
    JobBudget,
    JobSpendRow,
    SpendRow,
    SpendTotals,
    jobs_budget_states,
    spend_by,
    spend_holds,
    spend_per_day,
    spend_top_jobs,
    spend_top_users,
    spend_totals,
)

__all__ = ["PERIODS", "SpendFilterForm", "SpendPage", "spend_page", "spend_view"]

# period -> (label, UTC days back including today; None = all time)
PERIODS: dict[str, tuple[str, int | None]] = {
    "today": ("today", 1),
    "7d": ("the last 7 days", 7),
    "30d": ("the last 30 days", 30),
    "all": ("all time", None),
}
CREATED = {"today": "created today", "7d": "created in the last 7 days", "30d": "created in the last 30 days",
           "all": "created at any time"}  # fmt: skip
CHART_DAYS = 30
TOP = 10
BUDGET_LIST = 20
REQUIRED_PERMISSIONS = ("common.view_job", "common.view_jobcost")


class SpendFilterForm(forms.Form):
    """The page's filters: ``period`` (default the last 30 days) and ``status`` (default every status)."""

    period = forms.ChoiceField(
        choices=[(key, label.capitalize()) for key, (label, _) in PERIODS.items()], required=False, initial="30d"
    )
    status = forms.ChoiceField(choices=[("", "Any status"), *JobStatus.choices], required=False)

    def chosen(self) -> tuple[str, list[str]]:
        """The period key and the statuses (empty: all) of a valid form."""
        period = self.cleaned_data.get("period") or "30d"
        status = self.cleaned_data.get("status") or ""
        return period, [status] if status else []


@dataclasses.dataclass(frozen=True)
class SpendPage:
    """Every figure of the page, read through the spend selectors."""

    period: str
    statuses: list[str]
    since: dt.datetime | None
    today: SpendTotals
    week: SpendTotals
    month: SpendTotals
    all_time: SpendTotals
    holds: HoldsTotal
    per_day: list[DaySpend]
    by_stage: list[SpendRow]
    by_api: list[SpendRow]
    top_jobs: list[JobSpendRow]
    top_users: list[SpendRow]
    budget_jobs: list[JobBudget]


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _since(today: dt.date, period: str) -> dt.datetime | None:
    """The start of ``period`` (UTC midnight ``days - 1`` days before ``today``), ``None`` for all time."""
    days = PERIODS[period][1]
    return None if days is None else _midnight(today - dt.timedelta(days=days - 1))


def spend_page(*, period: str = "30d", statuses: list[str] | None = None, now: dt.datetime | None = None) -> SpendPage:
    """Read the page's figures: eleven selector calls of one query each, whatever the data's size."""
    chosen = list(statuses or [])
    moment = now or timezone.now()
    today = moment.astimezone(dt.UTC).date()
    since = _since(today, period)
    return SpendPage(
        period=period,
        statuses=chosen,
        since=since,
        today=spend_totals(since=_since(today, "today"), statuses=chosen),
        week=spend_totals(since=_since(today, "7d"), statuses=chosen),
        month=spend_totals(since=_since(today, "30d"), statuses=chosen),
        all_time=spend_totals(statuses=chosen),
        holds=spend_holds(now=moment, statuses=chosen),
        per_day=spend_per_day(days=CHART_DAYS, end=today, statuses=chosen),
        by_stage=spend_by(by="stage", since=since, statuses=chosen),
        by_api=spend_by(by="api", since=since, statuses=chosen),
        top_jobs=spend_top_jobs(limit=TOP, since=since, statuses=chosen),
        top_users=spend_top_users(limit=TOP, since=since, statuses=chosen),
        budget_jobs=jobs_budget_states(states=("near", "over"), limit=BUDGET_LIST, since=since, statuses=chosen),
    )


def _jobs_url(**params: str) -> str:
    base = reverse("admin:common_job_changelist")
    return f"{base}?{urlencode(params)}" if params else base


def _ledger_url(since: dt.datetime | None, statuses: list[str]) -> str:
    """The ledger changelist showing the rows a figure sums: recorded since ``since``, of jobs in the status."""
    query = {"timestamp__gte": since.isoformat()} if since is not None else {}
    if statuses:
        query["job__status__exact"] = statuses[0]
    base = reverse("admin:common_jobcost_changelist")
    return f"{base}?{urlencode(query)}" if query else base


def _job_row(job: JobBudget) -> dict[str, Any]:
    return {
        "id": str(job.job_id),
        "short": str(job.job_id)[:8],
        "url": reverse("admin:common_job_change", args=[job.job_id]),
        "user": str(job.user_id),
        "user_short": str(job.user_id)[:8],
        "user_url": _jobs_url(user_id=str(job.user_id)),
        "status": job.status,
        "error_code": job.error_code or "",
        "spent": format_dollars(job.spent),
        "spent_exact": format_money(job.spent),
        "reserved": format_dollars(job.reserved),
        "budget": format_dollars(job.budget),
        "share": format_share(job.share_used),
        "state": job.state,
    }


def _context(page: SpendPage) -> dict[str, Any]:
    label = PERIODS[page.period][0]
    status_query = {"status__exact": page.statuses[0]} if page.statuses else {}
    totals = [
        ("today", "Today", page.today),
        ("7d", "Last 7 days", page.week),
        ("30d", "Last 30 days", page.month),
        ("all", "All time", page.all_time),
    ]
    today = page.per_day[-1].day
    return {
        "period_label": label,
        "created_label": CREATED[page.period],
        "totals": [
            {
                "key": key,
                "label": text,
                "spent": format_dollars(t.spent),
                "exact": format_money(t.spent),
                "charges": t.charges,
                "jobs": t.jobs,
                "url": _ledger_url(_since(today, key), page.statuses),
            }
            for key, text, t in totals
        ],
        "holds": {
            "reserved": format_dollars(page.holds.reserved),
            "exact": format_money(page.holds.reserved),
            "holds": page.holds.holds,
            "jobs": page.holds.jobs,
        },
        "per_day_chart": column_chart(
            "chart-day",
            f"Spend per day, the last {CHART_DAYS} days (UTC)",
            [Bar(d.day.isoformat(), d.spent, d.day.strftime("%b %d")) for d in page.per_day],
        ),
        "stage_chart": row_chart(
            "chart-stage", f"Spend by stage, {label}", [Bar(r.key, r.spent) for r in page.by_stage], key="stage"
        ),
        "api_chart": row_chart(
            "chart-api", f"Spend by API, {label}", [Bar(r.key, r.spent) for r in page.by_api], key="API"
        ),
        "budget_jobs": [_job_row(j) for j in page.budget_jobs],
        "near_url": _jobs_url(budget="near", **status_query),
        "over_url": _jobs_url(budget="over", **status_query),
        "near_share": format_share(near_share()),
        "top_jobs": [
            {**_job_row(r.job), "period_spent": format_dollars(r.spent), "charges": r.charges} for r in page.top_jobs
        ],
        "top_users": [
            {
                "user": r.key,
                "short": r.key[:8],
                "url": _jobs_url(user_id=r.key, **status_query),
                "spent": format_dollars(r.spent),
                "exact": format_money(r.spent),
                "charges": r.charges,
            }
            for r in page.top_users
        ],
        "ledger_url": _ledger_url(page.since, page.statuses),
    }


def spend_view(request: HttpRequest) -> HttpResponse:
    """``GET /admin/spend/`` (``admin:spend``, wrapped in ``admin.site.admin_view``: staff sign-in required).

    A bad filter value answers 400 with the form's message and no figures.
    """
    if not all(request.user.has_perm(p) for p in REQUIRED_PERMISSIONS):
        raise PermissionDenied("viewing spend needs the permissions to view jobs and the cost ledger")
    form = SpendFilterForm(request.GET or None)
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Spend",
        "form": form,
        "console_css": CONSOLE_CSS,
    }
    if request.GET and not form.is_valid():
        return render(request, "common/spend.html", context, status=400)
    period, statuses = form.chosen() if request.GET else ("30d", [])
    context.update(_context(spend_page(period=period, statuses=statuses)))
    return render(request, "common/spend.html", context)
