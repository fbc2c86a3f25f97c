"""Fixtures for the API tests: a configured JWT secret and a token minter (PyJWT, as Supabase signs)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from rest_framework.test import APIClient

from common import conf

JWT_SECRET = "test-jwt-secret-for-the-api-suite-0123456789abcdef-0123456789abcdef"
OTHER_SECRET = "another-secret-that-the-api-does-not-trust-0123456789-0123456789abcdef"


@pytest.fixture
def jwt_secret(monkeypatch: pytest.MonkeyPatch, env_settings: None) -> str:
    """Configure ``JWT_SECRET_KEY`` through the real environment parsing and return it."""
    monkeypatch.setenv("JWT_SECRET_KEY", JWT_SECRET)
    conf.reset_settings_cache()
    return JWT_SECRET


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
