"""Reads of spend across jobs: totals, open holds, per day, by stage/API/user, top jobs and users, budget states.

The one set of spend queries: ``budget_report`` and the admin's spend page both read them, so their
figures agree. Every function is keyword-only, runs inside :func:`common.db.boundary` and costs a
constant number of queries (one each) whatever the number of jobs and ledger rows: the grouping,
ordering and limiting happen in SQL.

Common arguments:

* ``since`` / ``until``: a half-open window ``since <= t < until`` (aware datetimes, either may be
  ``None``) on the ledger's ``timestamp`` for spend, or on the job's ``created_at`` for the job
  lists (:func:`jobs_budget_states`), as in ``budget_report``.
* ``statuses``: only jobs in these statuses (``JobStatus`` values; empty = all).
* ``scope``: the report's finer job filters (:class:`JobScope`: ids, user, over budget, a share).

Amounts are exact 6-place ``Decimal`` (see :mod:`common.money`); "spent" is the ledger's sum,
"reserved" the open holds' (:func:`common.selectors.costs.holds_open`). A job's **budget state** is
``over`` when it spent more than its budget or was stopped with ``BUDGET_EXCEEDED``, ``near`` when
it spent at least the first warning threshold's share of a non-zero budget
(``BUDGET_WARNING_THRESHOLDS``), else ``ok``: the rule lives in :mod:`common.budget`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import (
    Case,
    Count,
    DecimalField,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import TruncDate

from common.budget import BUDGET_EXCEEDED, STATES, budget_state, budget_state_expr
from common.db import async_twin, boundary
from common.errors import ValidationError
from common.ids import argument_list
from common.models import Job, JobCost, JobStatus
from common.money import money_from_sum, money_sum, share_of
from common.selectors.costs import holds_open
from common.selectors.jobs import check_moment

__all__ = [
    "DaySpend",
    "HoldsTotal",
    "JobBudget",
    "JobScope",
    "JobSpendRow",
    "SpendRow",
    "SpendTotals",
    "ajobs_budget_states",
    "aspend_by",
    "aspend_by_day",
    "aspend_holds",
    "aspend_per_day",
    "aspend_top_jobs",
    "aspend_top_users",
    "aspend_totals",
    "jobs_budget_states",
    "spend_by",
    "spend_by_day",
    "spend_holds",
    "spend_per_day",
    "spend_top_jobs",
    "spend_top_users",
    "spend_totals",
]

MAX_LIMIT = 1000  # rows a "top" list may ask for
MAX_DAYS = 3660  # days spend_per_day may cover (ten years)


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class SpendTotals:
    """Spend in a window: the ledger's sum, its number of charges and of distinct jobs charged."""

    spent: Decimal
    charges: int
    jobs: int


@dataclasses.dataclass(frozen=True)
class HoldsTotal:
    """The open holds now: what they reserve, how many there are and how many jobs hold something."""

    reserved: Decimal
    holds: int
    jobs: int


@dataclasses.dataclass(frozen=True)
class SpendRow:
    """One group of the ledger (a stage, an API or a user id as text): its charges and their sum."""

    key: str
    charges: int
    spent: Decimal


@dataclasses.dataclass(frozen=True)
class DaySpend:
    """One UTC day of the ledger: its charges and their sum (0 and 0.000000 on a day without spend)."""

    day: dt.date
    charges: int
    spent: Decimal


@dataclasses.dataclass(frozen=True)
class JobBudget:
    """A job's money now: spent (``total_cost``, all time), reserved (open holds), budget, share and state."""

    job_id: UUID
    user_id: UUID
    status: str
    error_code: str | None
    spent: Decimal
    reserved: Decimal
    budget: Decimal
    share_used: Decimal | None
    state: str  # "ok", "near" or "over"


@dataclasses.dataclass(frozen=True)
class JobSpendRow:
    """A job among the top spenders: its charges and spend in the window, and its budget now."""

    job: JobBudget
    charges: int
    spent: Decimal


