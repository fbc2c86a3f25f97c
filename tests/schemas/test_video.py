"""Video payloads: clip prompts, clips and their totals, the composed output."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.schemas import Clip, ClipPrompts, Clips, VideoOutput
from tests.schemas import payloads as p
from tests.schemas.conftest import assert_invalid


def test_valid_payloads_round_trip():
    for model, payload in ((ClipPrompts, p.clip_prompts()), (Clips, p.clips()), (VideoOutput, p.video_output())):
        value = model.model_validate(payload)
        assert model.model_validate_json(value.model_dump_json()) == value


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("total_clips", 3, "total_clips (3) must equal the number of clip_prompts (2)"),
        ("clip_prompts.1.clip_index", 0, "duplicate clip_index: 0"),
        ("clip_prompts.0.duration", 0, "greater than 0"),
        ("clip_prompts.0.prompt", "   ", "at least 1 character"),
    ],
)
def test_clip_prompts_reject(path, value, fragment):
    assert_invalid(ClipPrompts, p.with_(p.clip_prompts(), path, value), fragment)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"duration_diff": 1.0}, "duration_diff (1.0) must equal actual_duration - target_duration (0.200)"),
        ({"target_duration": 0}, "greater than 0"),
        ({"retry_count": -1}, "greater than or equal to 0"),
        ({"video_url": ""}, "a successful clip needs a video_url"),
        ({"status": "partial"}, "'success' or 'failed'"),
    ],
)
def test_clip_rejects(changes, fragment):
    assert_invalid(Clip, {**p.clip(), **changes}, fragment)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("total_clips", 3, "total_clips (3) must equal the number of clips (2)"),
        ("successful_clips", 2, "successful_clips (2) + failed_clips (1) must equal total_clips (2)"),
        ("total_cost", "0.31", "total_cost (0.31) must equal the sum of the clips' costs (0.30)"),
        ("clips.1.clip_index", 0, "duplicate clip_index: 0"),
    ],
)
def test_clips_reject(path, value, fragment):
    assert_invalid(Clips, p.with_(p.clips(), path, value), fragment)


def test_clips_counts_must_match_statuses():
    payload = {**p.clips(), "successful_clips": 0, "failed_clips": 2}
    assert_invalid(Clips, payload, "successful_clips (0) must equal the number of clips with status 'success' (1)")


@given(st.lists(st.sampled_from(["success", "failed"]), max_size=12), st.integers(min_value=0, max_value=999))
def test_clips_totals_agree_for_any_mix(statuses, cents):
    items = [p.clip(i, status=s, cost=f"{cents / 100:.2f}") for i, s in enumerate(statuses)]
    ok = sum(s == "success" for s in statuses)
    clips = Clips.model_validate(
        {
            "job_id": p.JOB_ID,
            "clips": items,
            "total_clips": len(items),
            "successful_clips": ok,
            "failed_clips": len(items) - ok,
            "total_cost": sum((c.cost for c in (Clip.model_validate(i) for i in items)), start=0),
            "total_generation_time": 0,
        }
    )
    assert clips.successful_clips + clips.failed_clips == clips.total_clips


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"clips_trimmed": 7}, "clips_trimmed (7) cannot exceed clips_used (6)"),
        ({"clips_looped": 9}, "clips_looped (9) cannot exceed clips_used (6)"),
        ({"file_size_mb": -1}, "greater than or equal to 0"),
        ({"video_url": ""}, "a successful video output needs a video_url"),
        ({"cost": "-1"}, "must not be negative"),
        ({"duration": float("inf")}, "finite number"),
    ],
)
def test_video_output_rejects(changes, fragment):
    assert_invalid(VideoOutput, {**p.video_output(), **changes}, fragment)


def test_failed_video_output_may_lack_a_url():
    assert VideoOutput.model_validate({**p.video_output(), "status": "failed", "video_url": ""}).status == "failed"
