"""The one exception handler: the body and status of every error class, directly and through a view."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from common import errors
from common.api.exceptions import (
    DEFAULT_RETRY_AFTER,
    INTERNAL_ERROR_CODE,
    error_body,
    exception_handler,
    json_not_found,
    json_server_error,
    pipeline_error_status,
)

KEYS = {"code", "message", "details", "job_id"}
JOB_ID = uuid.UUID("11111111-2222-3333-4444-555555555555")
factory = APIRequestFactory()


def handle(exc: Exception):
    response = exception_handler(exc, {"view": None, "request": None})
    assert set(response.data) == KEYS
    return response


# ---------------------------------------------------------------- pipeline errors, called directly


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (
            errors.ValidationError("Prompt too short.", job_id=JOB_ID, details={"field": "prompt"}),
            400,
            "VALIDATION_ERROR",
        ),
        (errors.ValidationError("No such job.", code="JOB_NOT_FOUND", job_id=JOB_ID), 404, "JOB_NOT_FOUND"),
        (errors.StorageError("No such file.", code="NOT_FOUND"), 404, "NOT_FOUND"),
        (errors.StorageError("Exists.", code="ALREADY_EXISTS"), 409, "ALREADY_EXISTS"),
        (errors.ValidationError("Too big.", code="FILE_TOO_LARGE"), 413, "FILE_TOO_LARGE"),
        (errors.BudgetExceededError("Over budget by 0.50.", job_id=JOB_ID), 402, "BUDGET_EXCEEDED"),
    ],
)
def test_client_side_pipeline_errors_keep_their_message_and_details(exc, status, code):
    response = handle(exc)
    assert response.status_code == status
    assert response.data == exc.to_dict()
    assert response.data["code"] == code
    assert pipeline_error_status(exc) == status


@pytest.mark.parametrize(
    ("exc", "retry_after"),
    [
        (errors.ServiceUnavailableError("Redis at 10.0.0.5:6379 refused", job_id=JOB_ID), DEFAULT_RETRY_AFTER),
        (errors.ServiceUnavailableError("Supabase down", retry_after=12.2), 13),
        (errors.RetryableError("rate limited by upstream", retry_after=5), 5),
        (errors.RetryableError("flaky"), DEFAULT_RETRY_AFTER),
        (errors.ResourceError("disk /var/tmp 97% full"), DEFAULT_RETRY_AFTER),
        (errors.ServiceUnavailableError("now", retry_after=0), 1),
    ],
)
def test_transient_errors_are_503_with_retry_after_and_no_internals(exc, retry_after, caplog):
    with caplog.at_level(logging.WARNING, logger="common.api.exceptions"):
        response = handle(exc)
    assert response.status_code == 503
    assert response["Retry-After"] == str(retry_after)
    assert response.data["details"] == {"retry_after": retry_after}
    assert response.data["code"] == exc.code
    assert response.data["message"] == errors.get_user_friendly_message(exc.code, type(exc))
    assert exc.message not in json.dumps(response.data)
    assert any(exc.message in r.getMessage() for r in caplog.records)


def test_config_error_is_500_with_a_generic_message_and_is_logged(caplog):
    exc = errors.ConfigError(problems=["JWT_SECRET_KEY: must be at least 32 characters long (value not shown)"])
    with caplog.at_level(logging.ERROR, logger="common.api.exceptions"):
        response = handle(exc)
    assert response.status_code == 500
    assert response.data == {
        "code": "CONFIG_ERROR",
        "message": errors.get_user_friendly_message("CONFIG_ERROR"),
        "details": {},
        "job_id": None,
    }
    assert "JWT_SECRET_KEY" not in json.dumps(response.data)
    assert any("JWT_SECRET_KEY" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "exc",
    [
        errors.GenerationError("replicate model xyz returned 500", job_id=JOB_ID),
        errors.AudioAnalysisError("librosa failed on /tmp/abc.mp3"),
        errors.CompositionError("ffmpeg exited 1"),
        errors.StorageError("bucket videos: permission denied for service key"),
        errors.PipelineError("something"),
    ],
)
def test_other_pipeline_errors_are_500_with_a_friendly_message(exc):
    response = handle(exc)
    assert response.status_code == 500
    assert response.data["code"] == exc.code
    assert response.data["message"] == errors.get_user_friendly_message(exc.code, type(exc))
    assert response.data["details"] == {}
    assert response.data["job_id"] == (str(exc.job_id) if exc.job_id else None)
    assert "Retry-After" not in response


# ---------------------------------------------------------------- DRF and Django errors, called directly


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (drf.NotAuthenticated(), 401, "NOT_AUTHENTICATED"),
        (drf.AuthenticationFailed(), 401, "AUTHENTICATION_FAILED"),
        (drf.PermissionDenied(), 403, "PERMISSION_DENIED"),
        (drf.NotFound(), 404, "NOT_FOUND"),
        (drf.MethodNotAllowed("POST"), 405, "METHOD_NOT_ALLOWED"),
        (drf.NotAcceptable(), 406, "NOT_ACCEPTABLE"),
        (drf.UnsupportedMediaType("text/xml"), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (drf.ParseError(), 400, "PARSE_ERROR"),
        (Http404("No Job matches the given query."), 404, "NOT_FOUND"),
        (DjangoPermissionDenied("internal reason"), 403, "PERMISSION_DENIED"),
    ],
)
def test_drf_and_django_errors_use_the_same_shape(exc, status, code):
    response = handle(exc)
    assert response.status_code == status
    assert response.data["code"] == code
    assert response.data["job_id"] is None
    assert isinstance(response.data["message"], str)
    assert response.data["message"]
    # Django's exception text may name internals; the client gets DRF's default text.
    assert "internal reason" not in response.data["message"]
    assert "No Job matches" not in response.data["message"]


def test_throttled_has_retry_after():
    response = handle(drf.Throttled(wait=41.2))
    assert response.status_code == 429
    assert response["Retry-After"] == "42"
    assert response.data["code"] == "THROTTLED"
    assert response.data["details"] == {"retry_after": 42}


def test_drf_validation_error_with_fields():
    response = handle(drf.ValidationError({"status": ["Unknown status 'x'."]}))
    assert response.status_code == 400
    assert response.data["code"] == "VALIDATION_ERROR"
    assert response.data["details"] == {"fields": {"status": ["Unknown status 'x'."]}}


def test_drf_validation_error_with_a_list():
    response = handle(drf.ValidationError("Only one problem."))
    assert response.data["message"] == "Only one problem."
    assert response.data["details"] == {"errors": ["Only one problem."]}
    response = handle(drf.ValidationError(["one", "two"]))
    assert response.data["message"] == "The request is invalid."


def test_custom_detail_code_is_used():
    response = handle(drf.AuthenticationFailed("Nope.", code="token_expired"))
    assert response.data["code"] == "TOKEN_EXPIRED"
    assert response.data["message"] == "Nope."


def test_unexpected_exception_is_a_generic_500_and_logged(caplog):
    with caplog.at_level(logging.ERROR, logger="common.api.exceptions"):
        response = handle(RuntimeError("password=hunter2 at db.internal"))
    assert response.status_code == 500
    assert response.data["code"] == INTERNAL_ERROR_CODE
    assert "hunter2" not in json.dumps(response.data)
    assert any(r.exc_info for r in caplog.records)


def test_error_body_shape():
    assert error_body("X", "y", job_id=JOB_ID) == {"code": "X", "message": "y", "details": {}, "job_id": str(JOB_ID)}


def test_plain_django_json_views():
    request = factory.get("/api/nowhere/")
    not_found = json_not_found(request)
    assert not_found.status_code == 404
    assert json.loads(not_found.content)["code"] == "NOT_FOUND"
    server_error = json_server_error(request)
    assert server_error.status_code == 500
    assert set(json.loads(server_error.content)) == KEYS


# ---------------------------------------------------------------- through a view


class Raiser(APIView):
    """Raises whatever the test puts on the class."""

    permission_classes = ()
    authentication_classes = ()
    to_raise: Exception = RuntimeError()

    def get(self, request):
        raise self.to_raise

    def post(self, request):
        return Response({"got": request.data})


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (errors.ValidationError("bad", job_id=JOB_ID), 400, "VALIDATION_ERROR"),
        (errors.BudgetExceededError(job_id=JOB_ID), 402, "BUDGET_EXCEEDED"),
        (errors.PipelineError(code="JOB_NOT_FOUND"), 404, "JOB_NOT_FOUND"),
        (errors.ServiceUnavailableError(retry_after=7), 503, "SERVICE_UNAVAILABLE"),
        (errors.RetryableError(), 503, "RETRYABLE_ERROR"),
        (errors.ConfigError("SUPABASE_URL is missing"), 500, "CONFIG_ERROR"),
        (errors.GenerationError(), 500, "GENERATION_FAILED"),
        (drf.NotFound(), 404, "NOT_FOUND"),
        (Http404(), 404, "NOT_FOUND"),
        (KeyError("boom"), 500, INTERNAL_ERROR_CODE),
    ],
)
def test_errors_through_a_view(exc, status, code):
    view = type("R", (Raiser,), {"to_raise": exc}).as_view()
    response = view(factory.get("/x/"))
    response.render()
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == KEYS
    assert body["code"] == code
    assert "Traceback" not in response.content.decode()
    assert "SUPABASE_URL" not in response.content.decode()


def test_parse_error_through_a_view():
    response = Raiser.as_view()(factory.post("/x/", data="{not json", content_type="application/json"))
    response.render()
    assert response.status_code == 400
    assert json.loads(response.content)["code"] == "PARSE_ERROR"


def test_unsupported_media_type_through_a_view():
    response = Raiser.as_view()(factory.post("/x/", data="a=b", content_type="application/x-www-form-urlencoded"))
    response.render()
    assert response.status_code == 415
    assert json.loads(response.content)["code"] == "UNSUPPORTED_MEDIA_TYPE"
