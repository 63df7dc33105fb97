"""Tokens from Skolverket's authorisation server, fetched over mTLS with the huvudman's client certificate.

Skolverket's Provisioning API takes a JWT that its authorisation server (SUNET's ``nutid-auth``) issues to a
client that presents, in the TLS handshake, a certificate from a CA Skolverket trusts (SITHS, EFOS, Expisoft) and
names the same certificate in the request (``client.key = {"proof": "mtls", "cert#S256": …}``, the base64 SHA-256
of the certificate's DER). See ``authentication-api-README.md`` of Skolverket's contracts, "Hämta JWT för åtkomst
till Provisioning API med certifikat från en godkänd certifikatutfärdare".

:class:`MtlsTokenSource` is the async token source :class:`~skolflow.connectors.dnp.client.DnpClient` accepts: it
fetches a token, keeps it until shortly before ``expires_in`` runs out, lets one caller fetch while concurrent ones
wait, and drops a token DNP refused (``invalidate``) so the next call fetches a fresh one. Every request goes
through :func:`~skolflow.connectors.http.build_client`, so the production guard judges the authorisation server
like any other host. The key and the token never appear in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import BaseModel, ValidationError

from skolflow.connectors.dnp.client import DnpError
from skolflow.connectors.http import HttpSettings, RemoteError, build_client, request, tls_refusal
from skolflow.identity import mask_text

SYSTEM = "dnp-auth"
PRODUCTION_AUTH_URL = "https://nutid-auth.sunet.se/transaction"
TEST_AUTH_URL = "https://nutid-auth-test.sunet.se/transaction"
ACCESS_TYPE = "provisioning-api"
# Refresh this long before the token expires, at most a tenth of its lifetime (a 10-day token: 60 s early).
REFRESH_MARGIN_SECONDS = 60.0
PEM_BEGIN = "-----BEGIN"


class DnpAuthError(DnpError):
    """No token: the certificate or key is unusable, the TLS handshake was refused, or the server said no.

    A :class:`DnpError` so that a provisioning step records it as the step's failure like any refusal by DNP.
    """

    def __init__(self, message: str, *, status_code: int = 0, body: str = "", url: str = ""):
        super().__init__(status_code, body, method="POST", url=url)
        self.args = (message,)


class _Access(BaseModel):
    value: str
    expires_in: float | None = None


class _Answer(BaseModel):
    access_token: _Access


@dataclass
class _Token:
    value: str
    refresh_at: float  # by the source's clock; inf when the server gave no lifetime


@dataclass
class TokenStore:
    """Where a token is kept; share one between sources (one per client) so a run fetches once, not per step."""

    token: _Token | None = None
    fetched: int = field(default=0)


def pem_of(value: str | bytes, what: str) -> bytes:
    """PEM text as given, or read from the file ``value`` names. The message never quotes ``value`` (a key)."""
    text = value.decode() if isinstance(value, bytes) else value
    if text.lstrip().startswith(PEM_BEGIN):
        return text.strip().encode() + b"\n"
    try:
        path = Path(text.strip()).expanduser()
        data = path.read_bytes() if len(text) < 4096 and "\n" not in text.strip() else b""
    except (OSError, ValueError):
        data = b""
    if not data.lstrip().startswith(PEM_BEGIN.encode()):
        raise DnpAuthError(f"the DNP {what} is neither PEM text nor a readable PEM file")
    return data


def certificate_thumbprint(certificate_pem: bytes) -> str:
    """``cert#S256``: base64 of the SHA-256 of the certificate's DER, as ``openssl x509 -fingerprint -sha256``."""
    der = _certificate(certificate_pem).public_bytes(Encoding.DER)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _certificate(certificate_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise DnpAuthError("the DNP certificate is not a PEM X.509 certificate") from None


@contextlib.contextmanager
def pem_files(*contents: bytes) -> Iterator[list[str]]:
    """The PEMs as files readable by this user only, for as long as ssl needs paths (it loads no PEM from memory)."""
    with tempfile.TemporaryDirectory(prefix="skolflow-dnp-") as folder:
        paths = []
        for index, content in enumerate(contents):
            path = os.path.join(folder, f"{index}.pem")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
            paths.append(path)
        yield paths


def client_tls(certificate_pem: bytes, private_key_pem: bytes, trust_pem: bytes | None = None) -> ssl.SSLContext:
    """A TLS context that presents the client certificate and verifies the server (``trust_pem`` or the CA bundle).

    The key is read into the context from a private temporary file that is gone when this returns.
    """
    _certificate(certificate_pem)
    context = ssl.create_default_context(cafile=None if trust_pem else certifi.where(),
                                         cadata=trust_pem.decode() if trust_pem else None)
    with pem_files(certificate_pem, private_key_pem) as (cert_path, key_path):
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            reason = "the private key does not belong to the certificate" if "KEY_VALUES_MISMATCH" in str(exc) \
                else "the private key is not an unencrypted PEM key"
            raise DnpAuthError(f"the DNP client certificate cannot be used: {reason}") from None
    return context


class MtlsTokenSource:
    """``await source()`` is a current token for DNP at ``locations``; ``source.invalidate(token)`` drops a refused one.

    ``clock`` decides expiry (a test passes its own); ``store`` may be shared by sources of the same certificate.
    """

    def __init__(self, auth_url: str, locations: Sequence[str], certificate_pem: bytes, private_key_pem: bytes,
                 http: HttpSettings | None = None, *, trust_pem: bytes | None = None,
                 clock: Callable[[], float] = time.monotonic, store: TokenStore | None = None):
        self.auth_url = auth_url
        self.locations = list(locations)
        self.thumbprint = certificate_thumbprint(certificate_pem)
        self._tls = client_tls(certificate_pem, private_key_pem, trust_pem)
        self._settings = http or HttpSettings()
        self._clock = clock
        self.store = store or TokenStore()
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def body(self) -> dict[str, object]:
        """The request Skolverket's README shows for a certificate from an approved CA."""
        return {"access_token": [{"access": [{"type": ACCESS_TYPE, "locations": self.locations}],
                                  "flags": ["bearer"]}],
                "client": {"key": {"proof": "mtls", "cert#S256": self.thumbprint}}}

    def _guard(self) -> asyncio.Lock:
        """One lock per event loop: a source kept across ``asyncio.run`` calls must not wait on a dead loop's lock."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def __call__(self) -> str:
        async with self._guard():
            token = self.store.token
            if token is None or self._clock() >= token.refresh_at:
                token = self.store.token = await self._fetch()
            return token.value

    def invalidate(self, token: str | None = None) -> None:
        """Forget ``token`` (DNP refused it), unless a concurrent caller already replaced it; None: forget any."""
        if self.store.token is not None and (token is None or self.store.token.value == token):
            self.store.token = None

    async def _fetch(self) -> _Token:
        async with build_client("", self._settings, system=SYSTEM, headers={"Accept": "application/json"},
                                verify=self._tls) as client:
            try:
                response = await request(client, SYSTEM, "POST", self.auth_url, retry=self._settings.retry,
                                         json=self.body())
            except RemoteError as exc:
                if exc.status_code == 0:  # no HTTP answer at all, every attempt: the connection failed or was closed
                    raise DnpAuthError(
                        f"no token from {self.auth_url}: no answer ({mask_text(exc.body[:200])}). A server that "
                        "requires a client certificate closes the connection so when it does not accept the one "
                        "presented: is the certificate issued by a CA Skolverket trusts (SITHS, EFOS, Expisoft), "
                        "still valid, and the key its own?", body=mask_text(exc.body), url=self.auth_url) from None
                raise DnpAuthError(f"Skolverket's authorisation server ({self.auth_url}) refused the token request "
                                   f"with {exc.status_code}: {mask_text(exc.body[:500])}", status_code=exc.status_code,
                                   body=mask_text(exc.body), url=self.auth_url) from None
            except Exception as exc:  # a TLS verdict comes as httpx's ConnectError or ReadError around ssl's error
                refusal = tls_refusal(exc)
                if refusal is None:
                    raise
                raise self._refused(refusal) from None
        try:
            answer = _Answer.model_validate_json(response.text)
        except ValidationError:
            raise DnpAuthError(f"Skolverket's authorisation server ({self.auth_url}) answered without "
                               "access_token.value", status_code=response.status_code, url=self.auth_url) from None
        self.store.fetched += 1
        lifetime = answer.access_token.expires_in
        if lifetime is None:
            return _Token(answer.access_token.value, float("inf"))
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 10)
        return _Token(answer.access_token.value, self._clock() + lifetime - margin)

    def _refused(self, exc: BaseException) -> DnpAuthError:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        verifying = getattr(exc, "verify_message", None)
        if isinstance(exc, ssl.SSLCertVerificationError):
            said = f"the authorisation server's certificate is not trusted ({verifying or reason})"
        else:
            said = f"the TLS handshake failed ({reason}): is the client certificate issued by a CA Skolverket trusts?"
        return DnpAuthError(f"no token from {self.auth_url}: {said}", url=self.auth_url)
