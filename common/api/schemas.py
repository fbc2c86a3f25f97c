"""Response bodies of the API, as Pydantic models built on the inter-module contract (``common.schemas``).

Job bodies *are* :class:`common.schemas.Job` / :class:`common.schemas.JobStage`
(the detail adds the stages), so the API and the contract between modules
cannot drift. The cost summary and the error body have no contract payload of
their own yet and are defined here; money is a ``Decimal`` written as a string.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

from common.schemas import Job, JobStage, Money

__all__ = ["ErrorResponse", "JobCostsResponse", "JobDetailResponse", "JobPageResponse", "dump"]

# Amounts are written with the columns' six places ("0.000000", like the job payload), whatever the
# exponent the ledger's sums happen to have (Decimal("0") from an empty SUM).
_MONEY_QUANTUM = Decimal("0.000001")

Share = Annotated[
    Decimal,
    PlainSerializer(lambda value: str(value), return_type=str, when_used="json"),
    Field(ge=0, description="Spent / budget (1 = the whole budget), as a decimal string"),
]


class JobDetailResponse(Job):
    """A job with its stages (timings, attempts, cost) in pipeline order."""

    stages: list[JobStage] = Field(default_factory=list)


class JobPageResponse(BaseModel):
    """One page of jobs, newest first; follow ``next`` (an absolute URL) until it is null."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    next: str | None = Field(description="URL of the next (older) page, or null")
    previous: str | None = Field(description="URL of the previous (newer) page, or null")
    results: list[Job]


class JobCostsResponse(BaseModel):
    """A job's spend: total, budget, what is left, open holds, and the ledger by stage and by API."""

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)

    job_id: UUID
    total: Money = Field(description="What the job has spent (jobs.total_cost)")
    budget: Money = Field(description="The job's budget limit")
    reserved: Money = Field(description="Open cost holds not yet settled")
    remaining: Money = Field(description="budget - total - reserved, never below zero")
    share_used: Share | None = None
    charges: int = Field(ge=0, description="Number of ledger rows")
    ledger_total: Money = Field(description="Sum of the ledger rows (equals total when consistent)")
    by_stage: dict[str, Money] = Field(description="Ledger total per pipeline stage")
    by_api: dict[str, Money] = Field(description="Ledger total per external API")

    @field_validator("total", "budget", "reserved", "remaining", "ledger_total")
    @classmethod
    def _six_places(cls, value: Decimal) -> Decimal:
        return value.quantize(_MONEY_QUANTUM)

    @field_validator("by_stage", "by_api")
    @classmethod
    def _six_places_each(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {name: amount.quantize(_MONEY_QUANTUM) for name, amount in value.items()}


class ErrorResponse(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(examples=["NOT_FOUND", "TOKEN_EXPIRED", "VALIDATION_ERROR"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    job_id: UUID | None = None


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a response model (Decimals and UUIDs as strings)."""
    return model.model_dump(mode="json")
