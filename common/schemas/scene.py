"""Payloads of scene planning and reference-image generation."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, model_validator

from common.schemas.audio import EnergyLevel
from common.schemas.base import HexColor, Money, NonEmptyStr, Payload, Seconds, check_span

__all__ = [
    "Character",
    "ClipScript",
    "ReferenceImage",
    "ReferenceImages",
    "Scene",
    "ScenePlan",
    "Style",
    "Transition",
]


def _duplicates(values: list[Any]) -> list[Any]:
    return sorted((v for v, n in Counter(values).items() if n > 1), key=str)


class Character(Payload):
    """A character who appears in the video."""

    id: NonEmptyStr
    description: str
    role: str = Field(examples=["main character", "background"])


class Scene(Payload):
    """A place where clips of the video are set."""

    id: NonEmptyStr
    description: str
    time_of_day: str | None = None


class Style(Payload):
    """The video's look: palette, visual style, mood, lighting and camera work."""

    color_palette: list[HexColor] = Field(min_length=1, description="Hex colours, e.g. #1a2b3c")
    visual_style: str
    mood: str
    lighting: str
    cinematography: str


class ClipScript(Payload):
    """What happens in one clip, when, and who and where it shows."""

    clip_index: int = Field(ge=0)
    start: Seconds
    end: Seconds
    visual_description: str
    motion: str
    camera_angle: str
    characters: list[str] = Field(default_factory=list, description="Character ids")
    scenes: list[str] = Field(default_factory=list, description="Scene ids")
    lyrics_context: str | None = None
    beat_intensity: EnergyLevel

    @model_validator(mode="after")
    def _check_span(self) -> ClipScript:
        check_span(self.start, self.end, f"clip script {self.clip_index}")
        return self


class Transition(Payload):
    """How one clip hands over to another."""

    from_clip: int = Field(ge=0)
    to_clip: int = Field(ge=0)
    type: Literal["cut", "crossfade", "fade"]
    duration: Seconds
    rationale: str

    @model_validator(mode="after")
    def _check_clips(self) -> Transition:
        if self.from_clip == self.to_clip:
            raise ValueError(f"a transition must join two different clips, got from_clip = to_clip = {self.from_clip}")
        return self


class ScenePlan(Payload):
    """The scene-planning stage's output: characters, scenes, style, clip scripts and transitions."""

    job_id: UUID
    video_summary: str
    characters: list[Character]
    scenes: list[Scene]
    style: Style
    clip_scripts: list[ClipScript]
    transitions: list[Transition]

    @model_validator(mode="after")
    def _check_references(self) -> ScenePlan:
        for what, ids in (
            ("clip_index", [c.clip_index for c in self.clip_scripts]),
            ("character id", [c.id for c in self.characters]),
            ("scene id", [s.id for s in self.scenes]),
        ):
            dupes = _duplicates(ids)
            if dupes:
                raise ValueError(f"duplicate {what}: {', '.join(map(str, dupes))} (each must be unique)")
        clips = {c.clip_index for c in self.clip_scripts}
        characters = {c.id for c in self.characters}
        scenes = {s.id for s in self.scenes}
        for i, transition in enumerate(self.transitions):
            missing = [n for n in (transition.from_clip, transition.to_clip) if n not in clips]
            if missing:
                raise ValueError(
                    f"transitions[{i}] refers to clip {', '.join(map(str, missing))}, which is not in clip_scripts "
                    f"(known clip indices: {sorted(clips)})"
                )
        for script in self.clip_scripts:
            unknown_characters = [c for c in script.characters if c not in characters]
            if unknown_characters:
                raise ValueError(
                    f"clip script {script.clip_index} names unknown character(s) {unknown_characters}; "
                    f"known: {sorted(characters)}"
                )
            unknown_scenes = [s for s in script.scenes if s not in scenes]
            if unknown_scenes:
                raise ValueError(
                    f"clip script {script.clip_index} names unknown scene(s) {unknown_scenes}; known: {sorted(scenes)}"
                )
        return self


class ReferenceImage(Payload):
    """A generated reference image for exactly one scene or one character."""

    scene_id: str | None = None
    character_id: str | None = None
    image_url: NonEmptyStr
    prompt_used: str
    generation_time: Seconds
    cost: Money

    @model_validator(mode="after")
    def _check_subject(self) -> ReferenceImage:
        if (self.scene_id is None) == (self.character_id is None):
            which = "both" if self.scene_id is not None else "neither"
            raise ValueError(
                f"a reference image is for exactly one scene or one character: set scene_id or character_id, "
                f"not {which}"
            )
        return self

    @property
    def is_scene_reference(self) -> bool:
        """True for a scene reference, False for a character reference."""
        return self.scene_id is not None


class ReferenceImages(Payload):
    """All reference images generated for a job, with their totals."""

    job_id: UUID
    scene_references: list[ReferenceImage]
    character_references: list[ReferenceImage]
    total_references: int = Field(ge=0)
    total_generation_time: Seconds
    total_cost: Money
    status: Literal["success", "partial", "failed"]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_totals(self) -> ReferenceImages:
        for i, ref in enumerate(self.scene_references):
            if not ref.is_scene_reference:
                raise ValueError(f"scene_references[{i}] is a character reference (character_id={ref.character_id!r})")
        for i, ref in enumerate(self.character_references):
            if ref.is_scene_reference:
                raise ValueError(f"character_references[{i}] is a scene reference (scene_id={ref.scene_id!r})")
        count = len(self.scene_references) + len(self.character_references)
        if self.total_references != count:
            raise ValueError(
                f"total_references ({self.total_references}) must equal the number of references listed ({count})"
            )
        spent = sum((r.cost for r in (*self.scene_references, *self.character_references)), Decimal("0"))
        if self.total_cost != spent:
            raise ValueError(f"total_cost ({self.total_cost}) must equal the sum of the references' costs ({spent})")
        return self