@dataclasses.dataclass(frozen=True)
class JobScope:
    """``budget_report``'s job filters beyond the window and status (all optional, combined with AND).

    ``job_ids``: only these jobs; ``user_id``: only this user's; ``over_budget``: only jobs in the
    ``over`` state; ``min_share``: only jobs that spent at least this share of their budget.
    """

    job_ids: tuple[UUID, ...] = ()
    user_id: UUID | None = None
    over_budget: bool = False
    min_share: Decimal | None = None

    @classmethod
    def of(cls, scope: JobScope | None) -> JobScope:
        """``scope``, or the scope of every job for ``None``.

        Raises:
            ValidationError: ``scope`` is neither ``None`` nor a ``JobScope``.
        """
        if scope is None:
            return cls()
        if not isinstance(scope, JobScope):
            raise ValidationError(
                f"scope must be a JobScope or None, got {type(scope).__name__}", details={"field": "scope"}
            )
        return scope

    def q(self, prefix: str = "", *, statuses: Iterable[str] = ()) -> Q:
        """These filters and ``statuses`` as a ``Q`` on ``Job`` (``prefix=""``) or the ledger/holds (``"job__"``).

        Raises:
            ValidationError: an unknown status.
        """
        q = Q()
        chosen = _statuses(statuses)
        if chosen:
            q &= Q(**{f"{prefix}status__in": chosen})
        if self.job_ids:
            q &= Q(**{"id__in" if prefix == "" else "job_id__in": list(self.job_ids)})
        if self.user_id is not None:
            q &= Q(**{f"{prefix}user_id": self.user_id})
        if self.over_budget:
            over = Q(**{f"{prefix}total_cost__gt": F(f"{prefix}budget_limit")})
            q &= over | Q(**{f"{prefix}error_code": BUDGET_EXCEEDED})
        if self.min_share is not None:
            q &= Q(**{f"{prefix}total_cost__gte": F(f"{prefix}budget_limit") * Value(self.min_share)})
        return q


# --------------------------------------------------------------------------- filters


