"""Supabase signing keys: tokens verified against a JWKS served by a real HTTP server on 127.0.0.1.

Every JWKS here is fetched over the loopback from :class:`~tests.api.jwks_server.JWKSServer`, whose
request counter is what "no fetch per request" and "at most one refresh" are asserted on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.test import override_settings

from common import conf
from common.api.authentication import SupabaseUser, TokenRefused, token_systems
from common.api.jwks import SigningKeysUnavailable, fetch_jwks, get_jwks_cache, parse_jwks

from .conftest import JWT_SECRET
from .jwks_server import JWKSServer, SilentServer, eddsa_key, es256_key, rs256_key, supabase_claims
from .test_authentication import assert_401, authenticate, call, refusal_code

# Each test sees fetches as they happen: nothing is rate-limited unless the test says so.
EAGER = {"API_JWKS_MIN_REFRESH_SECONDS": 0}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---------------------------------------------------------------- accepted


def test_es256_token_of_a_current_supabase_project_is_accepted(supabase_project, es_key):
    user_id = uuid.uuid4()
    token = es_key.sign(supabase_claims(supabase_project.base_url, user_id))
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": es_key.kid, "typ": "JWT"}

    response = call(f"Bearer {token}")

    assert response.status_code == 200
    assert json.loads(response.content)["user_id"] == str(user_id)
    assert supabase_project.fetches == 1
    assert supabase_project.paths == ["/auth/v1/.well-known/jwks.json"]


def test_rs256_token_is_accepted(supabase_project, rs_key):
    user_id = uuid.uuid4()
    user, _ = authenticate(f"Bearer {rs_key.sign(supabase_claims(supabase_project.base_url, user_id))}")
    assert isinstance(user, SupabaseUser)
    assert user.id == user_id
    assert user.email == "someone@example.com"


def test_eddsa_token_is_accepted(supabase_project, es_key):
    ed_key = eddsa_key()
    supabase_project.publish(es_key, ed_key)
    user, _ = authenticate(f"Bearer {ed_key.sign(supabase_claims(supabase_project.base_url))}")
    assert isinstance(user, SupabaseUser)


def test_jwks_user_is_scoped_like_a_legacy_user(supabase_project, es_key, jwt_secret, monkeypatch):
    # Both systems at once (a project in migration): the same user, whichever system signed the token.
    monkeypatch.setenv("SUPABASE_URL", supabase_project.base_url)
    conf.reset_settings_cache()
    user_id = uuid.uuid4()
    claims = supabase_claims(supabase_project.base_url, user_id)
    from_jwks, _ = authenticate(f"Bearer {es_key.sign(claims)}")
    from_secret, _ = authenticate(f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}")
    assert from_jwks == from_secret == SupabaseUser(id=user_id, email="someone@example.com")


def test_legacy_hs256_token_still_works_beside_the_jwks(supabase_project, jwt_secret, monkeypatch):
    monkeypatch.setenv("SUPABASE_URL", supabase_project.base_url)
    conf.reset_settings_cache()
    # Supabase's HS256 tokens may carry a kid too; it never sends them to the JWKS.
    token = jwt.encode(
        supabase_claims(supabase_project.base_url), JWT_SECRET, algorithm="HS256", headers={"kid": "legacy"}
    )
    user, _ = authenticate(f"Bearer {token}")
    assert isinstance(user, SupabaseUser)
    assert supabase_project.fetches == 0  # the legacy route never touches the JWKS


def test_no_fetch_per_request_and_at_most_one_for_100_requests(supabase_project, es_key, rs_key):
    base = supabase_project.base_url
    for i in range(100):
        key = es_key if i % 2 else rs_key
        assert call(f"Bearer {key.sign(supabase_claims(base))}").status_code == 200
    assert supabase_project.fetches == 1


def test_a_cold_cache_is_fetched_once_by_concurrent_requests(supabase_project, es_key):
    supabase_project.delay = 0.2  # requests pile up behind the first fetch
    tokens = [es_key.sign(supabase_claims(supabase_project.base_url)) for _ in range(100)]
    codes: list[object] = []

    def worker(chunk: list[str]) -> None:
        for token in chunk:
            response = call(f"Bearer {token}")
            codes.append(response.status_code if response.status_code == 200 else json.loads(response.content))

    threads = [threading.Thread(target=worker, args=(tokens[i::10],)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert codes == [200] * 100
    assert supabase_project.fetches == 1


# ---------------------------------------------------------------- refused


def test_token_signed_by_another_key_with_a_known_kid_is_refused(supabase_project, es_key):
    impostor = es256_key()
    impostor.kid = es_key.kid
    token = impostor.sign(supabase_claims(supabase_project.base_url))
    body = assert_401(call(f"Bearer {token}"), "TOKEN_BAD_SIGNATURE")
    assert body["message"] == "The access token's signature is invalid."


def test_unknown_kid_triggers_one_refresh_then_401(supabase_project, es_key):
    base = supabase_project.base_url
    with override_settings(VIDEOGEN_COMMON=EAGER):
        authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
        assert supabase_project.fetches == 1
        stranger = es256_key()
        body = assert_401(call(f"Bearer {stranger.sign(supabase_claims(base))}"), "TOKEN_UNKNOWN_KEY")
    assert supabase_project.fetches == 2  # exactly one refresh for the unknown kid
    assert body["message"] == "The access token was signed with a key this API does not know."
    assert stranger.kid not in json.dumps(body)


def test_a_flood_of_unknown_kids_is_refused_without_refetching(supabase_project, es_key):
    base = supabase_project.base_url
    authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
    for _ in range(100):
        assert refusal_code(es256_key().sign(supabase_claims(base))) == "token_unknown_key"
    # The first fetch started the rate limit (API_JWKS_MIN_REFRESH_SECONDS, 10 s): no fetch for any of them.
    assert supabase_project.fetches == 1


def test_unknown_kid_on_a_cold_cache_fetches_once(supabase_project, es_key):
    base = supabase_project.base_url
    for _ in range(20):
        assert refusal_code(es256_key().sign(supabase_claims(base))) == "token_unknown_key"
    assert supabase_project.fetches == 1


def test_missing_or_odd_kid_is_refused(supabase_project, es_key):
    base = supabase_project.base_url
    assert refusal_code(es_key.sign(supabase_claims(base), kid=...)) == "token_unknown_key"
    assert refusal_code(es_key.sign(supabase_claims(base), kid="")) == "token_unknown_key"
    assert refusal_code(es_key.sign(supabase_claims(base), kid="k" * 300)) == "token_unknown_key"
    # A kid that is not a string (PyJWT will not sign one): the header is forged, then signed by the key.
    header = b64(json.dumps({"alg": "ES256", "kid": 42, "typ": "JWT"}).encode())
    forged = f"{header}.{es_key.sign(supabase_claims(base)).split('.', 1)[1]}"
    assert refusal_code(forged) == "token_unknown_key"


def test_kid_of_a_key_with_another_algorithm_is_refused(supabase_project, es_key, rs_key):
    # An ES256 token naming the RS256 key's kid never gets verified with that key.
    token = es_key.sign(supabase_claims(supabase_project.base_url), kid=rs_key.kid)
    assert refusal_code(token) == "token_algorithm_not_allowed"


def hs256_signed_with(key_bytes: bytes, header: dict, claims: dict) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key_bytes, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize("form", ["pem", "jwk"])
def test_hs256_signed_with_the_public_key_is_refused(supabase_project, es_key, form):
    public = es_key.private.public_key()
    if form == "pem":
        secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        secret = json.dumps(es_key.jwk()).encode()
    header = {"alg": "HS256", "kid": es_key.kid, "typ": "JWT"}
    token = hs256_signed_with(secret, header, supabase_claims(supabase_project.base_url))
    # JWKS only: HS256 has no verifier at all.
    assert refusal_code(token) == "token_algorithm_not_allowed"


def test_hs256_signed_with_the_public_key_is_refused_beside_a_secret(supabase_project, es_key, jwt_secret, monkeypatch):
    monkeypatch.setenv("SUPABASE_URL", supabase_project.base_url)
    conf.reset_settings_cache()
    public = es_key.private.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = hs256_signed_with(pem, {"alg": "HS256", "kid": es_key.kid}, supabase_claims(supabase_project.base_url))
    # HS256 meets only the legacy secret, which did not sign it.
    assert refusal_code(token) == "token_bad_signature"


@pytest.mark.parametrize("alg", ["none", "HS512", "PS256", "ES384", "RS512", "RSA-OAEP", ""])
def test_other_algorithms_are_refused_whatever_the_kid(supabase_project, es_key, alg):
    header = {"alg": alg, "kid": es_key.kid, "typ": "JWT"}
    claims = supabase_claims(supabase_project.base_url)
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(b'sig')}"
    assert refusal_code(token) == "token_algorithm_not_allowed"
    assert supabase_project.fetches == 0


def test_wrong_issuer_is_refused(supabase_project, es_key):
    token = es_key.sign(supabase_claims(supabase_project.base_url, iss="https://other-project.supabase.co/auth/v1"))
    assert refusal_code(token) == "token_wrong_issuer"
    assert refusal_code(es_key.sign(supabase_claims(supabase_project.base_url, iss=...))) == "token_missing_claim"


def test_configured_issuer_wins_over_the_derived_one(supabase_project, es_key):
    base = supabase_project.base_url
    with override_settings(VIDEOGEN_COMMON={"API_JWT_ISSUER": "https://auth.example.com/auth/v1"}):
        assert refusal_code(es_key.sign(supabase_claims(base))) == "token_wrong_issuer"
        user, _ = authenticate(f"Bearer {es_key.sign(supabase_claims(base, iss='https://auth.example.com/auth/v1'))}")
        assert isinstance(user, SupabaseUser)


def test_legacy_token_issuer_is_checked_against_supabase_url(supabase_project, jwt_secret, monkeypatch):
    monkeypatch.setenv("SUPABASE_URL", supabase_project.base_url)
    conf.reset_settings_cache()
    claims = supabase_claims(supabase_project.base_url, iss="https://evil.example/auth/v1")
    assert refusal_code(jwt.encode(claims, JWT_SECRET, algorithm="HS256")) == "token_wrong_issuer"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"exp": 1}, "token_expired"),
        ({"aud": "anon"}, "token_wrong_audience"),
        ({"role": "service_role"}, "token_wrong_role"),
        ({"sub": "not-a-uuid"}, "token_bad_subject"),
        ({"nbf": int(time.time()) + 3600}, "token_not_yet_valid"),
        ({"exp": ...}, "token_missing_claim"),
    ],
)
def test_claim_rules_are_those_of_legacy_tokens(supabase_project, es_key, overrides, code):
    assert refusal_code(es_key.sign(supabase_claims(supabase_project.base_url, **overrides))) == code


def test_expired_token_body(supabase_project, es_key):
    token = es_key.sign(supabase_claims(supabase_project.base_url, exp=int(time.time()) - 3600))
    response = call(f"Bearer {token}")
    assert_401(response, "TOKEN_EXPIRED")
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'


def test_asymmetric_token_without_a_jwks_is_refused(jwt_secret):
    key = es256_key()
    assert refusal_code(key.sign(supabase_claims("https://example.supabase.co"))) == "token_algorithm_not_allowed"


def test_jwks_can_be_switched_off(supabase_project, es_key, jwt_secret, monkeypatch):
    monkeypatch.setenv("SUPABASE_URL", supabase_project.base_url)
    conf.reset_settings_cache()
    with override_settings(VIDEOGEN_COMMON={"API_JWKS_URL": ""}):
        assert token_systems().jwks_url is None
        assert refusal_code(es_key.sign(supabase_claims(supabase_project.base_url))) == "token_algorithm_not_allowed"
    assert supabase_project.fetches == 0


def test_jwks_url_setting_overrides_the_derived_one(supabase_project, es_key):
    other = JWKSServer(es_key)
    try:
        with override_settings(VIDEOGEN_COMMON={"API_JWKS_URL": other.base_url + "/custom/keys.json"}):
            user, _ = authenticate(f"Bearer {es_key.sign(supabase_claims(supabase_project.base_url))}")
        assert isinstance(user, SupabaseUser)
        assert other.paths == ["/custom/keys.json"]
        assert supabase_project.fetches == 0
    finally:
        other.stop()


# ---------------------------------------------------------------- rotation


def test_rotation_is_picked_up_without_a_restart(supabase_project, es_key):
    base = supabase_project.base_url
    new_key = rs256_key()
    with override_settings(VIDEOGEN_COMMON=EAGER):
        authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
        # Supabase rotates: the new key signs, the previous one stays published until revoked.
        supabase_project.publish(es_key, new_key)
        user, _ = authenticate(f"Bearer {new_key.sign(supabase_claims(base))}")
        assert isinstance(user, SupabaseUser)
        assert supabase_project.fetches == 2
        # Tokens signed by the previous key keep working while it is published.
        assert isinstance(authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")[0], SupabaseUser)
    assert supabase_project.fetches == 2


def test_revoked_key_is_refused_once_the_cache_refreshes(supabase_project, es_key):
    base = supabase_project.base_url
    new_key = es256_key()
    authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
    supabase_project.publish(new_key)  # es_key revoked
    with override_settings(VIDEOGEN_COMMON={**EAGER, "API_JWKS_CACHE_SECONDS": 0}):
        assert refusal_code(es_key.sign(supabase_claims(base))) == "token_unknown_key"
        assert isinstance(authenticate(f"Bearer {new_key.sign(supabase_claims(base))}")[0], SupabaseUser)


def test_keys_are_refreshed_when_the_cache_period_ends(supabase_project, es_key):
    base = supabase_project.base_url
    authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
    authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
    assert supabase_project.fetches == 1
    with override_settings(VIDEOGEN_COMMON={**EAGER, "API_JWKS_CACHE_SECONDS": 0}):
        authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
    assert supabase_project.fetches == 2


# ---------------------------------------------------------------- JWKS endpoint down or slow


def test_jwks_down_with_a_warm_cache_keeps_accepting_cached_keys(supabase_project, es_key):
    base = supabase_project.base_url
    authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
    supabase_project.stop()  # the port is closed now
    with override_settings(VIDEOGEN_COMMON={**EAGER, "API_JWKS_CACHE_SECONDS": 0}):
        # Stale and unreachable: the refresh fails, the cached key still verifies.
        user, _ = authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
        assert isinstance(user, SupabaseUser)
        body = assert_401(call(f"Bearer {es256_key().sign(supabase_claims(base))}"), "TOKEN_KEYS_UNAVAILABLE")
    assert body["message"] == "The signing keys needed to verify the access token cannot be fetched right now."
    assert get_jwks_cache(supabase_project.jwks_url).fetch_count == 3


def test_jwks_down_with_a_cold_cache_refuses_without_waiting_again(monkeypatch, env_settings, es_key, caplog):
    silent = SilentServer()  # accepts the connection, never answers
    try:
        monkeypatch.setenv("SUPABASE_URL", silent.base_url)
        monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
        conf.reset_settings_cache()
        token = es_key.sign(supabase_claims(silent.base_url))
        with override_settings(VIDEOGEN_COMMON={"API_JWKS_TIMEOUT": 0.3}):
            response = call(f"Bearer {token}")
            # Within the rate limit, later requests are refused at once: no new connection to wait on.
            for _ in range(50):
                assert refusal_code(token) == "token_keys_unavailable"
        body = assert_401(response, "TOKEN_KEYS_UNAVAILABLE")
        assert "error=" not in response["WWW-Authenticate"]  # nothing is wrong with the token itself
        assert "127.0.0.1" not in json.dumps(body)
        assert len(silent.connections) == 1
        assert any("JWKS fetch failed" in record.getMessage() for record in caplog.records)
    finally:
        silent.stop()


def test_a_slow_refresh_does_not_hold_up_requests_with_cached_keys(supabase_project, es_key):
    base = supabase_project.base_url
    authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
    cache = get_jwks_cache(supabase_project.jwks_url)
    results: list[object] = []
    # Another request holds the lock, as a fetch in progress does; a stale cached key must not wait for it.
    with override_settings(VIDEOGEN_COMMON={**EAGER, "API_JWKS_CACHE_SECONDS": 0}), cache._lock:
        worker = threading.Thread(
            target=lambda: results.append(authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")[0])
        )
        worker.start()
        worker.join(timeout=10)
        alive = worker.is_alive()
    assert not alive
    assert isinstance(results[0], SupabaseUser)
    assert supabase_project.fetches == 1


def test_an_invalid_jwks_document_keeps_the_cached_keys(supabase_project, es_key):
    base = supabase_project.base_url
    authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")
    supabase_project.document = b"<html>maintenance</html>"
    with override_settings(VIDEOGEN_COMMON={**EAGER, "API_JWKS_CACHE_SECONDS": 0}):
        assert isinstance(authenticate(f"Bearer {es_key.sign(supabase_claims(base))}")[0], SupabaseUser)
        assert refusal_code(es256_key().sign(supabase_claims(base))) == "token_keys_unavailable"


# ---------------------------------------------------------------- nothing configured


def test_no_verification_configured_says_so(monkeypatch, env_settings, caplog):
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    conf.reset_settings_cache()
    token = es256_key().sign(supabase_claims("https://example.supabase.co"))

    response = call(f"Bearer {token}")

    body = assert_401(response, "TOKEN_VERIFICATION_NOT_CONFIGURED")
    assert body["message"] == (
        "This API has no access-token verification configured, so bearer tokens cannot be accepted."
    )
    assert "error=" not in response["WWW-Authenticate"]
    assert any("no token verification is configured" in r.getMessage() for r in caplog.records)
    with pytest.raises(TokenRefused):
        authenticate(f"Bearer {jwt.encode({'sub': 'x'}, JWT_SECRET, algorithm='HS256')}")


# ---------------------------------------------------------------- the JWKS document and its fetch


def test_only_public_asymmetric_signing_keys_are_kept(es_key, rs_key):
    short_rsa = rs256_key(bits=1024)
    entries = [
        es_key.jwk(),
        rs_key.jwk(),
        {**es_key.jwk(), "kid": "dup"},
        {**rs_key.jwk(), "kid": "dup"},  # a duplicate kid keeps its first key
        {"kty": "oct", "kid": "secret", "alg": "HS256", "k": b64(b"a" * 32)},  # a shared secret: never
        {**es_key.jwk(), "kid": "private", "d": b64(b"x" * 32)},  # a private key published by mistake
        {**es_key.jwk(), "kid": "enc", "use": "enc"},
        {**es_key.jwk(), "kid": "sign-only", "key_ops": ["sign"]},
        {**es_key.jwk(), "kid": "es384", "alg": "ES384"},
        {**es_key.jwk(), "kid": "mismatch", "alg": "RS256"},  # an EC key claiming RS256
        {**short_rsa.jwk(), "kid": "short"},
        {**es_key.jwk(), "kid": ""},
        {**es_key.jwk(), "kid": 7},
        {k: v for k, v in es_key.jwk().items() if k != "kid"},
        {**es_key.jwk(), "x": "not-base64!"},
        "not an object",
        None,
    ]
    keyset = parse_jwks({"keys": entries})
    assert sorted(keyset.keys) == sorted([es_key.kid, rs_key.kid, "dup"])
    assert keyset.keys["dup"].algorithm_name == "ES256"
    assert keyset.skipped == len(entries) - 3
    assert keyset.algorithms == ["ES256", "RS256"]


@pytest.mark.parametrize("document", [[], {}, {"keys": {}}, {"keys": "x"}, "keys", None, 3])
def test_a_document_that_is_not_a_jwks_is_refused(document):
    with pytest.raises(SigningKeysUnavailable):
        parse_jwks(document)


def test_an_empty_jwks_is_valid_but_knows_no_key(supabase_project, es_key):
    supabase_project.document = {"keys": []}  # a project that still signs with the legacy secret only
    assert refusal_code(es_key.sign(supabase_claims(supabase_project.base_url))) == "token_unknown_key"


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ({"status": 404}, "HTTP 404"),
        ({"status": 500}, "HTTP 500"),
        ({"document": b"not json"}, "did not answer JSON"),
        ({"document": b"\xff\xfe"}, "did not answer JSON"),
        ({"document": {"keys": [{"kty": "EC"}] * 6000}}, "larger than"),
        ({"location": "http://127.0.0.1:9/elsewhere.json"}, "HTTP 302"),  # redirects are not followed
    ],
)
def test_fetch_failures_are_signing_keys_unavailable(jwks_server, setup, fragment):
    for name, value in setup.items():
        setattr(jwks_server, name, value)
    with pytest.raises(SigningKeysUnavailable, match=fragment):
        fetch_jwks(jwks_server.jwks_url, timeout=2)


def test_a_fetch_is_bounded_in_total_even_when_bytes_keep_coming(jwks_server):
    jwks_server.drip = 0.05  # every read returns in time, the whole body would take minutes
    with pytest.raises(SigningKeysUnavailable, match=r"timeout|timed out"):
        fetch_jwks(jwks_server.jwks_url, timeout=0.5)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/jwks.json", "file:///etc/passwd", "http:///nohost"])
def test_only_http_urls_are_fetched(url):
    with pytest.raises(SigningKeysUnavailable, match="not an http"):
        fetch_jwks(url, timeout=1)


def test_refresh_ignores_the_rate_limit_and_keeps_keys_on_failure(jwks_server, es_key):
    cache = get_jwks_cache(jwks_server.jwks_url)
    assert cache.keys == {}
    keyset = cache.refresh()
    assert es_key.kid in keyset.keys
    assert cache.refresh().keys.keys() == keyset.keys.keys()
    jwks_server.status = 503
    with pytest.raises(SigningKeysUnavailable):
        cache.refresh()
    assert es_key.kid in cache.keys
    assert jwks_server.fetches == 3
