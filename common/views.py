"""The site's front door: the landing page at ``/`` and the favicon.

The admin's "View site" link points at ``/`` (``AdminSite.site_url``), and every browser asks for
``/favicon.ico``; both answer here instead of 404. Neither needs a signed-in user: the page only links
to the admin, the spend page, the API schema and the health endpoints, which guard themselves.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib import admin
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

__all__ = ["FAVICON", "favicon", "landing"]

# The app's own file, not a collected static file: /favicon.ico answers even where no static server runs.
FAVICON = Path(__file__).resolve().parent / "static" / "common" / "favicon.ico"


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    """The landing page: links to the admin, the spend page, the API schema and ``/health``, in the admin's look."""
    context = {
        **admin.site.each_context(request),
        "is_nav_sidebar_enabled": False,
        # The operator's spend page (issue 15 item 1) lives under the admin.
        "spend_url": reverse("admin:spend"),
    }
    return render(request, "common/landing.html", context)


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request: HttpRequest) -> FileResponse:
    """The site icon (a 32 and a 16 pixel image in one ``.ico``), cached for a day."""
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
