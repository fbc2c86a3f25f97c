"""Tests for common.errors: the hierarchy, codes, retryable flags, to_dict and user-friendly messages."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from uuid import UUID

import pytest

import common
from common import errors
from common.errors import (
    AudioAnalysisError,
    BudgetExceededError,
    CompositionError,
    ConfigError,
    GenerationError,
    PipelineError,
    ResourceError,
    RetryableError,
    ServiceUnavailableError,
    StorageError,
    ValidationError,
    get_user_friendly_message,
)

JOB_ID = UUID("12345678-1234-5678-1234-567812345678")

# class -> (default code, retryable)
CLASSES: dict[type[PipelineError], tuple[str, bool]] = {
    PipelineError: ("PIPELINE_ERROR", False),
    ConfigError: ("CONFIG_ERROR", False),
    AudioAnalysisError: ("AUDIO_ANALYSIS_FAILED", False),
    GenerationError: ("GENERATION_FAILED", False),
    CompositionError: ("COMPOSITION_FAILED", False),
    BudgetExceededError: ("BUDGET_EXCEEDED", False),
    RetryableError: ("RETRYABLE_ERROR", True),
    ValidationError: ("VALIDATION_ERROR", False),
    ResourceError: ("RESOURCE_EXHAUSTED", False),
    ServiceUnavailableError: ("SERVICE_UNAVAILABLE", True),
    StorageError: ("STORAGE_ERROR", False),
}
IDS = [cls.__name__ for cls in CLASSES]


def readme_error_table() -> dict[str, tuple[str, str]]:
    """The README's error table: class name -> (default code, retryable cell)."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    header = "| Class | Default code | Retryable |"
    assert text.count(header) == 1
    rows = {}
    for line in text.split(header, 1)[1].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, code, retryable = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows[name.split("`")[1]] = (code.strip("`"), retryable)
    return rows


def test_the_readme_lists_every_error_with_its_code_and_retryable_flag() -> None:
    exported = {
        name: cls
        for name in errors.__all__
        if isinstance(cls := getattr(errors, name), type) and issubclass(cls, PipelineError)
    }
    assert set(CLASSES) <= set(exported.values())
    assert readme_error_table() == {
        name: (cls.default_code, "yes" if cls.retryable else "no") for name, cls in exported.items()
    }
    assert all(cls.__doc__ for cls in exported.values())  # one-line docstrings


@pytest.mark.parametrize(("cls", "expected"), CLASSES.items(), ids=IDS)
def test_default_code_message_and_retryable(cls: type[PipelineError], expected: tuple[str, bool]) -> None:
    code, retryable = expected
    error = cls()
    assert error.code == cls.default_code == code
    assert error.retryable is retryable
    assert error.message == cls.default_message
    assert str(error) == cls.default_message
    assert error.job_id is None
    assert error.details == {}


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_fields_and_to_dict(cls: type[PipelineError]) -> None:
    error = cls("Clip 3 failed; try again", job_id=JOB_ID, code="GEN_FAILED", details={"clip": 3})
    assert error.message == "Clip 3 failed; try again"
    assert error.job_id == JOB_ID
    assert error.code == "GEN_FAILED"
    assert error.details == {"clip": 3}
    data = error.to_dict()
    assert data == {
        "code": "GEN_FAILED",
        "message": "Clip 3 failed; try again",
        "details": {"clip": 3},
        "job_id": "12345678-1234-5678-1234-567812345678",
    }
    json.dumps(data)  # JSON-friendly
    assert repr(error) == (f"{cls.__name__}(code='GEN_FAILED', message='Clip 3 failed; try again', job_id={JOB_ID!r})")


def test_job_id_may_be_a_string_and_details_are_copied() -> None:
    details = {"a": 1}
    error = GenerationError("x", job_id="job-1", details=details)
    details["a"] = 2
    assert error.details == {"a": 1}
    assert error.to_dict()["job_id"] == "job-1"
    assert error.args == ("x",)


def test_positional_arguments_match_the_seed_api() -> None:
    error = GenerationError("Failed to generate video", JOB_ID, "GEN_FAILED")
    assert (error.job_id, error.code) == (JOB_ID, "GEN_FAILED")


