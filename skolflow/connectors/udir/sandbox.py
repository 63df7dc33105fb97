"""Udir's eksamen API as a FastAPI sandbox, as seed 001 and Udir's XSDs describe it.

Registrations are XML, validated against the XSD and the 400 rules of
:func:`skolflow.connectors.udir.rules.request_problems`, and answered 202 with a guid. They are then
processed asynchronously: the status moves IkkeStartet → Startet → Ferdig / DelvisFerdig / Feilet,
one step per ``step_seconds``, computed from the time the registration arrived (no background task).
On completion each candidate is ``Pameldt`` (with a kandidatnummer), ``IkkePameldt`` (a special
subject rule, in ``StatusMessage``) or ``PameldtAnnenSkole``. Registering a candidate for a fagkode
they already hold changes nothing, so a resend never creates a duplicate.

Every resource answers JSON, or XML with ``Accept: application/xml`` (sensoroppdrag: JSON only, as
the seed says). Errors are ``ApiError`` documents. Admin endpoints (never faulted, no auth):
``GET /_sandbox/state`` (with ``resent_while_held``: candidates sent again while already registered,
identical resends of a whole body excepted, which are a client's retries) and
``PUT /_sandbox/server-errors?count=N`` (the next N API calls answer
500 with Udir's message and a reference guid).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import ValidationError

from skolflow.connectors import xmlsafe
from skolflow.connectors.udir import codec, rules
from skolflow.connectors.udir.client import PATHS, SERVER_ERROR_MESSAGE
from skolflow.connectors.udir.models import (
    ApiError,
    Eksamen,
    EksamenMedKarakter,
    Eksamensdel,
    Eksamenspamelding,
    Eksamensperiode,
    Eksamensplan,
    EksamensplanResponse,
    Fagperson,
    KandidatFagkode,
    Kandidatgruppeansvarlig,
    KandidatgruppeansvarligReport,
    KandidatgruppeMedKarakter,
    KandidatgruppeReport,
    KandidatMedKarakter,
    KandidatReport,
    Karakteroversikt,
    Opplaeringsniva,
    Pamelding,
    PameldingReference,
    PameldingReport,
    PameldteKandidater,
    PameldtKandidat,
    PameldtKandidatgruppe,
    UdirModel,
)
from skolflow.identity import InvalidIdentity, mask, validate_norwegian_fodselsnummer, validate_norwegian_orgnr
from skolflow.sandbox.faults import ADMIN_PREFIX
from skolflow.sandbox.oauth2 import TokenRefusal, client_credentials, new_token
from skolflow.sandbox.udir_data import PlannedExam, UdirData, generate

DEFAULT_CLIENTS = {"sandbox-udir-client": "sandbox-udir-secret"}
XML_TYPES = ("application/xml", "text/xml")
LEVELS: tuple[Opplaeringsniva, ...] = ("GS", "VGS")


class _ApiFailure(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message


@dataclass
class Held:
    """One candidate registered in one fagkode at a school for a period."""

    fodselsnr: str
    fornavn: str
    etternavn: str
    malform: str | None
    kandidattype: str
    fagkode: str
    variant: str | None
    gruppe: str
    ansvarlige: list[Kandidatgruppeansvarlig]


@dataclass
class Job:
    guid: str
    pamelding: Pamelding
    received: float
    report: PameldingReport | None = None  # set when processed


@dataclass
class SandboxState:
    held: dict[tuple[str, str], dict[tuple[str, str], Held]] = field(default_factory=dict)  # (orgnr, period) → …
    numbers: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (orgnr, period, fødselsnr) → nr
    jobs: dict[str, Job] = field(default_factory=dict)
    fail_next: int = 0
    tokens: dict[str, float] = field(default_factory=dict)
    bodies: set[str] = field(default_factory=set)  # sha256 of every registration body received
    resent_while_held: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "registrations": {f"{org}/{period}": len(items) for (org, period), items in self.held.items()},
            "jobs": {guid: (job.report.status if job.report else "pending") for guid, job in self.jobs.items()},
            "resent_while_held": self.resent_while_held,
        }


def _wants_xml(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(kind in accept for kind in XML_TYPES)


def _answer(request: Request, document: UdirModel, status: int = 200) -> Response:
    if _wants_xml(request):
        return Response(codec.encode(document), status, media_type="application/xml")
    return Response(json.dumps(document.to_json(), ensure_ascii=False), status, media_type="application/json")


def create_app(
    data: UdirData | None = None,
    *,
    clients: Mapping[str, str] | None = None,
    step_seconds: float = 0.2,
    token_lifetime_seconds: int = 3600,
    seed: int = 2026,
) -> FastAPI:
    """A Udir sandbox over ``data`` (default: :func:`skolflow.sandbox.udir_data.generate`)."""
    data = data or generate()
    known_clients = dict(clients or DEFAULT_CLIENTS)
    state = SandboxState()
    rng = random.Random(seed)
    people = {c.fodselsnr: c for c in data.candidates}
    app = FastAPI(title="Udir eksamen sandbox", description="Udir's eksamen API (seed 001) for tests and demos.")

    for manual in data.registrations:
        person = people[manual.fodselsnr]
        state.held.setdefault((manual.orgnr, manual.periode), {})[(person.fodselsnr, manual.fagkode)] = Held(
            person.fodselsnr, person.fornavn, person.etternavn, person.malform, person.kandidattype,
            manual.fagkode, None, manual.gruppe, [])

    @app.exception_handler(_ApiFailure)
    async def failed(request: Request, exc: _ApiFailure) -> Response:
        return _answer(request, ApiError(message=exc.message), exc.status)

    def enter(request: Request, *, auth: bool) -> None:
        """Every API call: an injected server error, then (where the seed says so) a valid bearer token."""
        if state.fail_next > 0:
            state.fail_next -= 1
            raise _ApiFailure(500, SERVER_ERROR_MESSAGE.format(guid=uuid.uuid4()))
        if auth:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            expiry = state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if expiry is None or expiry <= time.monotonic():
                raise _ApiFailure(401, "Authorization has been denied for this request.")
        advance()

    def school(orgno: str | None) -> str:
        try:
            orgnr = validate_norwegian_orgnr(orgno or "")
        except InvalidIdentity:
            raise _ApiFailure(400, f"Organisasjonsnummeret '{orgno}' er ikke gyldig.") from None
        if data.school(orgnr) is None:
            raise _ApiFailure(400, f"Fant ingen skole med organisasjonsnummer {orgnr}.")
        return orgnr

    def period(code: str | None) -> str:
        problem = rules.period_code_problem(code or "")
        if problem:
            raise _ApiFailure(400, problem.message)
        if code not in data.exams:
            raise _ApiFailure(400, rules.unknown_period(code).message)
        return code

    def available(period_code: str, orgnr: str | None, niva: Opplaeringsniva) -> list[PlannedExam]:
        return [e for e in data.exams[period_code]
                if e.niva == niva and (not e.schools or (orgnr is not None and orgnr in e.schools))]

    def plan(code: str, orgnr: str | None, levels: tuple[Opplaeringsniva, ...] = LEVELS) -> EksamensplanResponse:
        """The eksamensplan of a period Udir knows: the one answered, and the one registrations are judged by."""
        known = next(p for p in data.periods if p.kode == code)
        periode = Eksamensperiode(kode=code, pamelding_start=known.pamelding_start,
                                  pamelding_stopp=known.pamelding_stopp,
                                  gjennomforing_start=known.gjennomforing_start,
                                  gjennomforing_stopp=known.gjennomforing_stopp)
        return EksamensplanResponse(eksamensplaner=[
            Eksamensplan(opplaeringsniva=niva, eksamensperiode=periode,
                         eksamener=[_exam(e, known.gjennomforing_start) for e in available(code, orgnr, niva)])
            for niva in levels])

    def kandidatnummer(orgnr: str, period_code: str, fodselsnr: str) -> str:
        key = (orgnr, period_code, fodselsnr)
        if key not in state.numbers:
            taken = set(state.numbers.values())
            while (number := f"{rng.randrange(100, 1000)}"
                               f"{''.join(rng.choices('ABCDEFGHJKLMNPRSTUVWXYZ', k=3))}-{period_code[0]}") in taken:
                pass
            state.numbers[key] = number
        return state.numbers[key]

    def process(job: Job) -> PameldingReport:
        """Register what the rules allow; each candidate's outcome in Udir's words."""
        p = job.pamelding
        held = state.held.setdefault((p.orgnr, p.eksamens_periode_kode), {})
        breaks = {(b.fodselsnr, b.fagkode): b.message for b in rules.subject_rule_breaks(rules.registrations(p))}
        groups: list[KandidatgruppeReport] = []
        outcomes: list[str] = []
        for group in p.kandidatgrupper:
            reports = []
            for k in group.kandidater:
                fnr = validate_norwegian_fodselsnummer(k.fodselsnr)
                other = data.elsewhere.get(fnr) if data.elsewhere.get(fnr) != p.orgnr else None
                other = other or next((org for (org, code), items in state.held.items()
                                       if org != p.orgnr and code == p.eksamens_periode_kode
                                       and (fnr, group.fagkode) in items), None)
                if (fnr, group.fagkode) in breaks:
                    status, message, number = "IkkePameldt", breaks[(fnr, group.fagkode)], ""
                elif other is not None:
                    status, number = "PameldtAnnenSkole", ""
                    message = f"Kandidat {mask(fnr)} er allerede påmeldt {group.fagkode} ved en annen skole ({other})."
                else:
                    number = kandidatnummer(p.orgnr, p.eksamens_periode_kode, fnr)
                    if (fnr, group.fagkode) in held:
                        message = f"Kandidaten var allerede påmeldt {group.fagkode}."
                    else:
                        held[(fnr, group.fagkode)] = Held(fnr, k.fornavn, k.etternavn, k.malform, k.kandidattype,
                                                          group.fagkode, group.variant, group.navn or "",
                                                          list(group.kandidatgruppeansvarlige))
                        message = f"Kandidaten er påmeldt {group.fagkode}."
                    status = "Pameldt"
                outcomes.append(status)
                reports.append(KandidatReport(fodselsnr=fnr, kandidatnr=number, status=status, status_message=message))
            groups.append(KandidatgruppeReport(
                navn=group.navn, fagkode=group.fagkode, variant=group.variant, opplaeringsniva=p.opplaeringsniva,
                kandidatgruppeansvarlige=[KandidatgruppeansvarligReport(fodselsnr=a.fodselsnr)
                                          for a in group.kandidatgruppeansvarlige],
                kandidater=reports))
        registered = outcomes.count("Pameldt")
        if registered == len(outcomes):
            status, message = "Ferdig", "Påmeldingen er ferdig behandlet."
        elif registered == 0:
            status, message = "Feilet", "Ingen kandidater ble påmeldt. Se StatusMessage per kandidat."
        else:
            status = "DelvisFerdig"
            message = (f"{len(outcomes) - registered} av {len(outcomes)} påmeldinger feilet. "
                       "Se StatusMessage per kandidat.")
        return _report(p, groups, status, message)

    def advance() -> None:
        """Process, in arrival order, every registration whose time has come."""
        now = time.monotonic()
        for job in sorted(state.jobs.values(), key=lambda j: j.received):
            if job.report is None and now - job.received >= 2 * step_seconds:
                job.report = process(job)

    def pending_report(job: Job) -> PameldingReport:
        started = time.monotonic() - job.received >= step_seconds
        p = job.pamelding
        groups = [KandidatgruppeReport(navn=g.navn, fagkode=g.fagkode, variant=g.variant,
                                       opplaeringsniva=p.opplaeringsniva,
                                       kandidater=[KandidatReport(fodselsnr=k.fodselsnr, kandidatnr="",
                                                                  status="IkkeStartet", status_message="")
                                                   for k in g.kandidater])
                  for g in p.kandidatgrupper]
        return _report(p, groups, "Startet" if started else "IkkeStartet", None)

    @app.post("/connect/token")
    async def token(request: Request) -> Response:
        try:
            await client_credentials(request, known_clients, basic=True)
        except TokenRefusal as refusal:  # IdentityServer answers both errors with 400
            return Response(json.dumps({"error": refusal.error}), 400, media_type="application/json")
        value = new_token()
        state.tokens[value] = time.monotonic() + token_lifetime_seconds
        return Response(json.dumps({"access_token": value, "token_type": "Bearer",
                                    "expires_in": token_lifetime_seconds}), media_type="application/json")

    @app.get(PATHS.skjema)
    async def skjema(request: Request) -> Response:
        enter(request, auth=False)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in codec.schema_files():
                archive.write(path, path.name)
        return Response(buffer.getvalue(), media_type="application/zip")

    @app.get(PATHS.eksamensplan)
    async def eksamensplan(request: Request, eksamensperiode: str | None = None, opplaeringsniva: str | None = None,
                           skoleorgno: str | None = None) -> Response:
        enter(request, auth=False)
        code = period(eksamensperiode or data.current_period)
        if opplaeringsniva not in (None, "GS", "VGS"):
            raise _ApiFailure(400, f"Opplæringsnivået '{opplaeringsniva}' er ikke gyldig (GS eller VGS).")
        orgnr = school(skoleorgno) if skoleorgno else None
        return _answer(request, plan(code, orgnr, tuple(n for n in LEVELS if opplaeringsniva in (None, n))))

    @app.post(PATHS.kandidatpamelding)
    async def register(request: Request) -> Response:
        enter(request, auth=True)
        body = await request.body()
        try:
            problems = codec.validate(Pamelding, body)
        except xmlsafe.XmlDocumentError as exc:
            raise _ApiFailure(400, f"Påmeldingen er ikke gyldig XML: {exc}") from None
        if problems:
            raise _ApiFailure(400, "Påmeldingen validerer ikke mot Pamelding.xsd: " + "; ".join(problems))
        pamelding = codec.decode(Pamelding, body)
        orgnr = school(pamelding.orgnr)
        code = pamelding.eksamens_periode_kode
        # Without an Opplaeringsniva of its own, a registration is judged at the school's level.
        judged_by = plan(code, orgnr) if code in data.exams else EksamensplanResponse()
        problems_400 = rules.request_problems(pamelding, judged_by, next(s.niva for s in data.schools
                                                                         if s.orgnr == orgnr))
        if problems_400:
            raise _ApiFailure(400, " ".join(p.message for p in problems_400))
        guid = str(uuid.uuid4())
        digest = hashlib.sha256(body).hexdigest()
        if digest not in state.bodies:  # an identical body again is a client's retry after a lost answer
            held = state.held.get((orgnr, code), {})
            state.resent_while_held += sum((k.fodselsnr, g.fagkode) in held
                                           for g in pamelding.kandidatgrupper for k in g.kandidater)
            state.bodies.add(digest)
        state.jobs[guid] = Job(guid, pamelding.model_copy(update={"orgnr": orgnr}), time.monotonic())
        return _answer(request, PameldingReference(reference=guid), 202)

    @app.get(PATHS.kandidatpamelding + "/{guid}")
    async def status(guid: str, request: Request) -> Response:
        enter(request, auth=True)
        job = state.jobs.get(guid)
        if job is None:
            raise _ApiFailure(400, f"Fant ingen påmelding med referanse {guid}.")
        return _answer(request, job.report or pending_report(job))

    @app.get(PATHS.kandidat)
    async def registered(request: Request, orgno: str | None = None, periodekode: str | None = None) -> Response:
        enter(request, auth=True)
        orgnr, code = school(orgno), period(periodekode)
        by_subject: dict[tuple[str, str | None], dict[str, list[Held]]] = {}
        for held in state.held.get((orgnr, code), {}).values():
            by_subject.setdefault((held.fagkode, held.variant), {}).setdefault(held.gruppe, []).append(held)
        registrations = [
            Eksamenspamelding(fagkode=fagkode, variant=variant, kandidatgrupper=[
                PameldtKandidatgruppe(navn=name, kandidatgruppeansvarlige=members[0].ansvarlige, kandidater=[
                    PameldtKandidat(fodselsnr=h.fodselsnr, fornavn=h.fornavn, etternavn=h.etternavn,
                                    malform=h.malform, kandidattype=h.kandidattype,
                                    kandidatnummer=kandidatnummer(orgnr, code, h.fodselsnr))
                    for h in members])
                for name, members in sorted(groups.items())])
            for (fagkode, variant), groups in sorted(by_subject.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        ]
        return _answer(request, PameldteKandidater(eksamensperiodekode=code, eksamenspameldinger=registrations))

    def delete(orgnr: str, code: str, number: str, fagkode: str) -> bool:
        held = state.held.get((orgnr, code), {})
        for fnr in [fnr for (o, c, fnr), nr in state.numbers.items() if (o, c, nr) == (orgnr, code, number)]:
            if held.pop((fnr, fagkode), None) is not None:
                return True
        return False

    @app.delete(PATHS.kandidat)
    async def delete_one(request: Request, kandidatnummer: str | None = None, fagkode: str | None = None,
                         orgno: str | None = None, periodekode: str | None = None) -> Response:
        enter(request, auth=True)
        orgnr, code = school(orgno), period(periodekode)
        if not delete(orgnr, code, kandidatnummer or "", fagkode or ""):
            raise _ApiFailure(400, f"Fant ingen påmelding for kandidatnummer {kandidatnummer} i {fagkode}.")
        return Response(status_code=200)

    @app.post(PATHS.kandidat_slett)
    async def delete_many(request: Request, orgno: str | None = None, periodekode: str | None = None) -> Response:
        enter(request, auth=True)
        orgnr, code = school(orgno), period(periodekode)
        try:
            items = [KandidatFagkode.model_validate(item) for item in json.loads(await request.body())]
        except (ValueError, TypeError, ValidationError):
            raise _ApiFailure(400, "Kroppen skal være en JSON-liste av {Kandidatnummer, Fagkode}.") from None
        for item in items:
            delete(orgnr, code, item.kandidatnummer, item.fagkode)
        return Response(status_code=200)

    @app.get(PATHS.karakteroversikt)
    async def karakteroversikt(request: Request, orgno: str | None = None, periodekode: str | None = None,
                               sasBrukerReferanse: str | None = None,  # noqa: N803 - Udir's parameter name
                               includeEksamenAvlystStatus: bool = False) -> Response:  # noqa: N803
        enter(request, auth=True)
        orgnr, code = school(orgno), period(periodekode)
        if not (sasBrukerReferanse or "").strip():
            raise _ApiFailure(400, "sasBrukerReferanse må oppgis (brukernavnet i PAS).")
        exams: dict[str, dict[str, list[KandidatMedKarakter]]] = {}
        for r in (r for r in data.results if r.orgnr == orgnr and r.periode == code):
            shown = "DF" if r.deltakelsesstatus == "EA" and not includeEksamenAvlystStatus else r.deltakelsesstatus
            exams.setdefault(r.fagkode, {}).setdefault(r.gruppe, []).append(KandidatMedKarakter(
                fodselsnr=r.fodselsnr, kandidatnr=r.kandidatnr, deltakelsesstatus=shown, karakter=r.karakter,
                klagekarakter=r.klagekarakter, klagebegrunnelse=r.klagebegrunnelse))
        return _answer(request, Karakteroversikt(skoleorgnr=orgnr, eksamener=[
            EksamenMedKarakter(fagkode=fagkode, kandidatgrupper=[
                KandidatgruppeMedKarakter(navn=name, kandidater=members) for name, members in groups.items()])
            for fagkode, groups in exams.items()]))

    @app.get(PATHS.sensoroppdrag + "/{orgnr}/{periodekode}")
    async def sensoroppdrag(request: Request, orgnr: str, periodekode: str) -> Response:
        enter(request, auth=True)
        org, code = school(orgnr), period(periodekode)
        people = [Fagperson(fodselsnr=a.fodselsnr, fornavn=a.fornavn, etternavn=a.etternavn,
                            sensor_fagkoder=list(a.sensor_fagkoder), klagenemnd_fagkoder=list(a.klagenemnd_fagkoder))
                  for a in data.appointments if a.orgnr == org and a.periode == code]
        return Response(json.dumps([p.to_json() for p in people], ensure_ascii=False), media_type="application/json")

    @app.get(f"{ADMIN_PREFIX}/state", include_in_schema=False)
    async def read_state() -> dict[str, Any]:
        advance()
        return state.snapshot()

    @app.put(f"{ADMIN_PREFIX}/server-errors", include_in_schema=False)
    async def fail_next(count: int = 1) -> dict[str, int]:
        state.fail_next = count
        return {"fail_next": count}

    return app


def _report(p: Pamelding, groups: list[KandidatgruppeReport], status: str, message: str | None) -> PameldingReport:
    return PameldingReport(orgnr=p.orgnr, skolenavn=p.skolenavn, kandidatgrupper=groups, status=status,
                           status_message=message, eksamensperiode=p.eksamens_periode_kode)


def _exam(exam: PlannedExam, first_day: dt.datetime) -> Eksamen:
    start = first_day + dt.timedelta(days=exam.day)
    return Eksamen(fagkode=exam.fagkode, variant=exam.variant, eksamensdeler=[
        Eksamensdel(type="Eksamen", gjennomforing_start=start, gjennomforing_stopp=start + dt.timedelta(hours=5),
                    varighet=300)])