def _window(since: dt.datetime | None, until: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    if since is not None:
        since = check_moment(since, name="since")
    if until is not None:
        until = check_moment(until, name="until")
    if since is not None and until is not None and since >= until:
        raise ValidationError("since must be before until", details={"field": "since"})
    return since, until


def _names(values: Iterable[str], field: str) -> list[str]:
    """``values`` as a list of strings: a list, tuple or set of text, never one string or another object."""
    chosen = argument_list(values, field=field, what="names")
    if not all(isinstance(value, str) for value in chosen):
        raise ValidationError(f"{field} must hold text only, got {chosen!r:.80}", details={"field": field})
    return chosen


def _statuses(statuses: Iterable[str]) -> list[str]:
    chosen = _names(statuses, "statuses")
    unknown = sorted(set(chosen) - set(JobStatus.values))
    if unknown:
        raise ValidationError(
            f"unknown job status {', '.join(map(repr, unknown))} (known: {', '.join(JobStatus.values)})",
            details={"field": "statuses"},
        )
    return chosen


def _limit(limit: int, name: str = "limit", most: int = MAX_LIMIT) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise ValidationError(
            f"{name} must be a whole number from 1 to {most}, got {limit!r:.40}", details={"field": name}
        )
    return limit


def _ledger(
    since: dt.datetime | None, until: dt.datetime | None, statuses: Iterable[str], scope: JobScope | None
) -> QuerySet[JobCost]:
    since, until = _window(since, until)
    ledger = JobCost.objects.filter(JobScope.of(scope).q("job__", statuses=statuses))
    if since is not None:
        ledger = ledger.filter(timestamp__gte=since)
    if until is not None:
        ledger = ledger.filter(timestamp__lt=until)
    return ledger.order_by()


def _grouped(ledger: QuerySet[JobCost], key: Any) -> list[tuple[Any, int, Decimal]]:
    rows = (
        ledger.annotate(key=key)
        .values("key")
        .annotate(charges=Count("id"), total=money_sum())
        .order_by("key")
        .values_list("key", "charges", "total")
    )
    return [(k, n, money_from_sum(total)) for k, n, total in rows]


# --------------------------------------------------------------------------- totals and holds


@boundary
def spend_totals(
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    statuses: Iterable[str] = (),
    scope: JobScope | None = None,
) -> SpendTotals:
    """The ledger's sum, charges and distinct jobs charged in ``since <= timestamp < until`` (one query)."""
    totals = _ledger(since, until, statuses, scope).aggregate(
        total=money_sum(), charges=Count("id"), jobs=Count("job_id", distinct=True)
    )
    return SpendTotals(money_from_sum(totals["total"]), totals["charges"], totals["jobs"])


@boundary
def spend_holds(
    *, now: dt.datetime | None = None, statuses: Iterable[str] = (), scope: JobScope | None = None
) -> HoldsTotal:
    """The open holds at ``now`` (active, unexpired: the ``holds_open`` rule): reserved, holds, jobs (one query).

    Settled, released and expired holds reserve nothing. Holds are a present state: no window.
    """
    totals = (
        holds_open(now=now)
        .filter(JobScope.of(scope).q("job__", statuses=statuses))
        .order_by()
        .aggregate(total=money_sum("amount"), holds=Count("id"), jobs=Count("job_id", distinct=True))
    )
    return HoldsTotal(money_from_sum(totals["total"]), totals["holds"], totals["jobs"])


# --------------------------------------------------------------------------- grouped


GROUPS = {"stage": "stage_name", "api": "api_name", "user": "job__user_id"}


@boundary
def spend_by(
    *,
    by: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    statuses: Iterable[str] = (),
    scope: JobScope | None = None,
) -> list[SpendRow]:
    """The ledger in the window grouped ``by`` ``"stage"``, ``"api"`` or ``"user"``, ordered by key (one query).

    The key is the stage name, the API name or the jobs' user id as text.
    """
    if by not in GROUPS:
        raise ValidationError(f"by must be one of {', '.join(GROUPS)}, got {by!r:.40}", details={"field": "by"})
    grouped = _grouped(_ledger(since, until, statuses, scope), F(GROUPS[by]))
    return [SpendRow(str(k), n, s) for k, n, s in grouped]


@boundary
def spend_by_day(
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    statuses: Iterable[str] = (),
    scope: JobScope | None = None,
) -> list[DaySpend]:
    """The ledger in the window grouped by UTC day, oldest first; days without spend are left out (one query)."""
    day = TruncDate("timestamp", tzinfo=dt.UTC)
    return [DaySpend(k, n, s) for k, n, s in _grouped(_ledger(since, until, statuses, scope), day)]


@boundary
def spend_per_day(
    *,
    days: int = 30,
    end: dt.date | None = None,
    statuses: Iterable[str] = (),
    scope: JobScope | None = None,
) -> list[DaySpend]:
    """Spend on each of the ``days`` UTC days ending with ``end`` (default today), oldest first, zeros included.

    Exactly ``days`` rows; one query (:func:`spend_by_day` over the window), the empty days filled here.
    """
    days = _limit(days, "days", MAX_DAYS)
    if end is not None and (isinstance(end, dt.datetime) or not isinstance(end, dt.date)):
        raise ValidationError(f"end must be a date, got {end!r:.60}", details={"field": "end"})
    last = end if end is not None else dt.datetime.now(dt.UTC).date()
    first = last - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time.min, tzinfo=dt.UTC)
    until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    day = TruncDate("timestamp", tzinfo=dt.UTC)
    found = {k: (n, s) for k, n, s in _grouped(_ledger(since, until, statuses, scope), day)}
    nothing = (0, money_from_sum(None))
    dates = (first + dt.timedelta(days=i) for i in range(days))
    return [DaySpend(d, *found.get(d, nothing)) for d in dates]


# --------------------------------------------------------------------------- jobs and users


def _reserved_of(outer: str) -> Subquery:
    """The open holds of the job ``outer`` names (``"pk"`` on ``Job``, ``"job_id"`` on the ledger)."""
    return Subquery(
        holds_open()
        .filter(job_id=OuterRef(outer))
        .order_by()
        .values("job_id")
        .annotate(total=money_sum("amount"))
        .values("total")
    )


def _job_budget(
    job_id: UUID, user_id: UUID, status: str, error_code: str | None, spent: Decimal, budget: Decimal, reserved: Any
) -> JobBudget:
    return JobBudget(
        job_id=job_id,
        user_id=user_id,
        status=status,
        error_code=error_code,
        spent=spent,
        reserved=money_from_sum(reserved),
        budget=budget,
        share_used=share_of(spent, budget),
        state=budget_state(spent=spent, budget=budget, error_code=error_code),
    )


