"""``manage.py demo``: a simulated pipeline run that shows jobs, stages, costs and budgets working together.

Three jobs go through the pipeline's stages in order. The paid calls are
simulated (a short sleep) and charged through the cost tracker; clip generation
runs in parallel threads with enforced charges or reservations. One job has a
small budget: its clips hit the limit, the tracker refuses the next charge with
``BudgetExceededError`` and the job fails with that code, at the progress it reached.
The three jobs advance side by side, stage by stage (their calls one job at a time, so
SQLite copes); each stage lasts at least ``--stage-seconds`` (0.6 s: durations are stored
in whole seconds, so every stage shows one or more). Then the
budget report of this run's jobs is printed, and a short human summary last.

The pipeline's JSON logs are for machines: the demo shows only warnings and errors
(``-v 2`` shows every line). It takes a few seconds and can be run again and again
(each run creates new jobs under a fresh demo user).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from common.errors import BudgetExceededError, GenerationError, PipelineError
from common.log import job_context
from common.models import Job
from common.money import format_dollars, format_money, round_money
from common.services import costs, jobs

STAGES = (
    "audio_analysis",
    "scene_planning",
    "reference_generation",
    "prompt_generation",
    "video_generation",
    "composition",
)


@contextmanager
def quiet_logs(verbosity: int) -> Iterator[None]:
    """Below ``-v 2``, the ``common`` loggers pass only warnings and errors while the demo runs."""
    logger = logging.getLogger("common")
    before = logger.level
    if verbosity < 2:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(before)


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
    note: str = ""
    stages_done: int = 0
    clips_done: int = 0
    progress_lock: threading.Lock = field(default_factory=threading.Lock)


class Command(BaseCommand):
    """Run a small simulated pipeline against the configured database and print the budget report."""

    help = (
        "Simulate the pipeline for three jobs (stages in order, clips charged from parallel threads with budget "
        "enforcement); one job hits its budget and fails with BUDGET_EXCEEDED. Prints the budget report and a "
        "short summary; logs only warnings unless -v 2."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Size of the run."""
        parser.add_argument("--clips", type=int, default=24, help="clips per job (default 24)")
        parser.add_argument("--workers", type=int, default=6, help="parallel clip workers (default 6)")
        parser.add_argument("--seed", type=int, default=7, help="random seed for the simulated latencies")
        parser.add_argument("--delay", type=float, default=0.01, help="simulated seconds per API call")
        parser.add_argument(
            "--stage-seconds", type=float, default=0.6, help="the least time a stage lasts (default 0.6; 0 = no wait)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the three jobs, then print the report and the summary."""
        with quiet_logs(int(options["verbosity"])):
            self._handle(options)

    def _handle(self, options: dict[str, Any]) -> None:
        self.rng = random.Random(options["seed"])  # noqa: S311 - simulation, not security
        self.rng_lock = threading.Lock()
        self.delay = max(0.0, float(options["delay"]))
        self.stage_seconds = max(0.0, float(options["stage_seconds"]))
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

        self._run_all(plans, workers)
        elapsed = time.perf_counter() - started
        self.stdout.write(f"pipeline simulated in {elapsed:.1f}s\n")
        self.stdout.write(self.style.MIGRATE_HEADING("Budget report for this run"))
        call_command(
            "budget_report",
            *[arg for plan in plans if plan.job for arg in ("--job", str(plan.job.id))],
            stdout=self.stdout,
            no_color=options.get("no_color", False),
        )
        self._summary(plans, user)

    def _summary(self, plans: list[Plan], user: uuid.UUID) -> None:
        """The human summary, printed last: each job's outcome, progress and spend, and where to look next."""
        rows = {job.id: job for job in Job.objects.filter(id__in=[p.job.id for p in plans if p.job])}
        self.stdout.write("\n" + self.style.MIGRATE_HEADING("Summary"))
        spent = Decimal(0)
        for plan in plans:
            assert plan.job is not None
            job = rows[plan.job.id]
            spent += job.total_cost
            where = "" if job.status == "completed" else f" at {job.current_stage}"
            self.stdout.write(
                f"  {plan.title:36} {plan.outcome}{where}, {job.progress}% done\n"
                f"  {'':36} spent {format_dollars(job.total_cost)} of {format_dollars(job.budget_limit)}{plan.note}"
            )
        self.stdout.write(
            f"  {len(plans)} jobs for demo user {user}, {format_dollars(spent)} spent in all "
            f"(exact: {format_money(spent)})\n"
            "  See them in the admin: `make serve`, then http://127.0.0.1:8000/admin/ and the spend page at\n"
            "  http://127.0.0.1:8000/admin/spend/ (user admin, password admin). `-v 2` shows the JSON logs."
        )

    # ------------------------------------------------------------------ the pipeline

    def _call(self) -> None:
        """Simulate the latency of one paid API call."""
        with self.rng_lock:
            pause = self.delay * (0.5 + self.rng.random())
        time.sleep(pause)

    def _run_all(self, plans: list[Plan], workers: int) -> None:
        """Advance the jobs stage by stage, reporting progress after each.

        Start the stage on each job, do each one's work, wait out ``--stage-seconds``, then complete
        it (or fail the job that was stopped, at the progress it reached).
        """
        active = [plan for plan in plans if plan.job is not None]
        for name in STAGES:
            started = time.monotonic()
            stopped: list[tuple[Plan, PipelineError]] = []
            for plan in active:
                assert plan.job is not None
                jobs.stage_start(job_id=plan.job.id, stage_name=name)
            for plan in active:
                assert plan.job is not None
                try:
                    with job_context(plan.job.id, name):
                        self._work(plan, name, workers)
                except PipelineError as exc:
                    stopped.append((plan, exc))
            time.sleep(max(0.0, self.stage_seconds - (time.monotonic() - started)))
            for plan, error in stopped:
                self._progress(plan)  # the progress it reached: its clips made so far count
                self._fail(plan, error)
                active.remove(plan)
            for plan in active:
                assert plan.job is not None
                jobs.stage_complete(job_id=plan.job.id, stage_name=name)
                plan.stages_done += 1
                self._progress(plan)
        for plan in active:
            assert plan.job is not None
            jobs.job_complete(job_id=plan.job.id, video_url=f"https://example.test/videos/{plan.job.id}.mp4")
            plan.outcome = self.style.SUCCESS("completed")

    def _fail(self, plan: Plan, exc: PipelineError) -> None:
        """Fail the job with the error that stopped it (its running stage fails with it)."""
        assert plan.job is not None
        jobs.job_fail(job_id=plan.job.id, error=exc)
        if isinstance(exc, BudgetExceededError):
            d = exc.details
            plan.note = f"; the next {d['attempted']} charge would have passed the {d['limit']} budget"
        plan.outcome = self.style.ERROR(f"FAILED {exc.code}")

    def _progress(self, plan: Plan) -> None:
        """Report the job's progress: the stages done, a clip counting for its share of video generation (< 100)."""
        assert plan.job is not None
        done = plan.stages_done + (plan.clips_done / plan.clips if plan.stages_done == 4 else 0)
        progress = min(int(100 * done / len(STAGES)), 99)
        jobs.job_update_progress(job_id=plan.job.id, progress=progress)

    def _work(self, plan: Plan, stage: str, workers: int) -> None:
        """The paid calls of one stage of one job (raises ``BudgetExceededError`` when its budget refuses one)."""
        assert plan.job is not None
        job_id = plan.job.id

        def charge(api: str, quantity: Decimal | int) -> None:
            self._call()
            costs.track_cost(job_id, stage, api, None, quantity=quantity, enforce=True)

        if stage == "audio_analysis":
            charge("whisper", Decimal("3.5"))
        elif stage == "scene_planning":
            charge("gpt-4o", 12)
        elif stage == "reference_generation":
            for _ in range(8):
                charge("sdxl", 1)
        elif stage == "prompt_generation":
            for _ in range(4):
                charge("gpt-4-turbo", 1)
        elif stage == "video_generation":
            self._clips(plan, workers)
        else:
            charge("musicgen", 1)

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
            else:
                with plan.progress_lock:  # counted here, reported by the main thread (one writer at a time)
                    plan.clips_done += 1
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
