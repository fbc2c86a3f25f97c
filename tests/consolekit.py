"""Data for the console's tests (issue 15): jobs in each budget state, charges over several UTC days, holds.

Written through the services (``job_create``, ``charge_record``, the holds); a charge's timestamp is
moved back with SQL afterwards, as the ledger is append-only through the ORM.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from common.errors import BudgetExceededError
from common.models import Job, JobCost
from common.services.charges import charge_record
from common.services.holds import hold_release, hold_reserve
from common.services.jobs import job_create, job_fail, stage_start

D = Decimal
ALICE = uuid.UUID("a11ce000-0000-4000-8000-000000000001")
BOB = uuid.UUID("b0b00000-0000-4000-8000-000000000002")


def noon(days_ago: int) -> dt.datetime:
    """Noon UTC ``days_ago`` days before today, or an hour ago when that is earlier (today's noon may be ahead)."""
    now = timezone.now().astimezone(dt.UTC)
    moment = now.replace(hour=12, minute=0, second=0, microsecond=0) - dt.timedelta(days=days_ago)
    if days_ago == 0 and moment > now:
        moment = now.replace(minute=0, second=0, microsecond=0)
    return moment


def charge(job: Job, amount: str, *, stage: str, api: str, days_ago: int = 0) -> JobCost:
    """Charge ``job`` through the service, then date the row ``days_ago`` days back (noon UTC)."""
    row = charge_record(job_id=job.id, stage=stage, api_name=api, cost=D(amount))
    at = noon(days_ago)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE job_costs SET timestamp = %s WHERE id = %s", [at, row.id.hex])
    return row


def new_job(budget: str, *, user: uuid.UUID, prompt: str) -> Job:
    """A job created through the lifecycle service, in its first stage."""
    job = job_create(user_id=user, audio_url="https://example.test/song.mp3", user_prompt=prompt, budget_limit=budget)
    stage_start(job_id=job.id, stage_name="audio_analysis")
    return job


@dataclass
class World:
    """What :func:`build_world` wrote, and the figures the pages must show."""

    jobs: dict[str, Job] = field(default_factory=dict)
    per_day: dict[int, Decimal] = field(default_factory=dict)  # days ago -> spend
    reserved: Decimal = Decimal(0)

    def spent_since(self, days: int) -> Decimal:
        """Spend over the last ``days`` UTC days, today included."""
        return sum((v for k, v in self.per_day.items() if k < days), D(0))

    @property
    def all_time(self) -> Decimal:
        return sum(self.per_day.values(), D(0))


def build_world() -> World:
    """Four jobs of two users: ``big`` (ok), ``near`` (at 85 %), ``stopped`` (failed BUDGET_EXCEEDED), ``old``.

    Charges today, 1, 3 and 10 days ago and 40 days ago (outside the 30-day chart); days 2, 4-9 ... have none.
    One open hold (0.40) and one released hold (0.70, refunded: reserves nothing).
    """
    world = World()
    big = world.jobs["big"] = new_job("20.00", user=ALICE, prompt="big")
    near = world.jobs["near"] = new_job("1.00", user=BOB, prompt="near")
    stopped = world.jobs["stopped"] = new_job("0.50", user=BOB, prompt="stopped")
    old = world.jobs["old"] = new_job("50.00", user=ALICE, prompt="old")
    plan = [
        (big, "1.25", "video_generation", "svd", 0),
        (big, "0.0055", "reference_generation", "sdxl", 0),
        (near, "0.60", "video_generation", "svd", 1),
        (near, "0.25", "scene_planning", "gpt-4o", 1),
        (big, "2.50", "video_generation", "svd", 3),
        (stopped, "0.063", "audio_analysis", "whisper", 10),
        (stopped, "0.30", "scene_planning", "gpt-4o", 10),
        (old, "4.00", "composition", "ffmpeg-cloud", 40),
    ]
    for job, amount, stage, api, days_ago in plan:
        charge(job, amount, stage=stage, api=api, days_ago=days_ago)
        world.per_day[days_ago] = world.per_day.get(days_ago, D(0)) + D(amount)
    job_fail(job_id=stopped.id, error=BudgetExceededError("clip 4 refused", job_id=stopped.id))
    hold_reserve(job_id=big.id, stage="video_generation", api_name="svd", estimate=D("0.40"))
    released = hold_reserve(job_id=big.id, stage="video_generation", api_name="svd", estimate=D("0.70"))
    hold_release(hold=released)
    world.reserved = D("0.40")
    for key, job in world.jobs.items():
        job.refresh_from_db()
        world.jobs[key] = job
    return world
