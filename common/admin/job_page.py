"""The job page's read-only blocks: the money summary, the latest ledger rows, a stage's notes.

The money block reads :func:`common.selectors.job_cost_summary` (spent, open holds, budget,
remaining, the ledger by stage and by API); the ledger block shows the latest
:data:`LEDGER_ROWS_SHOWN` rows and links to the ledger changelist filtered to the job for the rest.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from common.admin.budget import job_state
from common.admin.display import exact_dollars, share_bar
from common.models import Job, JobCost, JobStage
from common.selectors import job_cost_summary

__all__ = ["LEDGER_ROWS_SHOWN", "ledger_url", "money_block", "recent_charges", "stage_notes"]

LEDGER_ROWS_SHOWN = 5


def ledger_url(job_id: object) -> str:
    """The ledger changelist filtered to one job."""
    return f"{reverse('admin:common_jobcost_changelist')}?job={job_id}"


def _amount_rows(amounts: dict[str, Any], caption: str, key: str) -> SafeString:
    body = format_html_join(
        "", '<tr><td>{}</td><td class="num">{}</td></tr>', ((name, exact_dollars(v)) for name, v in amounts.items())
    )
    if not amounts:
        body = format_html('<tr><td colspan="2">{}</td></tr>', "no charges yet")
    return format_html(
        '<table class="vg-table"><caption>{}</caption><thead><tr><th scope="col">{}</th>'
        '<th scope="col" class="num">spent</th></tr></thead><tbody>{}</tbody></table>',
        caption,
        key,
        body,
    )


def money_block(job: Job) -> SafeString:
    """Spent, open holds, budget, remaining and share used (exact amounts), and the spend by stage and API."""
    summary = job_cost_summary(job_id=job.pk)
    figures = (
        ("Spent", exact_dollars(summary.total)),
        ("Reserved (open holds)", exact_dollars(summary.reserved)),
        ("Budget", exact_dollars(summary.budget)),
        ("Remaining", exact_dollars(summary.remaining)),
    )
    items = format_html_join("", "<li>{}<b>{}</b></li>", figures)
    return format_html(
        '<div class="vg-money-block"><ul class="vg-figures">{}<li>Budget used<b>{}</b></li></ul>'
        '<div class="vg-tables">{}{}</div></div>',
        items,
        share_bar(summary.share_used, job_state(job)),
        _amount_rows(summary.by_stage, "Spend by stage", "stage"),
        _amount_rows(summary.by_api, "Spend by API", "API"),
    )


def recent_charges(job: Job) -> SafeString:
    """The latest ledger rows (at most :data:`LEDGER_ROWS_SHOWN`) and a link to all of them in the ledger."""
    rows = list(JobCost.objects.filter(job_id=job.pk).order_by("-timestamp", "-id")[: LEDGER_ROWS_SHOWN + 1])
    if not rows:
        return format_html("{}", "No charges yet.")
    shown = rows[:LEDGER_ROWS_SHOWN]
    body = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td></tr>',
        (
            (
                reverse("admin:common_jobcost_change", args=[row.pk]),
                row.timestamp.isoformat(timespec="seconds"),
                row.stage_name,
                row.api_name,
                exact_dollars(row.cost),
                row.idempotency_key or "",
            )
            for row in shown
        ),
    )
    more = (
        f"Show all of this job's charges in the ledger ({len(shown)} latest shown above)"
        if len(rows) > LEDGER_ROWS_SHOWN
        else "Open these charges in the ledger"
    )
    return format_html(
        '<table class="vg-table vg-ledger"><thead><tr><th scope="col">recorded</th><th scope="col">stage</th>'
        '<th scope="col">API</th><th scope="col" class="num">cost</th><th scope="col">idempotency key</th></tr>'
        '</thead><tbody>{}</tbody></table><p><a class="vg-ledger-link" href="{}">{}</a></p>',
        body,
        ledger_url(job.pk),
        more,
    )


def _details(details: object) -> SafeString:
    if not isinstance(details, dict) or not details:
        return format_html("{}", "")
    return format_html(
        '<dl class="vg-error-details">{}</dl>',
        format_html_join("", "<dt>{}</dt><dd>{}</dd>", ((k, _plain(v)) for k, v in details.items())),
    )


def _plain(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def stage_notes(stage: JobStage) -> SafeString:
    """A stage's metadata for a person: its error as code, message and details; other keys as ``key: value``."""
    metadata = dict(stage.metadata or {})
    error = metadata.pop("error", None)
    parts: list[SafeString] = []
    if isinstance(error, dict):
        parts.append(
            format_html(
                '<dl class="vg-error"><dt>Error</dt><dd><strong>{}</strong>: {}</dd>{}</dl>',
                error.get("code") or "ERROR",
                error.get("message") or "",
                _details(error.get("details")),
            )
        )
    elif error is not None:
        parts.append(format_html('<dl class="vg-error"><dt>Error</dt><dd>{}</dd></dl>', _plain(error)))
    if metadata:
        parts.append(format_html("{}", "; ".join(f"{k}: {_plain(v)}" for k, v in metadata.items())))
    return format_html("{}", "-") if not parts else format_html_join("", "{}", ((p,) for p in parts))
