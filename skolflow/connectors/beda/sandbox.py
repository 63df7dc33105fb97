"""Beda's sandbox: skolflow's model of Beda's API (DESIGN §4), served by FastAPI for tests and demos.

Beda has no test environment of its own (seed 000), so this is the only place a pipeline may send
merits without reaching UHR's production database. It answers with the same validation the
pipeline runs before sending (:mod:`skolflow.connectors.beda.validation`) and keeps, per student,
what it holds, how many requests carried the student (``received``, retries included) and how many
accepted requests actually changed what it holds (``revisions``, an identical resend adds none), so
that tests can check that every student reached Beda exactly once.

Admin endpoints (never faulted, no auth): ``GET /_sandbox/state``, ``DELETE /_sandbox/state``
(forget all merits and counters) and ``DELETE /_sandbox/tokens`` (revoke every token, as if each
had expired).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from skolflow.connectors.beda.models import MAX_BATCH, Fel, Merits
from skolflow.connectors.beda.validation import (
    FORMAT_OGILTIGT,
    PERSONNUMMER_OGILTIGT,
    format_errors,
    personnummer_errors,
    validate_merits,
)
from skolflow.identity import InvalidIdentity, mask, validate_swedish_orgnr
from skolflow.sandbox.dataset import Dataset
from skolflow.sandbox.faults import ADMIN_PREFIX
from skolflow.sandbox.oauth2 import TokenRefusal, client_credentials, new_token

API = "/api/v1/anslutningsparter/{orgnr}"


@dataclass(frozen=True)
class BedaParty:
    """What a client id is bound to: its secret, the anslutningspart and the school units it may report."""

    orgnr: str
    client_secret: str
    authorised_units: frozenset[str]


@dataclass
class StudentState:
    meriter: dict[str, Any] | None = None
    received: int = 0
    revisions: int = 0


@dataclass
class SandboxState:
    students: dict[str, StudentState] = field(default_factory=dict)
    rejected: int = 0
    tokens_issued: int = 0
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token → (client id, monotonic expiry)

    def snapshot(self) -> dict[str, Any]:
        return {
            "students": {pnr: asdict(student) for pnr, student in self.students.items()},
            "rejected": self.rejected,
            "tokens_issued": self.tokens_issued,
        }


class _Refusal(Exception):
    """Beda refuses the whole request (not one student): answered as ``body`` with ``status``."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers


def _fel(kod: str, falt: str, meddelande: str) -> dict[str, Any]:
    return {"fel": [{"kod": kod, "falt": falt, "meddelande": meddelande}]}


def _canonical(items: list[dict[str, Any]]) -> list[str]:
    """A collection's content regardless of order, so that a resend in another order is no change."""
    return sorted(json.dumps(item, sort_keys=True, ensure_ascii=False) for item in items)


