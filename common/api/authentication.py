"""Authentication of API callers by their Supabase Auth access token (a JWT).

The front end sends ``Authorization: Bearer <access token>``. Supabase signs
access tokens with one of two systems, and a project in migration has both:

* **signing keys** (ES256, RS256, EdDSA): verified with the public key that the
  token's ``kid`` names in the project's JWKS (``<SUPABASE_URL>/auth/v1/.well-known/jwks.json``,
  or ``VIDEOGEN_COMMON["API_JWKS_URL"]``), fetched and cached by :mod:`common.api.jwks`;
* **the legacy JWT secret** (HS256): verified with ``JWT_SECRET_KEY``.

Each token goes to exactly one verifier, chosen by its header's ``alg`` (and
``kid``), never by trying keys until one fits: HS256 only ever meets the secret
(so a token "signed" with a public key as an HMAC secret fails), an asymmetric
``alg`` only ever meets the JWKS key of its ``kid`` and only when that key has
the same algorithm, and anything else (``none``, HS512, PS256...) is refused.
Header members that point at keys (``jku``, ``jwk``, ``x5u``) are ignored.

Then the claims: the audience must be ``authenticated``, ``exp``/``sub``/``aud``
are required, ``sub`` must be a UUID and ``role`` (when present) ``authenticated``;
``iss`` must be ``API_JWT_ISSUER`` when set, else ``<SUPABASE_URL>/auth/v1`` when
``SUPABASE_URL`` is set. Settings are read at call time. A refusal is a 401
whose JSON body says why in general terms; the token, the keys and PyJWT's own
messages never reach the client.

A verified caller becomes a :class:`SupabaseUser`; no Django user is created.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from common.api.jwks import (
    ASYMMETRIC_ALGORITHMS,
    MAX_KID_LENGTH,
    SigningKeysUnavailable,
    UnknownSigningKey,
    get_jwks_cache,
)
from common.callers import SUPABASE_ROLE, SupabaseUser
from common.conf import app_settings
from common.env import Secret, get_settings, mask_url
from common.errors import ConfigError
from common.ids import canonical_uuid  # the one id rule (canonical text only): re-exported for the API
from common.log import get_logger

__all__ = [
    "JWT_ALGORITHMS",
    "JWT_AUDIENCE",
    "LEGACY_ALGORITHM",
    "SERVER_SIDE_REFUSALS",
    "SupabaseJWTAuthentication",
    "SupabaseUser",
    "TokenRefused",
    "TokenSystems",
    "canonical_uuid",
    "token_systems",
]

logger = get_logger(__name__)

# The legacy system signs with HS256 and the project's JWT secret; the signing-keys system with an
# asymmetric key from the JWKS. Nothing else is ever accepted ("alg": "none", HS512, PS256...).
LEGACY_ALGORITHM = "HS256"
JWT_ALGORITHMS = (LEGACY_ALGORITHM, *sorted(ASYMMETRIC_ALGORITHMS))
JWT_AUDIENCE = SUPABASE_ROLE
JWT_REQUIRED_CLAIMS = ("exp", "sub", "aud")
# A real Supabase access token is well under 2 KB; anything far larger is refused before decoding.
MAX_TOKEN_LENGTH = 8192
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*")


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of ``token`` (already checked against ``_TOKEN_RE``), only to pick its verifier.

    Only the header segment is decoded: ``jwt.get_unverified_header`` parses and checks the whole
    token, which costs as much as the signature check itself (bench/auth.py). PyJWT parses the
    header again when it verifies, and refuses the token unless its ``alg`` is the one chosen here.

    Raises:
        TokenRefused: the header is not base64url JSON object.
    """
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        header = None
    if not isinstance(header, dict):
        raise TokenRefused("The access token is malformed.", code="token_malformed")
    return header


class TokenRefused(exceptions.AuthenticationFailed):
    """A bearer token was presented and refused; the ``code`` says why in general terms."""

    default_detail = "The access token is invalid."
    default_code = "token_invalid"


