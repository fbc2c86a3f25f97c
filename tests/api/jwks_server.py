"""A stand-in for Supabase Auth's JWKS endpoint: a real HTTP server on 127.0.0.1, and keys made with ``cryptography``.

What it reproduces of the real endpoint (``GET <SUPABASE_URL>/auth/v1/.well-known/jwks.json``):
the path; a ``200`` JSON body ``{"keys": [...]}`` whose entries carry ``kid``, ``alg``, ``kty``,
``use: "sig"``, ``key_ops: ["verify"]`` and ``ext: true`` beside the public members (``crv``/``x``/``y``
for ES256, ``n``/``e`` for RS256, ``crv``/``x`` for Ed25519); ``Cache-Control: public, max-age=600``;
only public keys (a project's legacy or shared secret is never published). Tokens are minted as
Supabase Auth mints them: header ``{"alg", "kid", "typ": "JWT"}``, claims ``iss`` = ``<SUPABASE_URL>/auth/v1``,
``aud`` = ``authenticated``, ``role``, ``sub``, ``email``, ``session_id``, ``aal``, ``is_anonymous``.

What a test can make it do instead: answer another document, another status, a redirect, slowly,
never (a socket that accepts and stays silent), or nothing at all (stopped: the port is closed).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

JWKS_PATH = "/auth/v1/.well-known/jwks.json"


@dataclass
class SigningKey:
    """A private key, its ``kid`` and algorithm; :meth:`jwk` is its public JWK as Supabase publishes it."""

    alg: str
    private: Any
    kid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWKS entry."""
        public = self.private.public_key()
        if self.alg == "ES256":
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        elif self.alg == "RS256":
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"], "ext": True}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A token signed by this key, with ``kid`` in the header (override or drop it with ``kid=...``)."""
        headers: dict[str, Any] = {"kid": self.kid, "typ": "JWT", **header}
        if headers.get("kid") is ...:
            del headers["kid"]
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def es256_key() -> SigningKey:
    """A new ECC P-256 key (Supabase's default)."""
    return SigningKey("ES256", ec.generate_private_key(ec.SECP256R1()))


def rs256_key(bits: int = 2048) -> SigningKey:
    """A new RSA key."""
    return SigningKey("RS256", rsa.generate_private_key(public_exponent=65537, key_size=bits))


def eddsa_key() -> SigningKey:
    """A new Ed25519 key."""
    return SigningKey("EdDSA", ed25519.Ed25519PrivateKey.generate())


class JWKSServer:
    """A JWKS endpoint on 127.0.0.1 that counts the requests it receives."""

    def __init__(self, *keys: SigningKey) -> None:
        self.document: Any = {"keys": [key.jwk() for key in keys]}
        self.status = 200
        self.delay = 0.0  # seconds before answering
        self.drip: float | None = None  # when set, the body is sent one byte every `drip` seconds
        self.location: str | None = None  # when set, answer 302 to this URL
        self.fetches = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What SUPABASE_URL would be for this project."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        """The JWKS URL derived from :attr:`base_url`."""
        return self.base_url + JWKS_PATH

    def publish(self, *keys: SigningKey) -> None:
        """Serve exactly these keys from now on (rotation, revocation)."""
        self.document = {"keys": [key.jwk() for key in keys]}

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.fetches += 1
                    server.paths.append(self.path)
                if server.delay:
                    time.sleep(server.delay)
                if server.location:
                    self.send_response(302)
                    self.send_header("Location", server.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                document = server.document
                body = document if isinstance(document, bytes) else json.dumps(document).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drip is None:
                    self.wfile.write(body)
                    return
                for byte in body:
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(server.drip)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class SilentServer:
    """Accepts TCP connections and never answers: a JWKS endpoint that hangs."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.connections: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        """What SUPABASE_URL would be."""
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections.append(conn)

    def stop(self) -> None:
        """Close everything."""
        self._stopped.set()
        self._thread.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self._sock.close()


def supabase_claims(base_url: str, user_id: uuid.UUID | str | None = None, **overrides: Any) -> dict[str, Any]:
    """Claims as Supabase Auth puts them in a user's access token; ``...`` removes a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"{base_url}/auth/v1",
        "sub": str(user_id or uuid.uuid4()),
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "email": "someone@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"email_verified": True},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    for key, value in overrides.items():
        if value is ...:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims
