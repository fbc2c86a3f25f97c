"""Who may read the API: Supabase users (their own jobs) and active Django staff (every job)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from common.callers import SupabaseUser, is_staff_caller  # is_staff_caller: re-exported

__all__ = ["IsJobReader", "is_staff_caller"]


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
