"""``manage.py budget_report``: spend per job, and grouped by stage, by API and by day.

Aggregates run in SQL and rows are streamed (``QuerySet.iterator``), so the
report over a million ledger rows needs no more memory than over a thousand.
Amounts are exact decimal strings in every format.

Windows: ``--since``/``--until`` select jobs *created* in the window for the
per-job section, and ledger rows *recorded* in the window for the grouped
sections (half-open: ``since <= t < until``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from common.conf import app_settings
from common.models import Job, JobStatus
from common.money import format_money, format_share, money_from_sum, share_of
from common.selectors.costs import jobs_reserved
from common.selectors.spend import JobScope, spend_by, spend_by_day

FORMATS = ("table", "csv", "json")
SECTIONS = ("jobs", "stage", "api", "day")
CSV_COLUMNS = (
    "section",
    "key",
    "user_id",
    "status",
    "charges",
    "spent",
    "reserved",
    "budget",
    "share_used",
    "budget_status",
)
CHUNK = 5000


def parse_moment(value: str, option: str) -> dt.datetime:
    """Parse a date (midnight UTC) or an ISO datetime (naive = UTC) for ``option``."""
    problem = f"{option} {value!r} is not a date (YYYY-MM-DD) or an ISO datetime"
    try:
        moment = parse_datetime(value)
        day = parse_date(value) if moment is None else None
    except ValueError:
        raise CommandError(problem) from None
    if moment is None:
        if day is None:
            raise CommandError(problem)
        moment = dt.datetime.combine(day, dt.time.min)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def parse_fraction(value: str) -> Decimal:
    """Parse ``--near-budget``: a share of the budget, e.g. 0.8."""
    try:
        fraction = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--near-budget {value!r} is not a number (give a share such as 0.8)") from None
    if not fraction.is_finite() or fraction < 0 or fraction > 10:
        raise CommandError(f"--near-budget {value!r} must be a share between 0 and 10 (e.g. 0.8 = 80 %)")
    return fraction


def parse_uuid(value: str, option: str) -> uuid.UUID:
    """Parse a UUID option."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"{option} {value!r} is not a valid UUID") from None


@dataclass
class Filters:
    """The report's filters, already parsed."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    jobs: list[uuid.UUID] = field(default_factory=list)
    user: uuid.UUID | None = None
    statuses: list[str] = field(default_factory=list)
    over_budget: bool = False
    near_budget: Decimal | None = None

    def job_q(self, prefix: str = "") -> Q:
        """The job filters (not the window) as a ``Q`` on ``prefix`` (``""`` or ``"job__"``)."""
        q = Q()
        if self.jobs:
            q &= Q(**{f"{prefix}id__in" if prefix == "" else "job_id__in": self.jobs})
        if self.user is not None:
            q &= Q(**{f"{prefix}user_id": self.user})
        if self.statuses:
            q &= Q(**{f"{prefix}status__in": self.statuses})
        if self.over_budget:
            q &= Q(**{f"{prefix}total_cost__gt": F(f"{prefix}budget_limit")})
        if self.near_budget is not None:
            q &= Q(**{f"{prefix}total_cost__gte": F(f"{prefix}budget_limit") * Value(self.near_budget)})
        return q

    def scope(self) -> JobScope:
        """The job filters for the spend selectors."""
        return JobScope(
            job_ids=tuple(self.jobs), user_id=self.user, over_budget=self.over_budget, min_share=self.near_budget
        )

    def describe(self) -> dict[str, Any]:
        """The filters as JSON-friendly values."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "job": [str(j) for j in self.jobs],
            "user": str(self.user) if self.user else None,
            "status": self.statuses,
            "over_budget": self.over_budget,
            "near_budget": str(self.near_budget) if self.near_budget is not None else None,
        }


@dataclass
class Totals:
    """Running totals of the per-job section."""

    jobs: int = 0
    spent: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    budget: Decimal = Decimal(0)
    over: int = 0
    near: int = 0