# Refusals that say nothing about the token itself (the server cannot verify any token right now, or
# is not set up to): their WWW-Authenticate carries no error="invalid_token" (RFC 6750 section 3.1).
SERVER_SIDE_REFUSALS = frozenset(
    {"token_verification_unavailable", "token_verification_not_configured", "token_keys_unavailable"}
)


@dataclass(frozen=True)
class TokenSystems:
    """The access-token verifiers in effect: the JWKS URL, the legacy secret, and the expected ``iss``."""

    jwks_url: str | None
    legacy_secret: Secret | None = field(default=None, repr=False)
    issuer: str | None = None

    @property
    def configured(self) -> bool:
        """True when at least one verifier is configured."""
        return self.jwks_url is not None or self.legacy_secret is not None

    def describe(self) -> str:
        """One line for ``describe_config``: which systems verify tokens (no secret)."""
        parts = []
        if self.jwks_url is not None:
            parts.append(f"JWKS {mask_url(self.jwks_url)} ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})")
        if self.legacy_secret is not None:
            parts.append(f"legacy JWT_SECRET_KEY ({LEGACY_ALGORITHM})")
        if not parts:
            return "none configured: bearer tokens are refused (set SUPABASE_URL or JWT_SECRET_KEY)"
        issuer = f"; iss must be {mask_url(self.issuer)}" if self.issuer else "; iss not checked"
        return " + ".join(parts) + issuer


def token_systems() -> TokenSystems:
    """The verifiers configured now (environment and ``VIDEOGEN_COMMON``, read at call time).

    Raises:
        ConfigError: the environment is invalid.
    """
    env = get_settings()
    supabase_url = env.supabase_url
    configured_url = app_settings.API_JWKS_URL
    if configured_url is None:
        jwks_url = f"{supabase_url}/auth/v1/.well-known/jwks.json" if supabase_url else None
    else:
        jwks_url = str(configured_url) or None  # "" switches the JWKS off
    issuer = app_settings.API_JWT_ISSUER or (f"{supabase_url}/auth/v1" if supabase_url else None)
    return TokenSystems(jwks_url=jwks_url, legacy_secret=env.jwt_secret_key, issuer=issuer)


_ALGORITHM_NOT_ALLOWED = "The access token's signing algorithm is not allowed."
_UNKNOWN_KEY = "The access token was signed with a key this API does not know."

# (PyJWT exception class, our code, the message the client sees). First match wins: subclasses first.
_REFUSALS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "The access token has expired."),
    (jwt.InvalidSignatureError, "token_bad_signature", "The access token's signature is invalid."),
    (jwt.InvalidAudienceError, "token_wrong_audience", "The access token is not meant for this API."),
    (jwt.InvalidIssuerError, "token_wrong_issuer", "The access token was not issued by the expected issuer."),
    (jwt.InvalidAlgorithmError, "token_algorithm_not_allowed", _ALGORITHM_NOT_ALLOWED),
    (jwt.MissingRequiredClaimError, "token_missing_claim", "The access token lacks a required claim."),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", "The access token is not valid yet."),
    (InvalidSubjectError, "token_bad_subject", "The access token's subject is not a valid user id."),
    (jwt.InvalidTokenError, "token_malformed", "The access token is malformed."),
)


