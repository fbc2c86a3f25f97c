"""videogen's shared foundation app.

Short imports are offered lazily (PEP 562), so ``from common import PipelineError``
works before Django's app registry is ready and importing ``common`` loads nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it. Helpers add their public names here.
_LAZY: dict[str, str] = {
    # errors
    "PipelineError": "common.errors",
    "ConfigError": "common.errors",
    "AudioAnalysisError": "common.errors",
    "GenerationError": "common.errors",
    "CompositionError": "common.errors",
    "BudgetExceededError": "common.errors",
    "RetryableError": "common.errors",
    "ValidationError": "common.errors",
    "ResourceError": "common.errors",
    "ServiceUnavailableError": "common.errors",
    "StorageError": "common.errors",
    "get_user_friendly_message": "common.errors",
    # settings
    "get_settings": "common.conf",
    "settings": "common.conf",
    "app_settings": "common.conf",
    # logging and retry
    "get_logger": "common.log",
    "job_context": "common.log",
    "set_job_id": "common.log",
    "retry_with_backoff": "common.retry",
    # resources and temp files
    "resource_manager": "common.resources",
    "ResourceManager": "common.resources",
    "temp_file_manager": "common.tempfiles",
    "TempFileManager": "common.tempfiles",
    # validation
    "AudioFormat": "common.validation",
    "validate_audio_file": "common.validation",
    "validate_file_size": "common.validation",
    "validate_prompt": "common.validation",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'common' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