def job_rows(filters: Filters, near_share: Decimal, totals: Totals) -> Iterator[dict[str, Any]]:
    """Stream one dict per job (spent, reserved, budget, share used, status), updating ``totals``."""
    # The open holds per job (the selector's one definition of reserved), read once: holds are few.
    held_by_job = {str(job_id): amount for job_id, amount in jobs_reserved().items()}
    nothing_held = money_from_sum(None)
    jobs: QuerySet[Job] = Job.objects.filter(filters.job_q())
    if filters.since is not None:
        jobs = jobs.filter(created_at__gte=filters.since)
    if filters.until is not None:
        jobs = jobs.filter(created_at__lt=filters.until)
    # Ids as text from the database: cheaper than building and printing 100,000 UUID objects.
    columns = ["id_text", "user_text", "status", "total_cost", "budget_limit"]
    rows = (
        jobs.annotate(
            id_text=Cast("id", output_field=TextField()),
            user_text=Cast("user_id", output_field=TextField()),
        )
        .order_by("created_at", "id")
        .values_list(*columns)
    )
    near_marks: dict[Decimal, Decimal] = {}  # budget -> near_share * budget (budgets repeat a lot)
    # PostgreSQL prints UUIDs canonically; SQLite stores 32 hex digits.
    canonical = _uuid_text if connection.vendor != "postgresql" else str
    # Running totals in locals (this loop runs once per job), stored in ``totals`` as it goes.
    spent_sum = reserved_sum = budget_sum = Decimal(0)
    count = over = near = 0
    try:
        for raw_id, raw_user, status, spent, budget in _stream(rows):
            job_id = canonical(raw_id)
            held_amount = held_by_job.get(job_id, nothing_held)
            share = share_of(spent, budget)
            near_mark = near_marks.get(budget)
            if near_mark is None:
                near_mark = near_marks[budget] = near_share * budget
            if spent > budget:
                budget_status = "over"
                over += 1
            elif budget and spent >= near_mark:
                budget_status = "near"
                near += 1
            else:
                budget_status = "ok"
            count += 1
            spent_sum += spent
            reserved_sum += held_amount
            budget_sum += budget
            yield {
                "job_id": job_id,
                "user_id": canonical(raw_user),
                "status": status,
                "spent": spent,
                "reserved": held_amount,
                "budget": budget,
                "share_used": share,
                "budget_status": budget_status,
            }
    finally:
        totals.jobs += count
        totals.spent += spent_sum
        totals.reserved += reserved_sum
        totals.budget += budget_sum
        totals.over += over
        totals.near += near


def _uuid_text(value: str) -> str:
    """The canonical text of a UUID column read as text (SQLite stores 32 hex digits)."""
    return value if len(value) == 36 else str(uuid.UUID(value))


def _stream(rows: QuerySet[Any]) -> Iterator[tuple[Any, ...]]:
    """Stream a ``values_list`` queryset in chunks.

    On PostgreSQL the compiled SQL runs on a server-side cursor and psycopg's own
    values are used as they are (UUID, Decimal and datetime already), skipping
    Django's per-value converters, which would dominate a 50,000-row report.
    """
    if connection.vendor != "postgresql":
        yield from rows.iterator(chunk_size=CHUNK)
        return
    sql, params = rows.query.sql_with_params()
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(CHUNK):
            yield from chunk


def group_rows(filters: Filters, by: str) -> Iterator[dict[str, Any]]:
    """The ledger grouped by ``stage``, ``api`` or ``day``: key, charges, total.

    The spend selectors' queries (:mod:`common.selectors.spend`), shared with the admin's spend page.
    """
    window: dict[str, Any] = {
        "since": filters.since,
        "until": filters.until,
        "statuses": filters.statuses,
        "scope": filters.scope(),
    }
    if by == "day":
        for day in spend_by_day(**window):
            yield {"key": str(day.day), "charges": day.charges, "total": day.spent}
        return
    for row in spend_by(by=by, **window):
        yield {"key": row.key, "charges": row.charges, "total": row.spent}


class _Formatter:
    """``format_money`` with a cache: budgets and reserved amounts repeat across thousands of jobs."""

    def __init__(self) -> None:
        self.cache: dict[Decimal, str] = {}

    def __call__(self, value: Decimal) -> str:
        text = self.cache.get(value)
        if text is None:
            text = format_money(value)
            if len(self.cache) < 10_000:
                self.cache[value] = text
        return text


