"""The pipeline's shared tables: ``jobs``, ``job_stages`` and ``job_costs``.

Invariants live in the database (check and unique constraints) so they hold
for every writer, not only this app. Money is ``Decimal`` with six places, so
real unit prices (0.0055 per image, fractions of a cent per 1k tokens) are
exact (the digits and every money rule live in :mod:`common.money`). ``JobCost``
is an append-only ledger: its manager and ``save``/``delete`` refuse updates and deletes.
"""

from __future__ import annotations

import math
import uuid
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from common.errors import ValidationError
from common.money import MAX_MONEY, MONEY_DIGITS, MONEY_PLACES, QUANTITY_DIGITS, QUANTITY_PLACES, ZERO

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_MONEY",
    "HoldStatus",
    "Job",
    "JobCost",
    "JobCostHold",
    "JobStage",
    "JobStatus",
    "StageStatus",
    "clean_json",
    "clean_text",
    "default_budget_limit",
]

MAX_ATTEMPTS = 32767  # PositiveSmallIntegerField: smallint on PostgreSQL
JSON_MAX_DEPTH = 32
JSON_MAX_INT = 2**63 - 1  # what PostgreSQL's bigint and SQLite's integer hold; JSON readers beyond it differ


# --------------------------------------------------------------------------- values these tables accept
#
# PostgreSQL refuses NUL in text and NaN in JSON, and no database encodes a lone surrogate; SQLite
# accepts some of what PostgreSQL refuses. The services check their input with these two functions so
# that the same value is refused on both, by name, before anything is written.


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def clean_text(value: object, *, field: str, max_length: int | None = None, blank: bool = False) -> str:
    """Return ``value`` when it is a string a text column can store, else raise ``ValidationError`` naming ``field``.

    Refused: non-strings, empty or blank strings (unless ``blank``), NUL characters, lone
    surrogates (not UTF-8), and strings longer than ``max_length``.
    """
    if not isinstance(value, str) or not (blank or value.strip()):
        kind = "a string" if blank else "a non-empty string"
        raise ValidationError(f"{field} must be {kind}, got {_shown(value)}", details={"field": field})
    if max_length is not None and len(value) > max_length:
        raise ValidationError(
            f"{field} is longer than {max_length} characters: {_shown(value)}", details={"field": field}
        )
    if "\x00" in value:
        raise ValidationError(
            f"{field} must not contain NUL (\\x00) characters: {_shown(value)}", details={"field": field}
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{field} is not valid Unicode text (it holds a lone surrogate): {_shown(value)}",
            details={"field": field},
        ) from None
    return value


def clean_json(value: object, *, field: str) -> Any:
    """Return ``value`` when it is plain JSON a JSON column stores unchanged, else raise ``ValidationError``.

    Plain JSON: dicts with string keys, lists (or tuples), strings (see :func:`clean_text`),
    finite floats, integers within 64 bits, booleans and ``None``, nested at most
    ``JSON_MAX_DEPTH`` deep. ``Decimal``, ``set``, ``datetime``, bytes, NaN and
    infinities are refused (convert them first: money as a string). The message names
    the offending path, e.g. ``metadata['clips'][3]['cost']``.
    """
    _check_json(value, field, 0)
    return value


