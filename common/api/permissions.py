"""Who may read the API: Supabase users (their own jobs) and active Django staff (every job)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from common.api.authentication import SupabaseUser

__all__ = ["IsJobReader", "is_staff_caller"]


def is_staff_caller(user: Any) -> bool:
    """True for an authenticated, active Django staff user (admin session); they see every job."""
    return bool(
        user is not None
        and not isinstance(user, SupabaseUser)
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
    )


class IsJobReader(BasePermission):
    """Allow Supabase users and Django staff; refuse other Django users (they own no job).

    Object access is not decided here: views scope their querysets by owner, so
    another user's job is simply not found (404, never 403).
    """

    message = "Only signed-in users and staff can read jobs."

    def has_permission(self, request: Request, view: Any) -> bool:
        """True when the caller is a Supabase user or an active staff user."""
        user = request.user
        return isinstance(user, SupabaseUser) or is_staff_caller(user)
