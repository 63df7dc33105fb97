"""DNP's tokens from Skolverket's authorisation server over mTLS: the token client (respx) and the real handshake.

Unit tests mock the authorisation server and DNP with respx and move the token client's clock by hand. Integration
tests run the authorisation server sandbox over HTTPS with a CA made for the test and ``CERT_REQUIRED``, beside the
DNP sandbox that checks its tokens; expiry there is the issuer's clock, moved by the test, never the machine's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi import Request
from stdnum import luhn
from typer.testing import CliRunner

from skolflow.blocks import DnpCredentials, MissingCredentials
from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.auth import (
    PRODUCTION_AUTH_URL,
    TEST_AUTH_URL,
    DnpAuthError,
    MtlsTokenSource,
    TokenStore,
    certificate_thumbprint,
    pem_of,
)
from skolflow.connectors.dnp.auth_sandbox import SandboxCA, SandboxPki, TokenIssuer
from skolflow.connectors.dnp.auth_sandbox import create_app as create_auth_app
from skolflow.connectors.dnp.client import DnpClient, DnpError
from skolflow.connectors.dnp.models import CivicNo, Enrolment, ObjectReference, Person
from skolflow.connectors.dnp.opendata import school_unit_id
from skolflow.connectors.dnp.sandbox import create_app as create_dnp_app
from skolflow.connectors.http import HttpSettings, RetryPolicy
from skolflow.guard import Door, ProductionGuardError, Profile
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import MutualTls, SandboxServer, with_faults
from skolflow.tasks.dnp_steps import Dnp
from tests.remote import MOCKED_REMOTE

BASE = "https://dnp.example.se/provtjanst/provisioning/v1"
AUTH = "https://auth.example.se/transaction"
RETRY = RetryPolicy(attempts=2, backoff_base=0.001, backoff_max=0.01)
MOCKED = HttpSettings(retry=RETRY, door=MOCKED_REMOTE)
LOCAL = HttpSettings(retry=RETRY)  # the default door: this machine only
CA = SandboxCA("test CA")
HUVUDMAN = CA.issue("Sandvik kommun", organization_id="SE2120000142")
DATASET = ds.generate(students=12)
UNIT = school_unit_id(DATASET.school_units[0].code)
PERSONS_OK = {"data": []}


@dataclass
class Clock:
    """A clock that moves only when a test says so."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def token_answer(value: str, expires_in: int = 600) -> httpx.Response:
    return httpx.Response(200, json={"access_token": {"value": value, "expires_in": expires_in, "flags": ["bearer"],
                                                      "access": [{"type": "provisioning-api", "locations": [BASE]}]}})


def refused_token() -> httpx.Response:
    return httpx.Response(403, json=[{"id": rules.TOKEN_INVALID, "statusCode": 403, "messageType": "Behörighet saknas",
                                      "message": "Ogiltigt JWT bearer token.", "severityLevel": "Error",
                                      "timeOfOccurance": "2026-03-02T08:00:00Z"}])


def source(clock: Clock | None = None, *, url: str = AUTH, http: HttpSettings = MOCKED, **options: Any
           ) -> MtlsTokenSource:
    return MtlsTokenSource(url, [BASE], HUVUDMAN.certificate, HUVUDMAN.key, http, clock=clock or Clock(), **options)


def dnp(url: str, token: Any, http: HttpSettings = MOCKED) -> DnpClient:
    return DnpClient(url, token, http=http)


def key_lines(key: bytes) -> list[str]:
    """The key's base64 lines: none may appear in any message."""
    return [line for line in key.decode().splitlines() if line and not line.startswith("-----")]


# --- the token client, against respx ---------------------------------------------------------------------------


async def test_the_request_is_skolverkets_for_a_certificate_from_an_approved_ca() -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(AUTH).mock(return_value=token_answer("jwt-1"))
        assert await source()() == "jwt-1"
    body = json.loads(route.calls[0].request.content)
    der = ssl.PEM_cert_to_DER_cert(HUVUDMAN.certificate.decode())
    assert body == {
        "access_token": [{"access": [{"type": "provisioning-api", "locations": [BASE]}], "flags": ["bearer"]}],
        "client": {"key": {"proof": "mtls", "cert#S256": base64.b64encode(hashlib.sha256(der).digest()).decode()}},
    }
    assert route.calls[0].request.headers["Content-Type"] == "application/json"


