"""Haldor's sandbox: skolflow's model of Haldor's schedule import (DESIGN §4), served by FastAPI.

Per school it knows a set of users and holds schedule positions keyed by (externalId, date). A PUT
replaces the positions of its [from, to] range with exactly the ones it accepts, and answers what it
created, updated, removed and left unchanged, whom it did not know and what it rejected (the rules of
:mod:`skolflow.connectors.haldor.models`). Persons are matched as Haldor would: e-mail exactly as
Haldor holds it (lower-cased when Haldor imported its users from Microsoft; the pipeline, not Haldor,
normalises what it sends) or the 12-digit personnummer where Haldor has one.

Admin endpoints (never faulted, no auth): ``GET /_sandbox/schools/{schoolId}/positions`` (everything
held, with the number of PUTs received and of positions actually changed), ``DELETE /_sandbox/state``
(forget every position and counter; users stay) and ``DELETE /_sandbox/tokens`` (revoke every token,
as if each had expired).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from skolflow.connectors.haldor.models import (
    DUPLICATE_POSITION,
    MAX_POSITIONS,
    NO_KNOWN_TEACHER,
    PersonRef,
    Position,
    ScheduleRequest,
    User,
    range_problem,
    timing_problem,
)
from skolflow.identity import mask_text
from skolflow.sandbox.dataset import Dataset, SchoolUnit
from skolflow.sandbox.faults import ADMIN_PREFIX
from skolflow.sandbox.oauth2 import TokenRefusal, client_credentials, new_token

API = "/api/schools/{school_id}"
# Haldor's user ids are its own: derived from the data set's ids, never equal to them.
USER_ID_NAMESPACE = uuid.UUID("5f1c1a52-8d0e-4c55-9b0e-6a1d2c3e4f50")


@dataclass(frozen=True)
class HaldorSchool:
    """A school as Haldor holds it: a name and the users Haldor imported from the customer's tenant."""

    name: str
    users: tuple[User, ...]


@dataclass
class SchoolState:
    positions: dict[tuple[str, dt.date], dict[str, Any]] = field(default_factory=dict)  # key → wire form
    puts_received: int = 0
    positions_changed: int = 0

    def snapshot(self, school_id: str) -> dict[str, Any]:
        held = sorted(self.positions.values(), key=lambda p: (p["date"], p["start"], p["externalId"]))
        return {"schoolId": school_id, "count": len(held), "putsReceived": self.puts_received,
                "positionsChanged": self.positions_changed, "positions": held}


