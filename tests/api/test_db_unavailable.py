"""The API with its database really down: 503 SERVICE_UNAVAILABLE with Retry-After, never a 500.

The request's ``default`` connection is swapped for a real one that cannot connect: PostgreSQL on a
closed port (directly, and through a psycopg pool whose wait times out after one second), and SQLite
in a folder that does not exist. Both kinds are built on either test pass (psycopg is installed).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import InterfaceError, OperationalError, connections
from django.db.utils import load_backend
from rest_framework.test import APIClient

from common.api.exceptions import DATABASE_RETRY_AFTER, database_unavailable
from common.errors import ServiceUnavailableError
from tests.servicekit import closed_port

from .conftest import bearer

pytestmark = pytest.mark.django_db

PATHS = ["/api/jobs/", "/api/jobs/{id}/", "/api/jobs/{id}/costs/"]


def broken_settings(kind: str) -> dict[str, Any]:
    if kind == "sqlite":
        return {
            **connections.settings["default"],
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "/nonexistent-videogen-dir/db.sqlite3",
            "OPTIONS": {},
        }
    options: dict[str, Any] = {"connect_timeout": 1}
    if kind == "postgres-pool":
        options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 1.0}
    return {
        **connections.settings["default"],
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "videogen",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(closed_port()),
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
    }


@contextmanager
def database_down(monkeypatch: pytest.MonkeyPatch, kind: str) -> Iterator[Any]:
    """Within the block, ``connections["default"]`` (in this thread) cannot connect."""
    settings = broken_settings(kind)
    wrapper = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, f"down-{kind}")
    handler_class = type(connections)
    original = handler_class.__getitem__

    def getitem(self: Any, alias: str) -> Any:
        return wrapper if alias == "default" else original(self, alias)

    with monkeypatch.context() as patch:
        patch.setattr(handler_class, "__getitem__", getitem)
        try:
            yield wrapper
        finally:
            wrapper.close()
            if kind == "postgres-pool":
                wrapper.close_pool()


@pytest.mark.parametrize("kind", ["postgres", "postgres-pool", "sqlite"])
@pytest.mark.parametrize("path", PATHS)
def test_list_and_detail_answer_503_with_retry_after(monkeypatch, mint_token, kind, path, caplog):
    client = bearer(APIClient(), mint_token(uuid.uuid4()))
    with database_down(monkeypatch, kind):
        response = client.get(path.format(id=uuid.uuid4()))
    body = json.loads(response.content)
    assert response.status_code == 503, body
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER)
    assert body == {
        "code": "SERVICE_UNAVAILABLE",
        "message": body["message"],
        "details": {"retry_after": DATABASE_RETRY_AFTER},
        "job_id": None,
    }
    text = response.content.decode()
    for internal in ("127.0.0.1", "nonexistent", "Traceback"):
        assert internal not in text
    assert not [r for r in caplog.records if r.exc_info]  # logged as a warning, without a traceback


def test_the_database_comes_back(monkeypatch, mint_token):
    client = bearer(APIClient(), mint_token(uuid.uuid4()))
    with database_down(monkeypatch, "postgres"):
        assert client.get("/api/jobs/").status_code == 503
    assert client.get("/api/jobs/").status_code == 200


class _Cause(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("cause")
        self.sqlstate = sqlstate


def error_with(kind: type[Exception], sqlstate: str | None, message: str = "boom") -> Exception:
    error = kind(message)
    error.__cause__ = _Cause(sqlstate)
    return error


@pytest.mark.parametrize(
    "exc",
    [
        error_with(OperationalError, "08006"),  # connection failure
        error_with(OperationalError, "53300"),  # too many connections
        error_with(OperationalError, "57014"),  # statement timeout
        error_with(OperationalError, "57P01"),  # admin shutdown
        error_with(OperationalError, "40001"),  # serialization failure
        OperationalError("database is locked"),
        InterfaceError("connection already closed"),
    ],
)
def test_database_errors_that_mean_unavailable(exc):
    error = database_unavailable(exc)
    assert isinstance(error, ServiceUnavailableError)
    assert error.retry_after == DATABASE_RETRY_AFTER


@pytest.mark.parametrize(
    "exc",
    [
        error_with(OperationalError, "42P01", "relation does not exist"),
        OperationalError("no such table: jobs"),
        ValueError("not a database error"),
    ],
)
def test_other_database_errors_stay_500(exc):
    assert database_unavailable(exc) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", PATHS)
def test_an_exhausted_pool_answers_503_with_the_pools_shorter_retry_after(mint_token, path):
    """Every view reads through the boundary: the pool's own wait (1 s), not the unreachable database's 5 s."""
    from django.db import connection

    from common.services import jobs
    from tests.poolkit import holding, small_pool

    owner = uuid.uuid4()
    job = jobs.job_create(user_id=owner, audio_url="https://example.com/a.mp3", user_prompt="rain on neon")
    connection.close()
    client = bearer(APIClient(), mint_token(owner))
    with small_pool(max_size=2, timeout=0.3):
        with holding(2):
            response = client.get(path.format(id=job.pk))
        assert client.get(path.format(id=job.pk)).status_code == 200
        connection.close()
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert json.loads(response.content) == {
        "code": "SERVICE_UNAVAILABLE",
        "message": json.loads(response.content)["message"],
        "details": {"retry_after": 1},
        "job_id": None,
    }