async def test_a_token_is_kept_until_shortly_before_it_expires() -> None:
    clock = Clock()
    tokens = source(clock)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(AUTH).mock(side_effect=[token_answer("jwt-1", 600), token_answer("jwt-2", 100),
                                                  token_answer("jwt-3", 100)])
        assert await tokens() == "jwt-1"
        clock.now += 539  # 600 s, refreshed 60 s early
        assert await tokens() == "jwt-1" and route.call_count == 1
        clock.now += 1
        assert await tokens() == "jwt-2" and route.call_count == 2
        clock.now += 89  # 100 s, refreshed a tenth (10 s) early: 60 s would be most of its life
        assert await tokens() == "jwt-2"
        clock.now += 1
        assert await tokens() == "jwt-3" and route.call_count == 3


async def test_concurrent_callers_fetch_one_token() -> None:
    tokens = source()
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(AUTH).mock(return_value=token_answer("jwt-1"))
        assert set(await asyncio.gather(*(tokens() for _ in range(10)))) == {"jwt-1"}
    assert route.call_count == 1


async def test_a_shared_store_lets_every_client_of_a_run_use_one_token() -> None:
    store = TokenStore()
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(AUTH).mock(return_value=token_answer("jwt-1"))
        assert [await source(store=store)() for _ in range(3)] == ["jwt-1"] * 3
    assert route.call_count == 1 and store.fetched == 1


async def test_dnp_refusing_the_token_with_5002_gets_one_fresh_token_and_one_retry() -> None:
    with respx.mock(assert_all_called=False) as mock:
        auth = mock.post(AUTH).mock(side_effect=[token_answer("jwt-1"), token_answer("jwt-2")])
        persons = mock.get(f"{BASE}/persons").mock(side_effect=[refused_token(), httpx.Response(200, json=PERSONS_OK)])
        async with dnp(BASE, source()) as client:
            assert [p async for p in client.list("persons")] == []
    assert auth.call_count == 2
    assert [c.request.headers["Authorization"] for c in persons.calls] == ["Bearer jwt-1", "Bearer jwt-2"]


async def test_a_second_5002_is_dnps_verdict_and_raised() -> None:
    with respx.mock(assert_all_called=False) as mock:
        auth = mock.post(AUTH).mock(side_effect=[token_answer("jwt-1"), token_answer("jwt-2")])
        persons = mock.get(f"{BASE}/persons").mock(return_value=refused_token())
        async with dnp(BASE, source()) as client:
            with pytest.raises(DnpError) as info:
                [p async for p in client.list("persons")]
    assert info.value.status_code == 403 and info.value.codes == [rules.TOKEN_INVALID]
    assert auth.call_count == 2 and persons.call_count == 2
    assert "jwt-" not in str(info.value)


async def test_a_fixed_token_is_not_retried_on_5002() -> None:
    with respx.mock(assert_all_called=False) as mock:
        persons = mock.get(f"{BASE}/persons").mock(return_value=refused_token())
        async with dnp(BASE, "hand-fetched-token") as client:
            with pytest.raises(DnpError) as info:
                [p async for p in client.list("persons")]
    assert info.value.codes == [rules.TOKEN_INVALID] and persons.call_count == 1


async def test_a_refusal_by_the_authorisation_server_is_shown_in_its_words_and_dnp_is_not_called() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(AUTH).mock(return_value=httpx.Response(401, json={"error": {"code": "invalid_client",
                                                                              "description": "unknown client"}}))
        persons = mock.get(f"{BASE}/persons").mock(return_value=httpx.Response(200, json=PERSONS_OK))
        async with dnp(BASE, source()) as client:
            with pytest.raises(DnpAuthError) as info:
                [p async for p in client.list("persons")]
    message = str(info.value)
    assert "refused the token request with 401" in message and "unknown client" in message
    assert persons.call_count == 0
    assert not any(line in message for line in key_lines(HUVUDMAN.key))


async def test_an_answer_without_a_token_is_an_error() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post(AUTH).mock(return_value=httpx.Response(200, json={"access_token": {"flags": ["bearer"]}}))
        with pytest.raises(DnpAuthError, match="without access_token.value"):
            await source()()