class SupabaseJWTAuthentication(BaseAuthentication):
    """DRF authentication by ``Authorization: Bearer <Supabase access token>``.

    No ``Authorization`` header, or another scheme, means "not this
    authenticator" (``None``), so the next one (the admin session) may try; a
    ``Bearer`` header whose token is refused is a 401, never a fallback.
    """

    keyword = "Bearer"
    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[SupabaseUser, str] | None:
        """Return ``(user, token)`` for a valid bearer token, ``None`` when there is none.

        Raises:
            TokenRefused: the header or the token is invalid (401).
        """
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise TokenRefused(
                "The Authorization header must be 'Bearer <token>' with no spaces in the token.",
                code="token_malformed",
            )
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise TokenRefused("The access token is malformed.", code="token_malformed") from None
        user = self.authenticate_token(token)
        return user, token

    def authenticate_token(self, token: str) -> SupabaseUser:
        """Verify ``token`` with the one verifier its header names, and return its user.

        Raises:
            TokenRefused: the token is refused, or no verifier can check it.
        """
        if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_RE.fullmatch(token):
            raise TokenRefused("The access token is malformed.", code="token_malformed")
        header = _unverified_header(token)
        systems = self._systems()
        key, algorithm = self._route(header, systems)
        issuer = systems.issuer
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=JWT_AUDIENCE,
                issuer=issuer,
                leeway=float(app_settings.API_JWT_LEEWAY_SECONDS),
                options={
                    "require": [*JWT_REQUIRED_CLAIMS, *(["iss"] if issuer else [])],
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_aud": True,
                    "verify_iss": bool(issuer),
                },
            )
        except jwt.InvalidTokenError as exc:
            raise self._refusal(exc) from None
        return self._user(claims)

    def authenticate_header(self, request: Request) -> str:
        """The ``WWW-Authenticate`` value of a 401 (it also makes DRF answer 401 rather than 403)."""
        return f'{self.keyword} realm="{self.www_authenticate_realm}"'

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _systems() -> TokenSystems:
        try:
            systems = token_systems()
        except ConfigError:
            # The operator needs to know; the client only learns that it cannot be authenticated now.
            logger.error("the environment is invalid; bearer tokens are refused until it is fixed")
            raise TokenRefused(
                "Token authentication is not available right now.", code="token_verification_unavailable"
            ) from None
        if not systems.configured:
            logger.warning("no token verification is configured (SUPABASE_URL or JWT_SECRET_KEY); token refused")
            raise TokenRefused(
                "This API has no access-token verification configured, so bearer tokens cannot be accepted.",
                code="token_verification_not_configured",
            )
        return systems

    @staticmethod
    def _route(header: dict[str, Any], systems: TokenSystems) -> tuple[Any, str]:
        """The key and the one algorithm that may verify a token with this header."""
        alg = header.get("alg")
        if alg == LEGACY_ALGORITHM and systems.legacy_secret is not None:
            return systems.legacy_secret.reveal(), LEGACY_ALGORITHM
        if isinstance(alg, str) and alg in ASYMMETRIC_ALGORITHMS and systems.jwks_url is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
                raise TokenRefused(_UNKNOWN_KEY, code="token_unknown_key")
            try:
                key = get_jwks_cache(systems.jwks_url).get_key(kid)
            except UnknownSigningKey as exc:
                logger.debug("token refused: %s", exc)
                raise TokenRefused(_UNKNOWN_KEY, code="token_unknown_key") from None
            except SigningKeysUnavailable as exc:
                logger.debug("token refused: %s", exc)
                raise TokenRefused(
                    "The signing keys needed to verify the access token cannot be fetched right now.",
                    code="token_keys_unavailable",
                ) from None
            if key.algorithm_name != alg:  # a kid of an RS256 key on an ES256 token, say
                raise TokenRefused(_ALGORITHM_NOT_ALLOWED, code="token_algorithm_not_allowed")
            return key, alg
        raise TokenRefused(_ALGORITHM_NOT_ALLOWED, code="token_algorithm_not_allowed")

    @staticmethod
    def _refusal(exc: jwt.InvalidTokenError) -> TokenRefused:
        for kind, code, message in _REFUSALS:
            if isinstance(exc, kind):
                return TokenRefused(message, code=code)
        raise AssertionError("unreachable")  # jwt.InvalidTokenError is the last entry

    @staticmethod
    def _user(claims: dict[str, Any]) -> SupabaseUser:
        user_id = canonical_uuid(claims.get("sub"))
        if user_id is None:
            raise TokenRefused("The access token's subject is not a valid user id.", code="token_bad_subject")
        # Supabase user tokens carry role "authenticated"; the anon and service_role keys are JWTs
        # signed with the same secret and must never pass as a user.
        role = claims.get("role", JWT_AUDIENCE)
        if role != JWT_AUDIENCE:
            raise TokenRefused("The access token is not a user token.", code="token_wrong_role")
        email = claims.get("email")
        return SupabaseUser(
            id=user_id,
            email=email if isinstance(email, str) else None,
            role=role,
            claims=claims,
        )
