"""The phase contracts (what every pipeline phase task takes and returns) and the public API payloads.

``video_id`` is the job's id. :class:`VideoStatus` is the status vocabulary the
API shows; :meth:`VideoStatus.for_job` derives it from a job's status and stage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from common.schemas.base import Money, NonEmptyStr, Payload, Seconds

__all__ = [
    "GenerateRequest",
    "GenerateResponse",
    "PhaseInput",
    "PhaseOutput",
    "StatusResponse",
    "VideoResponse",
    "VideoStatus",
]


class VideoStatus(StrEnum):
    """Where a video is, as the API reports it."""

    QUEUED = "queued"
    VALIDATING = "validating"
    GENERATING_ANIMATIC = "generating_animatic"
    GENERATING_REFERENCES = "generating_references"
    GENERATING_CHUNKS = "generating_chunks"
    REFINING = "refining"
    EXPORTING = "exporting"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def for_job(cls, status: str, current_stage: str | None = None) -> VideoStatus:
        """The API status of a job with ``status`` (a ``JobStatus`` value) at ``current_stage``."""
        if status == "processing":
            return _STATUS_BY_STAGE.get(current_stage or "", cls.VALIDATING)
        try:
            return _STATUS_BY_JOB_STATUS[status]
        except KeyError:
            raise ValueError(f"unknown job status {status!r}") from None


_STATUS_BY_JOB_STATUS = {
    "queued": VideoStatus.QUEUED,
    "completed": VideoStatus.COMPLETE,
    "failed": VideoStatus.FAILED,
    "cancelled": VideoStatus.CANCELLED,
}
# The pipeline's stages (app setting PIPELINE_STAGES) in the API's words. An unknown stage reads "validating".
_STATUS_BY_STAGE = {
    "audio_analysis": VideoStatus.VALIDATING,
    "scene_planning": VideoStatus.GENERATING_ANIMATIC,
    "reference_generation": VideoStatus.GENERATING_REFERENCES,
    "prompt_generation": VideoStatus.GENERATING_REFERENCES,
    "video_generation": VideoStatus.GENERATING_CHUNKS,
    "composition": VideoStatus.EXPORTING,
}


class PhaseInput(Payload):
    """What every phase task receives: the job and its spec."""

    video_id: UUID
    spec: dict[str, Any]


class PhaseOutput(Payload):
    """What every phase task returns: its outcome, data, cost and duration."""

    video_id: UUID
    phase: NonEmptyStr
    status: Literal["success", "failed"]
    output_data: dict[str, Any] = Field(default_factory=dict)
    cost_usd: Money
    duration_seconds: Seconds
    error_message: str | None = None

    @model_validator(mode="after")
    def _check_error(self) -> PhaseOutput:
        if self.status == "failed" and not self.error_message:
            raise ValueError(f"phase {self.phase!r} failed: a failed phase output needs an error_message")
        return self


class GenerateRequest(Payload):
    """A request to make a video: the prompt and optional uploaded assets."""

    prompt: str = Field(min_length=10, max_length=1000)
    assets: list[dict[str, str]] = Field(default_factory=list)


class GenerateResponse(Payload):
    """The answer to a generate request: the new video's id and status."""

    video_id: UUID
    status: VideoStatus
    message: str


class StatusResponse(Payload):
    """A video's status, progress and estimated time remaining."""

    video_id: UUID
    status: VideoStatus
    progress: float = Field(ge=0, le=100)
    current_phase: str | None = None
    estimated_time_remaining: int | None = Field(default=None, ge=0, description="Seconds")
    error: str | None = None


class VideoResponse(Payload):
    """A finished (or failed) video: where it is, what it cost, how long it took."""

    video_id: UUID
    status: VideoStatus
    final_video_url: str | None = None
    cost_usd: Money
    generation_time_seconds: Seconds | None = None
    created_at: AwareDatetime
    completed_at: AwareDatetime | None = None
    spec: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_times(self) -> VideoResponse:
        if self.completed_at is not None and self.completed_at < self.created_at:
            raise ValueError(
                f"completed_at ({self.completed_at.isoformat()}) must not be before "
                f"created_at ({self.created_at.isoformat()})"
            )
        return self