class _Refusal(Exception):
    """Haldor refuses the whole request: answered as ``{"error", "message"}`` with ``status``."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None):
        self.status = status
        self.body = {"error": error, "message": message}
        self.headers = headers


class _Directory:
    """Who Haldor knows at one school, looked up by exactly what a PersonRef carries."""

    def __init__(self, users: Iterable[User]):
        self.users = list(users)
        self._emails = {user.email for user in self.users}
        self._numbers = {user.personnummer for user in self.users if user.personnummer}

    def knows(self, ref: PersonRef) -> bool:
        return ref.email in self._emails if ref.email is not None else ref.personnummer in self._numbers


def _canonical(position: Position, known: _Directory) -> dict[str, Any]:
    """The position as Haldor stores it: unknown persons dropped, lists in a fixed order (so that a
    resend in another order is no change)."""

    def refs(items: list[PersonRef]) -> list[dict[str, str]]:
        return sorted((ref.to_wire() for ref in dict.fromkeys(items) if known.knows(ref)),
                      key=lambda wire: json.dumps(wire, sort_keys=True))

    wire = position.to_wire()
    wire["rooms"] = sorted(set(position.rooms))
    wire["teachers"] = refs(position.teachers)
    wire["groups"] = sorted(({"externalId": g.external_id, "name": g.name, "members": refs(g.members)}
                             for g in position.groups), key=lambda g: g["externalId"])
    return wire


def _date(value: str | None, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value or "")
    except ValueError:
        raise _Refusal(400, "INVALID_RANGE", f"'{name}' must be a date YYYY-MM-DD") from None


def create_app(
    schools: Mapping[str, HaldorSchool],
    clients: Mapping[str, str],
    *,
    grants: Mapping[str, Iterable[str]] | None = None,
    token_lifetime_seconds: int = 3600,
    page_size: int = 100,
) -> FastAPI:
    """A Haldor sandbox holding ``schools`` (school id → school) for ``clients`` (client id → secret).

    ``grants`` (client id → school ids) limits a client to some schools (403 elsewhere); without it
    every client reaches every school. ``page_size`` is how many users one page of ``/users`` holds.
    """
    directories = {school_id: _Directory(school.users) for school_id, school in schools.items()}
    allowed = {client_id: frozenset(ids) for client_id, ids in (grants or {}).items()}
    states = {school_id: SchoolState() for school_id in schools}
    tokens: dict[str, tuple[str, float]] = {}  # token → (client id, monotonic expiry)
    app = FastAPI(title="Haldor sandbox", description="skolflow's model of Haldor's schedule import, "
                                                      "not Haldor's contract.")

    @app.exception_handler(_Refusal)
    async def refused(request: Request, exc: _Refusal) -> JSONResponse:
        return JSONResponse(exc.body, exc.status, headers=exc.headers)

    def authorise(request: Request, school_id: str) -> SchoolState:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None or grant[1] <= time.monotonic():
            raise _Refusal(401, "UNAUTHENTICATED", "a valid bearer token is missing or has expired",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if school_id not in schools:
            raise _Refusal(404, "SCHOOL_NOT_FOUND", f"no school {school_id!r}")
        client_id = grant[0]
        if client_id in allowed and school_id not in allowed[client_id]:
            raise _Refusal(403, "FORBIDDEN", f"client {client_id!r} may not reach school {school_id!r}")
        return states[school_id]

    def date_range(request: Request) -> tuple[dt.date, dt.date]:
        start = _date(request.query_params.get("from"), "from")
        end = _date(request.query_params.get("to"), "to")
        problem = range_problem(start, end)
        if problem:
            raise _Refusal(400, "INVALID_RANGE", problem)
        return start, end

    async def schedule_body(request: Request) -> ScheduleRequest:
        try:
            raw = json.loads(await request.body())
        except ValueError:
            raise _Refusal(400, "INVALID_BODY", "the body is not JSON") from None
        positions = raw.get("positions") if isinstance(raw, dict) else None
        if isinstance(positions, list) and len(positions) > MAX_POSITIONS:
            raise _Refusal(413, "TOO_MANY_POSITIONS",
                           f"{len(positions)} positions in one call; at most {MAX_POSITIONS} are allowed")
        try:
            return ScheduleRequest.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                                 for error in exc.errors(include_input=False, include_url=False))
            raise _Refusal(400, "INVALID_BODY", mask_text(problems)) from None

    @app.post("/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        try:
            client_id = await client_credentials(request, clients)
        except TokenRefusal as refusal:
            return JSONResponse({"error": refusal.error}, 400 if refusal.error == "unsupported_grant_type" else 401)
        value = new_token()
        tokens[value] = (client_id, time.monotonic() + token_lifetime_seconds)
        return JSONResponse({"access_token": value, "token_type": "Bearer", "expires_in": token_lifetime_seconds})

    @app.get(f"{API}/users")
    async def users(school_id: str, request: Request) -> JSONResponse:
        authorise(request, school_id)
        everyone = directories[school_id].users
        raw_token = request.query_params.get("pageToken") or "0"
        offset = int(raw_token) if raw_token.isdigit() else -1
        if not 0 <= offset <= len(everyone):
            raise _Refusal(400, "INVALID_PAGE_TOKEN", "pageToken is not one this API handed out")
        page = everyone[offset:offset + page_size]
        following = offset + page_size
        return JSONResponse({"users": [user.model_dump(by_alias=True, exclude_none=True) for user in page],
                             "nextPageToken": str(following) if following < len(everyone) else None})

    @app.put(f"{API}/schedule")
    async def replace_schedule(school_id: str, request: Request) -> JSONResponse:
        state = authorise(request, school_id)
        state.puts_received += 1
        start, end = date_range(request)
        body = await schedule_body(request)
        known = directories[school_id]
        unknown: dict[PersonRef, None] = {}
        rejected: list[dict[str, str]] = []
        accepted: dict[tuple[str, dt.date], dict[str, Any]] = {}
        for position in body.positions:
            refs = [*position.teachers, *(member for group in position.groups for member in group.members)]
            unknown.update((ref, None) for ref in refs if not known.knows(ref))
            reason = timing_problem(position, start, end)
            if reason is None and position.key in accepted:
                reason = DUPLICATE_POSITION
            if reason is None and not any(known.knows(teacher) for teacher in position.teachers):
                reason = NO_KNOWN_TEACHER
            if reason is not None:
                rejected.append({"externalId": position.external_id, "date": position.date.isoformat(),
                                 "reason": reason})
                continue
            accepted[position.key] = _canonical(position, known)
        in_range = {key for key in state.positions if start <= key[1] <= end}
        counts = {"created": 0, "updated": 0, "removed": len(in_range - accepted.keys()), "unchanged": 0}
        for key in in_range - accepted.keys():
            del state.positions[key]
        for key, wire in accepted.items():
            held = state.positions.get(key)
            counts["created" if held is None else "unchanged" if held == wire else "updated"] += 1
            state.positions[key] = wire
        state.positions_changed += counts["created"] + counts["updated"] + counts["removed"]
        return JSONResponse({**counts, "unknownPersons": [ref.to_wire() for ref in unknown],
                             "rejected": rejected})

    @app.get(f"{API}/schedule")
    async def read_schedule(school_id: str, request: Request) -> JSONResponse:
        state = authorise(request, school_id)
        start, end = date_range(request)
        held = [wire for key, wire in state.positions.items() if start <= key[1] <= end]
        held.sort(key=lambda p: (p["date"], p["start"], p["externalId"]))
        return JSONResponse({"positions": held})

    @app.get(f"{ADMIN_PREFIX}/schools/{{school_id}}/positions", include_in_schema=False)
    async def read_positions(school_id: str) -> JSONResponse:
        if school_id not in states:
            raise _Refusal(404, "SCHOOL_NOT_FOUND", f"no school {school_id!r}")
        return JSONResponse(states[school_id].snapshot(school_id))

    @app.delete(f"{ADMIN_PREFIX}/state", include_in_schema=False)
    async def reset_state() -> dict[str, int]:
        for school_id in states:
            states[school_id] = SchoolState()
        return {"schools": len(states)}

    @app.delete(f"{ADMIN_PREFIX}/tokens", include_in_schema=False)
    async def revoke_tokens() -> dict[str, int]:
        revoked = len(tokens)
        tokens.clear()
        return {"revoked": revoked}

    return app


def school_id_for(unit: SchoolUnit) -> str:
    """The sandbox's Haldor school id of a data set school unit (a real Haldor id is configured per school)."""
    return f"haldor-{unit.code}"


