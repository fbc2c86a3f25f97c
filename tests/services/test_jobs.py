"""The job lifecycle service: every legal and illegal transition, estimates, async twins, concurrency."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection
from django.forms.models import model_to_dict
from django.test import override_settings
from django.utils import timezone

from common.errors import BudgetExceededError, GenerationError, PipelineError, ValidationError
from common.models import Job, JobCost, JobStage
from common.services import jobs
from common.services.jobs import (
    job_cancel,
    job_complete,
    job_create,
    job_fail,
    job_update_progress,
    stage_complete,
    stage_fail,
    stage_start,
)

USER = uuid.UUID("33333333-3333-4333-8333-333333333333")
STAGES = (
    "audio_analysis",
    "scene_planning",
    "reference_generation",
    "prompt_generation",
    "video_generation",
    "composition",
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def job() -> Job:
    return job_create(user_id=USER, audio_url="https://example.com/a.mp3", user_prompt="neon city at night")


def snapshot(job_id: uuid.UUID) -> tuple[dict, list[dict]]:
    """The job row and its stage rows, to prove an illegal call changed nothing."""
    row = Job.objects.get(pk=job_id)
    stages = [model_to_dict(s) for s in JobStage.objects.filter(job_id=job_id).order_by("stage_name")]
    return {**model_to_dict(row), "updated_at": row.updated_at}, stages


def assert_illegal(call, job_id, fragment: str, code: str = jobs.INVALID_TRANSITION) -> ValidationError:
    before = snapshot(job_id)
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.code == code
    assert fragment in info.value.message, info.value.message
    assert str(job_id) in info.value.message
    assert snapshot(job_id) == before, "an illegal transition changed the database"
    return info.value


def backdate(job: Job, stage_name: str, seconds: float) -> None:
    JobStage.objects.filter(job=job, stage_name=stage_name).update(
        started_at=timezone.now() - dt.timedelta(seconds=seconds)
    )


def charge(job: Job, stage_name: str, amount: str, api: str = "sdxl") -> None:
    JobCost.objects.create(job=job, stage_name=stage_name, api_name=api, cost=Decimal(amount))


# --------------------------------------------------------------------------- create


def test_create_queues_a_job_with_the_default_budget_and_an_estimate(job):
    job.refresh_from_db()
    assert job.status == "queued"
    assert job.progress == 0
    assert job.budget_limit == Decimal("20")
    assert job.current_stage is None
    assert job.estimated_remaining == 6 * 60  # no history: DEFAULT_STAGE_SECONDS per stage


def test_create_with_a_budget():
    job = job_create(user_id=str(USER), audio_url="a", user_prompt="p", budget_limit="5.0055")
    job.refresh_from_db()
    assert job.budget_limit == Decimal("5.0055")


@override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGET": Decimal("7.50"), "DEFAULT_STAGE_SECONDS": 10})
def test_create_reads_settings_at_call_time():
    job = job_create(user_id=USER, audio_url="a", user_prompt="p")
    job.refresh_from_db()
    assert job.budget_limit == Decimal("7.5")
    assert job.estimated_remaining == 60


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"user_id": "bob"}, "'bob' is not a valid user id"),
        ({"audio_url": " "}, "audio_url must be a non-empty string"),
        ({"user_prompt": ""}, "user_prompt must be a non-empty string"),
        ({"budget_limit": 1.5}, "budget_limit must be a Decimal"),
        ({"budget_limit": True}, "budget_limit must be a Decimal"),
        ({"budget_limit": "-1"}, "budget_limit must not be negative"),
        ({"budget_limit": "NaN"}, "budget_limit must be a finite amount"),
        ({"budget_limit": "lots"}, "is not a decimal amount"),
        ({"budget_limit": "0.0000001"}, "has more than 6 decimal places"),
        ({"budget_limit": "100000000"}, "8 integer digits"),
    ],
)
def test_create_rejects_bad_input_and_writes_nothing(kwargs, fragment):
    args = {"user_id": USER, "audio_url": "a", "user_prompt": "p", **kwargs}
    with pytest.raises(ValidationError, match=fragment):
        job_create(**args)
    assert Job.objects.count() == 0


def test_create_with_a_malformed_user_id_says_so_by_code():
    with pytest.raises(ValidationError) as info:
        job_create(user_id="bob", audio_url="a", user_prompt="p")
    assert info.value.code == "INVALID_USER_ID"


# --------------------------------------------------------------------------- unknown jobs


@pytest.mark.parametrize(
    "call",
    [
        lambda j: stage_start(job_id=j, stage_name="audio_analysis"),
        lambda j: stage_complete(job_id=j, stage_name="audio_analysis"),
        lambda j: stage_fail(job_id=j, stage_name="audio_analysis"),
        lambda j: job_update_progress(job_id=j, progress=5),
        lambda j: job_complete(job_id=j, video_url="v"),
        lambda j: job_fail(job_id=j, error=GenerationError("x")),
        lambda j: job_cancel(job_id=j),
    ],
)
def test_unknown_job_is_a_clear_pipeline_error(call):
    missing = uuid.uuid4()
    with pytest.raises(ValidationError) as info:
        call(missing)
    assert info.value.code == "JOB_NOT_FOUND"
    assert info.value.message == f"job {missing} does not exist"
    assert info.value.job_id == missing
    with pytest.raises(ValidationError) as info:
        call("not-a-uuid")
    assert info.value.code == "INVALID_JOB_ID"
    assert "'not-a-uuid' is not a valid job id" in info.value.message


# --------------------------------------------------------------------------- stages


def test_stage_start_makes_the_job_processing(job):
    stage = stage_start(job_id=job.id, stage_name="audio_analysis", metadata={"worker": "w1"})
    assert stage.status == "processing"
    assert stage.attempts == 1
    assert stage.started_at is not None
    assert stage.metadata == {"worker": "w1"}
    job.refresh_from_db()
    assert job.status == "processing"
    assert job.current_stage == "audio_analysis"
    assert stage.job.current_stage == "audio_analysis"


def test_stage_start_unknown_stage(job):
    with pytest.raises(
        ValidationError, match="unknown stage 'audio_analyis'; the pipeline's stages are audio_analysis"
    ):
        stage_start(job_id=job.id, stage_name="audio_analyis")
    assert not JobStage.objects.exists()


def test_stage_start_twice_is_illegal(job):
    stage_start(job_id=job.id, stage_name="audio_analysis")
    assert_illegal(
        lambda: stage_start(job_id=job.id, stage_name="audio_analysis"),
        job.id,
        "cannot start stage 'audio_analysis': it is already processing",
    )


def test_stage_complete_sets_duration_and_rolls_up_the_ledger(job):
    stage_start(job_id=job.id, stage_name="reference_generation")
    backdate(job, "reference_generation", 90)
    charge(job, "reference_generation", "0.0055")
    charge(job, "reference_generation", "0.0055")
    charge(job, "scene_planning", "0.01", api="gpt-4o")  # another stage: not rolled up
    stage = stage_complete(job_id=job.id, stage_name="reference_generation", metadata={"images": 2})
    stage.refresh_from_db()
    assert stage.status == "completed"
    assert stage.cost == Decimal("0.011")
    assert 89 <= stage.duration_seconds <= 91
    assert stage.completed_at >= stage.started_at
    assert stage.metadata == {"images": 2}
    assert stage.attempts == 1


def test_stage_complete_with_no_costs_is_zero(job):
    stage_start(job_id=job.id, stage_name="audio_analysis")
    stage = stage_complete(job_id=job.id, stage_name="audio_analysis")
    assert stage.cost == Decimal("0")
    assert stage.duration_seconds == 0


def test_stage_complete_illegal_cases(job):
    assert_illegal(
        lambda: stage_complete(job_id=job.id, stage_name="audio_analysis"),
        job.id,
        "cannot complete stage 'audio_analysis': the job is queued",
    )
    stage_start(job_id=job.id, stage_name="audio_analysis")
    assert_illegal(
        lambda: stage_complete(job_id=job.id, stage_name="scene_planning"),
        job.id,
        "cannot complete stage 'scene_planning': it was never started",
    )
    stage_complete(job_id=job.id, stage_name="audio_analysis")
    assert_illegal(
        lambda: stage_complete(job_id=job.id, stage_name="audio_analysis"),
        job.id,
        "cannot complete stage 'audio_analysis': it is completed, not processing",
    )
    assert_illegal(
        lambda: stage_start(job_id=job.id, stage_name="audio_analysis"),
        job.id,
        "cannot start stage 'audio_analysis': it is already completed",
    )


def test_stage_fail_then_retry_counts_attempts(job):
    stage_start(job_id=job.id, stage_name="video_generation")
    charge(job, "video_generation", "0.10", api="svd")
    failed = stage_fail(
        job_id=job.id, stage_name="video_generation", error=GenerationError("model timed out", job_id=job.id)
    )
    failed.refresh_from_db()
    assert failed.status == "failed"
    assert failed.cost == Decimal("0.1")
    assert failed.metadata["error"]["code"] == "GENERATION_FAILED"
    assert failed.metadata["error"]["message"] == "model timed out"
    job.refresh_from_db()
    assert job.status == "processing"  # a failed stage may be retried
    assert_illegal(
        lambda: stage_fail(job_id=job.id, stage_name="video_generation"),
        job.id,
        "cannot fail stage 'video_generation': it is failed, not processing",
    )
    retried = stage_start(job_id=job.id, stage_name="video_generation")
    assert retried.attempts == 2
    assert retried.completed_at is None
    assert retried.duration_seconds is None
    done = stage_complete(job_id=job.id, stage_name="video_generation")
    assert done.attempts == 2
    assert done.status == "completed"


def test_stage_written_without_a_start_time_gets_no_duration(job):
    job_update_progress(job_id=job.id, progress=1)
    JobStage.objects.create(job=job, stage_name="composition", status="processing")  # written by hand
    assert stage_complete(job_id=job.id, stage_name="composition").duration_seconds is None


def test_stage_fail_without_error_keeps_metadata(job):
    stage_start(job_id=job.id, stage_name="audio_analysis", metadata={"a": 1})
    stage = stage_fail(job_id=job.id, stage_name="audio_analysis", metadata={"b": 2})
    assert stage.metadata == {"a": 1, "b": 2}


# --------------------------------------------------------------------------- progress


def test_progress_moves_forward_only(job):
    updated = job_update_progress(job_id=job.id, progress=0)
    assert updated.status == "queued"  # no progress and no stage yet
    updated = job_update_progress(job_id=job.id, progress=30, current_stage="scene_planning")
    assert (updated.progress, updated.status, updated.current_stage) == (30, "processing", "scene_planning")
    assert job_update_progress(job_id=job.id, progress=30).progress == 30  # same value is fine
    assert_illegal(
        lambda: job_update_progress(job_id=job.id, progress=20),
        job.id,
        "progress cannot go backwards (from 30 to 20)",
    )


@pytest.mark.parametrize("bad", [-1, 101, 50.5, True, "50"])
def test_progress_must_be_a_whole_number_in_range(job, bad):
    with pytest.raises(ValidationError, match="progress must be a whole number from 0 to 100"):
        job_update_progress(job_id=job.id, progress=bad)


def test_progress_with_unknown_stage(job):
    with pytest.raises(ValidationError, match="unknown stage 'mixing'"):
        job_update_progress(job_id=job.id, progress=5, current_stage="mixing")


# --------------------------------------------------------------------------- complete / fail / cancel


def run_whole_pipeline(job: Job) -> None:
    for name in STAGES:
        stage_start(job_id=job.id, stage_name=name)
        stage_complete(job_id=job.id, stage_name=name)


def test_complete(job, django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, job, status, **kwargs):
        received.append((job.id, status))

    jobs.job_finished.connect(receiver)
    try:
        run_whole_pipeline(job)
        with django_capture_on_commit_callbacks(execute=True):
            done = job_complete(job_id=job.id, video_url="https://example.com/v.mp4")
    finally:
        jobs.job_finished.disconnect(receiver)
    done.refresh_from_db()
    assert (done.status, done.progress, done.estimated_remaining) == ("completed", 100, 0)
    assert done.video_url == "https://example.com/v.mp4"
    assert done.current_stage is None
    assert done.completed_at >= done.created_at
    assert received == [(job.id, "completed")]


def test_complete_illegal_cases(job):
    assert_illegal(
        lambda: job_complete(job_id=job.id, video_url="v"),
        job.id,
        "cannot complete a job that is queued (only a processing job can complete)",
    )
    stage_start(job_id=job.id, stage_name="composition")
    assert_illegal(
        lambda: job_complete(job_id=job.id, video_url="v"),
        job.id,
        "cannot complete while stage(s) composition are still processing",
    )
    with pytest.raises(ValidationError, match="video_url must be a non-empty string"):
        job_complete(job_id=job.id, video_url="")
    stage_complete(job_id=job.id, stage_name="composition")
    job_complete(job_id=job.id, video_url="v")
    for call, fragment in [
        (lambda: job_complete(job_id=job.id, video_url="v"), "cannot complete a job that is completed"),
        (lambda: job_fail(job_id=job.id, error=GenerationError()), "cannot fail the job: the job is already completed"),
        (lambda: job_cancel(job_id=job.id), "cannot cancel the job: the job is already completed"),
        (lambda: stage_start(job_id=job.id, stage_name="audio_analysis"), "the job is already completed"),
        (lambda: job_update_progress(job_id=job.id, progress=100), "cannot update progress"),
    ]:
        assert_illegal(call, job.id, fragment)


def test_fail_stores_the_error_and_fails_running_stages(job):
    stage_start(job_id=job.id, stage_name="audio_analysis")
    charge(job, "audio_analysis", "0.006", api="whisper")
    error = BudgetExceededError("budget of 20.00 reached", job_id=job.id)
    failed = job_fail(job_id=job.id, error=error)
    failed.refresh_from_db()
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "BUDGET_EXCEEDED",
        "budget of 20.00 reached",
    )
    assert failed.estimated_remaining is None
    assert failed.completed_at is not None
    stage = JobStage.objects.get(job=job)
    assert stage.status == "failed"
    assert stage.cost == Decimal("0.006")
    assert stage.metadata["error"]["code"] == "BUDGET_EXCEEDED"
    for call, fragment in [
        (lambda: job_fail(job_id=job.id, error=GenerationError()), "cannot fail the job: the job is already failed"),
        (lambda: job_complete(job_id=job.id, video_url="v"), "cannot complete a job that is failed"),
        (lambda: stage_start(job_id=job.id, stage_name="scene_planning"), "the job is already failed"),
    ]:
        assert_illegal(call, job.id, fragment)


def test_fail_a_queued_job_and_long_codes_are_cut(job):
    failed = job_fail(job_id=job.id, error=PipelineError("x", code="X" * 100))
    assert failed.error_code == "X" * 64


def test_fail_needs_a_pipeline_error(job):
    with pytest.raises(ValidationError, match="error must be a PipelineError"):
        job_fail(job_id=job.id, error=RuntimeError("boom"))  # type: ignore[arg-type]
    assert Job.objects.get(pk=job.pk).status == "queued"


def test_cancel_a_queued_job(job):
    cancelled = job_cancel(job_id=job.id)
    assert (cancelled.status, cancelled.error_code, cancelled.error_message) == (
        "cancelled",
        "JOB_CANCELLED",
        "The job was cancelled.",
    )


def test_cancel_a_processing_job_fails_its_running_stage(job):
    stage_start(job_id=job.id, stage_name="audio_analysis")
    stage_complete(job_id=job.id, stage_name="audio_analysis")
    stage_start(job_id=job.id, stage_name="scene_planning")
    job_cancel(job_id=job.id, reason="user asked")
    job.refresh_from_db()
    assert (job.status, job.error_message) == ("cancelled", "user asked")
    stages = {s.stage_name: s for s in JobStage.objects.filter(job=job)}
    assert stages["audio_analysis"].status == "completed"
    assert stages["scene_planning"].status == "failed"
    assert stages["scene_planning"].metadata == {"cancelled": True}
    for call, fragment in [
        (lambda: stage_start(job_id=job.id, stage_name="reference_generation"), "the job is already cancelled"),
        (lambda: stage_complete(job_id=job.id, stage_name="scene_planning"), "the job is cancelled"),
        (lambda: stage_fail(job_id=job.id, stage_name="scene_planning"), "the job is cancelled"),
        (lambda: job_cancel(job_id=job.id), "the job is already cancelled"),
        (lambda: job_complete(job_id=job.id, video_url="v"), "cannot complete a job that is cancelled"),
    ]:
        assert_illegal(call, job.id, fragment)


# --------------------------------------------------------------------------- estimates


def history(stage_name: str, durations: list[int]) -> None:
    """Completed runs of ``stage_name`` in other jobs, oldest first."""
    base = timezone.now() - dt.timedelta(days=1)
    for i, seconds in enumerate(durations):
        other = Job.objects.create(user_id=USER, audio_url="a", user_prompt="p")
        started = base + dt.timedelta(hours=i)
        JobStage.objects.create(
            job=other,
            stage_name=stage_name,
            status="completed",
            started_at=started,
            completed_at=started + dt.timedelta(seconds=seconds),
            duration_seconds=seconds,
        )


@override_settings(VIDEOGEN_COMMON={"DEFAULT_STAGE_SECONDS": 10, "ESTIMATE_HISTORY_JOBS": 3})
def test_estimate_uses_the_median_of_recent_runs():
    history("audio_analysis", [1000, 20, 30, 40])  # 1000 is older than the last 3: ignored
    history("scene_planning", [5, 100])  # median of an even count: 52.5
    job = job_create(user_id=USER, audio_url="a", user_prompt="p")
    assert job.estimated_remaining == 122  # 30 + 52.5 + 4 * 10 = 122.5, rounded half to even
    stage_start(job_id=job.id, stage_name="audio_analysis")
    backdate(job, "audio_analysis", 25)
    job = job_update_progress(job_id=job.id, progress=5)
    assert job.estimated_remaining in (92 + 5, 92 + 6)  # 30 - 25 s left of the running stage
    backdate(job, "audio_analysis", 500)
    job = job_update_progress(job_id=job.id, progress=6)
    assert job.estimated_remaining == 92  # an overdue stage counts zero, never negative
    stage_complete(job_id=job.id, stage_name="audio_analysis")
    job.refresh_from_db()
    assert job.estimated_remaining == 92


def test_estimate_drops_as_stages_complete(job):
    estimates = [job.estimated_remaining]
    for name in STAGES:
        stage_start(job_id=job.id, stage_name=name)
        stage_complete(job_id=job.id, stage_name=name)
        job.refresh_from_db()
        estimates.append(job.estimated_remaining)
    assert estimates == sorted(estimates, reverse=True)
    assert estimates[-1] == 0


# --------------------------------------------------------------------------- async twins


@pytest.mark.django_db(transaction=True)
async def test_async_twins_run_the_whole_lifecycle():
    job = await jobs.ajob_create(user_id=USER, audio_url="a", user_prompt="p", budget_limit="3")
    assert job.status == "queued"
    stage = await jobs.astage_start(job_id=job.id, stage_name="audio_analysis")
    assert stage.attempts == 1
    stage = await jobs.astage_fail(job_id=job.id, stage_name="audio_analysis", error=GenerationError("x"))
    assert stage.status == "failed"
    stage = await jobs.astage_start(job_id=job.id, stage_name="audio_analysis")
    assert stage.attempts == 2
    stage = await jobs.astage_complete(job_id=job.id, stage_name="audio_analysis")
    assert stage.status == "completed"
    job = await jobs.ajob_update_progress(job_id=job.id, progress=50)
    assert job.progress == 50
    with pytest.raises(ValidationError, match="progress cannot go backwards"):
        await jobs.ajob_update_progress(job_id=job.id, progress=40)
    job = await jobs.ajob_complete(job_id=job.id, video_url="v")
    assert job.status == "completed"
    other = await jobs.ajob_create(user_id=USER, audio_url="a", user_prompt="p")
    assert (await jobs.ajob_cancel(job_id=other.id)).status == "cancelled"
    third = await jobs.ajob_create(user_id=USER, audio_url="a", user_prompt="p")
    assert (await jobs.ajob_fail(job_id=third.id, error=GenerationError())).status == "failed"
    await sync_to_async(lambda: connection.close())()  # the worker thread's connection, so the test DB can be dropped


# --------------------------------------------------------------------------- concurrency (real threads)


def race(n: int, action) -> list[object]:
    """Run ``action(i)`` in ``n`` threads released together; return each result or exception."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = action(i)
        except Exception as exc:
            results[i] = exc
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_cannot_both_complete_a_stage():
    job = job_create(user_id=USER, audio_url="a", user_prompt="p")
    stage_start(job_id=job.id, stage_name="audio_analysis")
    results = race(8, lambda i: stage_complete(job_id=job.id, stage_name="audio_analysis"))
    done = [r for r in results if isinstance(r, JobStage)]
    refused = [r for r in results if isinstance(r, ValidationError)]
    assert len(done) == 1
    assert len(refused) == 7
    assert all(r.code == jobs.INVALID_TRANSITION for r in refused)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_terminal_transitions_let_exactly_one_win():
    job = job_create(user_id=USER, audio_url="a", user_prompt="p")
    stage_start(job_id=job.id, stage_name="audio_analysis")
    stage_complete(job_id=job.id, stage_name="audio_analysis")
    actions = [
        lambda: job_complete(job_id=job.id, video_url="v"),
        lambda: job_fail(job_id=job.id, error=GenerationError()),
        lambda: job_cancel(job_id=job.id),
    ] * 4
    results = race(len(actions), lambda i: actions[i]())
    winners = [r for r in results if isinstance(r, Job)]
    assert len(winners) == 1
    assert sum(isinstance(r, ValidationError) for r in results) == len(actions) - 1
    job.refresh_from_db()
    assert job.status == winners[0].status


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_progress_never_goes_backwards():
    job = job_create(user_id=USER, audio_url="a", user_prompt="p")
    values = list(range(1, 41))
    results = race(len(values), lambda i: job_update_progress(job_id=job.id, progress=values[i]))
    job.refresh_from_db()
    assert job.progress == 40
    accepted = [r.progress for r in results if isinstance(r, Job)]
    assert 40 in accepted
    assert all(isinstance(r, Job | ValidationError) for r in results)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_count_every_attempt():
    job = job_create(user_id=USER, audio_url="a", user_prompt="p")

    def start_then_fail(i: int) -> int:
        for _ in range(50):
            try:
                stage_start(job_id=job.id, stage_name="video_generation")
            except ValidationError:
                continue
            stage_fail(job_id=job.id, stage_name="video_generation")
            return 1
        return 0

    results = race(6, start_then_fail)
    started = sum(r for r in results if isinstance(r, int))
    assert JobStage.objects.get(job=job, stage_name="video_generation").attempts == started