class Command(BaseCommand):
    """Print spend per job and grouped by stage, API and day, in a table, CSV or JSON."""

    help = (
        "Budget report: per job (spent, reserved, budget, share used, status) and grouped by stage, API and day. "
        "Amounts are exact decimal strings. Exit status 1 with --fail-on-over-budget when a job is over budget."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Filters, format and exit-status options."""
        parser.add_argument("--since", help="from this date/time (jobs created, ledger rows recorded); UTC")
        parser.add_argument("--until", help="before this date/time (exclusive); UTC")
        parser.add_argument("--job", action="append", default=[], help="only this job id (repeatable)")
        parser.add_argument("--user", help="only jobs of this user id")
        parser.add_argument(
            "--status", action="append", default=[], choices=JobStatus.values, help="only jobs in this status"
        )
        parser.add_argument("--over-budget", action="store_true", help="only jobs that spent more than their budget")
        parser.add_argument(
            "--near-budget", metavar="FRACTION", help="only jobs that spent at least FRACTION of their budget"
        )
        parser.add_argument("--format", choices=FORMATS, default="table")
        parser.add_argument(
            "--section",
            action="append",
            choices=SECTIONS,
            default=[],
            help="only these sections (repeatable; default: all)",
        )
        parser.add_argument(
            "--fail-on-over-budget", action="store_true", help="exit with status 1 when any reported job is over"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the filters, stream the report, and set the exit status."""
        filters = Filters(
            since=parse_moment(options["since"], "--since") if options["since"] else None,
            until=parse_moment(options["until"], "--until") if options["until"] else None,
            jobs=[parse_uuid(j, "--job") for j in options["job"]],
            user=parse_uuid(options["user"], "--user") if options["user"] else None,
            statuses=list(options["status"]),
            over_budget=options["over_budget"],
            near_budget=parse_fraction(options["near_budget"]) if options["near_budget"] is not None else None,
        )
        if filters.since and filters.until and filters.since >= filters.until:
            raise CommandError("--since must be before --until")
        sections = tuple(options["section"]) or SECTIONS
        thresholds = [Decimal(t) for t in app_settings.BUDGET_WARNING_THRESHOLDS] or [Decimal("0.8")]
        near_share = filters.near_budget if filters.near_budget is not None else min(thresholds)
        totals = Totals()
        writer = {"table": self._table, "csv": self._csv, "json": self._json}[options["format"]]
        writer(self.stdout, filters, sections, near_share, totals)
        if options["fail_on_over_budget"] and totals.over:
            raise CommandError(f"{totals.over} job(s) over budget", returncode=1)

    # ------------------------------------------------------------------ formats

    def _table(
        self, out: OutputWrapper, filters: Filters, sections: tuple[str, ...], near: Decimal, totals: Totals
    ) -> None:
        money = _Formatter()
        if "jobs" in sections:
            out.write(self.style.MIGRATE_HEADING("Jobs") + "\n")
            header = (
                f"{'job_id':36}  {'status':10}  {'spent':>14}  {'reserved':>12}  {'budget':>12}  {'used':>8}  budget"
            )
            out.write(header + "\n")
            lines: list[str] = []
            for row in job_rows(filters, near, totals):
                flag = row["budget_status"]
                styled = (
                    self.style.ERROR(flag) if flag == "over" else self.style.WARNING(flag) if flag == "near" else flag
                )
                lines.append(
                    f"{row['job_id']:36}  {row['status']:10}  {format_money(row['spent']):>14}  "
                    f"{money(row['reserved']):>12}  {money(row['budget']):>12}  "
                    f"{format_share(row['share_used']):>8}  {styled}\n"
                )
                if len(lines) >= CHUNK:
                    out.write("".join(lines), ending="")
                    lines.clear()
            out.write("".join(lines), ending="")
            out.write(
                f"{totals.jobs} job(s): spent {format_money(totals.spent)}, reserved {format_money(totals.reserved)}, "
                f"{totals.over} over budget, {totals.near} near budget (>= {format_share(near)})\n"
            )
        titles = {"stage": "By stage", "api": "By API", "day": "By day"}
        for by in ("stage", "api", "day"):
            if by not in sections:
                continue
            out.write("\n" + self.style.MIGRATE_HEADING(titles[by]) + "\n")
            out.write(f"{by:24}  {'charges':>9}  {'total':>14}\n")
            charges = 0
            total = Decimal(0)
            for row in group_rows(filters, by):
                charges += row["charges"]
                total += row["total"]
                out.write(f"{row['key']:24}  {row['charges']:>9}  {format_money(row['total']):>14}\n")
            out.write(f"{'total':24}  {charges:>9}  {format_money(total):>14}\n")

    def _csv(
        self, out: OutputWrapper, filters: Filters, sections: tuple[str, ...], near: Decimal, totals: Totals
    ) -> None:
        money = _Formatter()
        # Rows go through a buffer flushed every CHUNK rows: one write per chunk, not per row.
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")

        def flush() -> None:
            out.write(buffer.getvalue(), ending="")
            buffer.seek(0)
            buffer.truncate()

        writer.writerow(CSV_COLUMNS)
        if "jobs" in sections:
            for n, row in enumerate(job_rows(filters, near, totals), 1):
                writer.writerow(
                    (
                        "job",
                        row["job_id"],
                        row["user_id"],
                        row["status"],
                        "",
                        format_money(row["spent"]),
                        money(row["reserved"]),
                        money(row["budget"]),
                        "" if row["share_used"] is None else str(row["share_used"]),
                        row["budget_status"],
                    )
                )
                if n % CHUNK == 0:
                    flush()
        for by in ("stage", "api", "day"):
            if by in sections:
                for row in group_rows(filters, by):
                    writer.writerow(
                        (by, row["key"], "", "", row["charges"], format_money(row["total"]), "", "", "", "")
                    )
        flush()

    def _json(
        self, out: OutputWrapper, filters: Filters, sections: tuple[str, ...], near: Decimal, totals: Totals
    ) -> None:
        money = _Formatter()
        # Written piece by piece so that a large report is never held in memory.
        out.write("{", ending="")
        out.write(f'"generated_at": {json.dumps(timezone.now().isoformat())}, ', ending="")
        out.write(f'"filters": {json.dumps(filters.describe())}, ', ending="")
        out.write(f'"near_budget_share": {json.dumps(str(near))}', ending="")
        if "jobs" in sections:
            out.write(', "jobs": [', ending="")
            pieces: list[str] = []
            for i, row in enumerate(job_rows(filters, near, totals)):
                # Every value is a UUID, a status name or an exact decimal: nothing to escape,
                # so a template is safe and much cheaper than json.dumps per row.
                share = "null" if row["share_used"] is None else f'"{row["share_used"]}"'
                pieces.append(
                    f'{"" if i == 0 else ", "}{{"job_id": "{row["job_id"]}", "user_id": "{row["user_id"]}", '
                    f'"status": "{row["status"]}", "spent": "{format_money(row["spent"])}", '
                    f'"reserved": "{money(row["reserved"])}", "budget": "{money(row["budget"])}", '
                    f'"share_used": {share}, "budget_status": "{row["budget_status"]}"}}'
                )
                if len(pieces) >= CHUNK:
                    out.write("".join(pieces), ending="")
                    pieces.clear()
            out.write("".join(pieces) + "]", ending="")
            summary = {
                "jobs": totals.jobs,
                "spent": format_money(totals.spent),
                "reserved": format_money(totals.reserved),
                "budget": format_money(totals.budget),
                "over_budget": totals.over,
                "near_budget": totals.near,
            }
            out.write(f', "summary": {json.dumps(summary)}', ending="")
        for by in ("stage", "api", "day"):
            if by not in sections:
                continue
            out.write(f', "by_{by}": [', ending="")
            for i, row in enumerate(group_rows(filters, by)):
                item = {by: row["key"], "charges": row["charges"], "total": format_money(row["total"])}
                out.write(("" if i == 0 else ", ") + json.dumps(item), ending="")
            out.write("]", ending="")
        out.write("}\n", ending="")
