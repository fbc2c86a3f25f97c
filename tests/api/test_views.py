"""The job endpoints over HTTP: owner scoping, staff view, pagination, filters, methods, schema, throttling."""

from __future__ import annotations

import dataclasses
import json
import uuid
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from common.api.schemas import JobCostsResponse
from common.api.throttling import CallerRateThrottle
from common.models import Job, JobStatus
from common.schemas import Job as JobSchema
from common.schemas import JobStage as JobStageSchema
from common.services import costs, jobs

from .conftest import JWT_SECRET, bearer

pytestmark = pytest.mark.django_db

KEYS = {"code", "message", "details", "job_id"}
JOB_FIELDS = set(JobSchema.model_fields)
STAGE_FIELDS = set(JobStageSchema.model_fields)
MALFORMED_IDS = [
    "nope",
    "1",
    "00000000-0000-0000-0000-00000000000Z",
    "12345678123456781234567812345678",
    "{12345678-1234-5678-1234-567812345678}",
    "%00",
    "..%2F..%2Fadmin",
    "x" * 300,
]


def make_job(user_id, **fields) -> Job:
    job = jobs.job_create(user_id=user_id, audio_url="songs/a.mp3", user_prompt="a neon city at night")
    if fields:
        Job.objects.filter(pk=job.pk).update(**fields)
        job.refresh_from_db()
    return job


@pytest.fixture
def alice() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def bob() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def as_user(mint_token):
    """``as_user(user_id) -> APIClient`` with that user's bearer token."""

    def make(user_id: uuid.UUID) -> APIClient:
        return bearer(APIClient(), mint_token(user_id))

    return make


@pytest.fixture
def staff_client() -> APIClient:
    user = get_user_model().objects.create_user("operator", password="pw-not-used-1234", is_staff=True)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def alice_job(alice) -> Job:
    """A job of Alice's with two stages done/running and three ledger rows."""
    job = make_job(alice)
    jobs.stage_start(job_id=job.id, stage_name="audio_analysis")
    costs.track_cost(job.id, "audio_analysis", "whisper", Decimal("0.006"))
    jobs.stage_complete(job_id=job.id, stage_name="audio_analysis")
    jobs.stage_start(job_id=job.id, stage_name="scene_planning")
    costs.track_cost(job.id, "scene_planning", "gpt-4o", Decimal("0.0125"))
    costs.track_cost(job.id, "scene_planning", "gpt-4o", Decimal("0.0100"))
    jobs.job_update_progress(job_id=job.id, progress=30, current_stage="scene_planning")
    return job


