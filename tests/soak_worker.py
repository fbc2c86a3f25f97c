"""A pipeline worker process for the soak test (``tests/test_soak.py``): jobs from a Redis list, six stages each.

Run by the test as ``python -m tests.soak_worker --run RUN --name NAME --threads N [--freeze]`` with
``DJANGO_SETTINGS_MODULE``, ``DATABASE_URL`` (the test's own database), ``REDIS_URL``, ``SUPABASE_URL`` and
``SUPABASE_SERVICE_KEY`` (the storage stand-in) and ``SOAK_SETTINGS`` (JSON: the test's ``VIDEOGEN_COMMON``).

It works the way the README tells a worker to:

* the main thread moves job ids from the list ``soak:<run>:queue`` to ``soak:<run>:inflight:<name>`` (``LMOVE``,
  so a job a dead worker took is still known) and runs each job on a thread pool with ``submit_in_context``
  (the thread gives its database connection back when the job ends);
* each stage runs in ``stage_lease`` (a heartbeat thread; the stage completes with the block, fails when it
  raises); stages already completed (by a worker that died later) are skipped;
* paid calls are charged with idempotency keys or held first (``costs.reservation``) and settled;
* artefacts are small samples uploaded under ``<job_id>/`` in the four buckets, clips rendered in a temp
  workspace of the job by a pool of two threads (``submit_in_context`` again, logging with the job's context);
* the scene plan is cached (``cache.set_json``) and reused by a later attempt;
* before ``job_complete`` every object recorded by the stages is checked to exist (a cleanup that touched a
  live job would fail the job); a ``PipelineError`` fails the job with its code, ``LEASE_LOST`` leaves it alone.

``--freeze`` (the worker the test kills): its first and third jobs freeze in ``video_generation`` after two
clips are uploaded and charged and while the third clip's hold is open; its second job freezes right after it
was taken off the queue (it still looks queued); its fourth freezes after its last stage, before ``job_complete``.
Each freeze is pushed onto ``soak:<run>:frozen`` (``<point>:<job id>``); once all four are there, the test sends
SIGKILL.

At the end the worker prints one JSON line: the outcome of each job it ran and the ids of the ledger rows it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from decimal import Decimal
from pathlib import Path
from typing import Any

CLIPS = 3
REFERENCES = 2
# What one attempt of each stage costs (charged or settled); a job run once costs their sum.
STAGE_COSTS = {
    "audio_analysis": Decimal("0.018"),  # whisper, 3 minutes
    "scene_planning": Decimal("0.01"),  # gpt-4-turbo, settled (0 when the plan came from the cache)
    "reference_generation": Decimal("0.011"),  # sdxl, 2 images
    "prompt_generation": Decimal("0.005"),  # gpt-4o, 2k tokens
    "video_generation": CLIPS * (Decimal("0.05") + Decimal("0.01")),  # svd settled + an idempotent upscale fee
    "composition": Decimal("0.15"),  # animatediff, settled
}
ONE_RUN_COST = sum(STAGE_COSTS.values(), Decimal(0))
REFUSED_PROMPT_MARK = "[refused]"  # composition raises CompositionError for such a job (after the clips)


def key(run: str, *parts: str) -> str:
    """A Redis key of this soak run (the test deletes ``soak:<run>:*`` when it ends)."""
    return ":".join(("soak", run, *parts))


class Freezer:
    """Where the worker the test kills stops: a mid-stage job and a taken-but-not-started job."""

    def __init__(self, enabled: bool, redis: Any, run: str) -> None:
        self.enabled = enabled
        self.redis = redis
        self.run = run
        self.plan: dict[str, str] = {}  # job id -> one of POINTS
        self.lock = threading.Lock()

    POINTS = ("mid_stage", "before_start", "mid_stage_2", "after_last_stage")

    def assign(self, job_id: str) -> None:
        """The first jobs this worker takes get the freeze points, one each."""
        with self.lock:
            if self.enabled and len(self.plan) < len(self.POINTS):
                self.plan[job_id] = self.POINTS[len(self.plan)]

    def mid_stage(self, job_id: str) -> bool:
        """True for a job that is to freeze in the middle of its clips."""
        return self.plan.get(job_id, "").startswith("mid_stage")

    def at(self, job_id: str, point: str) -> None:
        """Freeze here forever (until SIGKILL) when ``job_id`` was given ``point``."""
        if self.plan.get(job_id) == point:
            self.redis.rpush(key(self.run, "frozen"), f"{point}:{job_id}")
            threading.Event().wait()


class Worker:
    """One worker process: a queue reader on the main thread, jobs on a pool, clips on a pool per job."""

    def __init__(self, *, run: str, name: str, threads: int, freeze: bool) -> None:
        import redis

        self.run, self.name, self.threads = run, name, threads
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.freezer = Freezer(freeze, self.redis, run)
        self.outcomes: dict[str, str] = {}
        self.charges: list[str] = []
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ the queue

    def serve(self) -> None:
        """Wait for the test's start signal (``soak:<run>:go:<name>``), then run jobs until the queue is empty."""
        from common.log import submit_in_context

        self.redis.incr(key(self.run, "ready"))
        while not self.redis.exists(key(self.run, "go", self.name)):
            time.sleep(0.01)
        slots = threading.Semaphore(self.threads)
        futures = []
        with ThreadPoolExecutor(self.threads, thread_name_prefix=f"{self.name}-job") as pool:
            while True:
                slots.acquire()
                raw = self.redis.lmove(key(self.run, "queue"), key(self.run, "inflight", self.name), "LEFT", "RIGHT")
                if raw is None:
                    break
                job_id = raw.decode()
                self.freezer.assign(job_id)
                future = submit_in_context(pool, self.run_job, job_id)
                future.add_done_callback(lambda _f: slots.release())
                futures.append(future)
            wait(futures)
        for future in futures:
            future.result()  # run_job never raises; a bug in this module would show here

    # ------------------------------------------------------------------ one job

    def run_job(self, job_id: str) -> None:
        """Run the job's remaining stages and finish it; record the outcome. Never raises."""
        from common import temp_file_manager
        from common.errors import PipelineError
        from common.log import get_logger, job_context
        from common.services import jobs

        logger = get_logger("soak.worker")
        self.freezer.at(job_id, "before_start")
        with job_context(job_id):
            try:
                outcome = self._stages(job_id)
            except PipelineError as exc:
                if exc.code == "LEASE_LOST" or (exc.details or {}).get("reason") == "lease_held":
                    outcome = "left_to_its_owner"  # another worker has the stage: leave the job (and its files) alone
                else:
                    outcome = f"failed:{exc.code}"
                    jobs.job_fail(job_id=job_id, error=exc)
            except Exception as exc:  # a non-PipelineError escaped common: the test counts these lines
                logger.exception("non-PipelineError escaped: %r", exc, extra={"event": "soak_escaped"})
                outcome = f"escaped:{type(exc).__name__}"
                jobs.job_fail(job_id=job_id, error=PipelineError(f"{type(exc).__name__}: {exc}", job_id=job_id))
            if outcome != "left_to_its_owner":
                temp_file_manager.cleanup_job_temp_files(job_id)  # when a job ends (the README's rule)
        with self.lock:
            self.outcomes[job_id] = outcome
        self.redis.lrem(key(self.run, "inflight", self.name), 1, job_id)

    def _stages(self, job_id: str) -> str:
        from common import selectors
        from common.conf import app_settings
        from common.log import job_context
        from common.models import FINISHED_JOB_STATUSES
        from common.services import jobs
        from common.services.leases import stage_lease

        job = selectors.job_get(job_id=job_id)
        if job.status in FINISHED_JOB_STATUSES:
            return f"already_{job.status}"
        done = {s.stage_name for s in selectors.job_stages(job_id=job_id) if s.status == "completed"}
        for index, stage in enumerate(app_settings.PIPELINE_STAGES):  # one method of this class a stage
            if stage in done:
                continue
            with job_context(job_id, stage=stage), stage_lease(job_id=job_id, stage_name=stage) as lease:
                objects = getattr(self, stage)(job_id, job, lease.stage.attempts)
                lease.complete({"objects": [list(o) for o in objects]})
            jobs.job_update_progress(job_id=job_id, progress=(index + 1) * 15, current_stage=stage)
        self.freezer.at(job_id, "after_last_stage")
        video_url = self._check_objects(job_id)
        jobs.job_complete(job_id=job_id, video_url=video_url)
        return "completed"

    def _check_objects(self, job_id: str) -> str:
        """Every object a stage recorded is still there (a cleanup never touches a live job); the final video's URL."""
        from common import selectors
        from common.errors import StorageError
        from common.storage import exists, get_signed_url

        for stage in selectors.job_stages(job_id=job_id):
            for bucket, name in (stage.metadata or {}).get("objects", []):
                if not exists(bucket, name):
                    raise StorageError(f"{bucket}/{name} recorded by {stage.stage_name} is gone", job_id=job_id)
        return get_signed_url("video-outputs", f"{job_id}/final.mp4")

    def _charged(self, row: Any) -> None:
        with self.lock:
            self.charges.append(str(row.id))

    # ------------------------------------------------------------------ the six stages

    def audio_analysis(self, job_id: str, job: Any, attempt: int) -> list[tuple[str, str]]:
        from common.services import costs
        from common.storage import upload_file
        from tests.storage.samples import MP3

        upload_file("audio-uploads", f"{job_id}/song.mp3", MP3, upsert=True)
        self._charged(
            costs.track_cost(job_id, "audio_analysis", "whisper", None, quantity=3, idempotency_key="whisper")
        )
        return [("audio-uploads", f"{job_id}/song.mp3")]

    def scene_planning(self, job_id: str, job: Any, attempt: int) -> list[tuple[str, str]]:
        from common import cache
        from common.schemas import ScenePlan
        from common.services import costs
        from tests.schemas.payloads import scene_plan

        plan_key = key(self.run, "plan", job_id)
        plan = cache.get_json(plan_key, model=ScenePlan)
        if plan is None:  # a later attempt reuses the plan an earlier one paid for
            with costs.reservation(job_id, "scene_planning", "gpt-4-turbo", costs.estimate_cost("gpt-4-turbo")) as held:
                plan = ScenePlan.model_validate({**scene_plan(), "job_id": job_id})
                self._charged(held.settle(STAGE_COSTS["scene_planning"]))
            cache.set_json(plan_key, plan, ttl=600)
        if cache.get_json(plan_key, model=ScenePlan) != plan:
            raise AssertionError("the cached scene plan did not come back equal")
        return []

    def reference_generation(self, job_id: str, job: Any, attempt: int) -> list[tuple[str, str]]:
        from common.log import submit_in_context
        from common.services import costs
        from common.storage import upload_file
        from tests.storage.samples import PNG

        def image(i: int) -> tuple[str, str]:
            upload_file("reference-images", f"{job_id}/ref_{i}.png", PNG, upsert=True)
            self._charged(
                costs.track_cost(job_id, "reference_generation", "sdxl", None, quantity=1, idempotency_key=f"sdxl:{i}")
            )
            return ("reference-images", f"{job_id}/ref_{i}.png")

        with ThreadPoolExecutor(2, thread_name_prefix=f"{self.name}-ref") as pool:
            return [f.result() for f in [submit_in_context(pool, image, i) for i in range(REFERENCES)]]

    def prompt_generation(self, job_id: str, job: Any, attempt: int) -> list[tuple[str, str]]:
        from common.services import costs

        self._charged(costs.track_cost(job_id, "prompt_generation", "gpt-4o", None, quantity=2, idempotency_key="gpt"))
        return []

    def video_generation(self, job_id: str, job: Any, attempt: int) -> list[tuple[str, str]]:
        from common import temp_file_manager
        from common.log import get_logger, submit_in_context
        from common.services import costs
        from common.storage import upload_file
        from tests.storage.samples import mp4_of

        logger = get_logger("soak.clips")
        uploaded = threading.Semaphore(0)

        def clip(i: int, work: Path) -> tuple[str, str]:
            name = f"{job_id}/clips/attempt{attempt}/clip_{i}.mp4"
            with costs.reservation(job_id, "video_generation", "svd", costs.estimate_cost("svd")) as held:
                path = work / f"clip_{i}.mp4"
                path.write_bytes(mp4_of(4096 + i))
                if i == CLIPS - 1 and self.freezer.mid_stage(job_id):
                    for _ in range(CLIPS - 1):  # the other clips are uploaded and charged first
                        uploaded.acquire()
                    self.freezer.at(job_id, self.freezer.plan[job_id])
                self._charged(held.settle(Decimal("0.05")))
            upload_file("video-clips", name, path, upsert=True)
            upscale = costs.track_cost(job_id, "video_generation", "svd", Decimal("0.01"), idempotency_key=f"up:{i}")
            self._charged(upscale)
            logger.info("clip rendered", extra={"clip_index": i, "worker_thread": threading.current_thread().name})
            uploaded.release()
            return ("video-clips", name)

        with (
            temp_file_manager.temp_directory("render_", job_id=job_id) as work,
            ThreadPoolExecutor(2, thread_name_prefix=f"{self.name}-clip") as pool,
        ):
            futures = [submit_in_context(pool, clip, i, Path(work)) for i in range(CLIPS)]
            return [f.result() for f in futures]

    def composition(self, job_id: str, job: Any, attempt: int) -> list[tuple[str, str]]:
        from common.errors import CompositionError
        from common.services import costs
        from common.storage import upload_file
        from tests.storage.samples import mp4_of

        with costs.reservation(job_id, "composition", "animatediff", costs.estimate_cost("animatediff")) as held:
            if REFUSED_PROMPT_MARK in job.user_prompt:  # the hold is released: the call was not made
                raise CompositionError("the composer refused this job's clips", job_id=job_id, code="COMPOSER_REFUSED")
            upload_file("video-outputs", f"{job_id}/final.mp4", mp4_of(16384), upsert=True)
            self._charged(held.settle(STAGE_COSTS["composition"]))
        return [("video-outputs", f"{job_id}/final.mp4")]


def main() -> None:
    """Set Django up with the test's settings, serve the queue, print the outcome."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--freeze", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from django.test import override_settings

    override_settings(VIDEOGEN_COMMON=json.loads(os.environ["SOAK_SETTINGS"])).enable()
    worker = Worker(run=args.run, name=args.name, threads=args.threads, freeze=args.freeze)
    started = time.monotonic()
    worker.serve()
    print(
        json.dumps(
            {
                "name": args.name,
                "seconds": round(time.monotonic() - started, 3),
                "outcomes": worker.outcomes,
                "charges": worker.charges,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
