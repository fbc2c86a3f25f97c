"""Job, JobStage and JobCost payloads: validators, ORM building and the field match with the models."""

from __future__ import annotations

import datetime as dt
import typing
from decimal import Decimal

import pytest

from common import models
from common.schemas import Job, JobCost, JobStage
from common.schemas.job import JobStatusValue, StageStatusValue
from tests.schemas import payloads as p
from tests.schemas.conftest import assert_invalid

SCHEMA_FOR_MODEL = [(models.Job, Job), (models.JobStage, JobStage), (models.JobCost, JobCost)]


@pytest.mark.parametrize(("model", "schema"), SCHEMA_FOR_MODEL)
def test_schema_fields_match_the_model_columns(model, schema):
    columns = {field.attname for field in model._meta.concrete_fields}
    assert set(schema.model_fields) == columns, (
        f"{schema.__name__} drifted from {model.__name__}: "
        f"only in the model {sorted(columns - set(schema.model_fields))}, "
        f"only in the schema {sorted(set(schema.model_fields) - columns)}"
    )


@pytest.mark.parametrize(("model", "schema"), SCHEMA_FOR_MODEL)
def test_nullable_columns_are_optional_in_the_schema(model, schema):
    for field in model._meta.concrete_fields:
        annotation = schema.model_fields[field.attname].annotation
        allows_none = type(None) in typing.get_args(annotation)
        assert allows_none == field.null, f"{schema.__name__}.{field.attname}: null={field.null}"


def test_status_literals_match_the_model_choices():
    assert set(typing.get_args(JobStatusValue)) == set(models.JobStatus.values)
    assert set(typing.get_args(StageStatusValue)) == set(models.StageStatus.values)


def test_valid_payloads():
    assert Job.model_validate(p.job()).status == "processing"
    assert JobStage.model_validate(p.job_stage()).duration_seconds == 42
    assert JobCost.model_validate(p.job_cost()).unit_price == Decimal("0.0055")


def test_job_defaults():
    minimal = {k: v for k, v in p.job().items() if k not in {"progress", "total_cost", "reserved_cost"}}
    minimal = {k: v for k, v in minimal.items() if v is not None}
    job = Job.model_validate(minimal)
    assert job.progress == 0
    assert job.total_cost == Decimal("0")
    assert job.reserved_cost == Decimal("0")
    assert job.completed_at is None


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("status", "done", "'queued', 'processing', 'completed', 'failed' or 'cancelled'"),
        ("progress", 101, "less than or equal to 100"),
        ("progress", -1, "greater than or equal to 0"),
        ("estimated_remaining", -5, "greater than or equal to 0"),
        ("budget_limit", "-1", "must not be negative"),
        ("total_cost", 1.5, "floats are inexact"),
        ("created_at", dt.datetime(2026, 1, 1), "timezone"),
        ("completed_at", p.T0 - dt.timedelta(seconds=1), "must not be before created_at"),
        ("user_id", "bob", "UUID"),
    ],
)
def test_job_rejects(field, value, fragment):
    assert_invalid(Job, {**p.job(), field: value}, fragment)


def test_job_accepts_cancelled_and_an_error_code():
    job = Job.model_validate({**p.job(), "status": "cancelled", "error_code": "JOB_CANCELLED"})
    assert job.error_code == "JOB_CANCELLED"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("status", "cancelled", "'pending', 'processing', 'completed' or 'failed'"),
        ("completed_at", p.T0 - dt.timedelta(seconds=1), "must not be before started_at"),
        ("duration_seconds", -1, "greater than or equal to 0"),
        ("cost", "-0.000001", "must not be negative"),
        ("attempts", -1, "greater than or equal to 0"),
        ("stage_name", "", "at least 1 character"),
    ],
)
def test_job_stage_rejects(field, value, fragment):
    assert_invalid(JobStage, {**p.job_stage(), field: value}, fragment)


def test_job_stage_without_start_may_have_any_completion():
    stage = JobStage.model_validate({**p.job_stage(), "started_at": None, "status": "pending"})
    assert stage.started_at is None


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("quantity", "-1", "must not be negative"),
        ("quantity", "0.00001", "no more than 4 decimal places"),
        ("unit_price", "-0.1", "must not be negative"),
        ("api_name", "  ", "at least 1 character"),
    ],
)
def test_job_cost_rejects(field, value, fragment):
    assert_invalid(JobCost, {**p.job_cost(), field: value}, fragment)


@pytest.mark.django_db
def test_schemas_build_from_orm_instances_and_round_trip():
    job = models.Job.objects.create(user_id=p.USER_ID, audio_url="a.mp3", user_prompt="prompt")
    stage = models.JobStage.objects.create(job=job, stage_name="audio_analysis", metadata={"k": 1})
    cost = models.JobCost.objects.create(
        job=job, stage_name="audio_analysis", api_name="whisper", cost=Decimal("0.006"), unit_price=Decimal("0.006")
    )
    job.refresh_from_db()
    for instance, schema in ((job, Job), (stage, JobStage), (cost, JobCost)):
        instance.refresh_from_db()
        payload = schema.model_validate(instance)
        for name in schema.model_fields:
            assert getattr(payload, name) == getattr(instance, name), name
        assert schema.model_validate_json(payload.model_dump_json()) == payload
    assert Job.model_validate(job).budget_limit == Decimal("20")
    assert JobCost.model_validate(cost).job_id == job.id
