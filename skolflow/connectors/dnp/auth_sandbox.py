"""A sandbox of Skolverket's authorisation server: tokens over mTLS, short-lived, checked by the DNP sandbox.

Skolverket's server (``POST https://nutid-auth.sunet.se/transaction``) trusts only certificates from the CAs it
names, takes the request only from a client that presents one in the TLS handshake, and issues a JWT the
Provisioning API accepts until it expires. This sandbox does the same on this machine, with a CA made at start-up
(:class:`SandboxCA`, EC P-256, valid for a day). It is served over HTTPS by uvicorn with ``CERT_REQUIRED`` and that
CA as its only trust anchor (:class:`SandboxPki`, :class:`skolflow.sandbox.runner.MutualTls`), so a certificate
from another CA is refused in the handshake, before any request (asyncio closes the connection without sending
TLS's alert: the client sees it closed without an answer). ``POST /transaction`` checks the request as Skolverket
documents it (``provisioning-api`` access with locations, the ``bearer`` flag, ``client.key.proof == "mtls"``,
``cert#S256`` equal to the presented certificate's) and answers ``{"access_token": {"value", "access",
"expires_in", "flags"}}``, or an error object (GNAP's shape, RFC 9635: ``{"error": {"code", "description"}}``).

Tokens are HS256 JWTs signed by :class:`TokenIssuer`, which the DNP sandbox is given to check them: past ``exp``
(by the issuer's clock, which a test may move) or issued before ``DELETE /_sandbox/tokens`` they are refused with
403, code 5002, as DNP refuses an expired token. Admin endpoints (behind the same client certificate):
``GET /_sandbox/state`` (tokens issued, requests refused), ``DELETE /_sandbox/tokens`` (expire every token issued).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from skolflow.connectors.dnp.auth import ACCESS_TYPE, certificate_thumbprint
from skolflow.sandbox.faults import ADMIN_PREFIX

TOKEN_LIFETIME_SECONDS = 300  # short, so that a longer demo or sandbox session sees a token renewed
ISSUER = "https://nutid-auth.sandbox.skolflow.invalid"


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key, both PEM (the key unencrypted: it lives in a sandbox)."""

    certificate: bytes
    key: bytes


def _name(common_name: str, organization_id: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization_id:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, organization_id))
    return x509.Name(parts)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


