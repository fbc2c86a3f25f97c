"""Fixtures for the API tests: a JWT secret, a JWKS endpoint and token minters (PyJWT, as Supabase signs)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from rest_framework.test import APIClient

from common import conf
from common.api.jwks import reset_jwks_caches

from .jwks_server import JWKSServer, SigningKey, es256_key, rs256_key

JWT_SECRET = "test-jwt-secret-for-the-api-suite-0123456789abcdef-0123456789abcdef"
OTHER_SECRET = "another-secret-that-the-api-does-not-trust-0123456789-0123456789abcdef"


@pytest.fixture
def jwt_secret(monkeypatch: pytest.MonkeyPatch, env_settings: None) -> str:
    """Configure ``JWT_SECRET_KEY`` through the real environment parsing and return it."""
    monkeypatch.setenv("JWT_SECRET_KEY", JWT_SECRET)
    monkeypatch.delenv("SUPABASE_URL", raising=False)  # no JWKS and no derived issuer unless a test sets one
    conf.reset_settings_cache()
    return JWT_SECRET


@pytest.fixture(autouse=True)
def _fresh_jwks_caches() -> Iterator[None]:
    """Every test starts and ends with no cached signing keys."""
    reset_jwks_caches()
    yield
    reset_jwks_caches()


@pytest.fixture(scope="session")
def es_key() -> SigningKey:
    """An ES256 signing key (Supabase's default kind)."""
    return es256_key()


@pytest.fixture(scope="session")
def rs_key() -> SigningKey:
    """An RS256 signing key."""
    return rs256_key()


@pytest.fixture
def jwks_server(es_key: SigningKey, rs_key: SigningKey) -> Iterator[JWKSServer]:
    """A JWKS endpoint on 127.0.0.1 publishing ``es_key`` and ``rs_key``."""
    server = JWKSServer(es_key, rs_key)
    yield server
    server.stop()


@pytest.fixture
def supabase_project(monkeypatch: pytest.MonkeyPatch, env_settings: None, jwks_server: JWKSServer) -> JWKSServer:
    """``SUPABASE_URL`` points at ``jwks_server`` (so the JWKS and the issuer derive from it); no JWT secret."""
    monkeypatch.setenv("SUPABASE_URL", jwks_server.base_url)
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    conf.reset_settings_cache()
    return jwks_server


def claims_for(user_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    """Claims shaped like a Supabase access token; ``overrides`` with value ``...`` are removed."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "sub": str(user_id),
        "email": "someone@example.com",
        "role": "authenticated",
        "iss": "https://example.supabase.co/auth/v1",
    }
    for key, value in overrides.items():
        if value is ...:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


MintToken = Callable[..., str]


@pytest.fixture
def mint_token(jwt_secret: str) -> MintToken:
    """Return ``mint(user_id, *, key=..., algorithm=..., **claim_overrides) -> token``."""

    def mint(
        user_id: uuid.UUID | str | None = None,
        *,
        key: Any = None,
        algorithm: str = "HS256",
        headers: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        return jwt.encode(
            claims_for(uuid.uuid4() if user_id is None else user_id, **overrides),
            jwt_secret if key is None else key,
            algorithm=algorithm,
            headers=headers,
        )

    return mint


@pytest.fixture
def api_client() -> APIClient:
    """A DRF test client."""
    return APIClient()


def bearer(client: APIClient, token: str) -> APIClient:
    """Make ``client`` send ``Authorization: Bearer <token>``."""
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client
