"""Valid payloads (as plain dicts) for every schema; tests change one thing and expect one error."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

JOB_ID = uuid.UUID("11111111-1111-4111-8111-111111111111")
USER_ID = uuid.UUID("22222222-2222-4222-8222-222222222222")
T0 = dt.datetime(2026, 11, 21, 4, 0, tzinfo=dt.UTC)


def job() -> dict[str, Any]:
    return {
        "id": JOB_ID,
        "user_id": USER_ID,
        "status": "processing",
        "audio_url": "https://example.com/song.mp3",
        "user_prompt": "a neon city at night",
        "current_stage": "audio_analysis",
        "progress": 10,
        "estimated_remaining": 300,
        "total_cost": "0.0055",
        "budget_limit": "20.000000",
        "reserved_cost": "0",
        "video_url": None,
        "error_code": None,
        "error_message": None,
        "created_at": T0,
        "updated_at": T0 + dt.timedelta(seconds=5),
        "completed_at": None,
    }


def job_stage() -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "job_id": JOB_ID,
        "stage_name": "audio_analysis",
        "status": "completed",
        "started_at": T0,
        "completed_at": T0 + dt.timedelta(seconds=42),
        "duration_seconds": 42,
        "cost": "0.006000",
        "metadata": {"cache_hit": False},
        "attempts": 1,
    }


def job_cost() -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "job_id": JOB_ID,
        "stage_name": "reference_generation",
        "api_name": "sdxl",
        "cost": "0.0055",
        "timestamp": T0,
        "idempotency_key": "ref-1",
        "quantity": "1",
        "unit": "image",
        "unit_price": "0.0055",
    }


def audio_analysis() -> dict[str, Any]:
    return {
        "job_id": JOB_ID,
        "bpm": 120.0,
        "duration": 30.0,
        "beat_timestamps": [0.5, 1.0, 1.5, 29.5],
        "song_structure": [
            {"type": "intro", "start": 0.0, "end": 8.0, "energy": "low"},
            {"type": "chorus", "start": 8.0, "end": 30.0, "energy": "high"},
        ],
        "lyrics": [{"text": "hello", "timestamp": 9.0}],
        "mood": {"primary": "energetic", "secondary": "bright", "energy_level": "high", "confidence": 0.8},
        "clip_boundaries": [
            {"start": 0.0, "end": 5.0, "duration": 5.0},
            {"start": 5.0, "end": 10.0, "duration": 5.0},
        ],
        "metadata": {"processing_time": 1.2, "cache_hit": False},
    }


def scene_plan() -> dict[str, Any]:
    return {
        "job_id": JOB_ID,
        "video_summary": "A night drive",
        "characters": [{"id": "c1", "description": "a driver", "role": "main character"}],
        "scenes": [{"id": "s1", "description": "a highway", "time_of_day": "night"}],
        "style": {
            "color_palette": ["#ff00aa", "#0af"],
            "visual_style": "neon noir",
            "mood": "moody",
            "lighting": "low key",
            "cinematography": "long takes",
        },
        "clip_scripts": [
            {
                "clip_index": 0,
                "start": 0.0,
                "end": 5.0,
                "visual_description": "car on highway",
                "motion": "tracking",
                "camera_angle": "wide",
                "characters": ["c1"],
                "scenes": ["s1"],
                "lyrics_context": None,
                "beat_intensity": "medium",
            },
            {
                "clip_index": 1,
                "start": 5.0,
                "end": 10.0,
                "visual_description": "close-up of the driver",
                "motion": "static",
                "camera_angle": "close",
                "characters": ["c1"],
                "scenes": [],
                "lyrics_context": "hello",
                "beat_intensity": "high",
            },
        ],
        "transitions": [{"from_clip": 0, "to_clip": 1, "type": "crossfade", "duration": 0.5, "rationale": "flow"}],
    }


def reference_image(*, scene: bool = True, cost: str = "0.0055") -> dict[str, Any]:
    return {
        "scene_id": "s1" if scene else None,
        "character_id": None if scene else "c1",
        "image_url": "https://example.com/ref.png",
        "prompt_used": "a highway at night",
        "generation_time": 3.5,
        "cost": cost,
    }


def reference_images() -> dict[str, Any]:
    return {
        "job_id": JOB_ID,
        "scene_references": [reference_image(scene=True)],
        "character_references": [reference_image(scene=False)],
        "total_references": 2,
        "total_generation_time": 7.0,
        "total_cost": "0.0110",
        "status": "success",
        "metadata": {},
    }


def clip_prompts() -> dict[str, Any]:
    return {
        "job_id": JOB_ID,
        "clip_prompts": [
            {
                "clip_index": i,
                "prompt": f"clip {i}",
                "negative_prompt": "blurry",
                "duration": 5.0,
                "scene_reference_url": None,
                "character_reference_urls": [],
                "metadata": {"word_count": 2},
            }
            for i in range(2)
        ],
        "total_clips": 2,
        "generation_time": 1.0,
    }


def clip(index: int = 0, *, status: str = "success", cost: str = "0.10") -> dict[str, Any]:
    return {
        "clip_index": index,
        "video_url": f"https://example.com/clip{index}.mp4" if status == "success" else "",
        "actual_duration": 5.2,
        "target_duration": 5.0,
        "duration_diff": 0.2,
        "status": status,
        "cost": cost,
        "retry_count": 0,
        "generation_time": 30.0,
    }


def clips() -> dict[str, Any]:
    return {
        "job_id": JOB_ID,
        "clips": [clip(0), clip(1, status="failed", cost="0.20")],
        "total_clips": 2,
        "successful_clips": 1,
        "failed_clips": 1,
        "total_cost": "0.30",
        "total_generation_time": 60.0,
    }


def video_output() -> dict[str, Any]:
    return {
        "job_id": JOB_ID,
        "video_url": "https://example.com/final.mp4",
        "duration": 30.0,
        "audio_duration": 30.0,
        "sync_drift": 0.02,
        "clips_used": 6,
        "clips_trimmed": 2,
        "clips_looped": 1,
        "transitions_applied": 5,
        "file_size_mb": 12.5,
        "composition_time": 20.0,
        "cost": "0",
        "status": "success",
    }


def phase_output() -> dict[str, Any]:
    return {
        "video_id": JOB_ID,
        "phase": "audio_analysis",
        "status": "success",
        "output_data": {"bpm": 120},
        "cost_usd": "0.006",
        "duration_seconds": 12.5,
        "error_message": None,
    }


def video_response() -> dict[str, Any]:
    return {
        "video_id": JOB_ID,
        "status": "complete",
        "final_video_url": "https://example.com/final.mp4",
        "cost_usd": "1.234567",
        "generation_time_seconds": 300.0,
        "created_at": T0,
        "completed_at": T0 + dt.timedelta(minutes=5),
        "spec": {"style": "noir"},
    }


def status_response() -> dict[str, Any]:
    return {
        "video_id": JOB_ID,
        "status": "generating_chunks",
        "progress": 55.5,
        "current_phase": "video_generation",
        "estimated_time_remaining": 120,
        "error": None,
    }


def with_(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``payload`` with the dotted ``path`` (list indices allowed) set to ``value``."""
    result = copy.deepcopy(payload)
    target: Any = result
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return result
