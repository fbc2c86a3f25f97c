"""Supabase JWT authentication: the accepted token and every refusal, at the class and through a view."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import override_settings
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from common import conf
from common.api.authentication import SupabaseJWTAuthentication, SupabaseUser, TokenRefused

from .conftest import JWT_SECRET, OTHER_SECRET, claims_for

factory = APIRequestFactory()


class Probe(APIView):
    """A view with the project's default authentication, permissions and exception handler."""

    def get(self, request):
        return Response({"user_id": str(request.user.id), "email": request.user.email})


probe = Probe.as_view()


def call(header: str | bytes | None):
    kwargs = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = probe(factory.get("/probe/", **kwargs))
    response.render()
    return response


def authenticate(header: str | bytes):
    request = factory.get("/probe/", HTTP_AUTHORIZATION=header)
    return SupabaseJWTAuthentication().authenticate(request)


def refusal_code(token: str) -> str:
    with pytest.raises(TokenRefused) as info:
        authenticate(f"Bearer {token}")
    return info.value.get_codes()


def assert_401(response, code: str) -> dict:
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')
    body = json.loads(response.content)
    assert set(body) == {"code", "message", "details", "job_id"}
    assert body["code"] == code
    assert body["job_id"] is None
    text = response.content.decode()
    assert JWT_SECRET not in text
    assert "Traceback" not in text
    return body


def forge(header: dict, payload: dict, signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(payload).encode()), part(signature) if signature else ""]
    )


# ---------------------------------------------------------------- accepted


def test_valid_token_authenticates_as_supabase_user(mint_token):
    user_id = uuid.uuid4()
    token = mint_token(user_id)

    user, returned = authenticate(f"Bearer {token}")

    assert isinstance(user, SupabaseUser)
    assert user.id == user_id
    assert user.pk == user_id
    assert user.email == "someone@example.com"
    assert user.is_authenticated
    assert not user.is_anonymous
    assert not user.is_staff
    assert not user.is_superuser
    assert user.get_username() == str(user_id)
    assert str(user) == f"supabase:{user_id}"
    assert returned == token


def test_valid_token_through_a_view(mint_token):
    user_id = uuid.uuid4()
    response = call(f"Bearer {mint_token(user_id)}")
    assert response.status_code == 200
    assert json.loads(response.content)["user_id"] == str(user_id)


def test_scheme_is_case_insensitive(mint_token):
    user, _ = authenticate(f"bearer {mint_token()}")
    assert isinstance(user, SupabaseUser)


def test_expiry_within_leeway_is_accepted(mint_token):
    user, _ = authenticate(f"Bearer {mint_token(exp=int(time.time()) - 2)}")
    assert isinstance(user, SupabaseUser)


def test_audience_list_containing_authenticated_is_accepted(mint_token):
    user, _ = authenticate(f"Bearer {mint_token(aud=['authenticated', 'other'])}")
    assert isinstance(user, SupabaseUser)


def test_uppercase_uuid_subject_is_accepted(mint_token):
    user_id = uuid.uuid4()
    user, _ = authenticate(f"Bearer {mint_token(str(user_id).upper())}")
    assert user.id == user_id


def test_token_without_role_or_email_is_accepted(mint_token):
    user, _ = authenticate(f"Bearer {mint_token(role=..., email=...)}")
    assert user.email is None


# ---------------------------------------------------------------- not this authenticator


@pytest.mark.parametrize("header", [None, "Token abc", "Basic dXNlcjpwYXNz", "Bearerx abc"])
def test_missing_header_or_other_scheme_is_not_authenticated(jwt_secret, header):
    if header is not None:
        assert authenticate(header) is None
    body = assert_401(call(header), "NOT_AUTHENTICATED")
    assert body["message"] == "Authentication credentials were not provided."


# ---------------------------------------------------------------- refusals