# --------------------------------------------------------------------------- budget edits (issue 10 item 2)


def test_set_budget_changes_only_the_budget_and_logs_who(job, caplog):
    JobCost.objects.create(job=job, stage_name="audio_analysis", api_name="whisper", cost=Decimal("1.50"))
    Job.objects.filter(pk=job.pk).update(total_cost=Decimal("1.50"))
    stale = Job.objects.get(pk=job.pk)
    # Another writer moves the spend on after our copy was read; the service must not write the copy back.
    Job.objects.filter(pk=job.pk).update(total_cost=Decimal("2.50"), reserved_cost=Decimal("0.30"))
    with caplog.at_level("INFO", logger="common.services.jobs"):
        updated = jobs.job_set_budget(job_id=stale.id, budget_limit="35.5", changed_by="operator")
    assert updated.budget_limit == Decimal("35.5")
    row = Job.objects.get(pk=job.pk)
    assert (row.budget_limit, row.total_cost, row.reserved_cost) == (Decimal("35.5"), Decimal("2.5"), Decimal("0.3"))
    assert (updated.total_cost, updated.reserved_cost) == (Decimal("2.5"), Decimal("0.3"))
    event = next(r for r in caplog.records if getattr(r, "event", None) == "budget_changed")
    assert (event.old_budget, event.new_budget, event.changed_by) == ("20.00", "35.50", "operator")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (Decimal("-1"), "must not be negative"),
        (Decimal("NaN"), "finite"),
        (Decimal("sNaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (1.5, "must be a Decimal"),
        ("1e999999999", "8 integer digits"),
        ("1\x00", "not a decimal amount"),
        (Decimal("0.0000001"), "6 decimal places"),
        (None, "must be a Decimal"),
    ],
)
def test_set_budget_refuses_bad_money_and_writes_nothing(job, value, fragment):
    before = snapshot(job.id)
    with pytest.raises(ValidationError, match=fragment) as info:
        jobs.job_set_budget(job_id=job.id, budget_limit=value)
    assert "budget_limit" in info.value.message
    assert snapshot(job.id) == before


def test_set_budget_of_an_unknown_job_and_bad_changed_by(job):
    with pytest.raises(ValidationError) as info:
        jobs.job_set_budget(job_id=uuid.uuid4(), budget_limit=Decimal(1))
    assert info.value.code == "JOB_NOT_FOUND"
    with pytest.raises(ValidationError, match="changed_by"):
        jobs.job_set_budget(job_id=job.id, budget_limit=Decimal(1), changed_by="op\x00")


@pytest.mark.django_db(transaction=True)
async def test_async_set_budget():
    job = await jobs.ajob_create(user_id=USER, audio_url="a", user_prompt="p")
    updated = await jobs.ajob_set_budget(job_id=job.id, budget_limit=Decimal("3"), changed_by="cron")
    assert updated.budget_limit == Decimal("3")
    await sync_to_async(lambda: connection.close())()


# --------------------------------------------------------------------------- error details (issue 10 item 3)


def test_fail_with_decimal_and_uuid_details_stores_them_as_strings(job):
    stage_start(job_id=job.id, stage_name="video_generation")
    marker = uuid.UUID("12345678-1234-4234-8234-123456789abc")
    error = GenerationError(
        "clip failed",
        job_id=job.id,
        details={
            "cost": Decimal("0.06"),
            "clip": marker,
            "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "tags": {"svd"},
            "ratio": float("nan"),
        },
    )
    failed = job_fail(job_id=job.id, error=error)
    failed.refresh_from_db()
    assert failed.status == "failed"
    details = JobStage.objects.get(job=job, stage_name="video_generation").metadata["error"]["details"]
    assert details == {
        "cost": "0.06",
        "clip": str(marker),
        "at": "2026-01-02T03:04:05.000Z",
        "tags": ["svd"],
        "ratio": "nan",
    }


