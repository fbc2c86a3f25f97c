"""``manage.py demo``: a simulated pipeline run that shows jobs, stages, costs and budgets working together.

Three jobs go through the pipeline's stages in order. The paid calls are
simulated (a short sleep) and charged through the cost tracker; clip generation
runs in parallel threads with enforced charges or reservations. One job has a
small budget: its clips hit the limit, the tracker refuses the next charge with
``BudgetExceededError`` and the job fails with that code. Then the budget report
of this run's jobs is printed. It takes seconds and can be run again and again
(each run creates new jobs under a fresh demo user).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from common.errors import BudgetExceededError, GenerationError, PipelineError
from common.log import job_context
from common.models import Job
from common.money import format_money, round_money
from common.services import costs, jobs


@dataclass
class Plan:
    """One demo job: its budget, the clip API, and how clips are paid for."""

    title: str
    budget: Decimal
    clip_api: str
    clips: int
    reserve: bool = False
    failing_clips: frozenset[int] = frozenset()
    job: Job | None = None
    outcome: str = ""
    charged: list[Decimal] = field(default_factory=list)


class Command(BaseCommand):
    """Run a small simulated pipeline against the configured database and print the budget report."""

    help = (
        "Simulate the pipeline for three jobs (stages in order, clips charged from parallel threads with budget "
        "enforcement); one job hits its budget and fails with BUDGET_EXCEEDED. Prints the budget report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Size of the run."""
        parser.add_argument("--clips", type=int, default=24, help="clips per job (default 24)")
        parser.add_argument("--workers", type=int, default=6, help="parallel clip workers (default 6)")
        parser.add_argument("--seed", type=int, default=7, help="random seed for the simulated latencies")
        parser.add_argument("--delay", type=float, default=0.01, help="simulated seconds per API call")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the three jobs, then print the report."""
        self.rng = random.Random(options["seed"])  # noqa: S311 - simulation, not security
        self.rng_lock = threading.Lock()
        self.delay = max(0.0, float(options["delay"]))
        clips = max(1, int(options["clips"]))
        workers = max(1, int(options["workers"]))
        user = uuid.uuid4()
        plans = [
            Plan("SVD clips, default budget", Decimal("20.00"), "svd", clips),
            Plan("Zeroscope clips with reservations", Decimal("5.00"), "zeroscope", clips, reserve=True,
                 failing_clips=frozenset({3})),
            Plan("AnimateDiff clips, small budget", Decimal("3.00"), "animatediff", clips),
        ]  # fmt: skip
        started = time.perf_counter()
        self.stdout.write(self.style.MIGRATE_HEADING(f"videogen demo: {len(plans)} jobs, user {user}"))
        for plan in plans:
            plan.job = jobs.job_create(
                user_id=user,
                audio_url="https://example.test/demo-song.mp3",
                user_prompt=f"demo: {plan.title}",
                budget_limit=plan.budget,
            )
            with job_context(plan.job.id):
                self._run(plan, workers)
            self.stdout.write(f"  {plan.title:36} {plan.outcome}")
        elapsed = time.perf_counter() - started
        self.stdout.write(f"pipeline simulated in {elapsed:.1f}s\n")
        self.stdout.write(self.style.MIGRATE_HEADING("Budget report for this run"))
        call_command(
            "budget_report",
            *[arg for plan in plans if plan.job for arg in ("--job", str(plan.job.id))],
            stdout=self.stdout,
            no_color=options.get("no_color", False),
        )

    # ------------------------------------------------------------------ the pipeline

    def _call(self) -> None:
        """Simulate the latency of one paid API call."""
        with self.rng_lock:
            pause = self.delay * (0.5 + self.rng.random())
        time.sleep(pause)

    def _stage(self, plan: Plan, name: str, work: Callable[[], None]) -> None:
        assert plan.job is not None
        jobs.stage_start(job_id=plan.job.id, stage_name=name)
        work()
        jobs.stage_complete(job_id=plan.job.id, stage_name=name)

    def _run(self, plan: Plan, workers: int) -> None:
        assert plan.job is not None
        job_id = plan.job.id

        def charge(stage: str, api: str, quantity: Decimal | int) -> None:
            self._call()
            costs.track_cost(job_id, stage, api, None, quantity=quantity, enforce=True)

        def repeat(times: int, stage: str, api: str) -> None:
            for _ in range(times):
                charge(stage, api, 1)

        try:
            self._stage(plan, "audio_analysis", lambda: charge("audio_analysis", "whisper", Decimal("3.5")))
            self._stage(plan, "scene_planning", lambda: charge("scene_planning", "gpt-4o", 12))
            self._stage(plan, "reference_generation", lambda: repeat(8, "reference_generation", "sdxl"))
            self._stage(plan, "prompt_generation", lambda: repeat(4, "prompt_generation", "gpt-4-turbo"))
            self._stage(plan, "video_generation", lambda: self._clips(plan, workers))
            self._stage(plan, "composition", lambda: charge("composition", "musicgen", 1))
        except BudgetExceededError as exc:
            jobs.job_fail(job_id=job_id, error=exc)
            d = exc.details
            plan.outcome = self.style.ERROR(
                f"FAILED {exc.code}: spent {d['spent']} + reserved {d['reserved']} + {d['attempted']} > {d['limit']}"
            )
            return
        except PipelineError as exc:  # pragma: no cover - the simulation raises nothing else
            jobs.job_fail(job_id=job_id, error=exc)
            plan.outcome = self.style.ERROR(f"FAILED {exc.code}: {exc}")
            return
        jobs.job_complete(job_id=job_id, video_url=f"https://example.test/videos/{job_id}.mp4")
        spent = costs.get_total_cost(job_id)
        plan.outcome = self.style.SUCCESS(f"completed, spent {format_money(spent)} of {plan.budget}")

    def _clips(self, plan: Plan, workers: int) -> None:
        """Generate the clips in parallel threads; the first refused charge stops the others."""
        assert plan.job is not None
        job_id = plan.job.id
        price = costs.estimate_cost(plan.clip_api, 1)
        stop = threading.Event()
        refused: list[BudgetExceededError] = []

        def clip(n: int) -> None:
            if stop.is_set():
                return
            try:
                with job_context(job_id, "video_generation"):
                    if plan.reserve:
                        self._reserved_clip(job_id, n, plan, price)
                    else:
                        self._call()
                        costs.track_cost(
                            job_id,
                            "video_generation",
                            plan.clip_api,
                            price,
                            quantity=1,
                            enforce=True,
                            idempotency_key=f"clip-{n}",
                        )
            except BudgetExceededError as exc:
                stop.set()
                refused.append(exc)
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clip") as pool:
            list(pool.map(clip, range(plan.clips)))
        if refused:
            raise refused[0]

    def _reserved_clip(self, job_id: uuid.UUID, n: int, plan: Plan, estimate: Decimal) -> None:
        """Hold the estimate, "call" the API, settle the actual cost (or release the hold when the call fails)."""
        try:
            with costs.reservation(job_id, "video_generation", plan.clip_api, estimate) as held:
                self._call()
                if n in plan.failing_clips:
                    raise GenerationError(f"clip {n}: the model returned no frames", job_id=job_id)
                # Actual cost a little under the estimate (e.g. a shorter clip).
                held.settle(round_money(estimate * Decimal("0.9")))
        except GenerationError:
            # The hold was released; a real worker would retry the clip here.
            costs.track_cost(
                job_id, "video_generation", plan.clip_api, estimate, enforce=True, idempotency_key=f"clip-{n}-retry"
            )
