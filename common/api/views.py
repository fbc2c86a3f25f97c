"""Read-only API views: the caller's jobs, one job with its stages, and a job's costs.

Owner scoping happens in the selectors (:func:`~common.selectors.job_list_visible`,
:func:`~common.selectors.job_get_visible`), not in an object permission: a job the
caller may not see is never loaded, so another user's job, a job that does not exist
and a malformed id all answer the same 404. Bodies are the Pydantic contract payloads
dumped to JSON.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.urls import resolve
from django.utils.cache import patch_cache_control, patch_vary_headers
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api.exceptions import json_not_found
from common.api.pagination import MAX_CURSOR_LENGTH, PAGE_SIZE_SCHEMA, JobCursorPagination
from common.api.permissions import IsJobReader
from common.api.schemas import ErrorResponse, JobCostsResponse, JobDetailResponse, JobPageResponse, dump
from common.db import boundary
from common.models import Job, JobStatus
from common.schemas import Job as JobSchema
from common.schemas import JobStage as JobStageSchema
from common.selectors import job_cost_summary, job_get_visible, job_list_visible, job_stages

__all__ = [
    "JobCostsView",
    "JobDetailView",
    "JobListView",
    "SupabaseJWTScheme",
    "api_not_found",
    "parse_status_filter",
]


def parse_status_filter(raw: list[str]) -> list[str]:
    """Turn ``?status=a,b&status=c`` into a list of known job statuses.

    Raises:
        ValidationError: (400) an unknown status; the message lists the valid ones.
    """
    values = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    unknown = [v for v in values if v not in JobStatus.values]
    if unknown:
        # The bad value is not echoed back: the message names what is accepted.
        raise exceptions.ValidationError(
            {"status": [f"Unknown job status; expected one or more of: {', '.join(JobStatus.values)}."]}
        )
    return list(dict.fromkeys(values))


def _job_or_404(request: Request, job_id: str) -> Job:
    """The job ``job_id`` if the caller may read it; otherwise the same 404 whatever the reason."""
    job = job_get_visible(user=request.user, job_id=job_id)
    if job is None:
        raise exceptions.NotFound()
    return job


_ERRORS = {
    401: OpenApiResponse(ErrorResponse, description="No valid credentials (see `code` for why)"),
    403: OpenApiResponse(ErrorResponse, description="Signed in, but not a user or staff account"),
    429: OpenApiResponse(ErrorResponse, description="Too many requests; see Retry-After"),
    503: OpenApiResponse(ErrorResponse, description="A service (the database) is unavailable; see Retry-After"),
}
_NOT_FOUND = {404: OpenApiResponse(ErrorResponse, description="No such job, or not yours (indistinguishable)")}


class _ReadOnlyJobView(APIView):
    permission_classes = (IsJobReader,)
    http_method_names = ["get", "head", "options"]

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        """Per-user data: never stored by a shared cache, and varies with the caller's credentials."""
        response = super().finalize_response(request, response, *args, **kwargs)
        patch_cache_control(response, private=True, no_store=True)
        patch_vary_headers(response, ("Authorization", "Cookie"))
        return response


class JobListView(_ReadOnlyJobView):
    """The caller's jobs, newest first (staff: everyone's), cursor-paginated, filterable by status."""

    pagination_class = JobCursorPagination

    @extend_schema(
        operation_id="jobs_list",
        summary="List jobs",
        parameters=[
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                enum=JobStatus.values,
                many=True,
                explode=True,
                style="form",
                description="Only jobs with these statuses: repeat the parameter (`?status=queued&status=failed`) "
                "or separate them with commas (`?status=queued,failed`).",
            ),
            OpenApiParameter(
                "cursor",
                {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
                description="Opaque cursor: follow the `next`/`previous` link of a page (anything else is a 400)",
            ),
            OpenApiParameter("page_size", PAGE_SIZE_SCHEMA, description="Jobs per page, 1 to 100 (default 20)"),
        ],
        responses={
            200: JobPageResponse,
            400: OpenApiResponse(ErrorResponse, description="Bad status, cursor or page size"),
            **_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        """List the jobs visible to the caller."""
        statuses = parse_status_filter(request.query_params.getlist("status"))
        queryset = job_list_visible(user=request.user, statuses=statuses)
        paginator = self.pagination_class()
        # The selector returns a lazy queryset: the page is read here, so here is the database boundary
        # (an exhausted pool and an unreachable database answer 503 with their own Retry-After).
        with boundary("api.job_list"):
            page = paginator.paginate_queryset(queryset, request, view=self) or []
        body = JobPageResponse(
            next=paginator.get_next_link(),
            previous=paginator.get_previous_link(),
            results=[JobSchema.model_validate(job) for job in page],
        )
        return Response(dump(body))


class JobDetailView(_ReadOnlyJobView):
    """One job: status, progress, current stage, estimated remaining, error, video URL and stages."""

    @extend_schema(
        operation_id="jobs_retrieve",
        summary="Get a job",
        parameters=[OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: JobDetailResponse, **_NOT_FOUND, **_ERRORS},
    )
    def get(self, request: Request, job_id: str) -> Response:
        """Return the job with its stages."""
        job = _job_or_404(request, job_id)
        base = JobSchema.model_validate(job)
        stages = [JobStageSchema.model_validate(stage) for stage in job_stages(job_id=job.pk)]
        body = JobDetailResponse(**dict(base), stages=stages)
        return Response(dump(body))


class JobCostsView(_ReadOnlyJobView):
    """A job's costs: total, budget, remaining, reserved, and the breakdown by stage and by API."""

    @extend_schema(
        operation_id="jobs_costs_retrieve",
        summary="Get a job's costs",
        parameters=[OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: JobCostsResponse, **_NOT_FOUND, **_ERRORS},
    )
    def get(self, request: Request, job_id: str) -> Response:
        """Return the job's cost summary."""
        job = _job_or_404(request, job_id)
        body = JobCostsResponse.model_validate(job_cost_summary(job_id=job.pk))
        return Response(dump(body))


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """JSON 404 for ``/api/`` paths that match no route (after the usual missing-slash redirect)."""
    path = request.path_info
    # Under /api/ every path resolves (this view is the catch-all): redirect only to a real route.
    if (
        settings.APPEND_SLASH
        and not path.endswith("/")
        and request.method in ("GET", "HEAD")
        and resolve(path + "/").func is not api_not_found
    ):
        return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return json_not_found(request)


class SupabaseJWTScheme(OpenApiAuthenticationExtension):
    """OpenAPI security scheme of :class:`~common.api.authentication.SupabaseJWTAuthentication`."""

    target_class = "common.api.authentication.SupabaseJWTAuthentication"
    name = "supabaseJWT"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        """HTTP bearer with a JWT (a Supabase Auth access token)."""
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Supabase Auth access token (audience `authenticated`): signed with one of the "
            "project's signing keys (ES256/RS256/EdDSA, verified from its JWKS) or the legacy JWT secret (HS256).",
        }
