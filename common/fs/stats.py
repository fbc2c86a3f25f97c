"""What the removals under a managed root report: dataclasses that also read like the seeds' dicts."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, TypeVar

from common.errors import ResourceError
from common.log import get_logger

__all__ = ["CacheEvictionStats", "CleanupStats", "FailureReport", "SkipReason", "refuse"]

# Why a cleanup's ``skip`` callback keeps a path (counted apart in the statistics).
SkipReason = Literal["in_use", "live_job"]

logger = get_logger("common.fs")  # the package's name, as before the split


class FailureReport(Mapping[str, Any]):
    """Mixin for statistics dataclasses with a ``failures`` list.

    Adds the ``errors`` count, ``to_dict()``, and a read-only mapping view
    (``stats["files_removed"]``, ``dict(stats)``) for callers written against
    the seeds' dict results; a list read through the view is a copy.
    """

    failures: list[dict[str, str]]
    refused: str

    @property
    def errors(self) -> int:
        """Number of entries that could not be examined or removed (a refusal counts as one)."""
        return len(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (``errors`` is the count, ``failures`` the details)."""
        data = asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses
        data["errors"] = self.errors
        return data

    def _keys(self) -> list[str]:
        return [f.name for f in fields(self)] + ["errors"]  # type: ignore[arg-type]  # a dataclass

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        value = getattr(self, key)
        return copy.deepcopy(value) if isinstance(value, (list, dict)) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


@dataclass
class CleanupStats(FailureReport):
    """What a cleanup removed (or, with ``dry_run``, would remove) and what it left alone.

    ``refused`` is empty, or says why the cleanup did not start (a symlinked
    root, ``jobs`` or ``users`` directory); the same text is in ``failures``.
    """

    files_removed: int = 0
    dirs_removed: int = 0
    bytes_freed: int = 0
    scanned: int = 0
    skipped_in_use: int = 0
    skipped_live_jobs: int = 0
    skipped_recent: int = 0
    dry_run: bool = False
    interrupted: bool = False
    root: str = ""
    max_age_hours: float | None = None
    refused: str = ""
    removed: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


@dataclass
class CacheEvictionStats(FailureReport):
    """What the cache-size cap evicted (or, with ``dry_run``, would evict)."""

    limit_bytes: int
    bytes_before: int = 0
    bytes_after: int = 0
    files_evicted: int = 0
    bytes_freed: int = 0
    dry_run: bool = False
    interrupted: bool = False
    root: str = ""
    refused: str = ""
    evicted: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


R = TypeVar("R", bound=FailureReport)


def refuse(stats: R, error: ResourceError, *, what: str) -> R:
    """Record a refused ``what`` in ``stats`` (``refused``, one failure), log it, and return ``stats``."""
    path = str(error.details.get("path", ""))
    stats.refused = error.message
    stats.failures.append({"path": path, "error": error.message})
    logger.warning(
        "%s refused: %s %s",
        what,
        path,
        error.details.get("reason", ""),
        extra={"event": "temp_cleanup_refused", "path": path, "reason": error.details.get("reason", "")},
    )
    return stats
