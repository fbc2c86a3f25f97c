"""A job whose worker died after its last stage but before ``job_complete``, requeued by recovery.

Found by the soak test: the worker that takes the requeued job again skips the completed stages (the README's
resume rule) and has only ``job_complete`` left, which refused a job that was ``queued``. Such a job may be
completed; a queued job with work left (a stage not completed, or no stage at all) still may not.
"""

from __future__ import annotations

import pytest

from common.errors import ValidationError
from common.services.jobs import job_complete, stage_complete, stage_start
from common.services.recovery import job_requeue
from tests.services.lease_helpers import new_job, silence

pytestmark = pytest.mark.django_db(transaction=True)


def stages_done(job_id, names: list[str]) -> None:
    for name in names:
        stage_start(job_id=job_id, stage_name=name, owner="dead-worker")
        stage_complete(job_id=job_id, stage_name=name)


def pipeline() -> list[str]:
    from common.conf import app_settings

    return list(app_settings.PIPELINE_STAGES)


def test_a_requeued_job_with_every_stage_done_can_be_completed():
    job = new_job()
    stages_done(job.id, pipeline())
    silence(job.id)  # the worker died before job_complete
    assert job_requeue(job_id=job.id).status == "queued"
    done = job_complete(job_id=job.id, video_url="https://example.com/final.mp4")
    assert (done.status, done.progress, done.video_url) == ("completed", 100, "https://example.com/final.mp4")


def test_a_queued_job_with_work_left_still_cannot_complete():
    fresh = new_job()
    half = new_job()
    stages_done(half.id, pipeline()[:2])
    silence(half.id)
    job_requeue(job_id=half.id)
    stage_start(job_id=half.id, stage_name=pipeline()[2], owner="w")  # and one started, then requeued again
    silence(half.id)
    job_requeue(job_id=half.id)
    for job in (fresh, half):
        with pytest.raises(ValidationError) as refused:
            job_complete(job_id=job.id, video_url="https://example.com/final.mp4")
        assert refused.value.code == "INVALID_TRANSITION"
        job.refresh_from_db()
        assert job.status == "queued"
