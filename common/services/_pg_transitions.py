"""The lifecycle transitions on PostgreSQL, one round trip each (private to :mod:`.stages` and :mod:`.jobs`).

Each transition is sent as one simple-protocol message holding two statements, which PostgreSQL runs
as one transaction (or inside the caller's): first ``SELECT ... FOR UPDATE`` of the job row, the lock
every transition takes first, then one statement that reads what the state machine needs, writes only
when the transition is legal, refreshes ``estimated_remaining`` from the medians the caller passes
(``common.selectors.estimates``), and returns the state before (for the refusal's message) and the rows
after. The second statement's snapshot is taken after the lock is granted, so it sees every transition
committed before it, as the ORM version's statements after ``select_for_update`` do; the stage row it
changes is locked (``FOR UPDATE`` or the ``UPDATE`` itself), so a lease heartbeat racing a takeover is
decided on the newest row. The time of the transition is taken before the lock is granted (the ORM version
takes it after), so a stage ends no earlier than it started and ``updated_at`` never goes back: another
transition may have committed a later time while this one waited. A refused transition writes nothing;
the service raises the same error as the ORM version (SQLite and other databases run that one).

Why not ``transaction.atomic`` and a statement per step: each statement is a round trip, and so are psycopg's
``BEGIN`` and ``COMMIT``; bench/jobs.py prints the counts and what they cost.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

from common.conf import app_settings
from common.models import Job, JobCost, JobStage

M = TypeVar("M", bound=Model)


def enabled() -> bool:
    """True on PostgreSQL, where the transitions below are used."""
    return connection.vendor == "postgresql"


@functools.cache
def _columns(model: type[Model], alias: str) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def _instance(model: type[M], values: Sequence[Any]) -> M | None:
    """A model instance from its columns as :func:`_columns` lists them (``None`` when the row is absent)."""
    fields = model._meta.concrete_fields
    if values[0] is None:
        return None
    converted = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [field.attname for field in fields], converted)


def _width(model: type[Model]) -> int:
    return len(model._meta.concrete_fields)


def _estimate_sql(expected: dict[str, float] | None) -> str:
    """The new ``estimated_remaining`` (see ``estimates.estimate_seconds``), from one scan of the job's stage rows.

    Every pipeline stage's expected seconds (``%(total)s``) less what the job's rows account for: a completed
    stage all of it, a running one what it has used (at most all of it). The stage this transition moves
    (``%(stage)s``) is taken as it will be: ``%(own)s`` is 0 when it completes (all of it deducted), 1 when it
    starts or fails (nothing deducted). One index range scan; an ``unnest`` joined to the rows cost more.
    """
    if expected is None:
        return "j.estimated_remaining"
    return f"""(SELECT round(%(total)s - coalesce(sum(CASE
            WHEN s.stage_name = %(stage)s THEN (1 - %(own)s) * e.expected
            WHEN s.status = 'completed' THEN e.expected
            WHEN s.status = 'processing' AND s.started_at IS NOT NULL
                THEN least(extract(epoch FROM %(now)s - s.started_at)::float8, e.expected)
            ELSE 0 END), 0))::integer
        FROM {JobStage._meta.db_table} s
        CROSS JOIN LATERAL (SELECT (%(expected)s::jsonb ->> s.stage_name)::float8 AS expected) e
        WHERE s.job_id = %(job)s AND e.expected IS NOT NULL)"""  # noqa: S608 - table names and fixed SQL only; values are parameters


def _params(expected: dict[str, float] | None, **params: Any) -> dict[str, Any]:
    if expected is not None:
        params["total"] = float(sum(expected.values()))
        params["expected"] = json.dumps(expected)
    return params


def _run(sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """Lock the job, then run ``sql``; its one row (both statements in one message: one round trip)."""
    lock = f"SELECT 1 FROM {Job._meta.db_table} WHERE id = %(job)s FOR UPDATE;\n"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(lock + sql, params)
        cursor.nextset()
        row = cursor.fetchone()
    if row is None:  # the statements always answer one row
        raise RuntimeError("a lifecycle statement returned no row")
    return tuple(row)


def _json(value: dict[str, Any] | None) -> str | None:
    return None if not value else json.dumps(value)


_MERGE = (
    "CASE WHEN %(meta)s::jsonb IS NULL THEN s.metadata ELSE coalesce(s.metadata, '{}'::jsonb) || %(meta)s::jsonb END"
)


class StartResult:
    """What ``stage_start``'s statement saw and did: the state before, and the rows after (``None``: refused)."""

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.job_status: str | None = row[0]
        self.old_status, self.old_attempts, self.old_owner, self.old_expires, self.old_started = row[1:6]
        width = _width(JobStage)
        self.stage = _instance(JobStage, row[6 : 6 + width])
        self.job = _instance(Job, row[6 + width :])


