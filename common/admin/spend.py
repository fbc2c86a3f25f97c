"""The spend page (placeholder until the spend selectors land)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def spend_view(request: HttpRequest) -> HttpResponse:
    """Placeholder."""
    return HttpResponse("spend")
