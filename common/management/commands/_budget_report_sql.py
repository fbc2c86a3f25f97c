"""``budget_report``'s per-job section on PostgreSQL: aggregated *and formatted* by the server, streamed by COPY.

The statement joins the selected jobs to their open holds (``holds_open``, grouped in SQL) and, for
CSV, to their ledger row counts, and renders each job as the finished line of the chosen format
(money as :func:`common.money.format_money` writes it, shares half-even like ``share_of`` and
``format_share``, the budget state as :mod:`common.budget` decides it). ``COPY (SELECT ...) TO
STDOUT`` then streams the lines in blocks: Python touches bytes, not rows, so the report runs at
about the speed of ``psql COPY`` of the same aggregate and its memory does not grow with jobs or
holds. Measured by ``bench/report.py`` (this path against the Python formatting path on the same
data, same run: see the closing note of issue 14.3). ``tests/commands/test_budget_report_sql.py``
checks that both paths write the same bytes.

A ``--job X`` filter reaches the holds and ledger aggregates too (PostgreSQL derives
``job_id = X`` from the join), so only that job's rows are read.

The SQL is assembled from this module's constants and Django-compiled querysets (hence the
``S608`` waivers); every value travels as a parameter.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, QuerySet

from common.budget import BUDGET_EXCEEDED
from common.models import Job, JobCost
from common.money import money_sum
from common.selectors.costs import holds_open

__all__ = ["job_lines", "statement", "totals"]


def _money(column: str) -> str:
    """``format_money`` in SQL: exact, trailing zeros dropped, at least two places (the cheapest form measured)."""
    return f"round({column}, greatest(2, scale(trim_scale({column}))))::text"


def _fixed(column: str) -> str:
    """An amount with all six places (the table's uniform amounts): the text of a ``numeric(14, 6)`` column.

    Every amount here is such a column or an exact sum of them (``held``), so its scale is six.
    """
    return f"({column})::text"


_STATE = (
    "CASE WHEN j.total_cost > j.budget_limit OR j.error_code = %s THEN 'over' "
    "WHEN j.budget_limit > 0 AND j.total_cost >= j.budget_limit * %s THEN 'near' ELSE 'ok' END"
)

# The share used in units of 10^-4, half-even like ``share_of``, exactly, in 64-bit integers (far cheaper
# than numeric division): t = spent * 10^10 (spent * 10^4 in micro-dollars, at most about 10^18) and
# b = budget in micro-dollars; units = t div b, plus one when the rest is over half, or half and odd.
_TB = (
    "CASE WHEN j.budget_limit > 0 THEN (j.total_cost * 10000000000)::bigint END AS t, "
    "(j.budget_limit * 1000000)::bigint AS b"
)
_UNITS = "t / b + CASE WHEN 2 * (t % b) > b OR (2 * (t % b) = b AND (t / b) % 2 = 1) THEN 1 ELSE 0 END"
# ``format_share``: the percentage to one place, half-even, from the units (tenths of a percent = units / 10).
_TENTHS = "(units / 10 + CASE WHEN units % 10 > 5 OR (units % 10 = 5 AND (units / 10) % 2 = 1) THEN 1 ELSE 0 END)"


def _layered(source: str, fmt: str) -> str:
    """``source`` with its budget state, share (text) and, for the table, percentage, each computed once.

    ``OFFSET 0`` keeps each layer a layer: flattened, PostgreSQL would repeat an expression at every use.
    The rows are sorted before the lines are built (narrower rows to sort); the outer layers keep that order.
    """
    rows = f"SELECT j.*, {_STATE} AS state, {_TB} FROM ({source}) AS j ORDER BY created_at, id OFFSET 0"  # noqa: S608
    rows = f"SELECT j.*, {_UNITS.replace('%', '%%')} AS units FROM ({rows}) AS j OFFSET 0"  # noqa: S608
    share = "(units / 10000)::text || '.' || lpad((units %% 10000)::text, 4, '0') AS share"
    tenths = _TENTHS.replace("%", "%%")
    percent = f"COALESCE(({tenths} / 10)::text || '.' || ({tenths} %% 10)::text || '%%', '-') AS used"
    return f"SELECT j.*, {share}{', ' + percent if fmt == 'table' else ''} FROM ({rows}) AS j OFFSET 0"  # noqa: S608


def _compiled(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def _source(jobs: QuerySet[Job], now: datetime, *, charges: bool) -> tuple[str, list[Any]]:
    """The selected jobs with their open holds (and ledger counts): columns of ``jobs`` plus ``held``, ``charges``."""
    job_sql, params = _compiled(
        jobs.order_by().values_list("id", "user_id", "status", "error_code", "total_cost", "budget_limit", "created_at")
    )
    hold_sql, hold_params = _compiled(
        holds_open(now=now).order_by().values("job_id").annotate(total=money_sum("amount")).values("job_id", "total")
    )
    sql = (
        f"SELECT j.*, COALESCE(h.total, 0::numeric(14, 6)) AS held, {{charges}} "  # noqa: S608
        f"FROM ({job_sql}) AS j LEFT JOIN ({hold_sql}) AS h ON h.job_id = j.id {{ledger}}"
    )
    params += hold_params
    if not charges:
        return sql.format(charges="0 AS charges", ledger=""), params
    # count(*), not count(id): then the job_id index alone answers (an index-only scan; with count(id)
    # PostgreSQL visits the heap for every one of 5M rows, about 3.6x the plan's cost at 1M jobs).
    counts = JobCost.objects.order_by().values("job_id").annotate(n=Count("*")).values("job_id", "n")
    ledger_sql, ledger_params = _compiled(counts)
    ledger = f"LEFT JOIN ({ledger_sql}) AS c ON c.job_id = j.id"
    return sql.format(charges="COALESCE(c.n, 0) AS charges", ledger=ledger), params + ledger_params


def _line(fmt: str, styles: dict[str, str]) -> tuple[str, list[Any]]:
    """The expression of one output line over the columns of :func:`_layered`, and its parameters."""
    if fmt == "csv":  # FORMAT csv quotes nothing here (no field has a comma, quote or newline); NULL is empty
        return (
            f"'job', id, user_id, status, charges, {_money('total_cost')}, {_money('held')}, "
            f"{_money('budget_limit')}, share, state"
        ), []
    if fmt == "json":  # ", " before every object; the caller drops the first one and the line ends
        return (
            '\', {"job_id": "\' || id || \'", "user_id": "\' || user_id || \'", "status": "\' || status'
            f' || \'", "spent": "\' || {_money("total_cost")} || \'", "reserved": "\' || {_money("held")}'
            f' || \'", "budget": "\' || {_money("budget_limit")} || \'", "share_used": \' ||'
            " COALESCE('\"' || share || '\"', 'null') || ', \"budget_status\": \"' || state || '\"}'"
        ), []
    return (
        f"id::text || '  ' || rpad(status, 10) || '  ' || lpad({_fixed('total_cost')}, 15) || '  ' ||"
        f" lpad({_fixed('held')}, 15) || '  ' || lpad({_fixed('budget_limit')}, 15) || '  ' ||"
        " lpad(used, greatest(8, length(used))) || '  ' ||"
        " CASE state WHEN 'over' THEN %s WHEN 'near' THEN %s ELSE 'ok' END"
    ), [styles["over"], styles["near"]]


def statement(
    jobs: QuerySet[Job], *, fmt: str, near: Decimal, now: datetime, styles: dict[str, str]
) -> tuple[str, list[Any]]:
    """The ``SELECT`` of the per-job section's lines in ``fmt``, one text column, and its parameters."""
    source, params = _source(jobs, now, charges=fmt == "csv")
    line, line_params = _line(fmt, styles)
    # Placeholders in the order they appear: the line's, the state's (in the inner layer), the source's.
    # No outer ORDER BY: the rows are sorted in the innermost layer and the layers above only project
    # (subquery scans emit their child's order); the planner does not see that and sorted the finished
    # lines a second time (EXPLAIN at 1M jobs), so the order is left to the inner sort.
    sql = f"SELECT {line} FROM ({_layered(source, fmt)}) AS j"  # noqa: S608
    return sql, [*line_params, BUDGET_EXCEEDED, near, *params]


def job_lines(jobs: QuerySet[Job], *, fmt: str, near: Decimal, now: datetime, styles: dict[str, str]) -> Iterator[str]:
    """The finished lines of the per-job section in ``fmt`` (``table``, ``csv`` or ``json``), in blocks of text.

    Table and CSV blocks are whole lines; JSON blocks are the objects joined by ``", "``, no newline.
    """
    sql, params = statement(jobs, fmt=fmt, near=near, now=now, styles=styles)
    copy = f"COPY ({sql}) TO STDOUT" + (" WITH (FORMAT csv)" if fmt == "csv" else "")
    decoder = codecs.getincrementaldecoder("utf-8")()
    first = fmt == "json"
    with connection.cursor() as cursor, cursor.cursor.copy(copy, params) as out:
        for block in out:
            data = bytes(block)
            if fmt == "json":
                data = data.replace(b"\n", b"")
                if first and data:
                    data, first = data[2:], False
            text = decoder.decode(data)
            if text:
                yield text
    if rest := decoder.decode(b"", final=True):
        yield rest


def totals(jobs: QuerySet[Job], *, near: Decimal, now: datetime) -> tuple[int, Decimal, Decimal, Decimal, int, int]:
    """Jobs, spent, reserved, budget, over and near of the selected jobs: one aggregate over the same rows."""
    source, params = _source(jobs, now, charges=False)
    sql = (
        "SELECT count(*), COALESCE(sum(total_cost), 0), COALESCE(sum(held), 0), COALESCE(sum(budget_limit), 0),"  # noqa: S608
        " count(*) FILTER (WHERE state = 'over'), count(*) FILTER (WHERE state = 'near')"
        f" FROM (SELECT j.*, {_STATE} AS state FROM ({source}) AS j) AS j"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [BUDGET_EXCEEDED, near, *params])
        row = cursor.fetchone()
    return row[0], row[1], row[2], row[3], row[4], row[5]