def stage_start(
    *,
    job_id: uuid.UUID,
    stage_name: str,
    now: datetime,
    lease: timedelta,
    owner: str,
    metadata: dict[str, Any],
    max_attempts: int,
    expected: dict[str, float] | None,
) -> StartResult:
    """Start (or take over) the stage when the state machine allows it (see ``stages.stage_start``)."""
    stages, jobs = JobStage._meta.db_table, Job._meta.db_table
    sql = f"""WITH job AS (SELECT status FROM {jobs} WHERE id = %(job)s),
old AS (
    SELECT status, attempts, lease_owner, lease_expires_at, started_at FROM {stages}
    WHERE job_id = %(job)s AND stage_name = %(stage)s FOR UPDATE
),
ok AS (
    SELECT 1 FROM job WHERE job.status IN ('queued', 'processing') AND NOT EXISTS (
        SELECT 1 FROM old WHERE old.status = 'completed' OR old.attempts >= %(max_attempts)s
        OR (old.status = 'processing'
            AND coalesce(old.lease_expires_at, coalesce(old.started_at, %(now)s) + %(lease)s) > %(now)s))
),
stage AS (
    INSERT INTO {stages} AS s (id, job_id, stage_name, status, started_at, completed_at, duration_seconds, cost,
        metadata, attempts, lease_owner, lease_expires_at)
    SELECT %(new_id)s, %(job)s, %(stage)s, 'processing', %(now)s, NULL, NULL, 0,
        coalesce(%(meta)s::jsonb, '{{}}'::jsonb), 1, %(owner)s, %(until)s FROM ok
    ON CONFLICT (job_id, stage_name) DO UPDATE SET status = 'processing', started_at = EXCLUDED.started_at,
        completed_at = NULL, duration_seconds = NULL, attempts = s.attempts + 1,
        lease_owner = EXCLUDED.lease_owner, lease_expires_at = EXCLUDED.lease_expires_at, metadata = {_MERGE}
    RETURNING {_columns(JobStage, "s")}
),
upd AS (
    UPDATE {jobs} AS j SET status = 'processing', current_stage = %(stage)s,
        estimated_remaining = {_estimate_sql(expected)}, updated_at = greatest(%(now)s, j.updated_at)
    WHERE j.id = %(job)s AND EXISTS (SELECT 1 FROM stage)
    RETURNING {_columns(Job, "j")}
)
SELECT job.status, old.status, old.attempts, old.lease_owner, old.lease_expires_at, old.started_at,
    {_columns(JobStage, "stage")}, {_columns(Job, "upd")}
FROM (SELECT 1) AS one LEFT JOIN job ON true LEFT JOIN old ON true LEFT JOIN stage ON true LEFT JOIN upd ON true"""  # noqa: S608 - table names and fixed SQL only; values are parameters
    params = _params(
        expected,
        job=job_id,
        stage=stage_name,
        now=now,
        lease=lease,
        until=now + lease,
        owner=owner,
        meta=_json(metadata),
        max_attempts=max_attempts,
        new_id=uuid.uuid4(),
        own=1.0,
    )
    return StartResult(_run(sql, params))


class EndResult:
    """What the end of a stage saw and did: the job's and stage's state before, and the rows after."""

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.job_status: str | None = row[0]
        self.old_status, self.old_owner = row[1:3]
        width = _width(JobStage)
        self.stage = _instance(JobStage, row[3 : 3 + width])
        self.job = _instance(Job, row[3 + width :])


def stage_end(
    *,
    job_id: uuid.UUID,
    stage_name: str,
    status: str,
    now: datetime,
    metadata: dict[str, Any] | None,
    owner: str | None,
    expected: dict[str, float] | None,
) -> EndResult:
    """Complete or fail a processing stage of a processing job (held by ``owner`` when given)."""
    stages, jobs, costs = JobStage._meta.db_table, Job._meta.db_table, JobCost._meta.db_table
    sql = f"""WITH job AS (SELECT status FROM {jobs} WHERE id = %(job)s),
old AS (SELECT status, lease_owner FROM {stages} WHERE job_id = %(job)s AND stage_name = %(stage)s FOR UPDATE),
stage AS (
    UPDATE {stages} AS s SET status = %(status)s, completed_at = greatest(%(now)s, s.started_at),
        duration_seconds = CASE WHEN s.started_at IS NULL THEN NULL
            ELSE greatest(round(extract(epoch FROM %(now)s - s.started_at)::float8), 0)::integer END,
        cost = (SELECT coalesce(sum(c.cost), 0) FROM {costs} c WHERE c.job_id = %(job)s AND c.stage_name = %(stage)s),
        metadata = {_MERGE}
    FROM job WHERE s.job_id = %(job)s AND s.stage_name = %(stage)s AND s.status = 'processing'
        AND job.status = 'processing' AND (%(owner)s::text IS NULL OR s.lease_owner = %(owner)s::text)
    RETURNING {_columns(JobStage, "s")}
),
upd AS (
    UPDATE {jobs} AS j
    SET estimated_remaining = {_estimate_sql(expected)}, updated_at = greatest(%(now)s, j.updated_at)
    WHERE j.id = %(job)s AND EXISTS (SELECT 1 FROM stage)
    RETURNING {_columns(Job, "j")}
)
SELECT job.status, old.status, old.lease_owner, {_columns(JobStage, "stage")}, {_columns(Job, "upd")}
FROM (SELECT 1) AS one LEFT JOIN job ON true LEFT JOIN old ON true LEFT JOIN stage ON true LEFT JOIN upd ON true"""  # noqa: S608 - table names and fixed SQL only; values are parameters
    params = _params(
        expected,
        job=job_id,
        stage=stage_name,
        status=status,
        now=now,
        meta=_json(metadata),
        owner=owner,
        own=0.0 if status == "completed" else 1.0,
    )
    return EndResult(_run(sql, params))


