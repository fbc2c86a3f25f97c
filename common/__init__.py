"""videogen's shared foundation app.

Short imports are offered lazily (PEP 562), so ``from common import PipelineError``
works before Django's app registry is ready and importing ``common`` loads nothing.
"""

from __future__ import annotations

from common._lazy import lazy_exports

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
    "get_settings": "common.env",
    "settings": "common.env",
    "app_settings": "common.conf",
    # logging and retry
    "get_logger": "common.log",
    "job_context": "common.log",
    "set_job_id": "common.log",
    "retry_with_backoff": "common.retry",
    # storage (bucket facade; backends in common.storage.local / common.storage.supabase)
    "upload_file": "common.storage.facade",
    "download_file": "common.storage.facade",
    "get_signed_url": "common.storage.facade",
    "delete_file": "common.storage.facade",
    "list_files": "common.storage.facade",
    "aupload_file": "common.storage.facade",
    "adownload_file": "common.storage.facade",
    "aget_signed_url": "common.storage.facade",
    "adelete_file": "common.storage.facade",
    "alist_files": "common.storage.facade",
    "get_supabase_client": "common.storage.client",
    # health
    "run_checks": "common.health",
    # job lifecycle (issue 3)
    "job_create": "common.services.jobs",
    "job_update_progress": "common.services.jobs",
    "job_complete": "common.services.jobs",
    "job_fail": "common.services.jobs",
    "job_cancel": "common.services.jobs",
    "stage_start": "common.services.jobs",
    "stage_complete": "common.services.jobs",
    "stage_fail": "common.services.jobs",
    "ajob_create": "common.services.jobs",
    "ajob_update_progress": "common.services.jobs",
    "ajob_complete": "common.services.jobs",
    "ajob_fail": "common.services.jobs",
    "ajob_cancel": "common.services.jobs",
    "astage_start": "common.services.jobs",
    "astage_complete": "common.services.jobs",
    "astage_fail": "common.services.jobs",
    "job_get": "common.selectors",
    "ajob_get": "common.selectors",
    "job_list_for_user": "common.selectors",
    # payload schemas (issue 3); the Job/JobStage/JobCost schemas share names with the models: use common.schemas
    "AudioAnalysis": "common.schemas",
    "SongStructure": "common.schemas",
    "Lyric": "common.schemas",
    "Mood": "common.schemas",
    "ClipBoundary": "common.schemas",
    "Character": "common.schemas",
    "Scene": "common.schemas",
    "Style": "common.schemas",
    "ClipScript": "common.schemas",
    "Transition": "common.schemas",
    "ScenePlan": "common.schemas",
    "ReferenceImage": "common.schemas",
    "ReferenceImages": "common.schemas",
    "ClipPrompt": "common.schemas",
    "ClipPrompts": "common.schemas",
    "Clip": "common.schemas",
    "Clips": "common.schemas",
    "VideoOutput": "common.schemas",
    "VideoStatus": "common.schemas",
    "PhaseInput": "common.schemas",
    "PhaseOutput": "common.schemas",
    "GenerateRequest": "common.schemas",
    "GenerateResponse": "common.schemas",
    "StatusResponse": "common.schemas",
    "VideoResponse": "common.schemas",
    # resources and temp files
    "resource_manager": "common.maintenance",
    "ResourceManager": "common.maintenance",
    "temp_file_manager": "common.tempfiles",
    "TempFileManager": "common.tempfiles",
    # validation
    "AudioFormat": "common.validation",
    "validate_audio_file": "common.validation",
    "validate_file_size": "common.validation",
    "validate_prompt": "common.validation",
    # cost tracking and budgets
    "cost_tracker": "common.services.costs",
    "CostTracker": "common.services.costs",
    "track_cost": "common.services.costs",
    "atrack_cost": "common.services.costs",
    "get_total_cost": "common.services.costs",
    "aget_total_cost": "common.services.costs",
    "check_budget": "common.services.costs",
    "acheck_budget": "common.services.costs",
    "enforce_budget_limit": "common.services.costs",
    "aenforce_budget_limit": "common.services.costs",
    "reservation": "common.services.costs",
    "areservation": "common.services.costs",
    "estimate_cost": "common.services.costs",
    "job_cost_summary": "common.services.costs",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
