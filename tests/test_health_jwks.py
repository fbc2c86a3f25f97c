"""The JWKS health check: reachable, parses, has a signing key; never critical unless configured so."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from common import conf, health
from common.health import JWKSCheck, default_checks, run_checks
from common.storage.buckets import bucket_storages
from tests.api.jwks_server import JWKSServer, SilentServer, es256_key
from tests.servicekit import closed_port
from tests.test_cache import LOCMEM

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def embedded_services(tmp_path: Path) -> Iterator[None]:
    """Local storage in a temp folder and the local-memory cache, so only the JWKS can fail."""
    with override_settings(MEDIA_ROOT=tmp_path / "media", STORAGES=bucket_storages(supabase=False), CACHES=LOCMEM):
        yield


@pytest.fixture
def supabase_url(monkeypatch: pytest.MonkeyPatch, env_settings: None) -> Callable[[str | None], None]:
    """``set(url)`` points SUPABASE_URL (and so the JWKS) at ``url``."""

    def use(url: str | None) -> None:
        if url is None:
            monkeypatch.delenv("SUPABASE_URL", raising=False)
        else:
            monkeypatch.setenv("SUPABASE_URL", url)
        conf.reset_settings_cache()

    return use


@pytest.fixture
def jwks() -> Iterator[JWKSServer]:
    server = JWKSServer(es256_key(), es256_key())
    yield server
    server.stop()


def jwks_result(**kwargs: object):
    [result] = run_checks([JWKSCheck(**kwargs)]).results
    return result


def test_it_is_a_default_check_and_not_critical():
    assert "jwks" in [check.name for check in default_checks()]
    assert JWKSCheck().critical is False


def test_not_configured_passes_and_says_so(supabase_url):
    supabase_url(None)
    result = jwks_result()
    assert result.ok
    assert result.details == {"configured": False}


def test_reachable_jwks_with_keys(supabase_url, jwks):
    supabase_url(jwks.base_url)
    result = jwks_result()
    assert result.ok, result.message
    assert result.details == {"url": jwks.jwks_url, "keys": 2, "algorithms": ["ES256"]}
    assert jwks.fetches == 1


@pytest.fixture(autouse=True)
def fresh_probe_cache() -> Iterator[None]:
    health._probe_cache.clear()
    yield
    health._probe_cache.clear()


def test_uncached_check_fetches_every_time_it_runs(supabase_url, jwks):
    supabase_url(jwks.base_url)
    jwks_result(use_cache=False)
    jwks_result(use_cache=False)
    assert jwks.fetches == 2  # the check proves the endpoint answers now, not what the token cache holds


def test_readiness_reuses_a_fresh_result_then_fetches_again(supabase_url, jwks, monkeypatch):
    supabase_url(jwks.base_url)
    now = [1000.0]
    monkeypatch.setattr(health._probe_cache, "clock", lambda: now[0])
    first, second = jwks_result(), jwks_result()
    assert jwks.fetches == 1  # a probe under load does not call Supabase Auth each time
    assert first.ok
    assert second.ok
    assert second.details["cached_age_s"] == 0.0
    now[0] += 5.1  # HEALTH_JWKS_CACHE_SECONDS
    assert jwks_result().ok
    assert jwks.fetches == 2


def test_a_cached_failure_is_reported_until_the_next_fetch(supabase_url, jwks):
    supabase_url(jwks.base_url)
    jwks.status = 503
    assert jwks_result().status == "error"
    jwks.status = 200
    assert "HTTP 503" in jwks_result().message  # reused within the TTL
    with override_settings(VIDEOGEN_COMMON={"HEALTH_JWKS_CACHE_SECONDS": 0}):
        assert jwks_result().ok


def test_the_body_never_shows_url_credentials_or_secrets(supabase_url, jwks):
    secret = "s3cret-jwks-token-value"
    supabase_url(jwks.base_url)
    with override_settings(VIDEOGEN_COMMON={"API_JWKS_URL": f"{jwks.jwks_url}?token={secret}"}):
        ok = jwks_result()
    # An error whose text carries the URL (this one names it: not an http(s) URL).
    with override_settings(VIDEOGEN_COMMON={"API_JWKS_URL": f"ftp://reader:{secret}@example.com/jwks?token={secret}"}):
        failed = jwks_result()
    assert ok.ok, ok.message
    assert secret not in json.dumps(ok.details)
    assert "***" in ok.details["url"]
    assert failed.status == "error"
    assert "not an http(s) URL" in failed.message
    assert secret not in failed.message


@pytest.mark.parametrize(
    ("setup", "fragment"), [({"status": 503}, "HTTP 503"), ({"document": b"<html>"}, "did not answer JSON")]
)
def test_a_failing_endpoint_fails(supabase_url, jwks, setup, fragment):
    supabase_url(jwks.base_url)
    for name, value in setup.items():
        setattr(jwks, name, value)
    result = jwks_result()
    assert result.status == "error"
    assert fragment in result.message


def test_an_unreachable_endpoint_fails(supabase_url):
    supabase_url(f"http://127.0.0.1:{closed_port()}")
    result = jwks_result()
    assert result.status == "error"
    assert "could not be read" in result.message


def test_a_silent_endpoint_fails_within_the_jwks_timeout(supabase_url):
    silent = SilentServer()
    try:
        supabase_url(silent.base_url)
        with override_settings(VIDEOGEN_COMMON={"API_JWKS_TIMEOUT": 0.2, "HEALTH_CHECK_TIMEOUT": 5}):
            result = jwks_result()
        # The fetch gave up on its own (an error), before the runner's 5 s timeout would have.
        assert result.status == "error"
    finally:
        silent.stop()


def test_readiness_stays_200_when_only_the_jwks_is_down(supabase_url, client: Client):
    supabase_url(f"http://127.0.0.1:{closed_port()}")
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200
    assert body["checks"]["jwks"]["status"] == "error"
    assert body["checks"]["jwks"]["critical"] is False


def test_jwks_can_be_made_critical(supabase_url, client: Client):
    supabase_url(f"http://127.0.0.1:{closed_port()}")
    with override_settings(VIDEOGEN_COMMON={"HEALTH_CRITICAL_CHECKS": ("database", "storage", "jwks")}):
        response = client.get("/health/ready")
    assert response.status_code == 503


def test_check_services_runs_it(supabase_url, jwks, capsys):
    supabase_url(jwks.base_url)
    call_command("check_services", "--check", "jwks", "--json")
    body = json.loads(capsys.readouterr().out)
    assert body["checks"]["jwks"]["status"] == "ok"
    assert body["checks"]["jwks"]["details"]["keys"] == 2
    call_command("check_services", "--check", "jwks", "--json")
    assert jwks.fetches == 2  # an operator asking gets a fresh answer, never the readiness probe's cached one