class JobResult:
    """What a job transition saw and did: the job's status and progress before, running stages, the row after."""

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.job_status: str | None = row[0]
        self.old_progress: int | None = row[1]
        self.running: list[str] = list(row[2] or [])
        self.every_stage_completed: bool = bool(row[3])
        self.job = _instance(Job, row[4:])


def _job_transition(job_id: uuid.UUID, set_sql: str, allowed: str, params: dict[str, Any], finish: bool) -> JobResult:
    stages, jobs, costs = JobStage._meta.db_table, Job._meta.db_table, JobCost._meta.db_table
    # A finished job's running stages fail with it (job_fail, job_cancel; job_complete refuses running ones).
    finish_sql = f""",
ended AS (
    UPDATE {stages} AS s SET status = 'failed', completed_at = greatest(%(now)s, s.started_at),
        duration_seconds = CASE WHEN s.started_at IS NULL THEN NULL
            ELSE greatest(round(extract(epoch FROM %(now)s - s.started_at)::float8), 0)::integer END,
        cost = (SELECT coalesce(sum(c.cost), 0) FROM {costs} c
            WHERE c.job_id = s.job_id AND c.stage_name = s.stage_name),
        metadata = {_MERGE}
    WHERE s.job_id = %(job)s AND s.status = 'processing' AND EXISTS (SELECT 1 FROM upd)
    RETURNING s.id
)"""  # noqa: S608 - table names and fixed SQL only; values are parameters
    sql = f"""WITH job AS (SELECT status, progress FROM {jobs} WHERE id = %(job)s),
st AS (
    SELECT array_agg(stage_name ORDER BY stage_name) FILTER (WHERE status = 'processing') AS running,
        count(*) > 0 AND bool_and(status = 'completed') AS all_completed
    FROM {stages} WHERE job_id = %(job)s
),
upd AS (
    UPDATE {jobs} AS j SET {set_sql}, updated_at = greatest(%(now)s, j.updated_at)
    FROM job, st WHERE j.id = %(job)s AND ({allowed})
    RETURNING {_columns(Job, "j")}
){finish_sql if finish else ""}
SELECT job.status, job.progress, st.running, st.all_completed, {_columns(Job, "upd")}
FROM (SELECT 1) AS one LEFT JOIN job ON true LEFT JOIN st ON true LEFT JOIN upd ON true"""  # noqa: S608 - table names and fixed SQL only; values are parameters
    return JobResult(_run(sql, params))


def job_complete(*, job_id: uuid.UUID, video_url: str, now: datetime) -> JobResult:
    """Complete a processing job (or a requeued one whose stages all completed) with no stage running."""
    return _job_transition(
        job_id,
        "status = 'completed', progress = 100, estimated_remaining = 0, video_url = %(url)s, current_stage = NULL,"
        " completed_at = %(now)s",
        "(job.status = 'processing' OR (job.status = 'queued' AND st.all_completed)) AND st.running IS NULL",
        {"job": job_id, "url": video_url, "now": now},
        finish=False,
    )


def job_end(
    *, job_id: uuid.UUID, status: str, code: str, message: str, now: datetime, stage_metadata: dict[str, Any]
) -> JobResult:
    """Fail or cancel a queued or processing job; its running stages fail with ``stage_metadata`` merged in."""
    return _job_transition(
        job_id,
        "status = %(status)s, error_code = %(code)s, error_message = %(message)s, estimated_remaining = NULL,"
        " completed_at = %(now)s",
        "job.status IN ('queued', 'processing')",
        {
            "job": job_id,
            "status": status,
            "code": code,
            "message": message,
            "now": now,
            "meta": _json(stage_metadata),
        },
        finish=True,
    )


def job_progress(
    *,
    job_id: uuid.UUID,
    progress: int,
    current_stage: str | None,
    now: datetime,
    expected: dict[str, float] | None,
) -> JobResult:
    """Set progress (never backwards) and maybe the current stage of a queued or processing job."""
    status = "'processing'" if progress > 0 or current_stage is not None else "j.status"
    return _job_transition(
        job_id,
        f"progress = %(progress)s, status = {status}, current_stage = coalesce(%(current)s, j.current_stage),"
        f" estimated_remaining = {_estimate_sql(expected)}",
        "job.status IN ('queued', 'processing') AND job.progress <= %(progress)s",
        _params(expected, job=job_id, progress=progress, current=current_stage, now=now, stage=None, own=1.0),
        finish=False,
    )


def pipeline_names() -> tuple[str, ...]:
    """The configured pipeline's stage names (the estimate's rows)."""
    return tuple(app_settings.PIPELINE_STAGES)
