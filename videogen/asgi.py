"""ASGI entry point. Refuses to start on an invalid environment (raises ``ConfigError`` listing every problem)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")

from common.env import get_settings

get_settings()
application = get_asgi_application()
