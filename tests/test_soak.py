"""Issue 16's soak test: two worker processes, one killed with SIGKILL mid-run, then recovery and a second pass.

Real PostgreSQL (the test's database, shared with the workers through ``DATABASE_URL``), real Redis (the job
queue and the scene-plan cache), the storage stand-in over real HTTP, real processes and threads. The workers
are ``tests/soak_worker.py``. Leases, the queued-stale age, retention and the orphan grace are shortened by
settings so that the run is bounded; nothing here asserts a duration.

What must hold at the end (issue 16, "Tests" and "Done when"): every job completed, or failed with a reason;
money exact (``reconcile_costs`` clean, ledger sum == ``total_cost`` for every job, no double charge of an
idempotent call across the two attempts, every ledger row a surviving worker reported is there);
``reserved_cost`` equal to the open holds at every checkpoint and zero at the end; the killed worker's holds,
temp workspace and objects (its partial uploads included) recovered or removed by the documented commands,
while the objects and workspaces of live jobs are never touched; every log line valid JSON, pool threads'
lines carrying their job id.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from common import cache
from common.models import FINISHED_JOB_STATUSES, HoldStatus, Job, JobCost, JobCostHold, JobStage
from common.selectors import jobs_stale
from common.services import costs, jobs
from common.services.recovery import job_requeued
from common.storage import client as storage_client
from common.storage.buckets import BUCKETS, bucket_storages
from tests.envtools import subprocess_env
from tests.soak_worker import CLIPS, ONE_RUN_COST, REFUSED_PROMPT_MARK, key
from tests.storage.fake_supabase import FakeSupabase

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
SERVICE_KEY = "sb_secret_" + "s" * 32  # the stand-in's service key (a key shape the settings accept)
USER = uuid.UUID("55555555-5555-4555-8555-555555555555")
JOBS = 12
THREADS = 4
WAIT = 120.0  # seconds any one wait may last before the test fails saying what it waited for


def app_settings_for(temp_dir: Path) -> dict[str, Any]:
    """The ``VIDEOGEN_COMMON`` of the test and its workers: short leases, no retention, no orphan grace."""
    return {
        "JOB_LEASE_SECONDS": 2,
        "JOB_QUEUED_STALE_SECONDS": 2,
        "STORAGE_RETENTION_DAYS": dict.fromkeys(BUCKETS, 0),
        "STORAGE_ORPHAN_GRACE_HOURS": 0,
        "TEMP_DIR": str(temp_dir),
        "CACHE_DIR": str(temp_dir.parent / "cache"),
    }


def database_url() -> str:
    """The test's own database (pytest-django's ``test_...`` name) as a URL the workers' settings parse."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def until(what: str, done: Callable[[], bool], *, procs: tuple[subprocess.Popen[bytes], ...] = ()) -> None:
    """Wait until ``done()``; fail naming ``what`` after ``WAIT`` seconds or when a worker exits early."""
    deadline = time.monotonic() + WAIT
    while not done():
        for proc in procs:
            assert proc.poll() is None, f"worker exited ({proc.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Soak:
    """The run's shared parts: the stand-in server, Redis, the workers' environment and their log files."""

    def __init__(self, tmp_path: Path, redis_url: str) -> None:
        import redis

        self.run = uuid.uuid4().hex[:12]
        self.tmp = tmp_path
        self.redis = redis.Redis.from_url(redis_url)
        self.redis_url = redis_url
        self.server = FakeSupabase(key=SERVICE_KEY, buckets=tuple(BUCKETS)).start()
        self.settings = app_settings_for(tmp_path / "temp")
        (tmp_path / "temp").mkdir()
        self.env = subprocess_env(
            {
                "DJANGO_SETTINGS_MODULE": "videogen.settings",
                "DATABASE_URL": database_url(),
                "REDIS_URL": redis_url,
                "SUPABASE_URL": self.server.url,
                "SUPABASE_SERVICE_KEY": SERVICE_KEY,
                "LOG_LEVEL": "INFO",
                "SOAK_SETTINGS": json.dumps(self.settings),
            }
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def storages(self) -> dict[str, Any]:
        """STORAGES for this process: every bucket on the stand-in."""
        entries = bucket_storages(supabase=True)
        for entry in entries.values():
            entry["OPTIONS"].update({"url": self.server.url, "key": SERVICE_KEY, "timeout": 10})
        return entries

    def start(self, name: str, *, freeze: bool = False) -> subprocess.Popen[bytes]:
        """Start worker ``name``; its stdout and stderr go to files under the test's tmp_path."""
        args = [sys.executable, "-m", "tests.soak_worker", "--run", self.run, "--name", name, "--threads", str(THREADS)]
        with open(self.tmp / f"{name}.out", "wb") as out, open(self.tmp / f"{name}.err", "wb") as err:
            args += ["--freeze"] if freeze else []
            proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=err)
        self.procs[name] = proc
        return proc

    def go(self, *names: str, ready: int, first_takes: int = 0) -> None:
        """Once ``ready`` workers have set themselves up, let ``names`` take jobs, in this order.

        With ``first_takes``, each waits until the one before has taken that many jobs, so which worker holds
        which job is known (the queue is a plain list: ``LMOVE`` hands them out in order).
        """
        until(
            f"{ready} workers ready",
            lambda: int(self.redis.get(key(self.run, "ready")) or 0) >= ready,
            procs=tuple(self.procs[name] for name in names),
        )
        for name in names:
            self.redis.set(key(self.run, "go", name), 1)
            if first_takes:
                inflight = key(self.run, "inflight", name)
                until(f"{name} to take {first_takes} jobs", lambda q=inflight: self.redis.llen(q) >= first_takes)

    def finish(self, name: str) -> dict[str, Any]:
        """Wait for worker ``name`` to end by itself; return its summary line."""
        proc = self.procs[name]
        proc.wait(WAIT)
        assert proc.returncode == 0, (self.tmp / f"{name}.err").read_text()[-4000:]
        return json.loads((self.tmp / f"{name}.out").read_text().strip().splitlines()[-1])

    def log_lines(self, name: str) -> list[str]:
        return (self.tmp / f"{name}.err").read_text(encoding="utf-8").splitlines()

    def frozen(self) -> dict[str, str]:
        """``{point: job id}`` of the freezes the killed worker reached."""
        return dict(raw.decode().split(":", 1) for raw in self.redis.lrange(key(self.run, "frozen"), 0, -1))

    def objects(self, job_id: object | None = None) -> set[str]:
        """``bucket/name`` of every object on the stand-in (of one job's folder when given)."""
        prefix = "" if job_id is None else f"{job_id}/"
        return {
            f"{bucket}/{name}"
            for bucket in BUCKETS
            for name in list(self.server.objects(bucket))
            if name.startswith(prefix)
        }

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.server.stop()
        names = list(self.redis.scan_iter(match=f"soak:{self.run}:*"))
        if names:
            self.redis.delete(*names)


