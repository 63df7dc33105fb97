"""Prefect tasks around Udir's eksamen API, and the register → poll → record step both Udir flows share.

Public documents (the XSD ZIP, the eksamensplan) are cached across runs by their inputs for a few
hours: they change rarely and Udir asks no credentials for them. Everything that holds fødselsnummer
(candidate lists, reports) is never cached and never persisted, and every status poll asks Udir anew.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prefect import get_run_logger
from prefect.cache_policies import INPUTS, NO_CACHE

from skolflow.blocks import UdirCredentials
from skolflow.boundary import task
from skolflow.connectors.http import HttpSettings, RemoteError, TransientError
from skolflow.connectors.udir import codec
from skolflow.connectors.udir.client import UdirApiError, UdirClient
from skolflow.connectors.udir.models import (
    EksamensplanResponse,
    KandidatFagkode,
    Pamelding,
    PameldingReport,
    PameldteKandidater,
)
from skolflow.errors import InvalidInput, libxml2_text, scrub
from skolflow.identity import mask_text
from skolflow.ledger import Ledger, Outcome, RecordOutcome
from skolflow.tasks import artifacts
from skolflow.tasks.udir_candidates import CandidateProblem, CandidateRow, School, by_candidate, pamelding

PUBLIC_CACHE = dt.timedelta(hours=6)
T = TypeVar("T")


@dataclass
class Udir:
    """How to reach Udir in this run."""

    credentials: UdirCredentials
    http: HttpSettings = field(default_factory=HttpSettings)

    def client(self) -> UdirClient:
        c = self.credentials
        return UdirClient(c.base_url, c.client_id, c.client_secret.get_secret_value(), self.http, scope=c.scope)


@dataclass(frozen=True)
class Answered(Generic[T]):
    """Udir's answer, and the reference of each server error Udir gave before it (retried, so not raised)."""

    value: T
    references: tuple[str, ...] = ()


def references_of(exc: Exception) -> tuple[str, ...]:
    """Every server error reference a failed call met: Udir logs each attempt under its own guid."""
    return exc.references if isinstance(exc, UdirApiError) else ()


def _listed(references: Sequence[str]) -> str:
    return f" (Udir's references: {', '.join(references)})" if references else ""


@dataclass(frozen=True)
class Poll:
    """Backoff between status polls: ``first`` seconds, doubling up to ``longest``, for at most ``timeout``."""

    first: float = 0.5
    longest: float = 30.0
    timeout: float = 1800.0

    def waits(self) -> list[float]:
        waits, wait, total = [], self.first, 0.0
        while total < self.timeout:
            waits.append(min(wait, self.timeout - total))
            total += waits[-1]
            wait = min(wait * 2, self.longest)
        return waits


@task(name="udir-skjema", cache_policy=INPUTS - "http", cache_expiration=PUBLIC_CACHE, persist_result=True)
async def fetch_schemas(base_url: str, http: HttpSettings) -> dict[str, bytes]:
    """The XSDs Udir validates registrations with today (public, no personal data: cached by URL)."""
    async with UdirClient(base_url, "", "", http) as udir:
        return await udir.schemas()


@task(name="udir-eksamensplan", cache_policy=INPUTS - "http", cache_expiration=PUBLIC_CACHE, persist_result=True)
async def fetch_eksamensplan(base_url: str, periodekode: str, orgnr: str, http: HttpSettings) -> EksamensplanResponse:
    """The period's plan with the school's own variants (public: cached per period and school).

    Every level's plan, whatever level the registration is at: a fagkode of the other level is then
    refused as that, which tells the school more than "not in the plan".
    """
    async with UdirClient(base_url, "", "", http) as udir:
        return await udir.eksamensplan(periodekode, None, orgnr)


@task(name="udir-pameldte-kandidater", cache_policy=NO_CACHE, persist_result=False)
async def registered(udir: Udir, orgnr: str, periodekode: str) -> PameldteKandidater:
    """Who Udir holds for the school and period, registered through the API or by hand."""
    async with udir.client() as client:
        return await client.registered(orgnr, periodekode)


@task(name="udir-slett-kandidater", cache_policy=NO_CACHE, persist_result=False)
async def delete_registrations(udir: Udir, orgnr: str, periodekode: str, items: list[KandidatFagkode]) -> None:
    async with udir.client() as client:
        await client.delete_many(orgnr, periodekode, items)