def test_stage_fail_with_decimal_details(job):
    stage_start(job_id=job.id, stage_name="video_generation")
    error = GenerationError("clip failed", details={"cost": Decimal("0.06"), "job": job.id})
    stage = stage_fail(job_id=job.id, stage_name="video_generation", error=error)
    stored = JobStage.objects.get(pk=stage.pk).metadata["error"]
    assert stored["details"] == {"cost": "0.06", "job": str(job.id)}
    assert stored["code"] == "GENERATION_FAILED"


# --------------------------------------------------------------------------- hostile input (issue 10 item 8)


def nul_calls(job_id):
    """One call per text field, each with a NUL in it."""
    return {
        "audio_url": lambda: job_create(user_id=USER, audio_url="a\x00.mp3", user_prompt="p"),
        "user_prompt": lambda: job_create(user_id=USER, audio_url="a", user_prompt="p\x00"),
        "video_url": lambda: job_complete(job_id=job_id, video_url="v\x00"),
        "reason": lambda: job_cancel(job_id=job_id, reason="r\x00"),
        "error.message": lambda: job_fail(job_id=job_id, error=GenerationError("bad\x00")),
        "error.code": lambda: job_fail(job_id=job_id, error=GenerationError("bad", code="X\x00")),
        "error.details": lambda: job_fail(job_id=job_id, error=GenerationError("bad", details={"k": "v\x00"})),
        "metadata": lambda: stage_start(job_id=job_id, stage_name="audio_analysis", metadata={"k": "v\x00"}),
        "stage_name": lambda: stage_start(job_id=job_id, stage_name="audio\x00"),
        "current_stage": lambda: job_update_progress(job_id=job_id, progress=1, current_stage="x\x00"),
    }