def test_alg_none_is_refused(mint_token):
    token = jwt.encode(claims_for(uuid.uuid4()), None, algorithm="none")
    assert refusal_code(token) == "token_algorithm_not_allowed"
    # The same with a forged "alg": "none" header and an empty signature.
    assert refusal_code(forge({"alg": "none", "typ": "JWT"}, claims_for(uuid.uuid4()))) == (
        "token_algorithm_not_allowed"
    )


@pytest.mark.parametrize("alg", ["HS512", "HS384"])
def test_other_hmac_algorithms_are_refused_even_with_the_right_secret(mint_token, alg):
    assert refusal_code(mint_token(algorithm=alg)) == "token_algorithm_not_allowed"


def test_rs256_is_refused(mint_token):
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refusal_code(mint_token(key=private_key, algorithm="RS256")) == "token_algorithm_not_allowed"


def test_bad_signature_is_refused(mint_token):
    assert refusal_code(mint_token(key=OTHER_SECRET)) == "token_bad_signature"


def test_tampered_payload_is_refused(mint_token):
    header, _payload, signature = mint_token().split(".")
    forged = forge({"alg": "HS256", "typ": "JWT"}, claims_for(uuid.uuid4())).split(".")[1]
    assert refusal_code(f"{header}.{forged}.{signature}") == "token_bad_signature"


def test_wrong_audience_is_refused(mint_token):
    assert refusal_code(mint_token(aud="anon")) == "token_wrong_audience"


@pytest.mark.parametrize("claim", ["aud", "exp", "sub"])
def test_missing_required_claim_is_refused(mint_token, claim):
    assert refusal_code(mint_token(**{claim: ...})) == "token_missing_claim"


def test_expired_token_is_refused(mint_token):
    assert refusal_code(mint_token(exp=int(time.time()) - 3600)) == "token_expired"


def test_non_numeric_exp_is_refused(mint_token):
    assert refusal_code(mint_token(exp="tomorrow")) == "token_malformed"


def test_token_not_yet_valid_is_refused(mint_token):
    assert refusal_code(mint_token(nbf=int(time.time()) + 3600)) == "token_not_yet_valid"


@pytest.mark.parametrize(
    "subject",
    [
        "not-a-uuid",
        "",
        "12345",
        "{12345678-1234-5678-1234-567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "12345678-1234-5678-1234-567812345678\n",
    ],
)
def test_malformed_subject_is_refused(mint_token, subject):
    assert refusal_code(mint_token(subject)) == "token_bad_subject"


def test_non_string_subject_is_refused(mint_token):
    token = jwt.encode({**claims_for(uuid.uuid4()), "sub": 42}, JWT_SECRET, algorithm="HS256")
    assert refusal_code(token) == "token_bad_subject"


@pytest.mark.parametrize("role", ["anon", "service_role"])
def test_non_user_role_is_refused(mint_token, role):
    # The project's anon and service keys are JWTs signed with the same secret.
    assert refusal_code(mint_token(role=role)) == "token_wrong_role"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJhbGciOiJIUzI1NiJ9.not-base64-json.c2ln",
        "x" * 9000,
    ],
)
def test_garbage_token_is_refused(jwt_secret, token):
    assert refusal_code(token) == "token_malformed"


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer  "])
def test_malformed_bearer_header_is_refused(jwt_secret, header):
    with pytest.raises(TokenRefused) as info:
        authenticate(header)
    assert info.value.get_codes() == "token_malformed"


def test_non_ascii_token_is_refused(jwt_secret):
    with pytest.raises(TokenRefused) as info:
        authenticate("Bearer tok\u00e9n".encode("latin-1"))
    assert info.value.get_codes() == "token_malformed"


def test_issuer_is_checked_when_configured(mint_token):
    issuer = "https://example.supabase.co/auth/v1"
    with override_settings(VIDEOGEN_COMMON={"API_JWT_ISSUER": issuer}):
        user, _ = authenticate(f"Bearer {mint_token()}")
        assert isinstance(user, SupabaseUser)
        assert refusal_code(mint_token(iss="https://evil.example/auth/v1")) == "token_wrong_issuer"
        assert refusal_code(mint_token(iss=...)) == "token_missing_claim"


