"""System checks for the environment and the app settings (ids ``common.E0xx`` / ``common.W0xx``).

``manage.py check`` (and ``check --deploy``) run these, so a misconfigured
deployment is reported with the same messages :func:`common.env.get_settings`
raises, every problem at once, and without any secret value.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from common import conf, env

# Stable ids: E001 missing variables (one message naming all), E002 an invalid
# variable (one message each), E003 unknown app settings, W001 unusable knobs.
E001_MISSING = "common.E001"
E002_INVALID = "common.E002"
E003_UNKNOWN_APP_SETTING = "common.E003"
W001_DEBUG_OUTSIDE_DEVELOPMENT = "common.W001"
W010_NO_TOKEN_VERIFICATION = "common.W010"  # noqa: S105 - a check id, not a secret


@register(Tags.compatibility, deploy=False)
def check_environment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report every problem in the environment variables."""
    problems = env.get_env_problems()
    messages: list[CheckMessage] = []
    missing = [p.variable for p in problems if p.missing]
    if missing:
        messages.append(
            Error(
                f"Missing required environment variables: {', '.join(missing)}.",
                hint="Set them in the environment or in .env; see .env.example.",
                id=E001_MISSING,
            )
        )
    for problem in problems:
        if not problem.missing:
            messages.append(Error(f"{problem.variable} {problem.message}.", id=E002_INVALID))
    if not problems:
        in_effect = env.get_settings()
        if in_effect.is_production and in_effect.debug:
            messages.append(
                Warning(
                    f"DEBUG is on with ENVIRONMENT={in_effect.environment.value}.",
                    hint="Set DEBUG=false outside development.",
                    id=W001_DEBUG_OUTSIDE_DEVELOPMENT,
                )
            )
    return messages


@register(Tags.compatibility)
def check_app_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unknown keys in ``VIDEOGEN_COMMON``."""
    unknown = conf.app_settings.unknown_keys()
    if not unknown:
        return []
    return [
        Error(
            f"{conf.AppSettings.setting_name} has unknown keys: {', '.join(unknown)}.",
            hint=f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
            obj=getattr(django_settings, "SETTINGS_MODULE", None),
            id=E003_UNKNOWN_APP_SETTING,
        )
    ]


@register(Tags.security)
def check_token_verification(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when the API can verify no access token (neither a JWKS nor a legacy JWT secret)."""
    from common.api.authentication import token_systems

    if env.get_env_problems():
        return []  # check_environment reports them; the systems cannot be known yet
    if token_systems().configured:
        return []
    return [
        Warning(
            "No access-token verification is configured: every bearer token is refused with 401.",
            hint="Set SUPABASE_URL (its JWKS verifies ES256/RS256 tokens) and/or JWT_SECRET_KEY (legacy HS256 "
            'tokens); VIDEOGEN_COMMON["API_JWKS_URL"] = "" switches the JWKS off.',
            id=W010_NO_TOKEN_VERIFICATION,
        )
    ]
