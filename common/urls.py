"""URLs of the common app: health endpoints, signed local-storage downloads and the REST API."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

app_name = "common"

urlpatterns: list[URLPattern | URLResolver] = []
