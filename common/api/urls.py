"""URLs of the REST API (included under ``/api/`` by ``common.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path
from drf_spectacular.views import SpectacularAPIView

from common.api import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("jobs/", views.JobListView.as_view(), name="api-job-list"),
    # <str:...>, not <uuid:...>: a malformed id must reach the view and get the same 404 as a missing job.
    path("jobs/<str:job_id>/", views.JobDetailView.as_view(), name="api-job-detail"),
    path("jobs/<str:job_id>/costs/", views.JobCostsView.as_view(), name="api-job-costs"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Last: anything else under /api/ is a JSON 404, not Django's HTML page.
    re_path(r"^.*$", views.api_not_found, name="api-not-found"),
]
