"""The README's "Using common from a pipeline module" example, run for real on the embedded defaults."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.test import override_settings

from common import get_logger, job_context, retry_with_backoff
from common.models import Job
from common.schemas import ClipPrompt
from common.services import costs, jobs
from common.storage import download_file, upload_file

pytestmark = pytest.mark.django_db

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


@retry_with_backoff(max_attempts=3, base_delay=2)
def render(prompt: ClipPrompt) -> bytes:
    return MP4


def generate_clip(job_id, prompt: ClipPrompt) -> str:
    logger = get_logger("tests.readme")
    with job_context(job_id, stage="video_generation"):
        with costs.reservation(job_id, "video_generation", "svd", costs.estimate_cost("svd", 1)) as held:
            video = render(prompt)
            held.settle(Decimal("0.06"))
        url = upload_file("video-clips", f"{job_id}/clip_{prompt.clip_index}.mp4", video)
        logger.info("clip rendered", extra={"clip_index": prompt.clip_index})
        return url


def test_readme_module_example(tmp_path):
    with override_settings(MEDIA_ROOT=tmp_path):
        job = jobs.job_create(user_id=uuid.uuid4(), audio_url="https://example.test/song.mp3", user_prompt="neon city")
        jobs.stage_start(job_id=job.id, stage_name="video_generation")
        prompt = ClipPrompt(clip_index=0, prompt="a neon city at night", duration=4.0)

        url = generate_clip(job.id, prompt)

        job = Job.objects.get(pk=job.id)
        assert job.total_cost == Decimal("0.06")
        assert job.reserved_cost == 0
        assert list(job.costs.values_list("api_name", "cost")) == [("svd", Decimal("0.060000"))]
        assert download_file("video-clips", f"{job.id}/clip_0.mp4") == MP4
        assert url