class SandboxCA:
    """A certificate authority made now, for one sandbox session: it issues the server's and the clients' certificates.

    EC keys, because making one takes microseconds, so the demo starts as fast as before.
    """

    def __init__(self, name: str = "skolflow sandbox CA (not Skolverket's)"):
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.name = _name(name)
        self.certificate = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256()))

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)

    def issue(self, common_name: str, *, hosts: tuple[str, ...] = (), organization_id: str | None = None) -> Credential:
        """A leaf certificate: a server's for ``hosts`` (DNS names or IP addresses), else a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if hosts else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder().subject_name(_name(common_name, organization_id)).issuer_name(self.name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return Credential(certificate.public_bytes(Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class SandboxPki:
    """The files of one sandbox session in ``folder``: the CA, the server's credential and the huvudman's.

    ``client_certificate``/``client_key`` are what a user configures as ``SKOLFLOW_DNP_CERTIFICATE`` and
    ``SKOLFLOW_DNP_PRIVATE_KEY``; ``ca`` is what the client trusts for the server (``SKOLFLOW_DNP_AUTH_CA``).
    """

    folder: Path
    ca: Path
    server_certificate: Path
    server_key: Path
    client_certificate: Path
    client_key: Path

    @classmethod
    def create(cls, folder: Path, host: str = "127.0.0.1", organization_id: str = "SE2120000142",
               ca: SandboxCA | None = None) -> SandboxPki:
        ca = ca or SandboxCA()
        server = ca.issue("nutid-auth sandbox", hosts=(host, "localhost"))
        client = ca.issue("skolflow sandbox huvudman", organization_id=organization_id)
        files = {"ca": ca.certificate_pem, "server_certificate": server.certificate, "server_key": server.key,
                 "client_certificate": client.certificate, "client_key": client.key}
        paths = {name: write_private(folder / f"{name.replace('_', '-')}.pem", content)
                 for name, content in files.items()}
        return cls(folder, **paths)


def write_private(path: Path, content: bytes) -> Path:
    """A file only this user may read (a key, even a sandbox's, is not left world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    return path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class TokenIssuer:
    """Signs the sandbox's tokens and checks them for the DNP sandbox; ``clock`` is wall time unless a test moves it."""

    lifetime_seconds: int = TOKEN_LIFETIME_SECONDS
    clock: Callable[[], float] = time.time
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    generation: int = 0
    issued: int = 0

    def _sign(self, signing_input: bytes) -> str:
        return _b64(hmac.new(self.key, signing_input, hashlib.sha256).digest())

    def issue(self, organization_id: str, access: list[dict[str, Any]]) -> str:
        now = int(self.clock())
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"iss": ISSUER, "aud": "nutid", "iat": now, "nbf": now, "exp": now + self.lifetime_seconds,
                  "organization_id": organization_id, "requested_access": access, "gen": self.generation,
                  "version": 1}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        self.issued += 1
        return f"{header}.{payload}.{self._sign(f'{header}.{payload}'.encode())}"

    def claims(self, token: str, access_type: str = ACCESS_TYPE) -> Mapping[str, Any] | None:
        """The token's claims if this issuer signed it, it has not expired and it opens ``access_type``; else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        header, payload, signature = parts
        if not hmac.compare_digest(signature.encode(), self._sign(f"{header}.{payload}".encode()).encode()):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(claims, dict) or claims.get("gen") != self.generation:
            return None
        if not isinstance(claims.get("exp"), int) or self.clock() >= claims["exp"]:
            return None
        if not any(isinstance(a, dict) and a.get("type") == access_type for a in claims.get("requested_access") or []):
            return None
        return claims

    def valid(self, token: str) -> bool:
        return self.claims(token) is not None

    def expire_all(self) -> None:
        """Every token issued so far is refused from now on, as if each had expired."""
        self.generation += 1


def _error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "description": description}}, status)


def _presented(request: Request) -> bytes | None:
    """The client certificate of this connection (the ASGI TLS extension, set by the sandbox runner), as PEM."""
    chain = (request.scope.get("extensions") or {}).get("tls", {}).get("client_cert_chain") or []
    return chain[0].encode() if chain else None


def _organization_id(certificate_pem: bytes) -> str:
    subject = x509.load_pem_x509_certificate(certificate_pem).subject
    found = subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    return str(found[0].value) if found else ""


def create_app(issuer: TokenIssuer) -> FastAPI:
    """The authorisation server's ``/transaction``; serve it with mutual TLS (it trusts the TLS layer's verdict)."""
    app = FastAPI(title="Skolverket authorisation server sandbox (nutid-auth)",
                  description="Tokens for DNP's Provisioning API over mTLS, for tests and demos.")
    refused: dict[str, int] = {"requests": 0}

    def refuse(status: int, code: str, description: str) -> JSONResponse:
        refused["requests"] += 1
        return _error(status, code, description)

    @app.post("/transaction")
    async def transaction(request: Request) -> JSONResponse:
        presented = _presented(request)
        if presented is None:
            return refuse(401, "invalid_client", "no client certificate was presented (mTLS)")
        try:
            body = json.loads(await request.body())
            grant = body["access_token"]
            grant = grant[0] if isinstance(grant, list) and len(grant) == 1 else grant
            access, flags, key = grant["access"], grant["flags"], body["client"]["key"]
        except (ValueError, KeyError, TypeError, IndexError):
            return refuse(400, "invalid_request", "expected {access_token: [{access, flags}], client: {key}}")
        if not isinstance(access, list) or not access or not all(
                isinstance(a, dict) and a.get("type") == ACCESS_TYPE and isinstance(a.get("locations"), list)
                and a["locations"] and all(isinstance(x, str) for x in a["locations"]) for a in access):
            return refuse(400, "invalid_request", f"access must be type {ACCESS_TYPE!r} with the API's locations")
        if not isinstance(flags, list) or "bearer" not in flags:
            return refuse(400, "invalid_request", "flags must include 'bearer'")
        if not isinstance(key, dict) or key.get("proof") != "mtls":
            return refuse(400, "invalid_request", "client.key must be {proof: 'mtls', cert#S256: …} for a "
                                                  "certificate from an approved CA")
        if not secrets.compare_digest(str(key.get("cert#S256", "")).encode(),
                                      certificate_thumbprint(presented).encode()):
            return refuse(401, "invalid_client", "cert#S256 does not match the certificate presented in the "
                                                 "TLS handshake")
        token = issuer.issue(_organization_id(presented), access)
        return JSONResponse({"access_token": {"value": token, "access": access,
                                              "expires_in": issuer.lifetime_seconds, "flags": ["bearer"]}})

    @app.get(f"{ADMIN_PREFIX}/state", include_in_schema=False)
    async def read_state() -> dict[str, Any]:
        return {"tokens_issued": issuer.issued, "refused": refused["requests"], "generation": issuer.generation,
                "lifetime_seconds": issuer.lifetime_seconds}

    @app.delete(f"{ADMIN_PREFIX}/tokens", include_in_schema=False)
    async def expire_tokens() -> dict[str, int]:
        issuer.expire_all()
        return {"generation": issuer.generation}

    return app
