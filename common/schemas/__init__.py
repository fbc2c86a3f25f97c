"""Pydantic payloads: the contract between the pipeline's modules.

Import them from here (``from common.schemas import AudioAnalysis``). Importing
this package does not touch Django's app registry.
"""

from __future__ import annotations

from pydantic import BaseModel

from common.schemas.audio import AudioAnalysis, ClipBoundary, EnergyLevel, Lyric, Mood, SongStructure
from common.schemas.base import DURATION_TOLERANCE, HexColor, Money, NonEmptyStr, Payload, Quantity, Seconds
from common.schemas.job import Job, JobCost, JobStage, JobStatusValue, StageStatusValue
from common.schemas.phase import (
    GenerateRequest,
    GenerateResponse,
    PhaseInput,
    PhaseOutput,
    StatusResponse,
    VideoResponse,
    VideoStatus,
)
from common.schemas.scene import (
    Character,
    ClipScript,
    ReferenceImage,
    ReferenceImages,
    Scene,
    ScenePlan,
    Style,
    Transition,
)
from common.schemas.video import Clip, ClipPrompt, ClipPrompts, Clips, VideoOutput

__all__ = [
    "DURATION_TOLERANCE",
    "PAYLOADS",
    "AudioAnalysis",
    "Character",
    "Clip",
    "ClipBoundary",
    "ClipPrompt",
    "ClipPrompts",
    "ClipScript",
    "Clips",
    "EnergyLevel",
    "GenerateRequest",
    "GenerateResponse",
    "HexColor",
    "Job",
    "JobCost",
    "JobStage",
    "JobStatusValue",
    "Lyric",
    "Money",
    "Mood",
    "NonEmptyStr",
    "Payload",
    "PhaseInput",
    "PhaseOutput",
    "Quantity",
    "ReferenceImage",
    "ReferenceImages",
    "Scene",
    "ScenePlan",
    "Seconds",
    "SongStructure",
    "StageStatusValue",
    "StatusResponse",
    "Style",
    "Transition",
    "VideoOutput",
    "VideoResponse",
    "VideoStatus",
]

# Every payload of the contract, in pipeline order (``manage.py export_schemas`` writes one file each).
PAYLOADS: tuple[type[BaseModel], ...] = (
    Job,
    JobStage,
    JobCost,
    SongStructure,
    Lyric,
    Mood,
    ClipBoundary,
    AudioAnalysis,
    Character,
    Scene,
    Style,
    ClipScript,
    Transition,
    ScenePlan,
    ReferenceImage,
    ReferenceImages,
    ClipPrompt,
    ClipPrompts,
    Clip,
    Clips,
    VideoOutput,
    PhaseInput,
    PhaseOutput,
    GenerateRequest,
    GenerateResponse,
    StatusResponse,
    VideoResponse,
)
