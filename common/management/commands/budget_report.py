"""``manage.py budget_report``: spend per job, and grouped by stage, API, user and day.

Aggregates run in SQL and rows are streamed, so the report over a million jobs needs no more memory
than over a thousand, whatever the number of open holds (they are summed in SQL too). On PostgreSQL
the per-job section is aggregated and formatted by the server and streamed with ``COPY``
(:mod:`._budget_report_sql`); elsewhere (SQLite) the same lines are built here, byte for byte.
The grouped sections read the spend selectors (:mod:`common.selectors.spend`), as the admin does.

Amounts are exact decimal strings in every format: in CSV and JSON as :func:`~common.money.format_money`
writes them (at least two places), in the table with all six places so that they line up.
Budget states (``ok``/``near``/``over``) follow :mod:`common.budget`: a job stopped by
``BUDGET_EXCEEDED`` is ``over``.

Windows: ``--since``/``--until`` select jobs *created* in the window for the per-job section, and
ledger rows *recorded* in the window for the grouped sections (half-open: ``since <= t < until``).
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
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from common.budget import budget_state, near_share
from common.management.commands import _budget_report_sql as server
from common.models import Job, JobCost, JobStatus
from common.money import MONEY_PLACES, format_money, format_share, money_from_sum, share_of
from common.selectors.costs import reserved_sum
from common.selectors.spend import JobScope, spend_by, spend_by_day

FORMATS = ("table", "csv", "json")
SECTIONS = ("jobs", "stage", "api", "user", "day")
GROUPS = ("stage", "api", "user", "day")
TITLES = {"stage": "By stage", "api": "By API", "user": "By user", "day": "By day"}
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
# The per-job section on PostgreSQL is formatted by the server (``_budget_report_sql``); False runs the
# Python path there too (the tests compare the two byte for byte). Kept by issue 13 item 9's rule:
# bench/report.py measures the server path against the Python path on the same data, same run, and it
# must stay >= 1.3x faster (the closing note of issue 14.3 has the figures). The Python path has no
# caches or hand-built JSON any more: it serves SQLite, where no bench measures it.
SERVER_FORMATTING = True


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
    job_ids: list[uuid.UUID] = field(default_factory=list)
    user: uuid.UUID | None = None
    statuses: list[str] = field(default_factory=list)
    over_budget: bool = False
    near_budget: Decimal | None = None

    def jobs(self) -> QuerySet[Job]:
        """The jobs of the per-job section: the job filters, and created in the window."""
        jobs = Job.objects.filter(self.scope().q(statuses=self.statuses))
        if self.since is not None:
            jobs = jobs.filter(created_at__gte=self.since)
        if self.until is not None:
            jobs = jobs.filter(created_at__lt=self.until)
        return jobs

    def scope(self) -> JobScope:
        """The job filters for the spend selectors."""
        return JobScope(
            job_ids=tuple(self.job_ids), user_id=self.user, over_budget=self.over_budget, min_share=self.near_budget
        )

    def describe(self) -> dict[str, Any]:
        """The filters as JSON-friendly values."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "job": [str(j) for j in self.job_ids],
            "user": str(self.user) if self.user else None,
            "status": self.statuses,
            "over_budget": self.over_budget,
            "near_budget": str(self.near_budget) if self.near_budget is not None else None,
        }


@dataclass
class Totals:
    """Totals of the per-job section."""

    jobs: int = 0
    spent: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    budget: Decimal = Decimal(0)
    over: int = 0
    near: int = 0


def _fixed(value: Decimal) -> str:
    """An amount with all six places: the table's amounts line up (``0.063000``, ``6.410000``)."""
    return f"{value:.{MONEY_PLACES}f}"


def _server() -> bool:
    return SERVER_FORMATTING and connection.vendor == "postgresql"


def job_rows(filters: Filters, near: Decimal, totals: Totals, *, charges: bool = False) -> Iterator[dict[str, Any]]:
    """Stream one dict per job (spent, reserved, budget, share used, budget state), adding to ``totals``.

    The Python path (SQLite, or ``SERVER_FORMATTING = False``): the open holds are summed in SQL
    per job (:func:`~common.selectors.costs.reserved_sum`) and rows arrive in chunks.
    """
    rows = filters.jobs().annotate(reserved=reserved_sum())
    if charges:
        counted = JobCost.objects.filter(job_id=OuterRef("pk")).order_by().values("job_id").annotate(n=Count("id"))
        rows = rows.annotate(charges=Subquery(counted.values("n")))
    columns = ["id", "user_id", "status", "error_code", "total_cost", "budget_limit", "reserved"]
    if charges:
        columns.append("charges")
    for values in rows.order_by("created_at", "id").values_list(*columns).iterator(chunk_size=CHUNK):
        job_id, user_id, status, error_code, spent, budget, held = values[:7]
        reserved = money_from_sum(held)
        state = budget_state(spent=spent, budget=budget, error_code=error_code, near=near)
        totals.jobs += 1
        totals.spent += spent
        totals.reserved += reserved
        totals.budget += budget
        totals.over += state == "over"
        totals.near += state == "near"
        yield {
            "job_id": str(job_id),
            "user_id": str(user_id),
            "status": status,
            "charges": values[7] or 0 if charges else None,
            "spent": spent,
            "reserved": reserved,
            "budget": budget,
            "share_used": share_of(spent, budget),
            "budget_status": state,
        }


