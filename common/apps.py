"""Django app configuration for ``common``."""

from django.apps import AppConfig


class CommonConfig(AppConfig):
    """The shared foundation of the videogen pipeline."""

    name = "common"
    verbose_name = "Videogen common"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks and the receiver that frees a finished job's budget holds."""
        from common import checks  # noqa: F401  (importing registers the checks)
        from common.services import holds, jobs

        # A completed, failed or cancelled job keeps no budget on hold. A signal (not a direct
        # call) keeps the lifecycle service independent of the cost tracker: jobs imports no cost module.
        jobs.job_finished.connect(holds.release_holds_on_finish, dispatch_uid="common.costs.release_holds")
