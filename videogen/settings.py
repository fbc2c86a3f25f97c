"""Django settings for videogen, derived from the environment through :mod:`common.env`.

Nothing here reads ``os.environ`` directly: :func:`common.env.load_env_settings`
parses and validates every variable once. It is called leniently so that a bad
environment still lets Django boot and ``manage.py check`` report every problem
(``common.E001``/``E002``); the WSGI/ASGI entry points refuse to serve instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from common.cache_keys import KEY_PREFIX, cache_settings
from common.env import load_env_settings, parse_database_url
from common.log import build_logging_config
from common.storage.buckets import bucket_storages, supabase_selected

BASE_DIR = Path(__file__).resolve().parent.parent

ENV, ENV_PROBLEMS = load_env_settings(strict=False)

SECRET_KEY = ENV.django_secret_key.reveal()
DEBUG = ENV.debug
ALLOWED_HOSTS = list(ENV.allowed_hosts)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "common",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "videogen.urls"
WSGI_APPLICATION = "videogen.wsgi.application"
ASGI_APPLICATION = "videogen.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# --------------------------------------------------------------------------- database


def _database(url: str) -> dict[str, Any]:
    db = parse_database_url(url)
    if db["ENGINE"].endswith("sqlite3"):
        if db["NAME"] != ":memory:":
            Path(db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # Wait for a writer instead of failing at once with "database is locked".
        db["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
        return db
    # psycopg 3 with its connection pool: DATABASE_POOL_SIZE connections a process (10), and a thread waits at
    # most DATABASE_POOL_TIMEOUT seconds (5) for a free one, then gets ServiceUnavailableError saying whether the
    # pool is exhausted or the database cannot be reached. The backend is Django's, with that wait bounded, timed
    # (a WARNING past DB_POOL_WAIT_WARNING_SECONDS) and explained: common/db_backends/postgresql/base.py.
    # These are environment variables, not VIDEOGEN_COMMON keys: the pool is sized per deployment (processes x
    # pool size must fit the server's max_connections), and DATABASES is built here, before VIDEOGEN_COMMON.
    # Pooling requires CONN_MAX_AGE = 0.
    db["ENGINE"] = "common.db_backends.postgresql"
    pool = {"name": "videogen-default", "min_size": 1, "max_size": ENV.database_pool_size}
    db["OPTIONS"] = {**db.get("OPTIONS", {}), "pool": {**pool, "timeout": ENV.database_pool_timeout}}
    # A server that does not answer must not hold the pool's connecting workers forever (libpq waits without end).
    db["OPTIONS"].setdefault("connect_timeout", 10)
    db["CONN_MAX_AGE"] = 0
    db["CONN_HEALTH_CHECKS"] = True
    # Parallel test sessions on one server each get their own test database.
    test_name = os.environ.get("VIDEOGEN_TEST_DB_NAME")
    if test_name:
        db["TEST"] = {"NAME": test_name}
    return db


DATABASES = {"default": _database(ENV.database_url.reveal())}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --------------------------------------------------------------------------- cache

# Keys are exactly "videogen:cache:<key>"; Redis holds JSON, never pickles (common.cache_keys.cache_settings).
CACHE_KEY_PREFIX = KEY_PREFIX
CACHES: dict[str, Any] = cache_settings(None if ENV.redis_url is None else ENV.redis_url.reveal())


# --------------------------------------------------------------------------- storage

MEDIA_ROOT = BASE_DIR / "var" / "media"
MEDIA_URL = "/media/"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

STORAGES: dict[str, Any] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # One named storage per bucket: storages["video-clips"] etc. Local files, or Supabase Storage as soon as
    # SUPABASE_URL or SUPABASE_SERVICE_KEY is given; an invalid pair then refuses with ConfigError (no silent fallback).
    **bucket_storages(supabase=supabase_selected(ENV, ENV_PROBLEMS)),
}


# --------------------------------------------------------------------------- the rest

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = build_logging_config(ENV.log_level, ENV.log_file)

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # The API (common.api): Supabase access tokens first (their 401 carries WWW-Authenticate: Bearer),
    # then the admin session for staff; everything needs a signed-in caller; JSON in and out.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "common.api.authentication.SupabaseJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if ENV.debug else []),
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "common.api.pagination.JobCursorPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_THROTTLE_CLASSES": ["common.api.throttling.CallerRateThrottle"],
    "EXCEPTION_HANDLER": "common.api.exceptions.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "videogen API",
    "DESCRIPTION": "Read-only job status and costs.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The response bodies are Pydantic models, whose optional fields are `anyOf [..., {"type": "null"}]`: OAS 3.1.
    "OAS_VERSION": "3.1.0",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "common.models.JobStatus.values",
        "StageStatusEnum": "common.models.StageStatus.values",
    },
}

# The app's own knobs; see common.conf.DEFAULTS for every key and its default.
VIDEOGEN_COMMON: dict[str, Any] = {}

if not ENV.debug:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