@pytest.mark.parametrize("field", sorted(nul_calls(None)))
def test_nul_in_any_text_is_refused_by_name_and_writes_nothing(job, field):
    stage_start(job_id=job.id, stage_name="composition")
    stage_complete(job_id=job.id, stage_name="composition")
    before = snapshot(job.id), Job.objects.count()
    with pytest.raises(ValidationError) as info:
        nul_calls(job.id)[field]()
    assert field in info.value.message, info.value.message
    assert (snapshot(job.id), Job.objects.count()) == before


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"ratio": float("nan")}, "metadata['ratio']"),
        ({"ratio": float("inf")}, "metadata['ratio']"),
        ({"cost": Decimal("0.06")}, "metadata['cost']"),
        ({"tags": {"a"}}, "metadata['tags']"),
        ({"at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, "metadata['at']"),
        ({"nested": [{"deep": b"bytes"}]}, "metadata['nested'][0]['deep']"),
        ({1: "int key"}, "metadata keys"),
        ({"\ud800": "surrogate key"}, "metadata keys"),
        ({"k": "\udfff"}, "metadata['k']"),
        ({"k": 10**5000}, "metadata['k']"),
        ([1, 2], "metadata must be a dict"),
    ],
)
@pytest.mark.parametrize("call", ["start", "complete", "fail"])
def test_stage_metadata_must_be_plain_json(job, metadata, fragment, call):
    if call != "start":
        stage_start(job_id=job.id, stage_name="audio_analysis")
    action = {"start": stage_start, "complete": stage_complete, "fail": stage_fail}[call]
    before = snapshot(job.id)
    with pytest.raises(ValidationError) as info:
        action(job_id=job.id, stage_name="audio_analysis", metadata=metadata)
    assert fragment in info.value.message, info.value.message
    assert snapshot(job.id) == before


