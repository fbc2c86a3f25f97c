"""Stage timings and the time estimate: per-stage median durations, exact or kept per process, and what a job needs.

:func:`stage_median_durations` and :func:`job_estimate_remaining` read the history every call (exact). The
lifecycle transitions (``stage_start``, ``stage_complete`` ...) refresh ``Job.estimated_remaining`` on every
call, so they read the medians through :func:`stage_medians_cached` instead: a per-process window of the last
``ESTIMATE_HISTORY_JOBS`` durations of each stage, loaded by one query and then kept incrementally.

How stale the cached medians may be, and how they are invalidated:

* A completion committed by this process is folded into its windows as soon as it commits
  (:func:`stage_median_record`, called by ``stage_complete`` through ``transaction.on_commit``): the next
  transition in this process sees it.
* Completions committed by other processes, and history written behind the services' back (an import, a
  deleted job), are seen when the window is reloaded: ``ESTIMATE_CACHE_SECONDS`` (30 s) after it was loaded.
  A window loaded while a completion of this process was committing skips that completion rather than
  risk counting it twice; the reload brings it in.
* Any change of ``VIDEOGEN_COMMON`` (``override_settings`` too) drops every window; so does
  :func:`stage_medians_forget`. ``ESTIMATE_CACHE_SECONDS = 0`` turns the cache off (a query every call).

The estimate is a figure for people (seconds left), so a median a few completions behind for half a minute
is well inside its own error; bench/jobs.py prints what the cache buys on the transitions.
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import statistics
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from django.core.signals import setting_changed
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from common.conf import app_settings
from common.db import boundary
from common.errors import ConfigError, ValidationError
from common.ids import argument_list, parse_job_id
from common.models import JobStage, StageStatus, clean_text

# The public reads; estimate_seconds, expected_from, stage_median_record and stage_medians_forget are the
# lifecycle's (common.services._lifecycle, stages) and the tests' helpers.
__all__ = [
    "job_estimate_remaining",
    "stage_median_duration",
    "stage_median_durations",
    "stage_medians_cached",
]

MAX_HISTORY = 10_000


def _recent_durations(stage_name: str, limit: int) -> QuerySet[JobStage, tuple[str, int | None]]:
    # Served by the (stage_name, status, completed_at) index: a backward index scan stopping at ``limit``.
    return (
        JobStage.objects.filter(stage_name=stage_name, status=StageStatus.COMPLETED, duration_seconds__isnull=False)
        .order_by("-completed_at")
        .values_list("stage_name", "duration_seconds")[:limit]
    )


def _recent(names: tuple[str, ...], limit: int) -> dict[str, list[int]]:
    """The last ``limit`` durations of each stage, newest first: one query on PostgreSQL, one per stage elsewhere."""
    durations: dict[str, list[int]] = {name: [] for name in names}
    if names and limit > 0:
        rows: Iterable[tuple[str, int | None]]
        if connection.features.supports_slicing_ordering_in_compound and len(names) > 1:
            parts = [_recent_durations(name, limit) for name in names]
            rows = parts[0].union(*parts[1:], all=True)
        else:
            rows = [row for name in names for row in _recent_durations(name, limit)]
        for name, seconds in rows:
            if seconds is not None:
                durations[name].append(seconds)
    return durations


def _names(stage_names: object) -> tuple[str, ...]:
    names = argument_list(stage_names, field="stage_names", what="stage names")
    return tuple(dict.fromkeys(clean_text(name, field="stage_name", max_length=64) for name in names))


@boundary
def stage_median_durations(*, stage_names: Iterable[str], history: int | None = None) -> dict[str, float | None]:
    """Median duration (seconds) of the last ``history`` completed runs of each stage (``None``: no runs).

    One query on PostgreSQL (a ``UNION ALL`` of per-stage index scans), one per stage on SQLite; every call
    reads the history (the transitions use :func:`stage_medians_cached`). ``history`` defaults to the
    ``ESTIMATE_HISTORY_JOBS`` app setting.

    Raises:
        ValidationError: a stage name that is not text a column can hold, or ``history`` that is
            not a whole number from 0 to ``MAX_HISTORY``.
    """
    names = _names(stage_names)
    limit = app_settings.ESTIMATE_HISTORY_JOBS if history is None else _history(history)
    return {
        name: float(statistics.median(values)) if values else None for name, values in _recent(names, limit).items()
    }


def _history(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_HISTORY:
        raise ValidationError(f"history must be a whole number from 0 to {MAX_HISTORY}, got {value!r}")
    return value


@boundary
def stage_median_duration(*, stage_name: str, history: int | None = None) -> float | None:
    """Median duration (seconds) of the last ``history`` completed runs of ``stage_name``, or ``None``."""
    clean_text(stage_name, field="stage_name", max_length=64)
    return stage_median_durations(stage_names=[stage_name], history=history)[stage_name]


def estimate_seconds(stages: Mapping[str, Any], expected: Mapping[str, float], now: dt.datetime) -> int:
    """Seconds left: ``expected[name]`` for each pipeline stage not completed, less what a running one has used.

    ``stages`` maps stage names to rows with ``status`` and ``started_at`` (missing: not started);
    ``expected`` maps every name of ``PIPELINE_STAGES`` to its median (or default) seconds. A running
    stage never counts below zero. The PostgreSQL transitions compute the same sum in SQL
    (``common.services._pg_transitions``).
    """
    total = 0.0
    for name in app_settings.PIPELINE_STAGES:
        stage = stages.get(name)
        if stage is not None and stage.status == StageStatus.COMPLETED:
            continue
        seconds = expected[name]
        if stage is not None and stage.status == StageStatus.PROCESSING and stage.started_at is not None:
            seconds = max(seconds - (now - stage.started_at).total_seconds(), 0.0)
        total += seconds
    return round(total)


def expected_from(medians: Mapping[str, float | None]) -> dict[str, float]:
    """Each pipeline stage's expected seconds: its median, or ``DEFAULT_STAGE_SECONDS`` without history."""
    default = float(app_settings.DEFAULT_STAGE_SECONDS)
    return {name: default if medians.get(name) is None else float(medians[name] or 0) for name in medians}


