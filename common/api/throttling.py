"""A per-caller rate limit whose rate is read at call time and which fails open if the cache is down."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from common.api.authentication import SupabaseUser
from common.conf import app_settings
from common.log import get_logger

__all__ = ["CallerRateThrottle"]

logger = get_logger(__name__)


class CallerRateThrottle(SimpleRateThrottle):
    """Limit each caller to ``VIDEOGEN_COMMON["API_THROTTLE_RATE"]`` requests (e.g. ``"600/min"``).

    Callers are keyed by Supabase user id, or Django user pk for staff, or the
    client address otherwise. A cache outage lets requests through (logged): a
    rate limit must not take the whole API down with it.
    """

    scope = "api"

    def get_rate(self) -> str | None:
        """The rate from the app settings (``None`` switches throttling off)."""
        rate: str | None = app_settings.API_THROTTLE_RATE
        return rate

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        """One bucket per caller."""
        user = request.user
        if isinstance(user, SupabaseUser):
            ident = f"supabase-{user.id}"
        elif user is not None and user.is_authenticated:
            ident = f"django-{user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: Any) -> bool:
        """Count the request; let it through when the cache cannot be reached."""
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache backend's own errors (redis.ConnectionError...) vary by backend
            logger.warning("rate limit skipped: the cache is unavailable", exc_info=True)
            return True
