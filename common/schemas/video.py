"""Payloads of prompt generation, clip generation and composition."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from common.schemas.base import DURATION_TOLERANCE, Money, NonEmptyStr, Payload, Seconds
from common.schemas.scene import _duplicates

__all__ = ["Clip", "ClipPrompt", "ClipPrompts", "Clips", "VideoOutput"]


class ClipPrompt(Payload):
    """The text-to-video prompt of one clip, with its references."""

    clip_index: int = Field(ge=0)
    prompt: NonEmptyStr
    negative_prompt: str = ""
    duration: float = Field(gt=0, description="Seconds")
    scene_reference_url: str | None = None
    character_reference_urls: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict, description="word_count, style_keywords...")


class ClipPrompts(Payload):
    """Every clip prompt of a job."""

    job_id: UUID
    clip_prompts: list[ClipPrompt]
    total_clips: int = Field(ge=0)
    generation_time: Seconds

    @model_validator(mode="after")
    def _check_totals(self) -> ClipPrompts:
        dupes = _duplicates([p.clip_index for p in self.clip_prompts])
        if dupes:
            raise ValueError(f"duplicate clip_index: {', '.join(map(str, dupes))} (each must be unique)")
        if self.total_clips != len(self.clip_prompts):
            raise ValueError(
                f"total_clips ({self.total_clips}) must equal the number of clip_prompts ({len(self.clip_prompts)})"
            )
        return self


class Clip(Payload):
    """One generated clip: where it is, how long it is against its target, what it cost."""

    clip_index: int = Field(ge=0)
    video_url: str
    actual_duration: Seconds
    target_duration: float = Field(gt=0)
    duration_diff: float = Field(description="actual_duration - target_duration, seconds")
    status: Literal["success", "failed"]
    cost: Money
    retry_count: int = Field(default=0, ge=0)
    generation_time: Seconds

    @model_validator(mode="after")
    def _check_diff(self) -> Clip:
        expected = self.actual_duration - self.target_duration
        if abs(self.duration_diff - expected) > DURATION_TOLERANCE:
            raise ValueError(
                f"clip {self.clip_index}: duration_diff ({self.duration_diff}) must equal "
                f"actual_duration - target_duration ({expected:.3f}) within {DURATION_TOLERANCE} s"
            )
        if self.status == "success" and not self.video_url:
            raise ValueError(f"clip {self.clip_index}: a successful clip needs a video_url")
        return self


class Clips(Payload):
    """Every generated clip of a job, with counts and totals that agree with the list."""

    job_id: UUID
    clips: list[Clip]
    total_clips: int = Field(ge=0)
    successful_clips: int = Field(ge=0)
    failed_clips: int = Field(ge=0)
    total_cost: Money
    total_generation_time: Seconds

    @model_validator(mode="after")
    def _check_totals(self) -> Clips:
        dupes = _duplicates([c.clip_index for c in self.clips])
        if dupes:
            raise ValueError(f"duplicate clip_index: {', '.join(map(str, dupes))} (each must be unique)")
        if self.total_clips != len(self.clips):
            raise ValueError(f"total_clips ({self.total_clips}) must equal the number of clips ({len(self.clips)})")
        if self.successful_clips + self.failed_clips != self.total_clips:
            raise ValueError(
                f"successful_clips ({self.successful_clips}) + failed_clips ({self.failed_clips}) "
                f"must equal total_clips ({self.total_clips})"
            )
        succeeded = sum(1 for c in self.clips if c.status == "success")
        if self.successful_clips != succeeded:
            raise ValueError(
                f"successful_clips ({self.successful_clips}) must equal the number of clips "
                f"with status 'success' ({succeeded})"
            )
        spent = sum((c.cost for c in self.clips), Decimal("0"))
        if self.total_cost != spent:
            raise ValueError(f"total_cost ({self.total_cost}) must equal the sum of the clips' costs ({spent})")
        return self


class VideoOutput(Payload):
    """The composed music video and how well it fits the song."""

    job_id: UUID
    video_url: str
    duration: Seconds
    audio_duration: Seconds
    sync_drift: float = Field(description="Seconds between the video's and the audio's timing")
    clips_used: int = Field(ge=0)
    clips_trimmed: int = Field(ge=0)
    clips_looped: int = Field(ge=0)
    transitions_applied: int = Field(ge=0)
    file_size_mb: float = Field(ge=0)
    composition_time: Seconds
    cost: Money
    status: Literal["success", "failed"]

    @model_validator(mode="after")
    def _check_counts(self) -> VideoOutput:
        for name in ("clips_trimmed", "clips_looped"):
            if getattr(self, name) > self.clips_used:
                raise ValueError(f"{name} ({getattr(self, name)}) cannot exceed clips_used ({self.clips_used})")
        if self.status == "success" and not self.video_url:
            raise ValueError("a successful video output needs a video_url")
        return self