def _has_personnummer(person_id: str) -> bool:
    """About half of Haldor's users carry a personnummer; the same half on every run."""
    return hashlib.sha256(person_id.encode()).digest()[0] % 2 == 0


def schools_for(dataset: Dataset, missing: Iterable[str] = ()) -> dict[str, HaldorSchool]:
    """One Haldor school per school unit: its persons except ``missing`` (ids of persons only the
    source system has), e-mail lower-cased as Haldor imports it, personnummer for about half."""
    absent = set(missing)
    schools: dict[str, HaldorSchool] = {}
    for unit in dataset.school_units:
        users = tuple(
            User(id=str(uuid.uuid5(USER_ID_NAMESPACE, person.id)), email=person.email.lower(),
                 personnummer=person.civic_no if _has_personnummer(person.id) else None,
                 role="student" if person.role == "student" else "teacher")
            for person in dataset.persons
            if person.school_unit_id == unit.id and person.id not in absent
        )
        schools[school_id_for(unit)] = HaldorSchool(unit.name, users)
    return schools


def create_app_for(
    dataset: Dataset,
    client_id: str = "sandbox-client",
    client_secret: str = "sandbox-secret",
    *,
    missing: Iterable[str] = (),
    **options: Any,
) -> FastAPI:
    """A sandbox with one school per data set school unit (:func:`schools_for`) and one client for all."""
    return create_app(schools_for(dataset, missing), {client_id: client_secret}, **options)