def body(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def assert_not_found(response) -> dict:
    assert response.status_code == 404
    data = body(response)
    assert data == {"code": "NOT_FOUND", "message": "Not found.", "details": {}, "job_id": None}
    return data


# ---------------------------------------------------------------- authentication on every endpoint


@pytest.mark.parametrize("path", ["/api/jobs/", "/api/jobs/{id}/", "/api/jobs/{id}/costs/"])
def test_every_endpoint_requires_authentication(alice_job, jwt_secret, path):
    response = APIClient().get(path.format(id=alice_job.id))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert body(response)["code"] == "NOT_AUTHENTICATED"


@pytest.mark.parametrize("path", ["/api/jobs/", "/api/jobs/{id}/", "/api/jobs/{id}/costs/"])
def test_every_endpoint_refuses_a_bad_token(alice_job, mint_token, path):
    client = bearer(APIClient(), mint_token(alice_job.user_id, exp=1))
    response = client.get(path.format(id=alice_job.id))
    assert response.status_code == 401
    assert body(response)["code"] == "TOKEN_EXPIRED"


def test_non_staff_django_user_is_forbidden(alice_job, jwt_secret):
    user = get_user_model().objects.create_user("clerk", password="pw-not-used-1234")
    client = APIClient()
    client.force_login(user)
    for path in ("/api/jobs/", f"/api/jobs/{alice_job.id}/", f"/api/jobs/{alice_job.id}/costs/"):
        response = client.get(path)
        assert response.status_code == 403
        assert body(response)["code"] == "PERMISSION_DENIED"


def test_inactive_staff_user_is_not_authenticated(alice_job, jwt_secret):
    user = get_user_model().objects.create_user("gone", password="pw-not-used-1234", is_staff=True)
    client = APIClient()
    client.force_login(user)
    user.is_active = False
    user.save()
    response = client.get("/api/jobs/")
    assert response.status_code == 401


# ---------------------------------------------------------------- list


def test_list_shows_only_the_callers_jobs_newest_first(as_user, alice, bob):
    mine = [make_job(alice) for _ in range(3)]
    make_job(bob)

    data = body(as_user(alice).get("/api/jobs/"))

    assert [j["id"] for j in data["results"]] == [str(j.id) for j in reversed(mine)]
    assert {j["user_id"] for j in data["results"]} == {str(alice)}
    assert data["next"] is None
    assert data["previous"] is None


def test_list_items_are_the_contract_job_payload(as_user, alice_job):
    item = body(as_user(alice_job.user_id).get("/api/jobs/"))["results"][0]
    assert set(item) == JOB_FIELDS
    assert item == JobSchema.model_validate(Job.objects.get(pk=alice_job.pk)).model_dump(mode="json")
    # Money is a string with the column's six places, never a float.
    assert item["budget_limit"] == "20.000000"
    assert item["total_cost"] == "0.028500"
    assert item["progress"] == 30


def test_list_for_a_user_without_jobs_is_empty(as_user, alice_job):
    assert body(as_user(uuid.uuid4()).get("/api/jobs/"))["results"] == []


def test_list_pagination_follows_next_links_without_gaps(as_user, alice):
    created = [make_job(alice) for _ in range(7)]
    client = as_user(alice)

    seen: list[str] = []
    url = "/api/jobs/?page_size=3"
    pages = 0
    while url:
        data = body(client.get(url))
        assert len(data["results"]) <= 3
        seen += [j["id"] for j in data["results"]]
        pages += 1
        url = data["next"]
        if url:
            assert urlsplit(url).path == "/api/jobs/"
    assert pages == 3
    assert seen == [str(j.id) for j in reversed(created)]


def test_previous_link_goes_back(as_user, alice):
    for _ in range(4):
        make_job(alice)
    client = as_user(alice)
    first = body(client.get("/api/jobs/?page_size=2"))
    second = body(client.get(first["next"]))
    back = body(client.get(second["previous"]))
    assert [j["id"] for j in back["results"]] == [j["id"] for j in first["results"]]


def test_page_size_defaults_to_20_and_goes_up_to_100(as_user, alice):
    Job.objects.bulk_create(
        [Job(user_id=alice, audio_url="a", user_prompt="p", budget_limit=Decimal("20")) for _ in range(105)]
    )
    client = as_user(alice)
    assert len(body(client.get("/api/jobs/"))["results"]) == 20
    assert len(body(client.get("/api/jobs/?page_size="))["results"]) == 20
    assert len(body(client.get("/api/jobs/?page_size=100"))["results"]) == 100
    assert len(body(client.get("/api/jobs/?page_size=1"))["results"]) == 1


@pytest.mark.parametrize(
    "value", ["0", "-1", "abc", "1.5", "101", "500", "1000", "99999999999999999999", "+5", " 5", "\u0665", "1e2"]
)
def test_bad_page_size_is_400(as_user, alice, value):
    response = as_user(alice).get("/api/jobs/", {"page_size": value})
    assert response.status_code == 400
    data = body(response)
    assert data["code"] == "VALIDATION_ERROR"
    assert data["details"]["fields"] == {"page_size": ["Must be an integer from 1 to 100."]}


def test_bad_cursor_is_400(as_user, alice):
    response = as_user(alice).get("/api/jobs/?cursor=not-a-cursor")
    assert response.status_code == 400
    assert "cursor" in body(response)["details"]["fields"]


def test_status_filter(as_user, alice, bob):
    queued = make_job(alice)
    running = make_job(alice, status=JobStatus.PROCESSING)
    done = make_job(alice, status=JobStatus.COMPLETED)
    make_job(bob, status=JobStatus.COMPLETED)
    client = as_user(alice)

    def ids(query: str) -> set[str]:
        return {j["id"] for j in body(client.get(f"/api/jobs/?{query}"))["results"]}

    assert ids("status=completed") == {str(done.id)}
    assert ids("status=queued,processing") == {str(queued.id), str(running.id)}
    assert ids("status=queued&status=completed") == {str(queued.id), str(done.id)}
    assert ids("status=failed") == set()
    assert ids("status=") == {str(queued.id), str(running.id), str(done.id)}


@pytest.mark.parametrize("value", ["done", "QUEUED", "queued,bogus", "<script>"])
def test_bad_status_filter_is_400_without_echo(as_user, alice, value):
    response = as_user(alice).get("/api/jobs/", {"status": value})
    assert response.status_code == 400
    data = body(response)
    assert data["code"] == "VALIDATION_ERROR"
    assert "queued, processing, completed, failed, cancelled" in data["details"]["fields"]["status"][0]
    assert "<script>" not in response.content.decode()


def test_list_query_count_does_not_grow_with_jobs(as_user, alice, django_assert_num_queries):
    client = as_user(alice)
    make_job(alice)
    with django_assert_num_queries(1):
        client.get("/api/jobs/")
    for _ in range(10):
        make_job(alice)
    with django_assert_num_queries(1):
        client.get("/api/jobs/")


# ---------------------------------------------------------------- detail


def test_detail_of_own_job(as_user, alice_job):
    response = as_user(alice_job.user_id).get(f"/api/jobs/{alice_job.id}/")
    assert response.status_code == 200
    data = body(response)
    assert set(data) == JOB_FIELDS | {"stages"}
    assert data["id"] == str(alice_job.id)
    assert data["status"] == "processing"
    assert data["progress"] == 30
    assert data["current_stage"] == "scene_planning"
    assert isinstance(data["estimated_remaining"], int)
    assert data["error_code"] is None
    assert data["video_url"] is None
    assert [s["stage_name"] for s in data["stages"]] == ["audio_analysis", "scene_planning"]
    first, second = data["stages"]
    assert set(first) == STAGE_FIELDS
    assert first["status"] == "completed"
    assert first["started_at"] is not None
    assert first["completed_at"] is not None
    assert isinstance(first["duration_seconds"], int)
    assert first["cost"] == "0.006000"
    assert first["attempts"] == 1
    assert second["status"] == "processing"
    assert second["completed_at"] is None


def test_detail_of_a_failed_job_has_the_error_and_of_a_done_job_the_video(as_user, alice):
    from common.errors import GenerationError

    failed = make_job(alice)
    jobs.stage_start(job_id=failed.id, stage_name="audio_analysis")
    jobs.job_fail(job_id=failed.id, error=GenerationError("model timed out"))
    done = make_job(alice)
    jobs.stage_start(job_id=done.id, stage_name="audio_analysis")
    jobs.stage_complete(job_id=done.id, stage_name="audio_analysis")
    jobs.job_complete(job_id=done.id, video_url="https://cdn.example/v.mp4")
    client = as_user(alice)

    failed_data = body(client.get(f"/api/jobs/{failed.id}/"))
    assert failed_data["status"] == "failed"
    assert failed_data["error_code"] == "GENERATION_FAILED"
    assert failed_data["error_message"]
    done_data = body(client.get(f"/api/jobs/{done.id}/"))
    assert done_data["status"] == "completed"
    assert done_data["video_url"] == "https://cdn.example/v.mp4"
    assert done_data["completed_at"] is not None


def test_uppercase_id_finds_the_job(as_user, alice_job):
    response = as_user(alice_job.user_id).get(f"/api/jobs/{str(alice_job.id).upper()}/")
    assert response.status_code == 200


@pytest.mark.parametrize("suffix", ["", "costs/"])
def test_another_users_job_is_exactly_like_a_missing_one(as_user, alice_job, bob, suffix):
    client = as_user(bob)
    other = client.get(f"/api/jobs/{alice_job.id}/{suffix}")
    missing = client.get(f"/api/jobs/{uuid.uuid4()}/{suffix}")
    assert_not_found(other)
    assert_not_found(missing)
    assert other.content == missing.content
    assert dict(other.headers).keys() == dict(missing.headers).keys()


@pytest.mark.parametrize("suffix", ["", "costs/"])
@pytest.mark.parametrize("job_id", MALFORMED_IDS)
def test_malformed_ids_are_404(as_user, alice, suffix, job_id):
    response = as_user(alice).get(f"/api/jobs/{job_id}/{suffix}")
    assert response.status_code == 404
    assert set(body(response)) == KEYS


@pytest.mark.parametrize("suffix", ["", "costs/"])
def test_own_job_id_in_a_non_canonical_form_is_404(as_user, alice_job, suffix):
    client = as_user(alice_job.user_id)
    # uuid.UUID() would accept both (it drops the hyphens wherever they are): the API takes only the canonical form.
    canonical = str(alice_job.id)
    for job_id in (alice_job.id.hex + "----", canonical[:7] + "-" + canonical[7] + canonical[9:]):
        assert len(job_id) == len(canonical)
        assert uuid.UUID(job_id) == alice_job.id
        assert client.get(f"/api/jobs/{job_id}/{suffix}").status_code == 404


def test_detail_query_count(as_user, alice_job, django_assert_num_queries):
    client = as_user(alice_job.user_id)
    with django_assert_num_queries(2):  # the job, its stages
        client.get(f"/api/jobs/{alice_job.id}/")


# ---------------------------------------------------------------- costs


def test_costs_of_own_job(as_user, alice_job):
    response = as_user(alice_job.user_id).get(f"/api/jobs/{alice_job.id}/costs/")
    assert response.status_code == 200
    data = body(response)
    assert data["job_id"] == str(alice_job.id)
    assert Decimal(data["total"]) == Decimal("0.0285")
    assert Decimal(data["budget"]) == Decimal("20")
    assert Decimal(data["reserved"]) == Decimal("0")
    assert Decimal(data["remaining"]) == Decimal("19.9715")
    assert data["charges"] == 3
    assert Decimal(data["ledger_total"]) == Decimal(data["total"])
    assert {k: Decimal(v) for k, v in data["by_stage"].items()} == {
        "audio_analysis": Decimal("0.006"),
        "scene_planning": Decimal("0.0225"),
    }
    assert {k: Decimal(v) for k, v in data["by_api"].items()} == {
        "whisper": Decimal("0.006"),
        "gpt-4o": Decimal("0.0225"),
    }
    # Every amount is a string with six places: no float ever reaches the client.
    assert data["reserved"] == "0.000000"
    assert data["by_stage"]["audio_analysis"] == "0.006000"
    for key in ("total", "budget", "reserved", "remaining", "ledger_total"):
        assert isinstance(data[key], str)
        assert len(data[key].split(".")[1]) == 6


def test_costs_body_has_every_field_of_the_cost_summary(as_user, alice_job):
    # JobCostsResponse is built from costs.CostSummary by attribute: a field added there must reach the API.
    summary_fields = {f.name for f in dataclasses.fields(costs.CostSummary)}
    assert set(JobCostsResponse.model_fields) == summary_fields
    data = body(as_user(alice_job.user_id).get(f"/api/jobs/{alice_job.id}/costs/"))
    assert set(data) == summary_fields


def test_costs_query_count_does_not_grow_with_the_ledger(as_user, alice):
    client = as_user(alice)

    def queries_with(charges: int) -> int:
        job = make_job(alice)
        jobs.stage_start(job_id=job.id, stage_name="video_generation")
        for i in range(charges):
            costs.track_cost(job.id, "video_generation", f"api-{i % 3}", Decimal("0.01"))
            costs.reserve(job.id, "video_generation", "svd", Decimal("0.01"))
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"/api/jobs/{job.id}/costs/").status_code == 200
        return len(ctx.captured_queries)

    assert queries_with(1) == queries_with(12)


