"""``manage.py dev_setup``: make a development database ready to browse (``make serve`` runs it before ``runserver``).

It migrates the database, creates a superuser when the database has none, from ``DJANGO_SUPERUSER_USERNAME``,
``DJANGO_SUPERUSER_PASSWORD`` and ``DJANGO_SUPERUSER_EMAIL`` (Django's own ``createsuperuser``
variables, read from the environment or ``.env``), defaulting to ``admin`` / ``admin`` /
``admin@localhost``; and it runs ``manage.py demo`` when the database has no job, so the admin has
something to show. It refuses to run outside ``ENVIRONMENT=development``, before it touches the
database: a known password is a development convenience only (elsewhere, ``manage.py createsuperuser``
asks for one).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.conf import Environment, get_settings, read_environment
from common.errors import ConfigError
from common.models import Job

# Development defaults; documented in the README (Development).
DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "admin"  # noqa: S105 - a development default, refused outside development
DEFAULT_EMAIL = "admin@localhost"


class Command(BaseCommand):
    """Migrate, then create a development superuser when there is none and demo jobs when there are none."""

    help = "Development only: migrate; a superuser (DJANGO_SUPERUSER_*, default admin/admin); demo jobs if none."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--no-demo`` skips the demo data."""
        parser.add_argument("--no-demo", action="store_true", help="do not load demo jobs into an empty database")

    def handle(self, *args: Any, **options: Any) -> None:
        """Check the environment, then migrate, then the superuser, then the demo data."""
        try:
            environment = get_settings().environment
        except ConfigError as exc:
            raise CommandError(f"dev_setup: the environment is invalid, fix it first: {exc}") from None
        if environment is not Environment.DEVELOPMENT:
            raise CommandError(
                f"dev_setup refuses to run with ENVIRONMENT={environment.value}: it creates a superuser with a "
                "known password, which is for development only. Use `manage.py createsuperuser` instead."
            )
        call_command("migrate", interactive=False, verbosity=0)
        self._superuser()
        if not options["no_demo"]:
            self._demo(no_color=options["no_color"])

    def _superuser(self) -> None:
        user_model = get_user_model()
        existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            self.stdout.write(f"superuser: {existing.get_username()!r} exists; none created")
            return
        environ = read_environment()
        username = environ.get("DJANGO_SUPERUSER_USERNAME") or DEFAULT_USERNAME
        password = environ.get("DJANGO_SUPERUSER_PASSWORD") or DEFAULT_PASSWORD
        email = environ.get("DJANGO_SUPERUSER_EMAIL") or DEFAULT_EMAIL
        if user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).exists():
            raise CommandError(
                f"dev_setup: a user {username!r} exists but is not a superuser; set DJANGO_SUPERUSER_USERNAME to "
                "another name, or make that user a superuser with `manage.py createsuperuser`."
            )
        user_model.objects.create_superuser(username, email=email, password=password)
        where = "DJANGO_SUPERUSER_PASSWORD" if environ.get("DJANGO_SUPERUSER_PASSWORD") else f"default {password!r}"
        self.stdout.write(self.style.SUCCESS(f"superuser: created {username!r} (password: {where})"))

    def _demo(self, *, no_color: bool) -> None:
        jobs = Job.objects.count()
        if jobs:
            self.stdout.write(f"demo data: {jobs} job(s) in the database; none added")
            return
        self.stdout.write("demo data: the database has no job; running `manage.py demo`")
        call_command("demo", stdout=self.stdout, stderr=self.stderr, no_color=no_color)
