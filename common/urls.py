"""URLs of the common app: the landing page and favicon, health, signed local-storage downloads, the REST API."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from common import health, views
from common.storage import views as storage_views

app_name = "common"

urlpatterns: list[URLPattern | URLResolver] = [
    # "/" is where the admin's "View site" link leads; browsers ask for /favicon.ico on every site.
    path("", views.landing, name="landing"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    path("storage/<str:bucket>/<path:path>", storage_views.signed_download, name="storage-signed-download"),
    # The REST API (common.api): jobs, costs, the OpenAPI schema; JSON 404 for any other /api/ path.
    path("api/", include("common.api.urls")),
]
