"""The pipeline's exception hierarchy.

Every error that leaves ``common`` is a :class:`PipelineError` subclass with a
stable ``code``, the ``job_id`` when it is known, a message that says what to
do, and optional ``details`` for logs and APIs. Subclasses override only the
class attributes (the Django REST framework habit), never ``__init__``, except
where they carry one extra field.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

__all__ = [
    "AudioAnalysisError",
    "BudgetExceededError",
    "CompositionError",
    "ConfigError",
    "GenerationError",
    "LeaseLostError",
    "PipelineError",
    "ResourceError",
    "RetryableError",
    "ServiceUnavailableError",
    "StorageError",
    "ValidationError",
    "WorkerLostError",
    "get_user_friendly_message",
]


class PipelineError(Exception):
    """Base class of every error raised by the pipeline."""

    default_code: str = "PIPELINE_ERROR"
    default_message: str = "The pipeline failed."
    retryable: bool = False

    def __init__(
        self,
        message: str | None = None,
        job_id: UUID | str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.job_id = job_id
        self.code = code or self.default_code
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, job_id={self.job_id!r})"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict: ``code``, ``message``, ``details``, ``job_id``."""
        return {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "job_id": str(self.job_id) if self.job_id is not None else None,
        }


class ConfigError(PipelineError):
    """Configuration is missing or invalid."""

    default_code = "CONFIG_ERROR"
    default_message = "The service is misconfigured."

    def __init__(
        self,
        message: str | None = None,
        job_id: UUID | str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        problems: list[str] | None = None,
    ) -> None:
        self.problems: list[str] = list(problems or [])
        if message is None and self.problems:
            message = "Invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems)
        if self.problems:
            details = {**(details or {}), "problems": self.problems}
        super().__init__(message, job_id=job_id, code=code, details=details)


class AudioAnalysisError(PipelineError):
    """Audio analysis failed."""

    default_code = "AUDIO_ANALYSIS_FAILED"
    default_message = "The audio could not be analysed."


class GenerationError(PipelineError):
    """AI generation (images, video, text) failed."""

    default_code = "GENERATION_FAILED"
    default_message = "Content generation failed."


class CompositionError(PipelineError):
    """Composing the final video failed."""

    default_code = "COMPOSITION_FAILED"
    default_message = "The final video could not be composed."


class BudgetExceededError(PipelineError):
    """A charge would take a job over its budget."""

    default_code = "BUDGET_EXCEEDED"
    default_message = "The job's budget is exhausted."


