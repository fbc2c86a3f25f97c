"""Access-token verification cost per request: the API's authenticator against PyJWT's bare ``decode``.

Run: .venv/bin/python -m bench.auth
Prints figures only (no pass/fail); each pair is measured in alternating rounds, fastest round kept.
A JWKS is served on 127.0.0.1 (tests/api/jwks_server.py) and ``SUPABASE_URL`` points at it; the
cache is warmed by one request, then every figure is measured in the same run:
``SupabaseJWTAuthentication.authenticate_token`` (routing by header, JWKS cache lookup, claim rules,
the user object) against ``jwt.decode`` of the same token with the key already in hand (the least any
verifier must do), per algorithm; then what the cache buys against fetching the JWKS per request.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
tmp = Path(tempfile.mkdtemp(prefix="videogen-bench-"))
os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
os.environ["VIDEOGEN_ENV_FILE"] = os.devnull
os.environ.setdefault("LOG_LEVEL", "ERROR")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")
os.environ.pop("SUPABASE_SERVICE_KEY", None)

import django  # noqa: E402

django.setup()

import jwt  # noqa: E402

from common import conf  # noqa: E402
from common.api.authentication import SupabaseJWTAuthentication, TokenRefused  # noqa: E402
from common.api.jwks import fetch_jwks  # noqa: E402
from tests.api.jwks_server import JWKSServer, eddsa_key, es256_key, rs256_key, supabase_claims  # noqa: E402

SECRET = "bench-legacy-jwt-secret-0123456789abcdef-0123456789"


def per_call_us(fn: Callable[[], object], seconds: float = 0.15) -> float:
    """The mean cost of ``fn`` in microseconds over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n * 1e6


def compare(baseline: Callable[[], object], candidate: Callable[[], object], rounds: int = 9) -> tuple[float, float]:
    """Both costs in alternating rounds; the fastest round of each (the machine is shared: noise only adds)."""
    baseline()
    candidate()
    base, cand = [], []
    for _ in range(rounds):
        base.append(per_call_us(baseline))
        cand.append(per_call_us(candidate))
    return min(base), min(cand)


def main() -> None:
    keys = {"ES256": es256_key(), "RS256": rs256_key(), "EdDSA": eddsa_key()}
    server = JWKSServer(*keys.values())
    os.environ["SUPABASE_URL"] = server.base_url
    os.environ["JWT_SECRET_KEY"] = SECRET
    conf.reset_settings_cache()
    issuer = f"{server.base_url}/auth/v1"
    auth = SupabaseJWTAuthentication()
    print("== access-token verification per request, warm JWKS cache (microseconds per token)")
    print(f"  {'algorithm':<10}{'PyJWT decode':>14}{'authenticator':>15}{'ratio':>9}")
    try:
        cases = [
            (alg, key.sign(supabase_claims(server.base_url, uuid.uuid4())), key.private.public_key())
            for alg, key in keys.items()
        ]
        cases.append(("HS256", jwt.encode(supabase_claims(server.base_url), SECRET, algorithm="HS256"), SECRET))
        for alg, token, key in cases:
            auth.authenticate_token(token)  # warms the JWKS cache (one fetch for all keys)

            def bare(token: str = token, key: object = key, alg: str = alg) -> object:
                return jwt.decode(token, key, algorithms=[alg], audience="authenticated", issuer=issuer)

            baseline, ours = compare(bare, lambda token=token: auth.authenticate_token(token))
            print(f"  {alg:<10}{baseline:>12.1f}  {ours:>13.1f}  {ours / baseline:>7.2f}x")
        stranger = es256_key().sign(supabase_claims(server.base_url))
        bare_es = cases[0]

        def refused() -> None:
            try:
                auth.authenticate_token(stranger)
            except TokenRefused:
                return
            raise AssertionError("an unknown kid was accepted")

        es_decode, refusal = compare(
            lambda: jwt.decode(bare_es[1], bare_es[2], algorithms=["ES256"], audience="authenticated", issuer=issuer),
            refused,
        )
        print(
            f"  unknown kid, refused within the rate limit: {refusal:.1f} us"
            f" ({refusal / es_decode:.2f}x an ES256 decode)"
        )
        fetches_before = server.fetches
        es_key = keys["ES256"]

        def uncached() -> object:
            # What the cache saves: fetching the JWKS for each request (over the loopback here; a real
            # Supabase project is a network round trip away, so this is the least it would cost).
            key = fetch_jwks(server.jwks_url, timeout=2).keys[es_key.kid]
            return jwt.decode(bare_es[1], key, algorithms=["ES256"], audience="authenticated", issuer=issuer)

        cached, without = compare(lambda: auth.authenticate_token(bare_es[1]), uncached, rounds=5)
        print(
            f"  ES256 with a JWKS fetch per request (no cache, loopback): {without:.1f} us;"
            f" the cache makes a request {without / cached:.1f}x faster"
        )
        print(
            f"  JWKS fetches by the authenticator during the whole run: {fetches_before}"
            " (at most one per API_JWKS_MIN_REFRESH_SECONDS, for the unknown kid)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