@task(name="udir-send-pamelding", cache_policy=NO_CACHE, persist_result=False, retries=0)
async def send_registration(udir: Udir, document: Pamelding, schemas: dict[str, bytes]) -> Answered[str]:
    """XSD-check against Udir's served schemas (the client checks the project's copy too), then send.

    The answer is Udir's guid for the registration; a schema problem names the element and the rule, not
    the value (a name, say).
    """
    problems = codec.validate_with(schemas, Pamelding, codec.encode(document))
    if problems:
        raise InvalidInput("the registration does not validate against Udir's Pamelding.xsd: "
                           + "; ".join(map(libxml2_text, problems)), "XSD")
    async with udir.client() as client:
        guid = await client.register(document)
        return Answered(guid, tuple(client.references))


@task(name="udir-poll-status", cache_policy=NO_CACHE, persist_result=False)
async def poll_status(udir: Udir, guid: str, poll: Poll) -> Answered[PameldingReport]:
    """Ask Udir for the registration's status until it is final, with backoff; the last report on timeout."""
    logger = get_run_logger()
    started = time.monotonic()
    last = None
    async with udir.client() as client:
        for wait in [0.0, *poll.waits()]:
            await asyncio.sleep(wait)
            report = await client.status(guid)
            if report.status != last:
                logger.info("registration %s: %s after %.1f s", guid, report.status, time.monotonic() - started)
                last = report.status
            if report.final:
                break
        return Answered(report, tuple(client.references))


def held_keys(held: PameldteKandidater) -> dict[tuple[str, str], str]:
    """(fødselsnummer, fagkode) → kandidatnummer of every registration Udir holds."""
    return {(k.fodselsnr, e.fagkode): k.kandidatnummer
            for e in held.eksamenspameldinger for g in e.kandidatgrupper for k in g.kandidater}


def outcome(run_id: str, pipeline: str, scope: str, row: CandidateRow, result: Outcome, *,
            kandidatnummer: str = "", status: str = "", message: str = "",
            errors: list[dict[str, Any]] | None = None, references: Sequence[str] = ()) -> RecordOutcome:
    """``references``: of the server errors Udir gave on the way to this outcome (for PAS's administrators)."""
    answer: dict[str, Any] = {"kandidatnummer": kandidatnummer, "status": status, "statusMessage": message}
    if references:
        answer["serverErrorReferences"] = list(references)
    body = json.dumps(answer, ensure_ascii=False) if status or kandidatnummer or references else None
    return RecordOutcome(run_id=run_id, pipeline=pipeline, scope=scope, record_key=row.fodselsnr,
                         source_key=row.kandidatgruppe, unit=row.fagkode, outcome=result, errors=errors or [],
                         response_body=body)


def problem_outcome(run_id: str, pipeline: str, scope: str, problem: CandidateProblem) -> RecordOutcome:
    """A row skolflow refused before sending: keyed by fødselsnummer, or by its line when that is unreadable."""
    return RecordOutcome(run_id=run_id, pipeline=pipeline, scope=scope,
                         record_key=problem.fodselsnr or f"rad {problem.row}", unit=problem.code,
                         outcome=Outcome.REJECTED,
                         errors=[{"kod": problem.rule, "falt": problem.code, "meddelande": problem.message}])


@dataclass
class Registered:
    """What registering a set of rows came to; ``rows`` are masked table rows for the artifact.

    ``rejected`` counts candidate-subjects Udir refused one by one (StatusMessage), ``refused`` those in a
    registration Udir refused as a whole (400 ApiError); ``refusals`` holds Udir's message for each such
    registration, for the run's final state.
    """

    accepted: int = 0
    rejected: int = 0
    refused: int = 0
    failed: int = 0
    unfinished: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)
    failure: str | None = None
    refusals: list[str] = field(default_factory=list)
    guids: list[str] = field(default_factory=list)

    def refused_message(self) -> str:
        """Udir's words for every registration it refused as a whole, for the run's Failed state."""
        return (f"Udir refused the registration of {self.refused} candidate-subjects as a whole "
                f"({'; '.join(dict.fromkeys(self.refusals))})")


def not_registered_row(row: CandidateRow, status: str, message: str, source: str) -> dict[str, str]:
    return {"kandidat": row.shown, "fagkode": row.fagkode, "variant": row.variant or "",
            "kandidatgruppe": row.kandidatgruppe, "status": status, "StatusMessage": scrub(message),
            "kilde": source}


