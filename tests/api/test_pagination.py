"""Cursors and page sizes as an attacker sends them: every bad one is a 400 naming the parameter, never a 500."""

from __future__ import annotations

import base64
import json
import uuid
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from common.models import Job

from .conftest import bearer

pytestmark = pytest.mark.django_db

INVALID_CURSOR = {"cursor": ["Invalid cursor; follow the `next` or `previous` link of a page."]}


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


# Each would reach the database (or be silently ignored) without strict decoding.
CRAFTED_CURSORS = [
    b64("p=garbage"),  # "cD1nYXJiYWdl" from the issue: a 500 with a traceback before
    "!!!",  # not base64: the first page, silently, before
    "cD1nYXJiYWdl!",
    b64("p=2024-01-01"),  # a date, not a timestamp
    b64("p=2024-01-01 10:00:00"),  # no time zone
    b64("p=2024-02-30 10:00:00+00:00"),  # no such day
    b64("p=9999-12-31 23:59:59-14:00"),  # past year 9999 once in UTC
    b64("p=0001-01-01 00:00:00+14:00"),  # before year 1 once in UTC
    b64("p=2024-01-01 10:00:00+00:00\x00"),
    b64("p=%00"),
    b64("p=" + "1" * 400),
    b64("o=-1"),
    b64("o=1e3"),
    b64("o=1001"),  # past DRF's offset cutoff: a real cursor never has it
    b64("o=99999999999999999999"),
    b64("r=2"),
    b64("r=yes"),
    b64("x=1"),  # a key DRF never writes
    b64("o=1&o=2"),  # a repeated key
    b64("p=2024-01-01 10:00:00+00:00&p=2024-01-02 10:00:00+00:00"),
    b64("o"),  # no "="
    b64("&&"),
    b64(b"p=\xff\xfe"),  # not ASCII once decoded
    b64("p=2024-01-01T10:00:00+00:00")[:-1],  # padding cut: not valid base64
    "cD1nYXJiYWdl" * 50,  # longer than any real cursor
    "YQ==YQ==",
    "%",
]


@pytest.fixture
def alice() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def client(alice, mint_token) -> APIClient:
    Job.objects.bulk_create(
        [Job(user_id=alice, audio_url="a", user_prompt="p", budget_limit=Decimal("20")) for _ in range(7)]
    )
    return bearer(APIClient(), mint_token(alice))


def get(client: APIClient, **params: str):
    response = client.get("/api/jobs/", params)
    return response.status_code, json.loads(response.content)


@pytest.mark.parametrize("cursor", CRAFTED_CURSORS)
def test_crafted_cursor_is_400_naming_the_cursor(client, cursor, caplog):
    status, body = get(client, cursor=cursor)
    assert status == 400, body
    assert body["code"] == "VALIDATION_ERROR"
    assert body["details"]["fields"] == INVALID_CURSOR
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no traceback in the log either


def test_empty_cursor_is_the_first_page(client):
    status, body = get(client, cursor="")
    assert status == 200
    assert len(body["results"]) == 7


def cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


def test_real_cursors_walk_every_page_both_ways(client):
    seen: list[str] = []
    status, page = get(client, page_size="3")
    pages = [page]
    while page["next"]:
        status, page = get(client, page_size="3", cursor=cursor_of(page["next"]))
        assert status == 200
        pages.append(page)
    seen = [job["id"] for p in pages for job in p["results"]]
    assert len(seen) == len(set(seen)) == 7
    status, back = get(client, page_size="3", cursor=cursor_of(pages[-1]["previous"]))
    assert status == 200
    assert [job["id"] for job in back["results"]] == [job["id"] for job in pages[-2]["results"]]


def test_a_real_cursor_decodes_as_drf_wrote_it(client):
    _, page = get(client, page_size="2")
    decoded = base64.b64decode(cursor_of(page["next"])).decode()
    assert set(parse_qs(decoded)) <= {"o", "r", "p"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=st.one_of(st.text(max_size=80), st.binary(max_size=60).map(b64), st.text(max_size=60).map(b64)))
def test_no_cursor_is_ever_a_server_error(client, cursor):
    status, body = get(client, cursor=cursor)
    assert status in (200, 400), body
    if status == 400:
        assert body["details"]["fields"] == INVALID_CURSOR
