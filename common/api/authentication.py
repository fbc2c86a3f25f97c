"""Authentication of API callers by their Supabase Auth access token (an HS256 JWT).

The front end sends ``Authorization: Bearer <access token>``. The token is
verified with PyJWT against ``JWT_SECRET_KEY`` (read at call time): only HS256
is accepted (so ``none``, RS256 or HS512 tokens are refused), the audience must
be ``authenticated``, ``exp``/``sub``/``aud`` are required and ``sub`` must be a
UUID. A refusal is a 401 whose JSON body says why in general terms; the token,
the secret and PyJWT's own messages never reach the client.

A verified caller becomes a :class:`SupabaseUser`; no Django user is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar
from uuid import UUID

import jwt
from jwt.exceptions import InvalidSubjectError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from common.conf import app_settings, get_settings
from common.errors import ConfigError
from common.log import get_logger

__all__ = [
    "JWT_ALGORITHMS",
    "JWT_AUDIENCE",
    "SupabaseJWTAuthentication",
    "SupabaseUser",
    "TokenRefused",
    "canonical_uuid",
]

logger = get_logger(__name__)

# Supabase signs user access tokens with HS256 and the project's JWT secret. Pinning the list is
# what refuses "alg": "none" and algorithm-confusion tokens (RS256 with the secret as a public key).
JWT_ALGORITHMS = ("HS256",)
JWT_AUDIENCE = "authenticated"
JWT_REQUIRED_CLAIMS = ("exp", "sub", "aud")
# A real Supabase access token is well under 2 KB; anything far larger is refused before decoding.
MAX_TOKEN_LENGTH = 8192
# The canonical hyphenated form only: UUID() would also accept braces, "urn:uuid:" and no hyphens.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*")


def canonical_uuid(text: object) -> UUID | None:
    """``text`` as a UUID if it is one in the canonical hyphenated form (any case), else ``None``."""
    return UUID(text) if isinstance(text, str) and _UUID_RE.fullmatch(text) else None


@dataclass(frozen=True)
class SupabaseUser:
    """A caller authenticated by a Supabase access token; ``id`` is the token's ``sub``."""

    id: UUID
    email: str | None = None
    role: str = JWT_AUDIENCE
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False
    is_active: ClassVar[bool] = True
    is_staff: ClassVar[bool] = False
    is_superuser: ClassVar[bool] = False

    @property
    def pk(self) -> UUID:
        """The user id (DRF's throttles and Django's idioms use ``pk``)."""
        return self.id

    def get_username(self) -> str:
        """The user id as text (Django's user protocol)."""
        return str(self.id)

    def __str__(self) -> str:
        return f"supabase:{self.id}"


class TokenRefused(exceptions.AuthenticationFailed):
    """A bearer token was presented and refused; the ``code`` says why in general terms."""

    default_detail = "The access token is invalid."
    default_code = "token_invalid"


# (PyJWT exception class, our code, the message the client sees). First match wins: subclasses first.
_REFUSALS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "The access token has expired."),
    (jwt.InvalidSignatureError, "token_bad_signature", "The access token's signature is invalid."),
    (jwt.InvalidAudienceError, "token_wrong_audience", "The access token is not meant for this API."),
    (jwt.InvalidIssuerError, "token_wrong_issuer", "The access token was not issued by the expected issuer."),
    (jwt.InvalidAlgorithmError, "token_algorithm_not_allowed", "The access token's signing algorithm is not allowed."),
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
        """Verify ``token`` and return its user.

        Raises:
            TokenRefused: the token is refused or the verification key is not configured.
        """
        if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_RE.fullmatch(token):
            raise TokenRefused("The access token is malformed.", code="token_malformed")
        key = self._secret()
        issuer = app_settings.API_JWT_ISSUER
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(JWT_ALGORITHMS),
                audience=JWT_AUDIENCE,
                issuer=issuer or None,
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

    def _secret(self) -> str:
        try:
            secret = get_settings().jwt_secret_key
        except ConfigError:
            secret = None
        if secret is None:
            # The operator needs to know; the client only learns that it cannot be authenticated now.
            logger.error("JWT_SECRET_KEY is not configured (or the environment is invalid); bearer tokens are refused")
            raise TokenRefused(
                "Token authentication is not available right now.", code="token_verification_unavailable"
            )
        return secret.reveal()

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
