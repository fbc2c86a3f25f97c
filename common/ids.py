"""Job and user ids, parsed one way everywhere.

An id is a :class:`uuid.UUID`, or its canonical text: 32 hex digits in groups of 8-4-4-4-12
separated by hyphens, in any case. ``uuid.UUID()`` alone would also read braces, a
``urn:uuid:`` prefix, no hyphens or hyphens anywhere, so two different strings would name
one job; the API, the token check and every service refuse those. (Temp-directory names take
any safe name, see :mod:`common.tempfiles`; only a canonical id there is recognised as a live
job's workspace by the age-based cleanup.)

* :func:`parse_job_id` / :func:`parse_user_id` raise ``ValidationError`` (codes
  ``INVALID_JOB_ID`` / ``INVALID_USER_ID``) for anything else: for services and selectors,
  where a malformed id is the caller's mistake.
* :func:`canonical_uuid` applies the same rule and returns ``None`` instead of raising: for
  text from outside where "not an id" is an ordinary answer (an API path segment answers 404,
  a token's ``sub`` is refused, a directory that is not a job's is not a live job's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from common.errors import ValidationError

__all__ = [
    "INVALID_JOB_ID",
    "INVALID_USER_ID",
    "argument_list",
    "canonical_uuid",
    "parse_job_id",
    "parse_job_ids",
    "parse_user_id",
]

INVALID_JOB_ID = "INVALID_JOB_ID"
INVALID_USER_ID = "INVALID_USER_ID"

_CANONICAL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def canonical_uuid(value: object) -> UUID | None:
    """``value`` as a UUID when it is one or its canonical hyphenated text (any case); else ``None``."""
    if isinstance(value, UUID):
        return value
    return UUID(value) if isinstance(value, str) and _CANONICAL.fullmatch(value) else None


def _parse(value: object, what: str, code: str) -> UUID:
    parsed = canonical_uuid(value)
    if parsed is None:
        text = repr(value)
        shown = text if len(text) <= 60 else f"{text[:57]}..."
        raise ValidationError(
            f"{shown} is not a valid {what} (expected a UUID: 8-4-4-4-12 hex digits)",
            code=code,
        )
    return parsed


def parse_job_id(job_id: object) -> UUID:
    """Return ``job_id`` as a UUID.

    Raises:
        ValidationError: (code ``INVALID_JOB_ID``) when it is neither a UUID nor its canonical text.
    """
    return _parse(job_id, "job id", INVALID_JOB_ID)


def parse_user_id(user_id: object) -> UUID:
    """Return ``user_id`` as a UUID.

    Raises:
        ValidationError: (code ``INVALID_USER_ID``) when it is neither a UUID nor its canonical text.
    """
    return _parse(user_id, "user id", INVALID_USER_ID)


def argument_list(values: object, *, field: str, what: str) -> list[Any]:
    """``values`` (a list, tuple, set or any other iterable, but not one string) read once into a list.

    Raises:
        ValidationError: naming ``field`` (``"statuses must be a list of job statuses, got str"``).
    """
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValidationError(
            f"{field} must be a list of {what}, got {type(values).__name__}", details={"field": field}
        )
    return list(values)


def parse_job_ids(job_ids: object, *, field: str = "job_ids") -> list[UUID]:
    """Return each of ``job_ids`` as a UUID (see :func:`parse_job_id`); a single string is refused, not split."""
    return [parse_job_id(job_id) for job_id in argument_list(job_ids, field=field, what="job ids")]
