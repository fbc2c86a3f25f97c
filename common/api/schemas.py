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

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from common.schemas import Job, JobStage, Money

__all__ = ["ErrorResponse", "JobCostsResponse", "JobDetailResponse", "JobPageResponse", "dump"]

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