def test_costs_include_open_reservations(as_user, alice_job):
    costs.reserve(alice_job.id, "video_generation", "svd", Decimal("1.5"))
    data = body(as_user(alice_job.user_id).get(f"/api/jobs/{alice_job.id}/costs/"))
    assert Decimal(data["reserved"]) == Decimal("1.5")
    assert Decimal(data["remaining"]) == Decimal("18.4715")


def test_costs_of_a_job_without_charges(as_user, alice):
    job = make_job(alice)
    data = body(as_user(alice).get(f"/api/jobs/{job.id}/costs/"))
    assert data["total"] == "0.000000"
    assert data["ledger_total"] == "0.000000"
    assert data["by_stage"] == {}
    assert data["by_api"] == {}
    assert data["charges"] == 0


# ---------------------------------------------------------------- staff


def test_staff_sees_every_job(staff_client, alice, bob):
    jobs_created = [make_job(alice), make_job(bob), make_job(uuid.uuid4())]
    data = body(staff_client.get("/api/jobs/"))
    assert {j["id"] for j in data["results"]} >= {str(j.id) for j in jobs_created}


def test_staff_reads_any_job_and_its_costs(staff_client, alice_job):
    assert body(staff_client.get(f"/api/jobs/{alice_job.id}/"))["id"] == str(alice_job.id)
    assert body(staff_client.get(f"/api/jobs/{alice_job.id}/costs/"))["charges"] == 3
    assert_not_found(staff_client.get(f"/api/jobs/{uuid.uuid4()}/"))
    assert_not_found(staff_client.get("/api/jobs/nope/costs/"))


