"""``manage.py dev_setup`` (behind ``make serve``): a development superuser and demo jobs, never outside development."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from common import conf
from common.models import Job
from common.services import jobs
from tests.envtools import PRODUCTION_ENV

pytestmark = pytest.mark.usefixtures("env_settings")

SUPERUSER_VARIABLES = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL")


@pytest.fixture(autouse=True)
def _no_superuser_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SUPERUSER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def dev_setup(*args: str) -> str:
    out = io.StringIO()
    call_command("dev_setup", *args, stdout=out, no_color=True)
    return out.getvalue()


@pytest.mark.django_db
def test_creates_the_default_superuser_when_there_is_none() -> None:
    User.objects.create_user("viewer", password="x")  # a plain user is not a superuser
    text = dev_setup("--no-demo")
    assert "superuser: created 'admin' (password: default 'admin')" in text
    user = authenticate(username="admin", password="admin")
    assert user is not None
    assert (user.is_superuser, user.is_staff, user.email) == (True, True, "admin@localhost")


@pytest.mark.django_db
def test_takes_the_superuser_from_djangos_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-dev-password")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.test")
    text = dev_setup("--no-demo")
    assert "created 'ops' (password: DJANGO_SUPERUSER_PASSWORD)" in text
    assert "a-long-dev-password" not in text
    user = authenticate(username="ops", password="a-long-dev-password")
    assert user is not None
    assert user.is_superuser
    assert user.email == "ops@example.test"
    assert not User.objects.filter(username="admin").exists()


@pytest.mark.django_db
def test_keeps_an_existing_superuser() -> None:
    User.objects.create_superuser("root", email=None, password="mine")
    text = dev_setup("--no-demo")
    assert "superuser: 'root' exists; none created" in text
    assert list(User.objects.values_list("username", flat=True)) == ["root"]
    assert authenticate(username="root", password="mine") is not None


@pytest.mark.django_db
def test_refuses_a_name_taken_by_a_user_who_is_not_a_superuser() -> None:
    User.objects.create_user("admin", password="theirs")
    with pytest.raises(CommandError, match="a user 'admin' exists but is not a superuser"):
        dev_setup("--no-demo")
    assert authenticate(username="admin", password="theirs") is not None
    assert not User.objects.filter(is_superuser=True).exists()


@pytest.mark.django_db
def test_adds_no_demo_jobs_to_a_database_that_has_jobs() -> None:
    job = jobs.job_create(user_id="00000000-0000-4000-8000-000000000001", audio_url="a", user_prompt="p")
    text = dev_setup()
    assert "demo data: 1 job(s) in the database; none added" in text
    assert list(Job.objects.values_list("id", flat=True)) == [job.id]


@pytest.mark.django_db(transaction=True)  # the demo charges clips from threads
def test_loads_the_demo_into_an_empty_database_once() -> None:
    text = dev_setup()
    assert "running `manage.py demo`" in text
    assert "Budget report for this run" in text
    assert Job.objects.count() == 3
    again = dev_setup()
    assert "demo data: 3 job(s) in the database; none added" in again
    assert "superuser: 'admin' exists; none created" in again
    assert Job.objects.count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_refuses_outside_development(monkeypatch: pytest.MonkeyPatch, environment: str) -> None:
    for name, value in {**PRODUCTION_ENV, "ENVIRONMENT": environment}.items():
        monkeypatch.setenv(name, value)
    conf.reset_settings_cache()
    with pytest.raises(CommandError, match=f"refuses to run with ENVIRONMENT={environment}"):
        dev_setup()
    assert not User.objects.exists()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_refuses_an_invalid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")  # and none of the variables production requires
    conf.reset_settings_cache()
    with pytest.raises(CommandError, match=r"(?s)the environment is invalid, fix it first: .*DJANGO_SECRET_KEY"):
        dev_setup()
    assert not User.objects.exists()