def test_an_unusable_certificate_or_key_says_which_and_never_quotes_the_key(tmp_path: Path) -> None:
    other = CA.issue("someone else")
    with pytest.raises(DnpAuthError, match="does not belong to the certificate") as info:
        MtlsTokenSource(AUTH, [BASE], HUVUDMAN.certificate, other.key)
    assert not any(line in str(info.value) for line in key_lines(other.key))
    with pytest.raises(DnpAuthError, match="not a PEM X.509 certificate"):
        MtlsTokenSource(AUTH, [BASE], b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n",
                        HUVUDMAN.key)
    secret = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"  # a key pasted without its PEM lines
    with pytest.raises(DnpAuthError, match="neither PEM text nor a readable PEM file") as refused:
        pem_of(secret, "private key")
    assert secret not in str(refused.value)
    path = tmp_path / "key.pem"
    path.write_bytes(HUVUDMAN.key)
    assert pem_of(str(path), "private key") == HUVUDMAN.key
    assert pem_of(HUVUDMAN.key.decode(), "private key").strip() == HUVUDMAN.key.strip()


def test_the_block_takes_a_certificate_and_key_or_a_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TOKEN", "CERTIFICATE", "PRIVATE_KEY", "AUTH_URL", "AUTH_CA", "BLOCK"):
        monkeypatch.delenv(f"SKOLFLOW_DNP_{name}", raising=False)
    with pytest.raises(MissingCredentials, match="SKOLFLOW_DNP_CERTIFICATE"):
        DnpCredentials.from_env().uses_certificate()
    monkeypatch.setenv("SKOLFLOW_DNP_TOKEN", "hand-fetched")
    assert DnpCredentials.from_env().uses_certificate() is False
    assert Dnp(DnpCredentials.from_env()).token() == "hand-fetched"
    (tmp_path / "cert.pem").write_bytes(HUVUDMAN.certificate)
    (tmp_path / "key.pem").write_bytes(HUVUDMAN.key)
    monkeypatch.setenv("SKOLFLOW_DNP_CERTIFICATE", str(tmp_path / "cert.pem"))
    with pytest.raises(MissingCredentials, match="go together"):
        DnpCredentials.from_env().uses_certificate()
    monkeypatch.setenv("SKOLFLOW_DNP_PRIVATE_KEY", str(tmp_path / "key.pem"))
    credentials = DnpCredentials.from_env()
    assert credentials.auth_url == PRODUCTION_AUTH_URL and credentials.uses_certificate()
    tokens = Dnp(credentials).token()
    assert isinstance(tokens, MtlsTokenSource) and tokens.locations == [credentials.base_url]
    assert tokens.thumbprint == certificate_thumbprint(HUVUDMAN.certificate)
    assert "BEGIN" not in repr(credentials) and key_lines(HUVUDMAN.key)[0] not in repr(credentials)


# --- the production guard judges the authorisation server like any host ----------------------------------------


@pytest.mark.parametrize(("profile", "url", "refused"), [
    (Profile.SANDBOX, PRODUCTION_AUTH_URL, "only talks to sandboxes on this machine"),
    (Profile.SANDBOX, TEST_AUTH_URL, "only talks to sandboxes on this machine"),
    # The production server issues the verification environment's tokens too: a token request is allowed in test.
    (Profile.TEST, PRODUCTION_AUTH_URL, None),
    (Profile.PRODUCTION, PRODUCTION_AUTH_URL, "confirm_production"),
    (Profile.TEST, TEST_AUTH_URL, None),
])
async def test_the_guard_judges_the_authorisation_server_before_any_connection(profile: Profile, url: str,
                                                                              refused: str | None) -> None:
    http = HttpSettings(retry=RETRY, door=Door(profile))
    with respx.mock(assert_all_called=False) as mock:
        auth = mock.post(url).mock(return_value=token_answer("jwt-1"))
        anything = mock.route().mock(return_value=httpx.Response(200, json=PERSONS_OK))
        async with dnp("http://127.0.0.1:9/provisioning/v1", source(url=url, http=http), http=LOCAL) as client:
            if refused is None:
                assert [p async for p in client.list("persons")] == []
            else:
                with pytest.raises(ProductionGuardError, match=refused):
                    [p async for p in client.list("persons")]
    assert auth.call_count == (1 if refused is None else 0)
    assert anything.call_count == (1 if refused is None else 0)


# --- over real HTTPS: the authorisation server sandbox with mutual TLS, and the DNP sandbox -------------------------


