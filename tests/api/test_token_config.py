"""Which token systems are active: ``describe_config``, the W010 check, and what production requires."""

from __future__ import annotations

import io

from django.core.management import call_command
from django.test import override_settings

from common import checks
from common.api.authentication import token_systems
from common.conf import load_env_settings
from tests.envtools import PRODUCTION_ENV, use_environment

SECRET = "jwt-secret-value-that-is-long-enough-0123456789"


def tokens_line() -> str:
    out = io.StringIO()
    call_command("describe_config", stdout=out, no_color=True)
    [line] = [line for line in out.getvalue().splitlines() if line.startswith("  tokens:")]
    return line.removeprefix("  tokens:").strip()


def test_both_systems_are_described_without_the_secret(monkeypatch):
    use_environment(monkeypatch, {"SUPABASE_URL": "https://abc.supabase.co", "JWT_SECRET_KEY": SECRET})
    line = tokens_line()
    assert line == (
        "JWKS https://abc.supabase.co/auth/v1/.well-known/jwks.json (ES256, EdDSA, RS256)"
        " + legacy JWT_SECRET_KEY (HS256); iss must be https://abc.supabase.co/auth/v1"
    )
    assert SECRET not in line
    assert checks.check_token_verification() == []


def test_jwks_only(monkeypatch):
    use_environment(monkeypatch, {"SUPABASE_URL": "https://abc.supabase.co"})
    assert tokens_line().startswith("JWKS https://abc.supabase.co/auth/v1/.well-known/jwks.json")
    assert "legacy" not in tokens_line()
    assert checks.check_token_verification() == []


def test_legacy_only_without_an_issuer(monkeypatch):
    use_environment(monkeypatch, {"JWT_SECRET_KEY": SECRET})
    assert tokens_line() == "legacy JWT_SECRET_KEY (HS256); iss not checked"
    with override_settings(VIDEOGEN_COMMON={"API_JWT_ISSUER": "https://auth.example.com"}):
        assert tokens_line() == "legacy JWT_SECRET_KEY (HS256); iss must be https://auth.example.com"


def test_configured_jwks_url_is_shown(monkeypatch):
    use_environment(monkeypatch, {"JWT_SECRET_KEY": SECRET})
    with override_settings(VIDEOGEN_COMMON={"API_JWKS_URL": "https://keys.example.com/jwks.json"}):
        assert tokens_line().startswith("JWKS https://keys.example.com/jwks.json (")
        assert token_systems().issuer is None


def test_neither_is_described_and_warned_about(monkeypatch):
    use_environment(monkeypatch)
    assert tokens_line() == "none configured: bearer tokens are refused (set SUPABASE_URL or JWT_SECRET_KEY)"
    [warning] = checks.check_token_verification()
    assert warning.id == "common.W010"
    assert warning.level == 30  # a warning: development without any token still runs
    assert "every bearer token is refused" in warning.msg


def test_jwks_switched_off_and_no_secret_is_warned_about(monkeypatch):
    use_environment(monkeypatch, {"SUPABASE_URL": "https://abc.supabase.co"})
    with override_settings(VIDEOGEN_COMMON={"API_JWKS_URL": ""}):
        assert [m.id for m in checks.check_token_verification()] == ["common.W010"]


def test_an_invalid_environment_is_left_to_the_environment_check(monkeypatch):
    use_environment(monkeypatch, {"JWT_SECRET_KEY": "short"})
    assert checks.check_token_verification() == []
    assert [m.id for m in checks.check_environment()] == ["common.E002"]


def test_production_needs_no_jwt_secret_since_supabase_url_gives_the_jwks():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "JWT_SECRET_KEY"}
    settings, problems = load_env_settings(env)
    assert problems == []
    assert settings.jwt_secret_key is None


def test_production_still_requires_supabase_url():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SUPABASE_URL"}
    _, problems = load_env_settings(env, strict=False)
    assert [p.variable for p in problems] == ["SUPABASE_URL"]
