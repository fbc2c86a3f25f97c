"""Payloads of the audio-analysis stage: structure, lyrics, mood, beats and clip boundaries."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from common.schemas.base import DURATION_TOLERANCE, NonEmptyStr, Payload, Seconds, check_duration, check_span

__all__ = ["AudioAnalysis", "ClipBoundary", "EnergyLevel", "Lyric", "Mood", "SongStructure"]

EnergyLevel = Literal["low", "medium", "high"]


class SongStructure(Payload):
    """One section of the song (intro, verse, chorus...) with its time span and energy."""

    type: Literal["intro", "verse", "chorus", "bridge", "outro"]
    start: Seconds
    end: Seconds
    energy: EnergyLevel

    @model_validator(mode="after")
    def _check_span(self) -> SongStructure:
        check_span(self.start, self.end, f"song section {self.type!r}")
        return self


class Lyric(Payload):
    """One line of lyrics and when it is sung (seconds from the start)."""

    text: str
    timestamp: Seconds


class Mood(Payload):
    """The song's mood and how sure the analysis is of it."""

    primary: NonEmptyStr = Field(examples=["energetic", "calm", "dark", "bright"])
    secondary: str | None = None
    energy_level: EnergyLevel
    confidence: float = Field(ge=0, le=1, description="0.0-1.0")


class ClipBoundary(Payload):
    """Where one clip of the video starts and ends in the song."""

    start: Seconds
    end: Seconds
    duration: float = Field(gt=0)

    @model_validator(mode="after")
    def _check_span(self) -> ClipBoundary:
        check_span(self.start, self.end, "clip boundary")
        check_duration(self.start, self.end, self.duration, "clip boundary")
        return self


class AudioAnalysis(Payload):
    """Everything the audio-analysis stage found in the song."""

    job_id: UUID
    bpm: float = Field(gt=0, le=400, description="Beats per minute")
    duration: float = Field(gt=0, description="Song length in seconds")
    beat_timestamps: list[Seconds]
    song_structure: list[SongStructure]
    lyrics: list[Lyric]
    mood: Mood
    clip_boundaries: list[ClipBoundary]
    metadata: dict[str, Any] = Field(default_factory=dict, description="processing_time, cache_hit, confidence...")

    @model_validator(mode="after")
    def _check_within_song(self) -> AudioAnalysis:
        limit = self.duration + DURATION_TOLERANCE
        beats = self.beat_timestamps
        for i in range(1, len(beats)):
            if beats[i] <= beats[i - 1]:
                raise ValueError(
                    f"beat_timestamps must be strictly increasing: beat {i} ({beats[i]}) "
                    f"is not after beat {i - 1} ({beats[i - 1]})"
                )
        if beats and beats[-1] > limit:
            raise ValueError(f"beat_timestamps: the last beat ({beats[-1]}) is after the song's end ({self.duration})")
        for i, section in enumerate(self.song_structure):
            if section.end > limit:
                raise ValueError(f"song_structure[{i}] ends at {section.end}, after the song's end ({self.duration})")
        for i, lyric in enumerate(self.lyrics):
            if lyric.timestamp > limit:
                raise ValueError(f"lyrics[{i}] at {lyric.timestamp} is after the song's end ({self.duration})")
        previous: ClipBoundary | None = None
        for i, boundary in enumerate(self.clip_boundaries):
            if boundary.end > limit:
                raise ValueError(f"clip_boundaries[{i}] ends at {boundary.end}, after the song's end ({self.duration})")
            if previous is not None and boundary.start < previous.end - DURATION_TOLERANCE:
                raise ValueError(
                    f"clip_boundaries[{i}] starts at {boundary.start}, before clip_boundaries[{i - 1}] "
                    f"ends ({previous.end}): boundaries must be in order and must not overlap"
                )
            previous = boundary
        return self