@boundary
def job_estimate_remaining(*, job_id: UUID | str, stages: Iterable[JobStage] | None = None) -> int:
    """Seconds the job still needs: for each stage not yet completed, its median recent duration.

    A stage that is running counts only for what is left of its median (never below zero);
    a stage with no history counts ``DEFAULT_STAGE_SECONDS``. ``stages`` (the job's ``JobStage``
    rows, when the caller has them) saves a query. The medians are read exactly (a query).

    Raises:
        ValidationError: a malformed job id, or ``stages`` that are not ``JobStage`` rows.
    """
    pk = parse_job_id(job_id)
    if stages is not None:
        given = list(stages) if isinstance(stages, Iterable) and not isinstance(stages, str | bytes) else None
        if given is None or not all(isinstance(stage, JobStage) for stage in given):
            raise ValidationError("stages must be the job's JobStage rows (or None to read them)")
        stages = given
    rows = {s.stage_name: s for s in (stages if stages is not None else JobStage.objects.filter(job_id=pk))}
    remaining = [
        name for name in app_settings.PIPELINE_STAGES if name not in rows or rows[name].status != StageStatus.COMPLETED
    ]
    expected = dict.fromkeys(app_settings.PIPELINE_STAGES, 0.0)
    expected.update(expected_from(stage_median_durations(stage_names=remaining)))
    return estimate_seconds(rows, expected, timezone.now())


# --------------------------------------------------------------------------- the per-process medians


class _Window:
    """The last ``size`` durations of one stage, oldest first, with a sorted copy for the median."""

    def __init__(self, newest_first: list[int], size: int, loaded_at: float) -> None:
        self.recent = collections.deque(reversed(newest_first), maxlen=size)
        self.ordered = sorted(self.recent)
        self.loaded_at = loaded_at

    def add(self, seconds: int) -> None:
        if self.recent.maxlen == 0:
            return
        if len(self.recent) == self.recent.maxlen:
            self.ordered.pop(bisect.bisect_left(self.ordered, self.recent[0]))
        self.recent.append(seconds)
        bisect.insort(self.ordered, seconds)

    def median(self) -> float | None:
        values, n = self.ordered, len(self.ordered)
        if not n:
            return None
        middle = n // 2
        return float(values[middle]) if n % 2 else (values[middle - 1] + values[middle]) / 2


_WINDOWS: dict[tuple[str, int], _Window] = {}  # (stage name, history) -> window
_LOCK = threading.Lock()


def _ttl() -> float:
    value = app_settings.ESTIMATE_CACHE_SECONDS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ConfigError(
            f"VIDEOGEN_COMMON['ESTIMATE_CACHE_SECONDS'] must be a number of seconds (0: no cache), got {value!r}"
        )
    return float(value)


@boundary
def stage_medians_cached(*, stage_names: Iterable[str]) -> dict[str, float | None]:
    """:func:`stage_median_durations` of the last ``ESTIMATE_HISTORY_JOBS`` runs, from this process's windows.

    Windows older than ``ESTIMATE_CACHE_SECONDS`` (or missing) are loaded first, all in one query; see
    the module's docstring for how stale the others may be.

    Raises:
        ValidationError: a stage name that is not text a column can hold.
        ConfigError: ``ESTIMATE_HISTORY_JOBS`` or ``ESTIMATE_CACHE_SECONDS`` is not a valid number.
    """
    names = _names(stage_names)
    history = app_settings.ESTIMATE_HISTORY_JOBS
    if isinstance(history, bool) or not isinstance(history, int) or not 0 <= history <= MAX_HISTORY:
        raise ConfigError(f"VIDEOGEN_COMMON['ESTIMATE_HISTORY_JOBS'] must be 0 to {MAX_HISTORY}, got {history!r}")
    ttl, now = _ttl(), time.monotonic()
    with _LOCK:
        windows = {name: _WINDOWS.get((name, history)) for name in names}
        medians = {name: window.median() for name, window in windows.items() if window and now - window.loaded_at < ttl}
    missing = tuple(name for name in names if name not in medians)
    if missing:
        loaded = _recent(missing, history)
        with _LOCK:
            for name, newest_first in loaded.items():
                window = _Window(newest_first, history, now)
                if ttl > 0:
                    _WINDOWS[name, history] = window
                medians[name] = window.median()
    return {name: medians[name] for name in names}


def stage_median_record(*, stage_name: str, seconds: int | None, since: float) -> None:
    """Fold a completion of this process into its windows (``stage_complete`` calls this once it commits).

    ``since`` is ``time.monotonic()`` taken before the completion's transaction began: a window loaded after
    that may already hold the completion, so it is left to its next reload instead of counting it twice.
    """
    if seconds is None:
        return
    with _LOCK:
        for (name, _history_size), window in _WINDOWS.items():
            if name == stage_name and window.loaded_at < since:
                window.add(seconds)


def stage_medians_forget() -> None:
    """Drop every window of this process (the next transition reads the history again)."""
    with _LOCK:
        _WINDOWS.clear()


def _forget_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "VIDEOGEN_COMMON":
        stage_medians_forget()


setting_changed.connect(_forget_on_settings_change, dispatch_uid="common.selectors.estimates")
