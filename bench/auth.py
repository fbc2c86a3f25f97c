"""Access-token verification cost per request: the API's authenticator against PyJWT's bare ``decode``.

Run: .venv/bin/python -m bench.auth [--rounds 7] [--seconds 0.15]
Prints figures only (no pass/fail): per case the median µs of interleaved rounds with their min-max, and the
speed ratio to the baseline of the same rounds (baseline time / case time; above 1.00x: faster).
A JWKS is served on 127.0.0.1 (tests/api/jwks_server.py) and ``SUPABASE_URL`` points at it; the
cache is warmed by one request, then every figure is measured in the same run:
``SupabaseJWTAuthentication.authenticate_token`` (routing by header, JWKS cache lookup, claim rules,
the user object) against ``jwt.decode`` of the same token with the key already in hand (the least any
verifier must do), per algorithm; then what the cache buys against fetching the JWKS per request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
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

from bench._compare import compare, print_table  # noqa: E402
from common import conf  # noqa: E402
from common.api.authentication import SupabaseJWTAuthentication, TokenRefused  # noqa: E402
from common.api.jwks import fetch_jwks  # noqa: E402
from tests.api.jwks_server import JWKSServer, eddsa_key, es256_key, rs256_key, supabase_claims  # noqa: E402

SECRET = "bench-legacy-jwt-secret-0123456789abcdef-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.15, help="length of one round of one case")
    args = parser.parse_args()
    keys = {"ES256": es256_key(), "RS256": rs256_key(), "EdDSA": eddsa_key()}
    server = JWKSServer(*keys.values())
    os.environ["SUPABASE_URL"] = server.base_url
    os.environ["JWT_SECRET_KEY"] = SECRET
    conf.reset_settings_cache()
    issuer = f"{server.base_url}/auth/v1"
    auth = SupabaseJWTAuthentication()
    timing = {"rounds": args.rounds, "seconds": args.seconds}
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

            results = compare(
                {"PyJWT decode": bare, "authenticator": lambda token=token: auth.authenticate_token(token)},
                baseline="PyJWT decode",
                **timing,
            )
            print_table(f"{alg} access token per request, warm JWKS cache", results, baseline="PyJWT decode")
        stranger = es256_key().sign(supabase_claims(server.base_url))
        bare_es = cases[0]

        def refused() -> None:
            try:
                auth.authenticate_token(stranger)
            except TokenRefused:
                return
            raise AssertionError("an unknown kid was accepted")

        def es_decode() -> object:
            return jwt.decode(bare_es[1], bare_es[2], algorithms=["ES256"], audience="authenticated", issuer=issuer)

        results = compare({"ES256 decode": es_decode, "refusal": refused}, baseline="ES256 decode", **timing)
        print_table("unknown kid, refused within the rate limit", results, baseline="ES256 decode")
        fetches_before = server.fetches
        es_key = keys["ES256"]

        def uncached() -> object:
            # What the cache saves: fetching the JWKS for each request (over the loopback here; a real
            # Supabase project is a network round trip away, so this is the least it would cost).
            key = fetch_jwks(server.jwks_url, timeout=2).keys[es_key.kid]
            return jwt.decode(bare_es[1], key, algorithms=["ES256"], audience="authenticated", issuer=issuer)

        results = compare(
            {"JWKS fetch per request": uncached, "authenticator (cached)": lambda: auth.authenticate_token(bare_es[1])},
            baseline="JWKS fetch per request",
            **timing,
        )
        print_table(
            "ES256: what the JWKS cache buys (no cache: a loopback fetch per request)",
            results,
            baseline="JWKS fetch per request",
        )
        print(
            f"  JWKS fetches by the authenticator during the whole run: {fetches_before}"
            " (at most one per API_JWKS_MIN_REFRESH_SECONDS, for the unknown kid)"
        )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