@dataclass
class Servers:
    dnp: str
    auth: str
    pki: SandboxPki
    issuer: TokenIssuer
    clock: Clock
    dnp_calls: list[tuple[str, str, int]] = field(default_factory=list)

    def tokens(self, credential: Any = None, **options: Any) -> MtlsTokenSource:
        certificate = credential.certificate if credential else self.pki.client_certificate.read_bytes()
        key = credential.key if credential else self.pki.client_key.read_bytes()
        return MtlsTokenSource(f"{self.auth}/transaction", [self.dnp], certificate, key, LOCAL,
                               **{"trust_pem": self.pki.ca.read_bytes(), **options})


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    clock = Clock()
    issuer = TokenIssuer(lifetime_seconds=300, clock=clock)
    pki = SandboxPki.create(tmp_path / "pki")
    app = create_dnp_app(DATASET, token="a-token-nobody-has-" + uuid.uuid4().hex, verify_token=issuer.valid,
                         job_delay_seconds=0.0)
    calls: list[tuple[str, str, int]] = []

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if not request.url.path.startswith("/_sandbox"):
            calls.append((request.method, request.url.path, response.status_code))
        return response

    with SandboxServer() as server:
        dnp_url = server.start("dnp", with_faults(app, "dnp"))
        auth_url = server.start("dnp-auth", with_faults(create_auth_app(issuer), "dnp-auth"),
                                tls=MutualTls(str(pki.server_certificate), str(pki.server_key), str(pki.ca)))
        yield Servers(dnp_url, auth_url, pki, issuer, clock, calls)


def student() -> Person:
    birth, serial = "20130412", f"{uuid.uuid4().int % 900 + 100}"
    civic_no = CivicNo(value=birth + serial + luhn.calc_check_digit(birth[2:] + serial))
    return Person(id=str(uuid.uuid4()), civic_no=civic_no, given_name="Saga", family_name="Nilsson",
                  edu_person_principal_names=[f"{uuid.uuid4()}@edu.sandvik.se"],
                  enrolments=[Enrolment(enroled_at=ObjectReference(id=UNIT), school_type="GR", school_year=6)])


async def provision(client: DnpClient) -> str:
    """One persons job sent and followed to DNP's answer: its records' statuses."""
    job_id = await client.submit("persons", [student()], update_if_exists=True)
    answer = await client.wait("persons", job_id, interval=0.02)
    return ",".join(r.response.status for r in answer.responses)


async def test_the_sandbox_huvudmans_certificate_gets_a_token_dnp_accepts(servers: Servers) -> None:
    async with dnp(servers.dnp, servers.tokens(), http=LOCAL) as client:
        assert await provision(client) == "Success"
    assert servers.issuer.issued == 1
    assert all(status < 400 for _, _, status in servers.dnp_calls)


async def test_a_token_expiring_mid_run_is_refreshed_once_and_the_run_goes_on(servers: Servers) -> None:
    tokens = servers.tokens(clock=Clock())  # the client's clock stands still: it believes its token still good
    async with dnp(servers.dnp, tokens, http=LOCAL) as client:
        assert await provision(client) == "Success"
        servers.clock.now += 300  # DNP's clock: the token's five minutes are over
        assert await provision(client) == "Success"
        assert await provision(client) == "Success"
    assert servers.issuer.issued == 2
    assert [call for call in servers.dnp_calls if call[2] == 403] == [("POST", "/persons/bulk", 403)]


async def test_a_token_near_its_expiry_is_renewed_before_dnp_refuses_it(servers: Servers) -> None:
    clock = Clock()
    tokens = servers.tokens(clock=clock)
    async with dnp(servers.dnp, tokens, http=LOCAL) as client:
        assert await provision(client) == "Success"
        clock.now += 270  # 300 s, renewed 30 s (a tenth) early
        servers.clock.now += 270
        assert await provision(client) == "Success"
    assert servers.issuer.issued == 2
    assert not [call for call in servers.dnp_calls if call[2] == 403]


