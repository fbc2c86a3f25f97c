"""Django app configuration for ``common``."""

from django.apps import AppConfig


class CommonConfig(AppConfig):
    """The shared foundation of the videogen pipeline."""

    name = "common"
    verbose_name = "Videogen common"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks, the hold-freeing receiver and the thread-connection rule.

        The rule: a call run through common.log's context helpers in another thread gives its
        database connections back when it ends (common.db.releasing_connections).
        """
        from common import checks  # noqa: F401  (importing registers the checks)
        from common.db import releasing_connections
        from common.log import register_thread_call_wrapper
        from common.services import holds, jobs

        register_thread_call_wrapper(releasing_connections)

        # A completed, failed or cancelled job keeps no budget on hold. A signal (not a direct
        # call) keeps the lifecycle service independent of the cost tracker: jobs imports no cost module.
        jobs.job_finished.connect(holds.release_holds_on_finish, dispatch_uid="common.costs.release_holds")
