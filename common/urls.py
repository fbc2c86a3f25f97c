"""URLs of the common app: health endpoints, signed local-storage downloads and the REST API."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from common import health
from common.storage import views as storage_views

app_name = "common"

urlpatterns: list[URLPattern | URLResolver] = [
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    path("storage/<str:bucket>/<path:path>", storage_views.signed_download, name="storage-signed-download"),
    # The REST API (common.api): jobs, costs, the OpenAPI schema; JSON 404 for any other /api/ path.
    path("api/", include("common.api.urls")),
]