def test_retry_after() -> None:
    error = RetryableError("rate limited", retry_after=12.5)
    assert error.retry_after == 12.5
    assert error.to_dict()["details"] == {"retry_after": 12.5}
    plain = ServiceUnavailableError("down", details={"service": "redis"})
    assert plain.retry_after is None
    assert plain.to_dict()["details"] == {"service": "redis"}
    with_both = ServiceUnavailableError("down", details={"service": "redis"}, retry_after=3)
    assert with_both.to_dict()["details"] == {"service": "redis", "retry_after": 3}
    assert with_both.details == {"service": "redis"}  # to_dict does not change the error
    with pytest.raises(ValueError, match="retry_after must not be negative"):
        RetryableError("x", retry_after=-1)


def test_config_error_lists_problems() -> None:
    error = ConfigError(problems=["REDIS_URL: has scheme 'http'", "JWT_SECRET_KEY: too short"])
    assert error.message == "Invalid configuration:\n  - REDIS_URL: has scheme 'http'\n  - JWT_SECRET_KEY: too short"
    assert error.details == {"problems": ["REDIS_URL: has scheme 'http'", "JWT_SECRET_KEY: too short"]}
    custom = ConfigError("Broken", details={"x": 1}, problems=["A: b"])
    assert custom.message == "Broken"
    assert custom.details == {"x": 1, "problems": ["A: b"]}
    assert ConfigError().problems == []
    assert ConfigError().details == {}


def test_errors_survive_pickling_for_process_pools() -> None:
    error = pickle.loads(pickle.dumps(GenerationError("x", job_id="j", code="C")))
    assert isinstance(error, GenerationError)
    assert error.message == "x"


# --------------------------------------------------------------------------- user-friendly messages


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_every_class_code_has_its_own_friendly_message(cls: type[PipelineError]) -> None:
    message = get_user_friendly_message(cls.default_code)
    assert message != errors._FALLBACK_MESSAGE
    assert message.endswith(".")
    assert "Traceback" not in message


def test_each_class_has_a_distinct_message() -> None:
    messages = [get_user_friendly_message(cls.default_code) for cls in CLASSES]
    assert len(set(messages)) == len(messages)


@pytest.mark.parametrize(
    "code",
    [
        "NOT_FOUND",
        "PERMISSION_DENIED",
        "ALREADY_EXISTS",
        "INVALID_AUDIO",
        "FILE_TOO_LARGE",
        "INVALID_PROMPT",
        "EMPTY_FILE",
        "UNREADABLE_FILE",
        "INVALID_FILE_SIZE",
    ],
)
def test_specific_codes(code: str) -> None:
    assert get_user_friendly_message(code) != errors._FALLBACK_MESSAGE


def test_specific_values() -> None:
    assert get_user_friendly_message("BUDGET_EXCEEDED") == (
        "This video reached its spending limit before it could be finished."
    )
    assert get_user_friendly_message("INVALID_AUDIO") == "The audio file is not a supported MP3, WAV or FLAC file."


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_unknown_code_falls_back_to_the_class(cls: type[PipelineError]) -> None:
    expected = get_user_friendly_message(cls.default_code)
    assert get_user_friendly_message("GEN_FAILED_ON_CLIP_7", cls) == expected
    assert get_user_friendly_message("GEN_FAILED_ON_CLIP_7", cls.__name__) == expected
    assert get_user_friendly_message(None, cls) == expected


def test_subclass_outside_the_catalogue_falls_back_to_its_parent() -> None:
    class ClipTimeout(ServiceUnavailableError):
        default_code = "CLIP_TIMEOUT"

    assert get_user_friendly_message("CLIP_TIMEOUT", ClipTimeout) == get_user_friendly_message("SERVICE_UNAVAILABLE")


def test_known_code_wins_over_kind() -> None:
    assert get_user_friendly_message("BUDGET_EXCEEDED", StorageError) == get_user_friendly_message("BUDGET_EXCEEDED")


@pytest.mark.parametrize(
    ("code", "kind"),
    [("NO_SUCH_CODE", None), (None, None), ("", None), ("NO_SUCH_CODE", "NoSuchError"), (None, ValueError)],
)
def test_safe_fallback(code: str | None, kind: object) -> None:
    assert get_user_friendly_message(code, kind) == "Something went wrong. Please try again later."  # type: ignore[arg-type]


def test_short_imports() -> None:
    assert common.PipelineError is PipelineError
    assert common.get_user_friendly_message is get_user_friendly_message
    assert common.ServiceUnavailableError is ServiceUnavailableError
    with pytest.raises(AttributeError, match="module 'common' has no attribute 'Nope'"):
        common.Nope  # noqa: B018
    assert "PipelineError" in dir(common)
