"""Shared helpers for the lease and recovery tests: jobs whose worker went silent, without sleeping."""

from __future__ import annotations

import datetime as dt
import uuid

from django.utils import timezone

from common.models import Job, JobStage
from common.selectors import job_lease_duration
from common.services.jobs import job_create

USER = uuid.UUID("77777777-7777-4777-8777-777777777777")


def new_job(budget: str = "20.00") -> Job:
    """A queued job."""
    return job_create(user_id=USER, audio_url="https://example.com/a.mp3", user_prompt="a test", budget_limit=budget)


def silence(job_id: uuid.UUID, seconds: float = 1.0) -> None:
    """Make the job's worker look silent: every lease ran out ``seconds`` ago, and the job row is older.

    The job row's ``updated_at`` goes back a lease before that (``QuerySet.update`` skips ``auto_now``).
    """
    now = timezone.now()
    gone = now - dt.timedelta(seconds=seconds)
    JobStage.objects.filter(job_id=job_id, lease_expires_at__isnull=False).update(lease_expires_at=gone)
    Job.objects.filter(id=job_id).update(updated_at=gone - job_lease_duration())


def untouched_for(job_id: uuid.UUID, seconds: float) -> None:
    """Set the job row's last change ``seconds`` ago."""
    Job.objects.filter(id=job_id).update(updated_at=timezone.now() - dt.timedelta(seconds=seconds))