def _check_json(value: object, path: str, depth: int) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        clean_text(value, field=path, blank=True)
        return
    if isinstance(value, int):
        if abs(value) > JSON_MAX_INT:
            raise ValidationError(f"{path} is outside the 64-bit integer range", details={"field": path})
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{path} must be a finite number, got {value!r}", details={"field": path})
        return
    if depth >= JSON_MAX_DEPTH:
        raise ValidationError(f"{path} is nested more than {JSON_MAX_DEPTH} levels deep", details={"field": path})
    if isinstance(value, dict):
        base = path.split("[", 1)[0] if depth == 0 else path
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"{base} keys must be strings, got {_shown(key)}", details={"field": path})
            try:
                clean_text(key, field=f"{path} key", blank=True)
            except ValidationError:
                raise ValidationError(
                    f"{base} keys must be text without NUL or lone surrogates, got {_shown(key)}",
                    details={"field": path},
                ) from None
            _check_json(item, f"{path}[{key!r}]", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
        return
    raise ValidationError(
        f"{path} must be plain JSON (str, int, float, bool, None, list, dict), got {type(value).__name__}"
        f" {_shown(value)}; convert it first (money as a string)",
        details={"field": path},
    )


def default_budget_limit() -> Decimal:
    """The default job budget, read from the app settings at creation time."""
    from common.conf import app_settings

    return Decimal(app_settings.DEFAULT_JOB_BUDGET)


class JobStatus(models.TextChoices):
    """Where a job is in its life."""

    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.PROCESSING)
