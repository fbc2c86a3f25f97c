"""The jobs changelist's CSV export: one row per ledger row, amounts as exact decimals (never rounded)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from common.models import Job

__all__ = ["CSV_HEADER", "export_jobs_csv"]

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
