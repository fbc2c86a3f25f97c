"""``manage.py describe_config``: print the configuration in effect, without secrets."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from common.api.authentication import token_systems
from common.conf import app_settings
from common.env import get_settings
from common.errors import ConfigError


class Command(BaseCommand):
    """Describe the environment settings and the app's main knobs."""

    help = "Print the configuration in effect (database, cache, storage, keys, budget); never prints secrets."

    def handle(self, *args: Any, **options: Any) -> None:
        """Print one line per setting group."""
        try:
            env = get_settings()
        except ConfigError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.MIGRATE_HEADING("videogen configuration"))
        for line in env.describe():
            self.stdout.write(f"  {line}")
        self.stdout.write(f"  tokens:      {token_systems().describe()}")
        self.stdout.write(f"  budget:      ${app_settings.DEFAULT_JOB_BUDGET} per job by default")
        self.stdout.write(f"  temp files:  {app_settings.TEMP_DIR}")