@boundary
def spend_top_jobs(
    *,
    limit: int = 10,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    statuses: Iterable[str] = (),
    scope: JobScope | None = None,
) -> list[JobSpendRow]:
    """The ``limit`` jobs that spent most in the window, most first (ties by id), with their budget now (one query)."""
    limit = _limit(limit)
    rows = (
        _ledger(since, until, statuses, scope)
        .values("job_id", "job__user_id", "job__status", "job__error_code", "job__total_cost", "job__budget_limit")
        .annotate(charges=Count("id"), total=money_sum(), reserved=_reserved_of("job_id"))
        .order_by("-total", "job_id")
        .values_list(
            "job_id", "job__user_id", "job__status", "job__error_code", "job__total_cost", "job__budget_limit",
            "reserved", "charges", "total",
        )[:limit]
    )  # fmt: skip
    return [
        JobSpendRow(_job_budget(job, user, status, code, spent, budget, reserved), charges, money_from_sum(total))
        for job, user, status, code, spent, budget, reserved, charges, total in rows
    ]


@boundary
def spend_top_users(
    *,
    limit: int = 10,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    statuses: Iterable[str] = (),
    scope: JobScope | None = None,
) -> list[SpendRow]:
    """The ``limit`` users whose jobs spent most in the window, most first (ties by user id), one query."""
    limit = _limit(limit)
    rows = (
        _ledger(since, until, statuses, scope)
        .values("job__user_id")
        .annotate(charges=Count("id"), total=money_sum())
        .order_by("-total", "job__user_id")
        .values_list("job__user_id", "charges", "total")[:limit]
    )
    return [SpendRow(str(user), charges, money_from_sum(total)) for user, charges, total in rows]


@boundary
def jobs_budget_states(
    *,
    states: Iterable[str] = ("near", "over"),
    limit: int = 20,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    statuses: Iterable[str] = (),
    scope: JobScope | None = None,
) -> list[JobBudget]:
    """The jobs in ``states`` (default near or over their budget), ``over`` first, then by share used (one query).

    ``since``/``until`` select jobs *created* in the window (as ``budget_report``'s job section);
    ties are broken by the newest job first.
    """
    limit = _limit(limit)
    wanted = _names(states, "states")
    if not wanted or set(wanted) - set(STATES):
        raise ValidationError(
            f"states must be some of {', '.join(STATES)}, got {wanted!r:.80}", details={"field": "states"}
        )
    since, until = _window(since, until)
    jobs = Job.objects.filter(JobScope.of(scope).q(statuses=statuses))
    if since is not None:
        jobs = jobs.filter(created_at__gte=since)
    if until is not None:
        jobs = jobs.filter(created_at__lt=until)
    money: DecimalField[Decimal, Decimal] = DecimalField(max_digits=30, decimal_places=12)
    rows = (
        jobs.annotate(
            state=budget_state_expr(),
            rank=Case(When(state="over", then=Value(2)), When(state="near", then=Value(1)), default=Value(0),
                      output_field=IntegerField()),
            share=Case(When(budget_limit__gt=0, then=F("total_cost") / F("budget_limit")), default=None,
                       output_field=money),
            reserved=_reserved_of("pk"),
        )
        .filter(state__in=wanted)
        .order_by("-rank", F("share").desc(nulls_last=True), "-created_at", "id")
        .values_list("id", "user_id", "status", "error_code", "total_cost", "budget_limit", "reserved")[:limit]
    )  # fmt: skip
    return [_job_budget(*row) for row in rows]


ajobs_budget_states = async_twin(jobs_budget_states)
aspend_by = async_twin(spend_by)
aspend_by_day = async_twin(spend_by_day)
aspend_holds = async_twin(spend_holds)
aspend_per_day = async_twin(spend_per_day)
aspend_top_jobs = async_twin(spend_top_jobs)
aspend_top_users = async_twin(spend_top_users)
aspend_totals = async_twin(spend_totals)
