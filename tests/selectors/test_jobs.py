"""Reads of jobs and stages (common.selectors.jobs): one job, a user's jobs, what a caller may see, timings."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from common.errors import ValidationError
from common.models import Job, JobCost, JobStage
from common.selectors import (
    ajob_get,
    ajob_list_for_user,
    job_costs,
    job_get,
    job_list_for_user,
    job_stages,
    parse_job_id,
    stage_median_duration,
    stage_median_durations,
)

USER = uuid.UUID("66666666-6666-4666-8666-666666666666")
pytestmark = pytest.mark.django_db


def new_job(user=USER, **fields) -> Job:
    return Job.objects.create(user_id=user, audio_url="a", user_prompt="p", **fields)


def test_job_get_and_errors():
    job = new_job()
    assert job_get(job_id=str(job.id)) == job
    missing = uuid.uuid4()
    with pytest.raises(ValidationError, match=f"job {missing} does not exist") as info:
        job_get(job_id=missing)
    assert info.value.code == "JOB_NOT_FOUND"
    with pytest.raises(ValidationError, match="is not a valid job id") as info:
        job_get(job_id="nope")
    assert info.value.code == "INVALID_JOB_ID"
    assert parse_job_id(job.id) is job.id


def test_job_get_for_update_locks_the_row():
    job = new_job()
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        assert job_get(job_id=job.id, for_update=True) == job
    if connection.features.has_select_for_update:
        assert any("FOR UPDATE" in query["sql"] for query in ctx.captured_queries)
    with pytest.raises(ValidationError) as info, transaction.atomic():
        job_get(job_id=uuid.uuid4(), for_update=True)
    assert info.value.code == "JOB_NOT_FOUND"


def test_job_list_for_user():
    mine, done = new_job(), new_job(status="completed")
    new_job(user=uuid.uuid4())
    assert set(job_list_for_user(user_id=USER)) == {mine, done}
    assert list(job_list_for_user(user_id=USER, status="completed")) == [done]
    with pytest.raises(ValidationError, match="unknown job status 'done'; expected one of queued"):
        job_list_for_user(user_id=USER, status="done")
    with pytest.raises(ValidationError, match="'bob' is not a valid user id") as info:
        job_list_for_user(user_id="bob")
    assert info.value.code == "INVALID_USER_ID"


def test_stages_in_pipeline_order_and_costs_oldest_first():
    job = new_job()
    for name in ("composition", "custom_stage", "audio_analysis"):
        JobStage.objects.create(job=job, stage_name=name)
    assert [s.stage_name for s in job_stages(job_id=job.id)] == ["audio_analysis", "composition", "custom_stage"]
    first = JobCost.objects.create(job=job, stage_name="s", api_name="a", cost=Decimal("1"))
    second = JobCost.objects.create(job=job, stage_name="s", api_name="b", cost=Decimal("2"))
    assert list(job_costs(job_id=job.id)) == [first, second]


@override_settings(VIDEOGEN_COMMON={"ESTIMATE_HISTORY_JOBS": 2})
def test_stage_median_duration_uses_recent_completed_runs():
    assert stage_median_duration(stage_name="composition") is None
    from django.utils import timezone

    now = timezone.now()
    for i, seconds in enumerate([500, 10, 20]):
        JobStage.objects.create(
            job=new_job(),
            stage_name="composition",
            status="completed",
            started_at=now,
            completed_at=now + timezone.timedelta(hours=i),
            duration_seconds=seconds,
        )
    JobStage.objects.create(job=new_job(), stage_name="composition", status="failed", duration_seconds=9999)
    assert stage_median_duration(stage_name="composition") == 15.0
    assert stage_median_duration(stage_name="composition", history=3) == 20.0


@pytest.mark.django_db(transaction=True)
async def test_async_selectors():
    job = await sync_to_async(new_job)()
    assert (await ajob_get(job_id=job.id)).id == job.id
    assert [j.id for j in await ajob_list_for_user(user_id=USER)] == [job.id]
    with pytest.raises(ValidationError, match="does not exist"):
        await ajob_get(job_id=uuid.uuid4())
    await sync_to_async(lambda: connection.close())()


def test_stage_median_durations_for_several_stages_in_one_call():
    from django.utils import timezone

    now = timezone.now()
    for name, seconds in [("audio_analysis", 10), ("audio_analysis", 30), ("composition", 7)]:
        JobStage.objects.create(
            job=new_job(),
            stage_name=name,
            status="completed",
            started_at=now,
            completed_at=now,
            duration_seconds=seconds,
        )
    medians = stage_median_durations(stage_names=["audio_analysis", "composition", "scene_planning", "composition"])
    assert medians == {"audio_analysis": 20.0, "composition": 7.0, "scene_planning": None}
    assert stage_median_durations(stage_names=["audio_analysis"], history=0) == {"audio_analysis": None}
    assert stage_median_durations(stage_names=[]) == {}


def test_stage_median_durations_is_one_query_on_postgresql():
    names = ["audio_analysis", "scene_planning", "composition"]
    with CaptureQueriesContext(connection) as ctx:
        stage_median_durations(stage_names=names)
        stage_median_durations(stage_names=names)  # the second call reuses the compiled SQL
    union = connection.features.supports_slicing_ordering_in_compound
    assert len(ctx.captured_queries) == (2 if union else 2 * len(names))
    if union:
        assert ctx.captured_queries[0]["sql"].count("UNION ALL") == len(names) - 1


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: stage_median_durations(stage_names=["audio\x00"]), "stage_name must not contain NUL"),
        (lambda: stage_median_durations(stage_names=["\ud800"]), "lone surrogate"),
        (lambda: stage_median_durations(stage_names="audio_analysis"), "must be a list"),
        (lambda: stage_median_durations(stage_names=[3]), "stage_name must be a non-empty string"),
        (lambda: stage_median_duration(stage_name="x" * 65), "longer than 64"),
        (lambda: stage_median_duration(stage_name="audio_analysis", history=10**20), "history must be"),
        (lambda: stage_median_duration(stage_name="audio_analysis", history=1.5), "history must be"),
        (lambda: stage_median_duration(stage_name="audio_analysis", history=-1), "history must be"),
        (lambda: job_list_for_user(user_id=USER, status="queued\x00"), "unknown job status"),
        (lambda: job_list_for_user(user_id=USER, status=["queued"]), "unknown job status"),
        (lambda: job_get(job_id="\x00" * 1000), "is not a valid job id"),
    ],
)
def test_hostile_arguments_are_refused_by_name(call, fragment):
    """NUL and lone surrogates reach PostgreSQL as DataError and a huge LIMIT as an overflow; refused before."""
    with pytest.raises(ValidationError, match=fragment) as info:
        call()
    assert len(info.value.message) < 300


# --------------------------------------------------------------------------- what a caller may see


def test_job_list_visible_is_empty_for_anyone_but_users_and_staff():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser

    from common.callers import SupabaseUser
    from common.selectors import job_list_visible

    job = new_job()
    other = new_job(user=uuid.uuid4())
    clerk = get_user_model().objects.create_user("clerk2", password="pw-not-used-1234")
    staff = get_user_model().objects.create_user("boss", password="pw-not-used-1234", is_staff=True)
    assert not job_list_visible(user=clerk).exists()
    assert not job_list_visible(user=AnonymousUser()).exists()
    assert not job_list_visible(user=None).exists()
    assert list(job_list_visible(user=SupabaseUser(id=USER))) == [job]
    assert set(job_list_visible(user=staff)) == {job, other}
    Job.objects.filter(pk=job.pk).update(status="failed")
    assert list(job_list_visible(user=staff, statuses=["failed"])) == [job]
    # Any iterable is read once: a generator of statuses filters like the list (it was used up by the check).
    assert list(job_list_visible(user=staff, statuses=(s for s in ["failed"]))) == [job]
    assert list(job_list_visible(user=SupabaseUser(id=USER), statuses=("queued",))) == []
    for bad in (["nope"], "queued", 3):
        with pytest.raises(ValidationError):
            job_list_visible(user=staff, statuses=bad)


def test_job_get_visible_answers_none_alike_for_missing_foreign_and_malformed():
    from common.callers import SupabaseUser
    from common.selectors import job_get_visible

    job = new_job()
    alice, bob = SupabaseUser(id=USER), SupabaseUser(id=uuid.uuid4())
    assert job_get_visible(user=alice, job_id=str(job.id)) == job
    assert job_get_visible(user=alice, job_id=str(job.id).upper()) == job
    assert job_get_visible(user=bob, job_id=job.id) is None
    assert job_get_visible(user=alice, job_id=uuid.uuid4()) is None
    for malformed in (job.id.hex, "{" + str(job.id) + "}", "nope", None, 42):
        assert job_get_visible(user=alice, job_id=malformed) is None


def test_job_get_visible_names_no_job_when_the_database_fails():
    """A 503 must not tell the caller that a job it may not see exists: the error carries no job id."""
    from django.db import OperationalError

    from common.callers import SupabaseUser
    from common.errors import ServiceUnavailableError
    from common.selectors import job_get, job_get_visible

    job = new_job()

    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection refused")

    with connection.execute_wrapper(refuse):
        with pytest.raises(ServiceUnavailableError) as visible:
            job_get_visible(user=SupabaseUser(id=uuid.uuid4()), job_id=job.id)
        with pytest.raises(ServiceUnavailableError) as plain:
            job_get(job_id=job.id)
    assert visible.value.job_id is None
    assert plain.value.job_id == job.id  # the services' own reads do name it
