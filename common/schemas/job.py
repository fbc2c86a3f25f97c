"""Payloads mirroring the ``jobs``, ``job_stages`` and ``job_costs`` rows.

They build straight from ORM instances (``Job.model_validate(job_row)``) and
their fields match the Django models one for one (a test compares them).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from common.schemas.base import Money, NonEmptyStr, Payload, Quantity

__all__ = ["Job", "JobCost", "JobStage", "JobStatusValue", "StageStatusValue"]

JobStatusValue = Literal["queued", "processing", "completed", "failed", "cancelled"]
StageStatusValue = Literal["pending", "processing", "completed", "failed"]


class _Row(Payload):
    """A payload that mirrors a database row and can be built from the ORM instance."""

    model_config = ConfigDict(from_attributes=True)


class Job(_Row):
    """One music-video generation request: status, progress, spend and outcome."""

    id: UUID
    user_id: UUID
    status: JobStatusValue
    audio_url: str
    user_prompt: str
    current_stage: str | None = None
    progress: int = Field(default=0, ge=0, le=100, description="Percent done, 0-100")
    estimated_remaining: int | None = Field(default=None, ge=0, description="Seconds")
    total_cost: Money = Decimal("0")
    budget_limit: Money
    reserved_cost: Money = Field(default=Decimal("0"), description="Sum of the job's open cost holds")
    video_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    completed_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _check_times(self) -> Job:
        if self.completed_at is not None and self.completed_at < self.created_at:
            raise ValueError(
                f"completed_at ({self.completed_at.isoformat()}) must not be before "
                f"created_at ({self.created_at.isoformat()})"
            )
        return self


class JobStage(_Row):
    """One stage of one job: timing, cost, attempts and free-form metadata."""

    id: UUID
    job_id: UUID
    stage_name: NonEmptyStr
    status: StageStatusValue
    started_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    duration_seconds: int | None = Field(default=None, ge=0)
    cost: Money
    metadata: dict[str, Any] = Field(default_factory=dict)
    attempts: int = Field(default=0, ge=0, description="How many times the stage was started")
    lease_owner: str | None = Field(default=None, max_length=128, description="The worker that holds (or held) it")
    lease_expires_at: AwareDatetime | None = Field(default=None, description="Until when its lease runs")

    @model_validator(mode="after")
    def _check_times(self) -> JobStage:
        if self.started_at is not None and self.completed_at is not None and self.completed_at < self.started_at:
            raise ValueError(
                f"completed_at ({self.completed_at.isoformat()}) must not be before "
                f"started_at ({self.started_at.isoformat()})"
            )
        return self


class JobCost(_Row):
    """One paid API call recorded against a job (a ledger row)."""

    id: UUID
    job_id: UUID
    stage_name: NonEmptyStr
    api_name: NonEmptyStr = Field(examples=["whisper", "gpt-4o", "sdxl", "svd"])
    cost: Money
    timestamp: AwareDatetime
    idempotency_key: str | None = None
    quantity: Quantity | None = None
    unit: str | None = None
    unit_price: Money | None = None