class RetryableError(PipelineError):
    """A transient failure that may succeed when retried."""

    default_code = "RETRYABLE_ERROR"
    default_message = "A temporary error occurred; the operation may be retried."
    retryable = True

    def __init__(
        self,
        message: str | None = None,
        job_id: UUID | str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must not be negative")
        self.retry_after = retry_after
        super().__init__(message, job_id=job_id, code=code, details=details)

    def to_dict(self) -> dict[str, Any]:
        """Return the base dict plus ``retry_after`` when set."""
        data = super().to_dict()
        if self.retry_after is not None:
            data["details"] = {**data["details"], "retry_after": self.retry_after}
        return data


class ValidationError(PipelineError):
    """Input failed validation."""

    default_code = "VALIDATION_ERROR"
    default_message = "The input is invalid."


class ResourceError(PipelineError):
    """A local resource (memory, disk) is exhausted."""

    default_code = "RESOURCE_EXHAUSTED"
    default_message = "Not enough local resources to continue."


class ServiceUnavailableError(RetryableError):
    """An external service (database, cache, storage, API) is unreachable."""

    default_code = "SERVICE_UNAVAILABLE"
    default_message = "A required service is temporarily unavailable."


class StorageError(PipelineError):
    """A storage operation failed."""

    default_code = "STORAGE_ERROR"
    default_message = "A file storage operation failed."


class LeaseLostError(PipelineError):
    """The worker no longer holds the stage's lease (taken over or recovered): it must stop working on it."""

    default_code = "LEASE_LOST"
    default_message = "Another worker has taken over this stage; stop working on it."


class WorkerLostError(PipelineError):
    """The worker running the job stopped renewing its lease (it died or lost the database)."""

    default_code = "WORKER_LOST"
    default_message = "The worker running the job stopped unexpectedly."


# Messages a UI can show. Keys are codes; the fallback is by class, then generic.
_MESSAGES_BY_CODE: dict[str, str] = {
    "CONFIG_ERROR": "The service is not configured correctly. Please contact support.",
    "AUDIO_ANALYSIS_FAILED": "We couldn't analyse your song. Please try another audio file.",
    "GENERATION_FAILED": "We couldn't generate part of your video. Please try again.",
    "COMPOSITION_FAILED": "We couldn't put your video together. Please try again.",
    "BUDGET_EXCEEDED": "This video reached its spending limit before it could be finished.",
    "RETRYABLE_ERROR": "Something went wrong temporarily. Please try again in a moment.",
    "VALIDATION_ERROR": "Some of the information you provided is not valid. Please check it and try again.",
    "RESOURCE_EXHAUSTED": "Our servers are busy right now. Please try again later.",
    "UNSAFE_PATH": "A temporary workspace on our servers is in an unexpected state. Please try again later.",
    "SERVICE_UNAVAILABLE": "A service we depend on is unavailable. Please try again in a few minutes.",
    "STORAGE_ERROR": "We couldn't store or read one of your files. Please try again.",
    "NOT_FOUND": "The file or item you asked for doesn't exist.",
    "PERMISSION_DENIED": "You don't have access to this item.",
    "ALREADY_EXISTS": "A file with that name already exists.",
    "BUCKET_NOT_FOUND": "The file storage is not set up correctly. Please contact support.",
    "BUCKET_NOT_PRIVATE": "The file storage is not set up correctly. Please contact support.",
    "STORAGE_KEY_NOT_SERVICE_ROLE": "The file storage is not set up correctly. Please contact support.",
    "INVALID_AUDIO": "The audio file is not a supported MP3, WAV or FLAC file.",
    "FILE_TOO_LARGE": "The file is too large.",
    "INVALID_PROMPT": "The prompt is not valid. Please check its length and content.",
    "EMPTY_FILE": "The file you uploaded is empty.",
    "UNREADABLE_FILE": "We couldn't read the file you uploaded. Please try uploading it again.",
    "INVALID_FILE_SIZE": "The file size is not valid.",
    "PIPELINE_ERROR": "Something went wrong while making your video.",
    "WORKER_LOST": "The server making your video stopped unexpectedly. Please try again.",
    "LEASE_LOST": "Something went wrong while making your video.",
}
_FALLBACK_MESSAGE = "Something went wrong. Please try again later."


def get_user_friendly_message(code: str | None, kind: type[PipelineError] | str | None = None) -> str:
    """Return a message safe to show an end user for an error code.

    Args:
        code: the error's ``code`` (for example ``"BUDGET_EXCEEDED"``).
        kind: optionally the error class (or its name) to fall back on when the
            code is unknown.
    """
    if code and code in _MESSAGES_BY_CODE:
        return _MESSAGES_BY_CODE[code]
    if kind is not None:
        cls = kind if isinstance(kind, type) else _CLASSES_BY_NAME.get(kind)
        if cls is not None:
            for klass in cls.__mro__:
                default = getattr(klass, "default_code", None)
                if default in _MESSAGES_BY_CODE:
                    return _MESSAGES_BY_CODE[default]
    return _FALLBACK_MESSAGE


_CLASSES_BY_NAME: dict[str, type[PipelineError]] = {
    cls.__name__: cls
    for cls in (
        PipelineError,
        ConfigError,
        AudioAnalysisError,
        GenerationError,
        CompositionError,
        BudgetExceededError,
        RetryableError,
        ValidationError,
        ResourceError,
        ServiceUnavailableError,
        StorageError,
        LeaseLostError,
        WorkerLostError,
    )
}