def create_app(
    clients: Mapping[str, BedaParty],
    *,
    token_lifetime_seconds: int = 3600,
    today: Callable[[], dt.date] = dt.date.today,
) -> FastAPI:
    """A Beda sandbox that knows ``clients`` (client id → party); ``today`` bounds dates Beda accepts."""
    parties = {
        client_id: BedaParty(validate_swedish_orgnr(p.orgnr), p.client_secret, frozenset(p.authorised_units))
        for client_id, p in clients.items()
    }
    state = SandboxState()
    app = FastAPI(title="Beda sandbox", description="skolflow's model of Beda's API until UHR publishes one.")

    @app.exception_handler(_Refusal)
    async def refused(request: Request, exc: _Refusal) -> JSONResponse:
        return JSONResponse(exc.body, exc.status, headers=exc.headers)

    def authorise(request: Request, orgnr: str) -> BedaParty:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None or grant[1] <= time.monotonic():
            raise _Refusal(401, _fel("EJ_AUTENTISERAD", "Authorization",
                                     "giltig bearer-token saknas eller har gått ut"),
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        try:
            wanted = validate_swedish_orgnr(orgnr)
        except InvalidIdentity:
            raise _Refusal(400, _fel("ORGANISATIONSNUMMER_OGILTIGT", "orgnr",
                                     f"{orgnr!r} är inte ett giltigt organisationsnummer")) from None
        party = parties[grant[0]]
        if party.orgnr != wanted:
            raise _Refusal(403, _fel("EJ_BEHORIG", "orgnr",
                                     f"klienten rapporterar för anslutningsparten {party.orgnr}, inte för {wanted}"))
        return party

    async def json_body(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            raise _Refusal(400, _fel(FORMAT_OGILTIGT, "", "kroppen är inte giltig JSON")) from None

    def receive(raw: Any, party: BedaParty, path_pnr: str | None = None) -> dict[str, Any]:
        """Validate one student and, if accepted, replace the collections the request carries."""
        named = raw.get("personnummer") if isinstance(raw, dict) else None
        shown = named if isinstance(named, str) else ""
        key = path_pnr if path_pnr is not None else shown
        student = None if personnummer_errors(key) else state.students.setdefault(key, StudentState())
        if student is not None:
            student.received += 1
        try:
            merits = Merits.model_validate(raw)
        except ValidationError as exc:
            problems = format_errors(exc)
        else:
            problems = validate_merits(merits, party.authorised_units, today=today())
            if path_pnr is not None and merits.personnummer != path_pnr:
                problems.insert(0, Fel(kod=PERSONNUMMER_OGILTIGT, falt="personnummer",
                                       meddelande=f"personnumret {mask(merits.personnummer)} är inte det i "
                                                  f"adressen ({mask(path_pnr)})"))
        if problems or student is None:
            state.rejected += 1
            return {"personnummer": shown or key, "status": "AVVISAD",
                    "fel": [fel.model_dump() for fel in problems]}
        wire = merits.to_wire()
        held = student.meriter or {}
        new = {"personnummer": key,
               **{kind: wire.get(kind, held.get(kind, [])) for kind in ("kursbetyg", "examen")}}
        if student.meriter is None or any(_canonical(held[kind]) != _canonical(new[kind])
                                          for kind in ("kursbetyg", "examen")):
            student.meriter = new
            student.revisions += 1
        return {"personnummer": key, "status": "GODKAND"}

    @app.post("/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        try:
            client_id = await client_credentials(request, {cid: p.client_secret for cid, p in parties.items()})
        except TokenRefusal as refusal:
            return JSONResponse({"error": refusal.error}, 400 if refusal.error == "unsupported_grant_type" else 401)
        value = new_token()
        state.tokens[value] = (client_id, time.monotonic() + token_lifetime_seconds)
        state.tokens_issued += 1
        return JSONResponse({"access_token": value, "token_type": "Bearer", "expires_in": token_lifetime_seconds})

    @app.post(f"{API}/meriter")
    async def send_batch(orgnr: str, request: Request) -> JSONResponse:
        party = authorise(request, orgnr)
        body = await json_body(request)
        students = body.get("elever") if isinstance(body, dict) else None
        if not isinstance(students, list):
            raise _Refusal(400, _fel(FORMAT_OGILTIGT, "elever", "kroppen ska vara {\"elever\": [...]}"))
        if not 1 <= len(students) <= MAX_BATCH:
            raise _Refusal(413, _fel("ANTAL_ELEVER_OGILTIGT", "elever",
                                     f"en sändning tar 1–{MAX_BATCH} elever, inte {len(students)}"))
        return JSONResponse({"resultat": [receive(raw, party) for raw in students]})

    @app.put(f"{API}/elever/{{personnummer}}/meriter")
    async def put_student(orgnr: str, personnummer: str, request: Request) -> JSONResponse:
        party = authorise(request, orgnr)
        result = receive(await json_body(request), party, path_pnr=personnummer)
        return JSONResponse(result, 200 if result["status"] == "GODKAND" else 422)

    @app.get(f"{API}/elever/{{personnummer}}/meriter")
    async def get_student(orgnr: str, personnummer: str, request: Request) -> JSONResponse:
        authorise(request, orgnr)
        student = state.students.get(personnummer)
        if student is None or student.meriter is None:
            raise _Refusal(404, _fel("ELEV_SAKNAS", "personnummer", f"Beda har inga meriter för {mask(personnummer)}"))
        return JSONResponse(student.meriter)

    @app.get(f"{ADMIN_PREFIX}/state", include_in_schema=False)
    async def read_state() -> dict[str, Any]:
        return state.snapshot()

    @app.delete(f"{ADMIN_PREFIX}/state", include_in_schema=False)
    async def reset_state() -> dict[str, Any]:
        state.students.clear()
        state.rejected = 0
        state.tokens_issued = 0
        return state.snapshot()

    @app.delete(f"{ADMIN_PREFIX}/tokens", include_in_schema=False)
    async def revoke_tokens() -> dict[str, int]:
        revoked = len(state.tokens)
        state.tokens.clear()
        return {"revoked": revoked}

    return app


def create_app_for(
    dataset: Dataset,
    client_id: str = "sandbox-client",
    client_secret: str = "sandbox-secret",
    **options: Any,
) -> FastAPI:
    """A sandbox with one client reporting for the data set's huvudman and all of its school units."""
    party = BedaParty(dataset.huvudman_orgnr, client_secret, frozenset(unit.code for unit in dataset.school_units))
    return create_app({client_id: party}, **options)
