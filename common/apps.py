"""Django app configuration for ``common``."""

from django.apps import AppConfig


class CommonConfig(AppConfig):
    """The shared foundation of the videogen pipeline."""

    name = "common"
    verbose_name = "Videogen common"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks (importing the module registers them)."""
        from common import checks  # noqa: F401