def server_totals(filters: Filters, near: Decimal, now: dt.datetime) -> Totals:
    """The per-job section's totals from PostgreSQL (one aggregate over the same rows as the lines)."""
    jobs, spent, reserved, budget, over, near_count = server.totals(filters.jobs(), near=near, now=now)
    return Totals(jobs, spent, reserved, budget, over, near_count)


def group_rows(filters: Filters, by: str) -> Iterator[dict[str, Any]]:
    """The ledger grouped by ``stage``, ``api``, ``user`` or ``day``: key, charges, total.

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


class Command(BaseCommand):
    """Print spend per job and grouped by stage, API, user and day, in a table, CSV or JSON."""

    help = (
        "Budget report: per job (spent, reserved, budget, share used, budget state) and grouped by stage, API, "
        "user and day. Amounts are exact decimal strings. Exit status 1 with --fail-on-over-budget when a job is "
        "over budget."
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
        parser.add_argument("--over-budget", action="store_true", help="only jobs over their budget (or stopped by it)")
        parser.add_argument(
            "--near-budget", metavar="FRACTION", help="only jobs that spent at least FRACTION of their budget"
        )
        parser.add_argument("--format", choices=FORMATS, default="table")
        parser.add_argument(
            "--section",
            action="extend",
            nargs="+",
            choices=SECTIONS,
            default=[],
            help="only these sections: --section api stage, or --section api --section stage (default: all)",
        )
        parser.add_argument(
            "--fail-on-over-budget", action="store_true", help="exit with status 1 when any reported job is over"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the filters, stream the report, and set the exit status."""
        filters = Filters(
            since=parse_moment(options["since"], "--since") if options["since"] else None,
            until=parse_moment(options["until"], "--until") if options["until"] else None,
            job_ids=[parse_uuid(j, "--job") for j in options["job"]],
            user=parse_uuid(options["user"], "--user") if options["user"] else None,
            statuses=list(options["status"]),
            over_budget=options["over_budget"],
            near_budget=parse_fraction(options["near_budget"]) if options["near_budget"] is not None else None,
        )
        if filters.since and filters.until and filters.since >= filters.until:
            raise CommandError("--since must be before --until")
        sections = tuple(s for s in SECTIONS if s in options["section"]) or SECTIONS
        near = filters.near_budget if filters.near_budget is not None else near_share()
        writer = {"table": self._table, "csv": self._csv, "json": self._json}[options["format"]]
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost and connection.vendor == "postgresql":
                # One snapshot: the lines, the totals and the grouped sections agree with each other.
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            totals = writer(self.stdout, filters, sections, near, fail=options["fail_on_over_budget"])
        if options["fail_on_over_budget"] and totals.over:
            raise CommandError(f"{totals.over} job(s) over budget", returncode=1)

    # ------------------------------------------------------------------ the per-job section

    def _server_jobs(
        self, out: OutputWrapper, filters: Filters, near: Decimal, fmt: str, *, totals: bool = True
    ) -> Totals:
        """Write the per-job section built by PostgreSQL; return its totals (``totals=False``: empty, not read).

        The lines and the totals count holds as open at the same moment.
        """
        now = timezone.now()
        styles = {"over": self.style.ERROR("over"), "near": self.style.WARNING("near")}
        for text in server.job_lines(filters.jobs(), fmt=fmt, near=near, now=now, styles=styles):
            out.write(text, ending="")
        return server_totals(filters, near, now) if totals else Totals()

    # ------------------------------------------------------------------ formats

    def _table(
        self, out: OutputWrapper, filters: Filters, sections: tuple[str, ...], near: Decimal, *, fail: bool
    ) -> Totals:
        totals = Totals()
        blank = ""
        if "jobs" in sections:
            out.write(self.style.MIGRATE_HEADING("Jobs") + "\n")
            out.write(
                f"{'job_id':36}  {'status':10}  {'spent':>15}  {'reserved':>15}  {'budget':>15}  {'used':>8}  state\n"
            )
            if _server():
                totals = self._server_jobs(out, filters, near, "table")
            else:
                lines: list[str] = []
                for row in job_rows(filters, near, totals):
                    flag = row["budget_status"]
                    styled = {"over": self.style.ERROR, "near": self.style.WARNING}.get(flag, str)(flag)
                    lines.append(
                        f"{row['job_id']:36}  {row['status']:10}  {_fixed(row['spent']):>15}  "
                        f"{_fixed(row['reserved']):>15}  {_fixed(row['budget']):>15}  "
                        f"{format_share(row['share_used']):>8}  {styled}\n"
                    )
                    if len(lines) >= CHUNK:
                        out.write("".join(lines), ending="")
                        lines.clear()
                out.write("".join(lines), ending="")
            out.write(
                f"{totals.jobs} job(s): spent {_fixed(totals.spent)}, reserved {_fixed(totals.reserved)}, "
                f"{totals.over} over budget, {totals.near} near budget (>= {format_share(near)})\n"
            )
            blank = "\n"
        for by in GROUPS:
            if by not in sections:
                continue
            out.write(blank + self.style.MIGRATE_HEADING(TITLES[by]) + "\n")
            blank = "\n"
            width = 36 if by == "user" else 24
            out.write(f"{by:{width}}  {'charges':>9}  {'total':>15}\n")
            charges = 0
            total = Decimal(0)
            for row in group_rows(filters, by):
                charges += row["charges"]
                total += row["total"]
                out.write(f"{row['key']:{width}}  {row['charges']:>9}  {_fixed(row['total']):>15}\n")
            out.write(f"{'total':{width}}  {charges:>9}  {_fixed(total):>15}\n")
        return totals

    def _csv(
        self, out: OutputWrapper, filters: Filters, sections: tuple[str, ...], near: Decimal, *, fail: bool
    ) -> Totals:
        totals = Totals()
        buffer = io.StringIO()  # rows go out every CHUNK rows: one write per chunk, not per row
        writer = csv.writer(buffer, lineterminator="\n")

        def flush() -> None:
            out.write(buffer.getvalue(), ending="")
            buffer.seek(0)
            buffer.truncate()

        writer.writerow(CSV_COLUMNS)
        if "jobs" in sections and _server():
            flush()
            totals = self._server_jobs(out, filters, near, "csv", totals=fail)
        elif "jobs" in sections:
            for n, row in enumerate(job_rows(filters, near, totals, charges=True), 1):
                share = row["share_used"]
                writer.writerow(
                    (
                        "job",
                        row["job_id"],
                        row["user_id"],
                        row["status"],
                        row["charges"],
                        format_money(row["spent"]),
                        format_money(row["reserved"]),
                        format_money(row["budget"]),
                        "" if share is None else str(share),
                        row["budget_status"],
                    )
                )
                if n % CHUNK == 0:
                    flush()
        for by in GROUPS:
            if by in sections:
                for group in group_rows(filters, by):
                    writer.writerow(
                        (by, group["key"], "", "", group["charges"], format_money(group["total"]), "", "", "", "")
                    )
        flush()
        return totals

    def _json(
        self, out: OutputWrapper, filters: Filters, sections: tuple[str, ...], near: Decimal, *, fail: bool
    ) -> Totals:
        totals = Totals()
        # Written piece by piece so that a large report is never held in memory.
        out.write("{", ending="")
        out.write(f'"generated_at": {json.dumps(timezone.now().isoformat())}, ', ending="")
        out.write(f'"filters": {json.dumps(filters.describe())}, ', ending="")
        out.write(f'"near_budget_share": {json.dumps(str(near))}', ending="")
        if "jobs" in sections:
            out.write(', "jobs": [', ending="")
            if _server():
                totals = self._server_jobs(out, filters, near, "json")
            else:
                pieces: list[str] = []
                for i, row in enumerate(job_rows(filters, near, totals)):
                    del row["charges"]
                    share = row["share_used"]
                    row["share_used"] = None if share is None else str(share)
                    for key in ("spent", "reserved", "budget"):
                        row[key] = format_money(row[key])
                    pieces.append(("" if i == 0 else ", ") + json.dumps(row))
                    if len(pieces) >= CHUNK:
                        out.write("".join(pieces), ending="")
                        pieces.clear()
                out.write("".join(pieces), ending="")
            out.write("]", ending="")
            summary = {
                "jobs": totals.jobs,
                "spent": format_money(totals.spent),
                "reserved": format_money(totals.reserved),
                "budget": format_money(totals.budget),
                "over_budget": totals.over,
                "near_budget": totals.near,
            }
            out.write(f', "summary": {json.dumps(summary)}', ending="")
        for by in GROUPS:
            if by not in sections:
                continue
            out.write(f', "by_{by}": [', ending="")
            for i, row in enumerate(group_rows(filters, by)):
                item = {by: row["key"], "charges": row["charges"], "total": format_money(row["total"])}
                out.write(("" if i == 0 else ", ") + json.dumps(item), ending="")
            out.write("]", ending="")
        out.write("}\n", ending="")
        return totals