@pytest.fixture
def soak(tmp_path: Path, redis_url: str) -> Iterator[Soak]:
    run = Soak(tmp_path, redis_url)
    storage_client.reset_supabase_client()
    try:
        with override_settings(VIDEOGEN_COMMON=run.settings, STORAGES={**_base_storages(), **run.storages()}):
            yield run
    finally:
        run.close()
        storage_client.reset_supabase_client()


def _base_storages() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.STORAGES)


def command(name: str, *args: str) -> Any:
    """Run a management command in this process; its ``--json`` output parsed."""
    out = StringIO()
    call_command(name, *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def assert_reserved_is_the_open_holds() -> None:
    for job in Job.objects.all():
        holds = JobCostHold.objects.filter(job_id=job.id, status=HoldStatus.ACTIVE)
        open_holds = costs.money_from_sum(holds.aggregate(s=costs.money_sum("amount"))["s"])
        assert job.reserved_cost == open_holds, job.id


def ledger_total(job_id: object) -> Decimal:
    return costs.money_from_sum(JobCost.objects.filter(job_id=job_id).aggregate(s=costs.money_sum())["s"])


def test_two_workers_one_killed_then_recovery_and_a_second_pass(soak: Soak) -> None:
    # ------------------------------------------------------------------ 12 jobs; four must fail, with a reason
    # Worker A takes jobs 0-3 (it starts first) and is killed with all four in flight: 0 and 2 in the middle of
    # their clips, 1 taken off the queue but not started, 3 after its last stage. B runs 4-11 meanwhile.
    budget_fail, refused = {2, 9}, {1, 6}
    job_ids: list[uuid.UUID] = []
    for n in range(JOBS):
        prompt = f"soak job {n} " + (REFUSED_PROMPT_MARK if n in refused else "neon rain over the harbour")
        job = jobs.job_create(
            user_id=USER,
            audio_url=f"https://example.com/{n}.mp3",
            user_prompt=prompt,
            # 0.40: every stage fits (a clip stage run again beside the dead worker's hold too); composition's
            # hold of 0.20 never does
            budget_limit=Decimal("0.40") if n in budget_fail else Decimal("5.00"),
        )
        job_ids.append(job.id)
    soak.redis.rpush(key(soak.run, "queue"), *map(str, job_ids))
    expected_failures = {job_ids[n]: "BUDGET_EXCEEDED" for n in budget_fail}
    expected_failures |= {job_ids[n]: "COMPOSER_REFUSED" for n in refused}
    requeued_mid, before_start, taken_over, after_last = job_ids[:4]
    dead_jobs = set(job_ids[:4])

    # ------------------------------------------------------------------ pass 1: worker A is killed mid-run
    started = time.monotonic()
    killed = soak.start("A", freeze=True)
    survivor = soak.start("B")
    soak.go("A", "B", ready=2, first_takes=THREADS)
    live_checks = 0
    while killed.returncode is None or survivor.poll() is None:
        # The cleanups run beside the workers all along: the objects of live jobs are never touched (a worker
        # checks every object its stages recorded before it completes a job).
        command("cleanup_job_files")
        live_checks += 1
        if killed.returncode is None and len(soak.frozen()) == 4:
            frozen = {point: uuid.UUID(job_id) for point, job_id in soak.frozen().items()}
            partial = {job_id: soak.objects(job_id) for job_id in (requeued_mid, taken_over)}
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait(WAIT)
        assert killed.poll() in (None, -signal.SIGKILL), (soak.tmp / "A.err").read_text()[-4000:]
        assert time.monotonic() - started < WAIT, "pass 1 did not end"
        time.sleep(0.1)
    assert frozen == {
        "mid_stage": requeued_mid,
        "before_start": before_start,
        "mid_stage_2": taken_over,
        "after_last_stage": after_last,
    }
    dead_owner = f"{socket.gethostname()}:{killed.pid}"  # the default lease owner of worker A
    first = soak.finish("B")
    first_pass_seconds = time.monotonic() - started
    assert set(first["outcomes"]) == {str(j) for j in job_ids[4:]}

    # The kill point: two jobs mid-stage (two clips uploaded and charged, the third clip's hold open, the temp
    # workspace on disk), a job taken off the queue but not started, a job with every stage done.
    workspaces = {job_id: Path(soak.settings["TEMP_DIR"]) / "jobs" / str(job_id) for job_id in partial}
    for job_id, objects in partial.items():
        assert objects == {f"video-clips/{job_id}/clips/attempt1/clip_{i}.mp4" for i in range(CLIPS - 1)} | {
            f"audio-uploads/{job_id}/song.mp3",
            f"reference-images/{job_id}/ref_0.png",
            f"reference-images/{job_id}/ref_1.png",
        }
        stage = JobStage.objects.get(job_id=job_id, stage_name="video_generation")
        assert (stage.status, stage.lease_owner) == ("processing", dead_owner)
        assert JobCostHold.objects.filter(job_id=job_id, status=HoldStatus.ACTIVE).count() == 1
        assert any(workspaces[job_id].rglob("clip_2.mp4"))
    assert Job.objects.get(id=before_start).status == "queued"
    assert set(JobStage.objects.filter(job_id=after_last).values_list("status", flat=True)) == {"completed"}

    # Nothing is lost: the unfinished jobs are the dead worker's, all still listed as its in-flight jobs.
    taken_by_a = {uuid.UUID(raw.decode()) for raw in soak.redis.lrange(key(soak.run, "inflight", "A"), 0, -1)}
    unfinished = set(Job.objects.exclude(status__in=FINISHED_JOB_STATUSES).values_list("id", flat=True))
    assert unfinished == dead_jobs == taken_by_a
    assert soak.redis.llen(key(soak.run, "queue")) == 0
    assert_reserved_is_the_open_holds()

    # Before recovery the cleanups keep every object and workspace of the dead worker's (still live) jobs.
    plan = command("cleanup_job_files")
    assert all(action["folder"] not in {str(j) for j in unfinished} for b in plan["buckets"] for action in b["actions"])
    for job_id, objects in partial.items():
        assert soak.objects(job_id) == objects
    call_command("cleanup_temp_files", "--older-than", "0", "--json", stdout=StringIO())
    assert all(any(workspace.rglob("clip_2.mp4")) for workspace in workspaces.values())

    # ------------------------------------------------------------------ recovery: the documented command ...
    until("the dead worker's jobs to go stale", lambda: set(jobs_stale().values_list("id", flat=True)) == unfinished)
    to_requeue = unfinished - {taken_over}
    requeued: list[str] = []

    def push_back(sender: object, *, job: Job, **kwargs: object) -> None:  # the README's receiver for a Redis list
        requeued.append(str(job.id))
        soak.redis.rpush(key(soak.run, "queue"), str(job.id))

    job_requeued.connect(push_back)
    try:
        report = command("recover_jobs", "--requeue", *(f"--job={job_id}" for job_id in sorted(map(str, to_requeue))))
    finally:
        job_requeued.disconnect(push_back)
    assert {uuid.UUID(j) for j in report["done"]} == to_requeue == {uuid.UUID(j) for j in requeued}
    assert report["skipped"] == {}
    for job in Job.objects.filter(id__in=to_requeue):
        assert job.status == "queued"
        assert job.reserved_cost == 0
    assert not JobStage.objects.filter(job_id__in=to_requeue, status="processing").exists()
    assert not JobCostHold.objects.filter(job_id__in=to_requeue, status=HoldStatus.ACTIVE).exists()
    # The third clip's hold was given back (the call was never made), not charged.
    released = JobCostHold.objects.filter(job_id=requeued_mid, stage_name="video_generation", status="released")
    assert released.count() == 1
    # ... and a redelivery with no manual step: a reliable queue puts the dead worker's in-flight job back.
    soak.redis.rpush(key(soak.run, "queue"), str(taken_over))
    assert_reserved_is_the_open_holds()

    # ------------------------------------------------------------------ pass 2: a fresh worker resumes them
    started_second = time.monotonic()
    soak.start("C")
    soak.go("C", ready=3)
    second = soak.finish("C")
    second_pass_seconds = time.monotonic() - started_second
    assert set(second["outcomes"]) == {str(j) for j in unfinished}
    takeovers = [json.loads(line) for line in soak.log_lines("C") if '"stage_taken_over"' in line]
    assert [(t["job_id"], t["stage"], t["previous_owner"]) for t in takeovers] == [
        (str(taken_over), "video_generation", dead_owner)
    ]
    for job_id in partial:
        stage = JobStage.objects.get(job_id=job_id, stage_name="video_generation")
        assert (stage.status, stage.attempts) == ("completed", 2)
    # The taken-over job's dead hold counted until the job ended, which released it (nothing charged for it).
    dead_hold = JobCostHold.objects.filter(job_id=taken_over, stage_name="video_generation", settled_cost=None)
    assert [h.status for h in dead_hold] == ["released"]
    # The job requeued after its last stage had nothing left to run but job_complete.
    assert not JobStage.objects.filter(job_id=after_last, attempts__gt=1).exists()

    # ------------------------------------------------------------------ every job finished, with a reason when failed
    outcomes = {**first["outcomes"], **second["outcomes"]}
    for job in Job.objects.filter(id__in=job_ids):
        if job.id in expected_failures:
            assert (job.status, job.error_code) == ("failed", expected_failures[job.id])
            assert job.error_message
            assert outcomes[str(job.id)] == f"failed:{expected_failures[job.id]}"
        else:
            assert job.status == "completed", (job.id, job.status, job.error_code, job.error_message)
            assert job.video_url
            assert outcomes[str(job.id)] == "completed"

    # ------------------------------------------------------------------ money: exact
    call_command("reconcile_costs", stdout=StringIO())  # exits 1 (CommandError) on any mismatch
    for job in Job.objects.filter(id__in=job_ids):
        assert job.total_cost == ledger_total(job.id), job.id
        assert job.reserved_cost == 0
        assert job.total_cost <= job.budget_limit  # the guarantee: every settle was within its hold
        upscale = JobCost.objects.filter(job_id=job.id, idempotency_key__startswith="up:")
        assert upscale.count() == CLIPS, job.id  # an idempotent charge re-sent by the second attempt: once
        retried = JobStage.objects.filter(job_id=job.id, attempts__gt=1).exists()
        if job.status == "completed" and not retried:
            assert job.total_cost == ONE_RUN_COST, job.id
    assert not JobCostHold.objects.filter(status=HoldStatus.ACTIVE).exists()
    reported = set(first["charges"]) | set(second["charges"])
    assert reported <= {str(i) for i in JobCost.objects.values_list("id", flat=True)}
    # The dead worker's two clips were paid once more by the second attempt (the calls were made twice).
    for job_id in partial:
        settled = JobCost.objects.filter(
            job_id=job_id, stage_name="video_generation", idempotency_key__startswith="hold:"
        )
        assert settled.count() == 2 + CLIPS

    # ------------------------------------------------------------------ files: nothing of the dead worker is left
    for job_id, objects in partial.items():
        assert soak.objects(job_id) >= objects  # its partial uploads stayed while the job was live ...
        assert not workspaces[job_id].exists()  # ... its workspace went with the job's end (cleanup_job_temp_files)
    command("cleanup_job_files")
    assert soak.objects() == set()  # ... and every object, the partial clips included, is gone
    assert not any((Path(soak.settings["TEMP_DIR"]) / "jobs").iterdir())
    for job_id in job_ids:
        cache.delete(key(soak.run, "plan", str(job_id)))

    # ------------------------------------------------------------------ logs
    lines = {name: soak.log_lines(name) for name in ("A", "B", "C")}
    records = [json.loads(line) for name in lines for line in lines[name]]  # every line is JSON
    assert all(r["job_id"] for r in records)  # every line of a worker is written inside a job's context
    clip_lines = [r for r in records if r["message"] == "clip rendered"]
    assert clip_lines
    assert all(r["job_id"] and r["stage"] == "video_generation" for r in clip_lines)
    assert all("-clip_" in r["worker_thread"] for r in clip_lines)  # written by the pool threads
    assert not [r for r in records if r.get("event") == "soak_escaped"]
    assert not [r for r in records if r["module"].startswith(("httpx", "httpcore")) and r["level"] in ("DEBUG", "INFO")]
    assert not [line for name in lines for line in lines[name] if SERVICE_KEY in line]
    assert [r["message"] for r in records if r["level"] in ("ERROR", "CRITICAL")] == []  # a healthy run

    print(
        f"\nsoak: {JOBS} jobs, 2 workers x {THREADS} threads; A killed at {soak.frozen()}; "
        f"pass 1 {first_pass_seconds:.1f} s ({len(first['outcomes'])} jobs by B in {first['seconds']} s: "
        f"{60 * len(first['outcomes']) / first['seconds']:.0f} jobs/min); {len(to_requeue)} requeued by "
        f"recover_jobs, 1 redelivered and taken over; pass 2 {second_pass_seconds:.1f} s ({second['seconds']} s "
        f"in C); {len(records)} log lines; {live_checks} cleanups beside the live workers"
    )