async def test_a_certificate_from_another_ca_is_refused_in_the_handshake_and_dnp_never_called(
        servers: Servers) -> None:
    stranger = SandboxCA("not the CA the server trusts").issue("Sandvik kommun", organization_id="SE2120000142")
    async with dnp(servers.dnp, servers.tokens(stranger), http=LOCAL) as client:
        with pytest.raises(DnpAuthError) as info:
            await provision(client)
    message = str(info.value)
    assert "no token from" in message and "client certificate" in message and "CA Skolverket trusts" in message
    assert not any(line in message for line in key_lines(stranger.key))
    assert servers.dnp_calls == [] and servers.issuer.issued == 0


async def test_a_thumbprint_not_of_the_presented_certificate_is_refused(servers: Servers) -> None:
    tokens = servers.tokens()
    tokens.thumbprint = certificate_thumbprint(CA.issue("another certificate").certificate)
    async with dnp(servers.dnp, tokens, http=LOCAL) as client:
        with pytest.raises(DnpAuthError, match="cert#S256 does not match the certificate presented"):
            await provision(client)
    assert servers.dnp_calls == [] and servers.issuer.issued == 0


async def test_an_authorisation_server_the_client_does_not_trust_is_refused(servers: Servers) -> None:
    tokens = servers.tokens(trust_pem=SandboxCA("someone else's CA").certificate_pem)
    with pytest.raises(DnpAuthError, match="authorisation server's certificate is not trusted"):
        await tokens()
    assert servers.issuer.issued == 0


async def test_a_forged_or_expired_token_is_refused_by_the_dnp_sandbox(servers: Servers) -> None:
    token = await servers.tokens()()
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "exp": claims["exp"] + 3600}).encode()).rstrip(b"=")
    assert servers.issuer.valid(token) and not servers.issuer.valid(f"{header}.{forged.decode()}.{signature}")
    async with httpx.AsyncClient(base_url=servers.dnp) as raw:
        assert (await raw.get("/persons", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        servers.issuer.expire_all()
        refused = await raw.get("/persons", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and refused.json()[0]["id"] == rules.TOKEN_INVALID


# --- the sandboxes as the demo and `skolflow sandbox` start them -------------------------------------------------


def test_the_sandboxes_hand_out_a_certificate_and_key_not_a_token() -> None:
    running = systems.start(ds.generate(students=12), {name: FaultConfig() for name in systems.SYSTEMS})
    try:
        env = running.environment()
        assert "SKOLFLOW_DNP_TOKEN" not in env
        assert env["SKOLFLOW_DNP_AUTH_URL"].startswith("https://127.0.0.1:")
        key = Path(env["SKOLFLOW_DNP_PRIVATE_KEY"])
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        credentials = DnpCredentials(base_url=env["SKOLFLOW_DNP_URL"], auth_url=env["SKOLFLOW_DNP_AUTH_URL"],
                                     certificate=env["SKOLFLOW_DNP_CERTIFICATE"],
                                     private_key=env["SKOLFLOW_DNP_PRIVATE_KEY"], auth_ca=env["SKOLFLOW_DNP_AUTH_CA"])

        async def run() -> str:
            async with Dnp(credentials, LOCAL).client() as client:
                return await provision(client)

        assert asyncio.run(run()) == "Success" and running.issuer.issued == 1
    finally:
        running.stop()
    assert not key.exists()


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_whose_token_would_come_from_production_is_refused_up_front(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    from skolflow.flows.cli import app

    (tmp_path / "cert.pem").write_bytes(HUVUDMAN.certificate)
    (tmp_path / "key.pem").write_bytes(HUVUDMAN.key)
    monkeypatch.setenv("SKOLFLOW_PROFILE", "sandbox")
    for name, value in {"SS12000_URL": "http://127.0.0.1:9", "SS12000_TOKEN": "t", "DNP_URL": "http://127.0.0.1:9",
                        "DNP_OPENDATA_URL": "http://127.0.0.1:9", "DNP_AUTH_URL": PRODUCTION_AUTH_URL,
                        "DNP_CERTIFICATE": str(tmp_path / "cert.pem"), "DNP_PRIVATE_KEY": str(tmp_path / "key.pem")
                        }.items():
        monkeypatch.setenv(f"SKOLFLOW_{name}", value)
    monkeypatch.delenv("SKOLFLOW_DNP_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["run", "dnp-provisioning", "--huvudman", "2120000142"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "dnp-auth: profile 'sandbox' only talks to sandboxes on this machine, not to nutid-auth.sunet.se" in said
    assert not any(line in said for line in key_lines(HUVUDMAN.key))
