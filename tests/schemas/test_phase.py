"""Phase contracts and API payloads, and the VideoStatus mapping from a job."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from common.schemas import (
    GenerateRequest,
    GenerateResponse,
    PhaseInput,
    PhaseOutput,
    StatusResponse,
    VideoResponse,
    VideoStatus,
)
from tests.schemas import payloads as p
from tests.schemas.conftest import assert_invalid


def test_video_status_values():
    assert [s.value for s in VideoStatus] == [
        "queued",
        "validating",
        "generating_animatic",
        "generating_references",
        "generating_chunks",
        "refining",
        "exporting",
        "complete",
        "failed",
        "cancelled",
    ]


@pytest.mark.parametrize(
    ("status", "stage", "expected"),
    [
        ("queued", None, VideoStatus.QUEUED),
        ("processing", None, VideoStatus.VALIDATING),
        ("processing", "audio_analysis", VideoStatus.VALIDATING),
        ("processing", "scene_planning", VideoStatus.GENERATING_ANIMATIC),
        ("processing", "reference_generation", VideoStatus.GENERATING_REFERENCES),
        ("processing", "video_generation", VideoStatus.GENERATING_CHUNKS),
        ("processing", "composition", VideoStatus.EXPORTING),
        ("processing", "something_new", VideoStatus.VALIDATING),
        ("completed", "composition", VideoStatus.COMPLETE),
        ("failed", None, VideoStatus.FAILED),
        ("cancelled", None, VideoStatus.CANCELLED),
    ],
)
def test_video_status_for_job(status, stage, expected):
    assert VideoStatus.for_job(status, stage) is expected


def test_video_status_for_unknown_job_status():
    with pytest.raises(ValueError, match="unknown job status 'paused'"):
        VideoStatus.for_job("paused")


def test_generate_request_prompt_length():
    assert GenerateRequest(prompt="x" * 10).assets == []
    assert GenerateRequest(prompt="x" * 1000, assets=[{"type": "image", "url": "u"}]).assets[0]["type"] == "image"
    assert_invalid(GenerateRequest, {"prompt": "too short"}, "at least 10 characters")
    assert_invalid(GenerateRequest, {"prompt": "x" * 1001}, "at most 1000 characters")
    assert_invalid(GenerateRequest, {"prompt": "   short    "}, "at least 10 characters")
    assert_invalid(GenerateRequest, {"prompt": "x" * 20, "assets": [{"url": 3}]}, "assets.0.url")


def test_phase_input_and_output():
    assert PhaseInput(video_id=p.JOB_ID, spec={"a": 1}).spec == {"a": 1}
    out = PhaseOutput.model_validate(p.phase_output())
    assert json.loads(out.model_dump_json())["cost_usd"] == "0.006"
    assert PhaseOutput.model_validate_json(out.model_dump_json()) == out
    assert_invalid(
        PhaseOutput, {**p.phase_output(), "status": "failed"}, "a failed phase output needs an error_message"
    )
    assert_invalid(PhaseOutput, {**p.phase_output(), "duration_seconds": -1}, "greater than or equal to 0")
    assert_invalid(PhaseOutput, {**p.phase_output(), "cost_usd": 0.5}, "floats are inexact")
    failed = PhaseOutput.model_validate({**p.phase_output(), "status": "failed", "error_message": "boom"})
    assert failed.error_message == "boom"


def test_api_responses():
    response = GenerateResponse(video_id=p.JOB_ID, status=VideoStatus.QUEUED, message="queued")
    assert json.loads(response.model_dump_json())["status"] == "queued"
    status = StatusResponse.model_validate(p.status_response())
    assert StatusResponse.model_validate_json(status.model_dump_json()) == status
    assert_invalid(StatusResponse, {**p.status_response(), "progress": 100.5}, "less than or equal to 100")
    assert_invalid(StatusResponse, {**p.status_response(), "status": "processing"}, "status")
    assert_invalid(StatusResponse, {**p.status_response(), "estimated_time_remaining": -1}, "greater than or equal")


def test_video_response():
    video = VideoResponse.model_validate(p.video_response())
    data = json.loads(video.model_dump_json())
    assert data["cost_usd"] == "1.234567"
    assert VideoResponse.model_validate_json(video.model_dump_json()) == video
    early = p.T0 - dt.timedelta(seconds=1)
    assert_invalid(VideoResponse, {**p.video_response(), "completed_at": early}, "must not be before created_at")
    assert_invalid(VideoResponse, {**p.video_response(), "generation_time_seconds": -3}, "greater than or equal to 0")