def test_staff_filters_by_status(staff_client, alice, bob):
    make_job(alice)
    done = make_job(bob, status=JobStatus.COMPLETED)
    data = body(staff_client.get("/api/jobs/?status=completed"))
    assert [j["id"] for j in data["results"]] == [str(done.id)]


# ---------------------------------------------------------------- read-only, routing


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/jobs/", "/api/jobs/{id}/", "/api/jobs/{id}/costs/"])
def test_write_methods_are_405(as_user, alice_job, method, path):
    client = as_user(alice_job.user_id)
    response = getattr(client, method)(path.format(id=alice_job.id), data={}, format="json")
    assert response.status_code == 405
    assert body(response)["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in response["Allow"]
    assert Job.objects.filter(pk=alice_job.pk).exists()


@pytest.mark.parametrize("path", ["/api/jobs/", "/api/jobs/{id}/", "/api/jobs/{id}/costs/", "/api/jobs/nope/"])
def test_responses_are_private_and_never_stored(as_user, alice_job, path):
    response = as_user(alice_job.user_id).get(path.format(id=alice_job.id))
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
    assert "Authorization" in response["Vary"]


def test_head_is_allowed(as_user, alice_job):
    assert as_user(alice_job.user_id).head(f"/api/jobs/{alice_job.id}/").status_code == 200


def test_unknown_api_path_is_a_json_404(as_user, alice):
    response = as_user(alice).get("/api/nothing/here/")
    assert_not_found(response)
    response = APIClient().post("/api/nothing")
    assert_not_found(response)


def test_missing_slash_redirects(as_user, alice):
    response = as_user(alice).get("/api/jobs?status=queued")
    assert response.status_code == 301
    assert response["Location"] == "/api/jobs/?status=queued"
    assert_not_found(as_user(alice).get("/api/nothing"))


def test_no_secret_in_any_response(as_user, mint_token, alice_job, staff_client):
    client = as_user(alice_job.user_id)
    responses = [
        client.get("/api/jobs/"),
        client.get(f"/api/jobs/{alice_job.id}/"),
        client.get(f"/api/jobs/{alice_job.id}/costs/"),
        client.get("/api/jobs/?status=bad"),
        client.post("/api/jobs/"),
        APIClient().get("/api/jobs/"),
        bearer(APIClient(), mint_token(alice_job.user_id, aud="x")).get("/api/jobs/"),
        bearer(APIClient(), "garbage").get("/api/jobs/"),
        staff_client.get("/api/jobs/"),
        APIClient().get("/api/schema/"),
    ]
    for response in responses:
        text = response.content.decode()
        assert JWT_SECRET not in text
        assert "Traceback" not in text
        for header in response.headers.values():
            assert JWT_SECRET not in header


# ---------------------------------------------------------------- throttling


def test_throttle_limits_each_caller(as_user, alice, bob):
    with override_settings(VIDEOGEN_COMMON={"API_THROTTLE_RATE": "2/min"}):
        client = as_user(alice)
        assert client.get("/api/jobs/").status_code == 200
        assert client.get("/api/jobs/").status_code == 200
        response = client.get("/api/jobs/")
        assert response.status_code == 429
        assert int(response["Retry-After"]) >= 1
        assert body(response)["code"] == "THROTTLED"
        # Another caller has their own budget.
        assert as_user(bob).get("/api/jobs/").status_code == 200


def test_throttle_can_be_switched_off(as_user, alice):
    with override_settings(VIDEOGEN_COMMON={"API_THROTTLE_RATE": None}):
        client = as_user(alice)
        assert all(client.get("/api/jobs/").status_code == 200 for _ in range(5))


def test_throttle_fails_open_when_the_cache_is_down(as_user, alice, monkeypatch, caplog):
    class BrokenCache:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache unreachable")

        def set(self, *args, **kwargs):
            raise ConnectionError("cache unreachable")

    monkeypatch.setattr(CallerRateThrottle, "cache", BrokenCache())
    assert as_user(alice).get("/api/jobs/").status_code == 200
    assert any("rate limit skipped" in r.getMessage() for r in caplog.records)


def test_staff_throttle_bucket_is_keyed_by_django_user(staff_client):
    # Django reuses user pks between tests while the cache outlives them: start from an empty bucket.
    user = get_user_model().objects.get(username="operator")
    cache.delete(f"throttle_api_django-{user.pk}")
    with override_settings(VIDEOGEN_COMMON={"API_THROTTLE_RATE": "1/min"}):
        assert staff_client.get("/api/jobs/").status_code == 200
        assert staff_client.get("/api/jobs/").status_code == 429


# ---------------------------------------------------------------- OpenAPI


def test_openapi_schema_is_valid_and_describes_the_api():
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)

    assert schema["openapi"].startswith("3.1")
    paths = schema["paths"]
    assert {"/api/jobs/", "/api/jobs/{job_id}/", "/api/jobs/{job_id}/costs/"} <= set(paths)
    for path in paths.values():
        assert set(path) <= {"get", "head", "parameters"}
    components = schema["components"]["schemas"]
    assert set(components["Job"]["properties"]) == JOB_FIELDS
    assert set(components["JobDetailResponse"]["properties"]) == JOB_FIELDS | {"stages"}
    assert components["JobCostsResponse"]["properties"]["total"]["type"] == "string"
    assert set(components["ErrorResponse"]["properties"]) == KEYS
    assert schema["components"]["securitySchemes"]["supabaseJWT"]["scheme"] == "bearer"
    list_op = paths["/api/jobs/"]["get"]
    assert {p["name"] for p in list_op["parameters"]} == {"status", "cursor", "page_size"}
    params = {p["name"]: p for p in list_op["parameters"]}
    # The bounds the server enforces are in the schema, so a schema-valid page size is always accepted.
    assert params["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert set(params["status"]["schema"]["items"]["enum"]) == set(JobStatus.values)
    assert params["cursor"]["schema"]["maxLength"] == 512
    for path in ("/api/jobs/", "/api/jobs/{job_id}/", "/api/jobs/{job_id}/costs/"):
        assert paths[path]["get"]["responses"]["503"]
    assert paths["/api/jobs/{job_id}/"]["get"]["responses"]["404"]