async def register_rows(udir: Udir, ledger: Ledger, run_id: str, pipeline: str, school: School,
                        rows: Sequence[CandidateRow], schemas: dict[str, bytes], poll: Poll,
                        batch_size: int) -> Registered:
    """Register ``rows`` in registrations of ``batch_size`` candidates; record every row's outcome.

    A row is recorded 'pending' before it is sent: a run that dies while Udir processes it leaves it
    so, and the next run asks Udir's candidate list before sending anything again.
    """
    logger = get_run_logger()
    scope = f"{school.orgnr}/{school.periodekode}"
    result = Registered()
    total = len(rows)
    progress = await artifacts.Progress.start(f"Udir-påmelding {school.orgnr} {school.periodekode}: "
                                              "kandidatfag behandlet")
    done = 0
    for batch in by_candidate(rows, batch_size):
        ledger.record([outcome(run_id, pipeline, scope, row, Outcome.PENDING) for row in batch])
        by_key = {row.key: row for row in batch}
        try:
            sent = await send_registration(udir, pamelding(school, batch), schemas)
        except UdirApiError as exc:
            references = exc.references
            if isinstance(exc, TransientError):
                result.failed += len(batch)
                result.failure = f"Udir answered {exc.status_code}: {scrub(exc.message)}{_listed(references)}"
                ledger.record([outcome(run_id, pipeline, scope, r, Outcome.FAILED, references=references,
                                       errors=[{"kod": "UDIR", "falt": "", "meddelande": exc.message}])
                               for r in batch])
            else:
                # Udir judged the registration before taking it in: none of its candidates is registered.
                result.refused += len(batch)
                result.refusals.append(f"{exc.status_code}: {scrub(exc.message)}{_listed(references)}")
                result.rows += [not_registered_row(r, "ApiError", exc.message, "Udir") for r in batch]
                ledger.record([outcome(run_id, pipeline, scope, r, Outcome.REJECTED, status="ApiError",
                                       message=exc.message, references=references,
                                       errors=[{"kod": "ApiError", "falt": r.fagkode, "meddelande": exc.message}])
                               for r in batch])
            logger.error("registration of %d rows refused: %s%s", len(batch), scrub(exc.message), _listed(references))
            continue
        except (TransientError, RemoteError) as exc:
            result.failed += len(batch)
            result.failure = f"Udir answered {exc.status_code or 'nothing'}: {scrub(exc.body[:300])}"
            logger.error("registration of %d rows not delivered: %s", len(batch), result.failure)
            ledger.record([outcome(run_id, pipeline, scope, r, Outcome.FAILED,
                                   errors=[{"kod": "LEVERANS", "falt": "", "meddelande": result.failure}])
                           for r in batch])
            continue
        guid = sent.value
        result.guids.append(guid)
        references = sent.references
        try:
            polled = await poll_status(udir, guid, poll)
        except (TransientError, RemoteError) as exc:
            references += references_of(exc)
            report, failure = None, f"status of {guid} unknown: Udir answered {exc.status_code or 'nothing'}"
        else:
            report, failure = polled.value, None
            references += polled.references
        if references:
            logger.warning("registration %s: Udir answered with server errors on the way, references: %s", guid,
                           ", ".join(references))
        if report is None or not report.final:
            # Left 'pending': Udir may still register them; the next run reads Udir's list first.
            result.unfinished += len(batch)
            if failure or not result.failure:
                result.failure = (failure or f"Udir had not finished registration {guid} after {poll.timeout:.0f} s "
                                  f"(last status {report.status})") + _listed(references)
            logger.error("%s", result.failure)
            if references:
                ledger.record([outcome(run_id, pipeline, scope, row, Outcome.PENDING, references=references)
                               for row in batch])
        else:
            answered = _record_report(report, by_key, result)
            ledger.record([outcome(run_id, pipeline, scope, row, kind, kandidatnummer=nr, status=status,
                                   message=message, references=references,
                                   errors=[] if kind is Outcome.ACCEPTED else
                                   [{"kod": status, "falt": row.fagkode, "meddelande": mask_text(message)}])
                           for row, kind, nr, status, message in answered])
        done += len(batch)
        await progress.update(done, total)
    if not rows:
        await progress.update(0, 0)
    return result


def _record_report(report: PameldingReport, by_key: dict[tuple[str, str], CandidateRow],
                   result: Registered) -> list[tuple[CandidateRow, Outcome, str, str, str]]:
    """Each sent row's outcome in Udir's words; a row the report does not mention is a failure to chase."""
    answered = []
    seen = set()
    for group in report.kandidatgrupper:
        for k in group.kandidater:
            row = by_key.get((k.fodselsnr, group.fagkode))
            if row is None or row.key in seen:
                continue
            seen.add(row.key)
            if k.status == "Pameldt":
                result.accepted += 1
                answered.append((row, Outcome.ACCEPTED, k.kandidatnr, k.status, k.status_message))
            else:
                result.rejected += 1
                result.rows.append(not_registered_row(row, k.status, k.status_message, "Udir"))
                answered.append((row, Outcome.REJECTED, k.kandidatnr, k.status, k.status_message))
    for key, row in by_key.items():
        if key not in seen:
            result.failed += 1
            message = "Udir's report does not mention this candidate"
            result.rows.append(not_registered_row(row, "Ukjent", message, "skolflow"))
            answered.append((row, Outcome.FAILED, "", "Ukjent", message))
    return answered