@pytest.mark.parametrize(
    ("overrides", "code", "word"),
    [
        ({"exp": 1}, "TOKEN_EXPIRED", "expired"),
        ({"aud": "anon"}, "TOKEN_WRONG_AUDIENCE", "not meant for this API"),
        ({"sub": "nope"}, "TOKEN_BAD_SUBJECT", "subject"),
    ],
)
def test_refusal_bodies_through_a_view(mint_token, overrides, code, word):
    token = mint_token(**overrides)
    response = call(f"Bearer {token}")
    body = assert_401(response, code)
    assert word in body["message"]
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert token not in response.content.decode()


def test_bad_signature_body_through_a_view(mint_token):
    token = mint_token(key=OTHER_SECRET)
    body = assert_401(call(f"Bearer {token}"), "TOKEN_BAD_SIGNATURE")
    assert body["message"] == "The access token's signature is invalid."
    assert OTHER_SECRET not in json.dumps(body)


def test_wrong_algorithm_body_through_a_view(mint_token):
    body = assert_401(call(f"Bearer {mint_token(algorithm='HS512')}"), "TOKEN_ALGORITHM_NOT_ALLOWED")
    assert "HS512" not in body["message"]


# ---------------------------------------------------------------- secret not configured


def test_missing_secret_and_jwks_refuses_saying_nothing_is_configured(monkeypatch, env_settings, caplog):
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    conf.reset_settings_cache()
    token = jwt.encode(claims_for(uuid.uuid4()), JWT_SECRET, algorithm="HS256")

    with caplog.at_level(logging.WARNING, logger="common.api.authentication"):
        response = call(f"Bearer {token}")

    body = assert_401(response, "TOKEN_VERIFICATION_NOT_CONFIGURED")
    assert "JWT_SECRET_KEY" not in response.content.decode()
    assert "error=" not in response["WWW-Authenticate"]
    assert "no access-token verification configured" in body["message"]
    assert "not available right now" not in body["message"]  # it is not an outage
    assert any("no token verification is configured" in r.getMessage() for r in caplog.records)


def test_invalid_environment_refuses_without_details(monkeypatch, env_settings, caplog):
    monkeypatch.setenv("JWT_SECRET_KEY", "short")  # invalid: get_settings() raises ConfigError
    conf.reset_settings_cache()
    token = jwt.encode(claims_for(uuid.uuid4()), JWT_SECRET, algorithm="HS256")

    with caplog.at_level(logging.ERROR, logger="common.api.authentication"):
        response = call(f"Bearer {token}")

    assert_401(response, "TOKEN_VERIFICATION_UNAVAILABLE")
    assert "32 characters" not in response.content.decode()


def test_secret_is_read_at_call_time(mint_token, monkeypatch):
    token = mint_token()
    assert isinstance(authenticate(f"Bearer {token}")[0], SupabaseUser)
    monkeypatch.setenv("JWT_SECRET_KEY", OTHER_SECRET)
    conf.reset_settings_cache()
    assert refusal_code(token) == "token_bad_signature"


def test_token_refused_is_an_authentication_failure():
    assert issubclass(TokenRefused, exceptions.AuthenticationFailed)
    assert TokenRefused().status_code == 401


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ({}, "token_algorithm_not_allowed"),  # no alg
        ({"alg": None}, "token_algorithm_not_allowed"),
        ({"alg": ["HS256"]}, "token_algorithm_not_allowed"),
        (["HS256"], "token_malformed"),  # not an object
        (None, "token_malformed"),
        ('{"alg": "HS256"', "token_malformed"),  # cut JSON
        ("\xff\xfe", "token_malformed"),  # not UTF-8
        ("not json", "token_malformed"),
    ],
)
def test_header_that_is_not_a_json_object_with_a_known_alg_is_refused(jwt_secret, header, code):
    raw = header.encode("latin-1") if isinstance(header, str) else json.dumps(header).encode()
    segment = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims_for(uuid.uuid4())).encode()).rstrip(b"=").decode()
    assert refusal_code(f"{segment}.{payload}.c2ln") == code
