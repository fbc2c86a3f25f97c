"""A schema-driven fuzz run of the API: schemathesis reads ``/api/schema/`` and calls every operation in-process.

It runs as a real user with jobs (an ES256 token verified through the JWKS endpoint on 127.0.0.1),
in positive and negative modes, and checks every response: no server error, the status code, the
content type and the body all as the schema says, schema-valid input accepted and invalid input
refused. It is bounded (``MAX_EXAMPLES`` per operation, derandomized so that every run tries the same
cases and a failure reproduces) and takes seconds.

Two parameters are opaque to a schema, so positive cases get real values for them: a cursor is
drawn from the API's own ``next``/``previous`` links (a random string is not a cursor; crafted ones
are tested in ``test_pagination.py``), and half of the job ids are the user's own jobs (so detail and
costs bodies are checked too, not only 404s).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient

from common.models import Job, JobStatus
from common.services import costs, jobs

from .jwks_server import JWKSServer, SigningKey, supabase_claims

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 40


@dataclass(frozen=True)
class FuzzUser:
    """The caller of the fuzz run: a token, its jobs, and real cursors over them."""

    token: str
    job_ids: tuple[str, ...]
    cursors: tuple[str, ...]


def pick(values: tuple[str, ...], seed: object) -> str:
    """A value chosen by the generated one, so that Hypothesis can still shrink and replay."""
    digest = hashlib.sha256(repr(seed).encode()).digest()
    return values[digest[0] % len(values)]


@pytest.fixture
def fuzz_user(supabase_project: JWKSServer, es_key: SigningKey) -> Iterator[FuzzUser]:
    user_id = uuid.uuid4()
    token = es_key.sign(supabase_claims(supabase_project.base_url, user_id))
    made = []
    for index, status in enumerate([*JobStatus.values, *JobStatus.values]):
        job = jobs.job_create(user_id=user_id, audio_url=f"songs/{index}.mp3", user_prompt="a neon city")
        costs.track_cost(job.id, "audio_analysis", "whisper", Decimal("0.006"))
        Job.objects.filter(pk=job.pk).update(status=status)
        made.append(str(job.pk))
    Job.objects.create(user_id=uuid.uuid4(), audio_url="a", user_prompt="someone else's", budget_limit=Decimal(1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    cursors: list[str] = []
    link: str | None = "/api/jobs/?page_size=3"
    while link:
        page = client.get(link).json()
        for other in (page["next"], page["previous"]):
            if other:
                cursors.append(parse_qs(urlsplit(other).query)["cursor"][0])
        link = page["next"]
    assert cursors
    # The fuzz run's requests are many and fast: the rate limit is not what it tests.
    with override_settings(VIDEOGEN_COMMON={"API_THROTTLE_RATE": None}), keep_test_connection():
        yield FuzzUser(token=token, job_ids=tuple(made), cursors=tuple(cursors))


@contextmanager
def keep_test_connection() -> Iterator[None]:
    """What Django's test client does around each request: the requests do not close the test's connection.

    schemathesis calls the WSGI application directly, so ``request_started``/``request_finished``
    would close the connection that holds the test's transaction (on PostgreSQL, a pooled one).
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# Loaded when the module is collected (the schema view needs neither the database nor a token).
# schemathesis.pytest.from_fixture() would load it per test, but its lazy loader needs pytest < 9.
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/", get_wsgi_application(), headers={"Accept": "application/vnd.oai.openapi+json"}
)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_schema(case: schemathesis.Case, fuzz_user: FuzzUser) -> None:
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and isinstance(case.query, dict) and case.query.get("cursor"):
        case.query["cursor"] = pick(fuzz_user.cursors, case.query["cursor"])
    job_id = (case.path_parameters or {}).get("job_id")
    if positive and job_id is not None and pick(("own", "random"), job_id) == "own":
        case.path_parameters["job_id"] = pick(fuzz_user.job_ids, job_id)
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_user.token}"})