def test_deeply_nested_metadata_is_refused(job):
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValidationError, match="nested"):
        stage_start(job_id=job.id, stage_name="audio_analysis", metadata={"deep": deep})


def test_plain_json_metadata_is_kept(job):
    metadata = {"bpm": 120, "ratio": 0.5, "ok": True, "none": None, "list": [1, "a", {"b": []}], "text": "é ✓"}
    stage = stage_start(job_id=job.id, stage_name="audio_analysis", metadata=metadata)
    assert JobStage.objects.get(pk=stage.pk).metadata == metadata


def test_attempts_past_the_column_limit_are_refused(job):
    stage_start(job_id=job.id, stage_name="video_generation")
    stage_fail(job_id=job.id, stage_name="video_generation")
    JobStage.objects.filter(job=job, stage_name="video_generation").update(attempts=32767)
    before = snapshot(job.id)
    with pytest.raises(ValidationError, match="attempts") as info:
        stage_start(job_id=job.id, stage_name="video_generation")
    assert info.value.code == "TOO_MANY_ATTEMPTS"
    assert snapshot(job.id) == before


def test_surrogates_in_text_are_refused(job):
    with pytest.raises(ValidationError, match="user_prompt"):
        job_create(user_id=USER, audio_url="a", user_prompt="p\ud800")
    with pytest.raises(ValidationError, match="reason"):
        job_cancel(job_id=job.id, reason="\udc80")
    assert Job.objects.get(pk=job.pk).status == "queued"


def test_non_text_values_are_refused_by_name(job):
    with pytest.raises(ValidationError, match="reason"):
        job_cancel(job_id=job.id, reason=123)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="error must be a PipelineError"):
        job_fail(job_id=job.id, error="boom")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"error\.message"):
        job_fail(job_id=job.id, error=GenerationError(123))  # type: ignore[arg-type]
    assert Job.objects.get(pk=job.pk).status == "queued"
