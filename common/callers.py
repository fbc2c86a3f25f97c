"""Who is asking: a pipeline user (signed in with a Supabase access token) or a member of the staff.

The API authenticates callers (:mod:`common.api.authentication`) and the selectors decide what a
caller may read (:func:`common.selectors.job_list_visible`); both need these two definitions, so they
live here, below both, with no DRF or JWT dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar
from uuid import UUID

__all__ = ["SUPABASE_ROLE", "SupabaseUser", "is_staff_caller"]

SUPABASE_ROLE = "authenticated"  # the role (and token audience) of a signed-in Supabase user


@dataclass(frozen=True)
class SupabaseUser:
    """A caller authenticated by a Supabase access token; ``id`` is the token's ``sub``."""

    id: UUID
    email: str | None = None
    role: str = SUPABASE_ROLE
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False
    is_active: ClassVar[bool] = True
    is_staff: ClassVar[bool] = False
    is_superuser: ClassVar[bool] = False

    @property
    def pk(self) -> UUID:
        """The user id (DRF's throttles and Django's idioms use ``pk``)."""
        return self.id

    def get_username(self) -> str:
        """The user id as text (Django's user protocol)."""
        return str(self.id)

    def __str__(self) -> str:
        return f"supabase:{self.id}"


def is_staff_caller(user: Any) -> bool:
    """True for an authenticated, active Django staff user (admin session); they see every job."""
    return bool(
        user is not None
        and not isinstance(user, SupabaseUser)
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
    )