FINISHED_JOB_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class StageStatus(models.TextChoices):
    """Where one stage of a job is."""

    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class Job(models.Model):
    """One music-video generation request and its progress, spend and outcome."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.UUIDField(db_index=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    audio_url = models.TextField()
    user_prompt = models.TextField()
    current_stage = models.CharField(max_length=64, blank=True, null=True)
    progress = models.PositiveSmallIntegerField(default=0)
    estimated_remaining = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds")
    total_cost = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=ZERO)
    budget_limit = models.DecimalField(
        max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=default_budget_limit
    )
    # Sum of the job's open cost holds (see JobCostHold), kept beside total_cost so one conditional
    # UPDATE of this row can check spent + reserved + charge <= budget under the row lock.
    reserved_cost = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=ZERO)
    video_url = models.TextField(blank=True, null=True)
    error_code = models.CharField(max_length=64, blank=True, null=True)
    error_message = models.TextField(blank=True, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "jobs"
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["status", "-created_at"], name="jobs_status_created_idx"),
            models.Index(fields=["user_id", "-created_at"], name="jobs_user_created_idx"),
            models.Index(fields=["-created_at"], name="jobs_created_idx"),
            # Recovery (selectors.jobs_stale): active jobs nothing has touched for a while.
            models.Index(
                fields=["status", "updated_at"],
                name="jobs_active_updated_idx",
                condition=Q(status__in=("queued", "processing")),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=100), name="jobs_progress_0_100"),
            models.CheckConstraint(condition=Q(total_cost__gte=0), name="jobs_total_cost_not_negative"),
            models.CheckConstraint(condition=Q(budget_limit__gte=0), name="jobs_budget_limit_not_negative"),
            models.CheckConstraint(condition=Q(reserved_cost__gte=0), name="jobs_reserved_cost_not_negative"),
            models.CheckConstraint(
                condition=Q(estimated_remaining__isnull=True) | Q(estimated_remaining__gte=0),
                name="jobs_estimated_remaining_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True) | Q(completed_at__gte=F("created_at")),
                name="jobs_completed_after_created",
            ),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="jobs_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Job {self.id} ({self.status})"

    @property
    def budget_used_share(self) -> Decimal | None:
        """Share of the budget spent (0..1+), or ``None`` for a zero budget."""
        if not self.budget_limit:
            return None
        return self.total_cost / self.budget_limit

    @property
    def is_active(self) -> bool:
        """True while the job is queued or processing."""
        return self.status in ACTIVE_JOB_STATUSES


class JobStage(models.Model):
    """One stage of one job (audio analysis, clip generation, ...): timing, cost, attempts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="stages")
    stage_name = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=StageStatus.choices, default=StageStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, default=ZERO)
    metadata = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times the stage was started")
    # The lease (common.services.leases): which worker runs the stage and until when, renewed by its
    # heartbeat. Kept after the stage ends (who ran it; the last renewal covers the gap to the next stage).
    lease_owner = models.CharField(max_length=128, blank=True, null=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "job_stages"
        ordering = ("job_id", "started_at")  # job_id, not job: "job" would JOIN jobs to apply its ordering
        indexes = [
            models.Index(fields=["stage_name", "status", "completed_at"], name="job_stages_name_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["job", "stage_name"], name="job_stages_one_per_job_stage"),
            models.CheckConstraint(condition=Q(cost__gte=0), name="job_stages_cost_not_negative"),
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True)
                | Q(started_at__isnull=True)
                | Q(completed_at__gte=F("started_at")),
                name="job_stages_completed_after_started",
            ),
            models.CheckConstraint(condition=Q(status__in=StageStatus.values), name="job_stages_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.stage_name} of job {self.job_id} ({self.status})"


class AppendOnlyQuerySet(models.QuerySet["JobCost"]):
    """A queryset that refuses bulk updates and deletes: the ledger is append-only."""

    def update(self, **kwargs: Any) -> int:
        """Refuse: ledger rows are never changed."""
        raise TypeError("job_costs is an append-only ledger; rows cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        """Refuse: ledger rows are never deleted."""
        raise TypeError("job_costs is an append-only ledger; rows cannot be deleted")


class JobCost(models.Model):
    """One paid API call recorded against a job: an append-only ledger row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="costs")
    stage_name = models.CharField(max_length=64)
    api_name = models.CharField(max_length=64)
    cost = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    timestamp = models.DateTimeField(auto_now_add=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    quantity = models.DecimalField(max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_PLACES, null=True, blank=True)
    unit = models.CharField(max_length=32, null=True, blank=True)
    unit_price = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        db_table = "job_costs"
        ordering = ("timestamp",)
        indexes = [
            models.Index(fields=["job", "timestamp"], name="job_costs_job_time_idx"),
            models.Index(fields=["stage_name", "api_name"], name="job_costs_stage_api_idx"),
            models.Index(fields=["timestamp"], name="job_costs_time_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="job_costs_unique_idempotency_key",
            ),
            models.CheckConstraint(condition=Q(cost__gte=0), name="job_costs_cost_not_negative"),
            models.CheckConstraint(
                condition=Q(quantity__isnull=True) | Q(quantity__gte=0), name="job_costs_quantity_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__isnull=True) | Q(unit_price__gte=0),
                name="job_costs_unit_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.api_name} {self.cost} for job {self.job_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert a new row; refuse to update an existing one."""
        if not self._state.adding:
            raise TypeError("job_costs is an append-only ledger; rows cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Refuse: ledger rows are never deleted."""
        raise TypeError("job_costs is an append-only ledger; rows cannot be deleted")


class HoldStatus(models.TextChoices):
    """Where a cost hold (reservation) is in its life."""

    ACTIVE = "active", "Active"
    SETTLED = "settled", "Settled"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class JobCostHold(models.Model):
    """Budget held for an expensive call before it is made; settled with the actual cost or released.

    Open holds count against the budget (their sum is ``Job.reserved_cost``) until they are older
    than ``RESERVATION_TTL_SECONDS``, so a crashed worker cannot block a job forever. A hold's
    term runs from ``created_at``: keeping a hold alive (``costs.renew_hold``) moves it to now, so
    every reader of expiry (the lazy expiry, sweeps, reports) needs no other column.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="cost_holds")
    stage_name = models.CharField(max_length=64)
    api_name = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    settled_cost = models.ForeignKey(
        JobCost, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_column="job_cost_id"
    )

    class Meta:
        db_table = "job_cost_holds"
        ordering = ("created_at",)
        indexes = [
            models.Index(
                fields=["job", "created_at"],
                name="job_cost_holds_active_idx",
                condition=Q(status="active"),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="job_cost_holds_amount_not_negative"),
            models.CheckConstraint(condition=Q(status__in=HoldStatus.values), name="job_cost_holds_status_valid"),
        ]

    def __str__(self) -> str:
        return f"hold {self.amount} for {self.api_name} of job {self.job_id} ({self.status})"
