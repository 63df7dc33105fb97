"""Betyg → Beda: grades and diplomas from the school platform, resolved via SS 12000, reported to Beda.

The flow composes tasks; each task handles a whole batch of students (never one student), and every
student's outcome lands in the ledger. Prefect sees only references: masked personnummer, platform
GUIDs, counts. See README § Betyg → Beda for parameters and behaviour.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from skolflow.blocks import BedaCredentials, BetygApiCredentials, SS12000Credentials
from skolflow.connectors.beda.client import BedaClient
from skolflow.connectors.betyg.client import BetygClient
from skolflow.connectors.betyg.models import PLATFORM_TIMEZONE, platform_now
from skolflow.connectors.betygsdokument.client import BetygsdokumentClient
from skolflow.connectors.http import HttpSettings, RemoteError, TransientError
from skolflow.connectors.ss12000.client import SS12000Client
from skolflow.guard import check_target
from skolflow.identity import mask_text, validate_swedish_orgnr
from skolflow.ledger import Ledger, Outcome, RecordOutcome
from skolflow.notify import notify_failure
from skolflow.settings import Settings
from skolflow.tasks import artifacts
from skolflow.tasks.batching import Whole, batched
from skolflow.tasks.beda_report import Prepared, PreparedBatch, Rejection, Selection, StudentInput, What, prepare_batch
from skolflow.tasks.betyg_documents import checked_students, read_documents, student_ids
from skolflow.tasks.diff import content_hash
from skolflow.tasks.grades import platform_id
from skolflow.tasks.identities import ResolvedUnit, read_units, resolve_persons, same_orgnr
from skolflow.tasks.queue import one_at_a_time

PIPELINE = "betyg_to_beda"
DEFAULT_WINDOW = dt.timedelta(days=14)


@dataclass
class Systems:
    """How to reach the three systems of this run; built once, guarded before anything is sent."""

    platform: BetygApiCredentials
    ss12000: SS12000Credentials
    beda: BedaCredentials
    http: HttpSettings = field(default_factory=HttpSettings)


@dataclass
class BatchReport:
    """What one batch task returns to the flow: counts and masked rows only, never a full personnummer."""

    accepted: int = 0
    unchanged: int = 0
    planned: int = 0
    failed: int = 0
    skipped: int = 0
    protected: int = 0
    reconciled: int = 0
    rejected: int = 0
    rejected_rows: list[dict[str, str]] = field(default_factory=list)
    failure: str | None = None

    COUNTS = ("accepted", "unchanged", "planned", "failed", "skipped", "protected", "reconciled", "rejected")

    def add(self, other: BatchReport) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected_rows += other.rejected_rows
        self.failure = self.failure or other.failure

    @property
    def outcomes(self) -> int:
        """Students that got an outcome; 'protected' and 'reconciled' are subsets of 'accepted'."""
        return self.accepted + self.unchanged + self.planned + self.failed + self.skipped + self.rejected


def _run_name() -> str:
    params = flow_run.parameters
    units = ",".join(params.get("school_units") or []) or "alla enheter"
    if params.get("student"):
        units = f"elev {params['student']}"
    suffix = " (torrkörning)" if params.get("dry_run") else ""
    return f"betyg-to-beda · {params.get('anslutningspart')} · {units} · {params.get('what', 'both')}{suffix}"


def _rows(rejection: Rejection, units: str = "") -> list[dict[str, str]]:
    return [{"elev": rejection.shown, "skolenhet": units, "källa": rejection.source, "kod": fel.kod,
             "fält": fel.falt, "meddelande": fel.meddelande} for fel in rejection.errors]


def _outcome(run_id: str, scope: str, key: str, outcome: Outcome, *, source: str = "", units: str = "",
             content_hash_: str = "", errors: list[dict[str, Any]] | None = None,
             request: str | None = None, response: str | None = None) -> RecordOutcome:
    return RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=scope, record_key=key, source_key=source,
                         unit=units, content_hash=content_hash_, outcome=outcome, errors=errors or [],
                         request_body=request, response_body=response)


@task(name="fetch-platform-exports", cache_policy=NO_CACHE, persist_result=False)
async def fetch_exports(systems: Systems, start: dt.datetime, end: dt.datetime, what: What,
                        workdir: Path) -> tuple[Path | None, Path | None]:
    """Download the window's Betyg and Betygsdokument answers to disk, so memory stays flat."""
    token = systems.platform.token.get_secret_value() if systems.platform.token else None
    grades = documents = None
    if what.grades:
        async with BetygClient(systems.platform.base_url, token, systems.http) as client:
            grades = await client.fetch(start, end, dest=workdir / "betyg.xml")
    if what.diplomas:
        async with BetygsdokumentClient(systems.platform.base_url, token, systems.http) as client:
            documents = await client.fetch(start, end, dest=workdir / "betygsdokument.xml")
    return grades, documents


@task(name="read-school-units", cache_policy=NO_CACHE, persist_result=False)
async def school_units_task(systems: Systems) -> dict[str, ResolvedUnit]:
    async with SS12000Client(systems.ss12000.base_url, systems.ss12000.token.get_secret_value(),
                             systems.http) as ss:
        return await read_units(ss)


async def _reconcile_unsettled(beda: BedaClient, ledger: Ledger, scope: str, run_id: str,
                             to_send: list[Prepared]) -> tuple[list[Prepared], int]:
    """A run that died or lost Beda's answer left records unsettled: ask Beda what it holds.

    What Beda already holds is recorded as accepted and not sent again; the rest is sent.
    """
    unsettled = ledger.unsettled(PIPELINE, scope, [p.personnummer for p in to_send])
    if not unsettled:
        return to_send, 0
    still: list[Prepared] = []
    settled: dict[str, tuple[str, dict[str, Any]]] = {}
    outcomes = []
    for prepared in to_send:
        if prepared.personnummer not in unsettled:
            still.append(prepared)
            continue
        held = await beda.get_student(prepared.personnummer)
        wire = prepared.merits.to_wire()
        held_wire = held.to_wire() if held else {}
        if held and all(content_hash(held_wire.get(k)) == content_hash(v) for k, v in wire.items()
                        if k != "personnummer"):
            settled[prepared.personnummer] = (prepared.content_hash, prepared.content)
            outcomes.append(_outcome(run_id, scope, prepared.personnummer, Outcome.ACCEPTED,
                                     source=prepared.source_id, units=",".join(prepared.units),
                                     content_hash_=prepared.content_hash,
                                     response="already held by Beda (confirmed after an interrupted run)"))
        else:
            still.append(prepared)
    if settled:
        ledger.accept(PIPELINE, scope, run_id, settled)
        ledger.record(outcomes)
    return still, len(settled)


@task(name="report-batch-to-beda", cache_policy=NO_CACHE, persist_result=False)
async def report_batch(batch: Whole[list[StudentInput]], systems: Systems, school_units: Whole[dict[str, ResolvedUnit]],
                       party: str, selection: Selection, what: What, run_id: str, database_url: str,
                       dry_run: bool) -> BatchReport:
    """Resolve, check, diff and send one batch; record every student's outcome in the ledger."""
    students, units = batch.value, school_units.value
    logger = get_run_logger()
    ledger = Ledger.shared(database_url)
    try:
        async with SS12000Client(systems.ss12000.base_url, systems.ss12000.token.get_secret_value(),
                                 systems.http) as ss:
            persons = await resolve_persons(ss, (platform_id(s.student_id) for s in students))
    except (TransientError, RemoteError) as exc:
        failure = f"SS 12000 answered {exc.status_code or 'nothing'}: {mask_text(exc.body[:300])}"
        logger.error("batch of %d students not resolved: %s", len(students), failure)
        ledger.record([_outcome(run_id, party, s.student_id, Outcome.FAILED, source=s.student_id,
                                errors=[{"kod": "SS12000", "falt": "", "meddelande": failure}]) for s in students])
        return BatchReport(failed=len(students), failure=failure)
    civics = [p.civic_no for p in persons.values() if p.civic_no]
    previous = ledger.sent_state(PIPELINE, party, civics)
    authorised = frozenset(u.code for u in units.values() if u.code and same_orgnr(u.huvudman_orgnr, party))
    prepared: PreparedBatch = prepare_batch(students, persons, units, authorised, previous, selection, what)

    report = BatchReport(unchanged=len(prepared.unchanged), skipped=prepared.skipped,
                         rejected=len(prepared.rejected))
    outcomes = [_outcome(run_id, party, p.personnummer, Outcome.UNCHANGED, source=p.source_id,
                         units=",".join(p.units), content_hash_=p.content_hash) for p in prepared.unchanged]
    for rejection in prepared.rejected:
        report.rejected_rows += _rows(rejection)
        outcomes.append(_outcome(run_id, party, rejection.personnummer or rejection.source_id, Outcome.REJECTED,
                                 source=rejection.source_id,
                                 errors=[f.model_dump() for f in rejection.errors]))
    if dry_run:
        report.planned = len(prepared.to_send)
        outcomes += [_outcome(run_id, party, p.personnummer, Outcome.PLANNED, source=p.source_id,
                              units=",".join(p.units), content_hash_=p.content_hash,
                              request=p.merits.model_dump_json(by_alias=True, exclude_none=True))
                     for p in prepared.to_send]
        ledger.record(outcomes)
        return report
    ledger.record(outcomes)
    if not prepared.to_send:
        return report

    beda = systems.beda
    async with BedaClient(beda.base_url, beda.client_id, beda.client_secret.get_secret_value(), party,
                          systems.http) as client:
        to_send, report.reconciled = await _reconcile_unsettled(client, ledger, party, run_id, prepared.to_send)
        report.accepted += report.reconciled
        by_key = {p.personnummer: p for p in to_send}
        ledger.record([_outcome(run_id, party, p.personnummer, Outcome.PENDING, source=p.source_id,
                                units=",".join(p.units), content_hash_=p.content_hash) for p in to_send])
        try:
            results = await client.send_batch([p.merits for p in to_send]) if to_send else []
        except (TransientError, RemoteError) as exc:
            # Left 'failed': the next run asks Beda what it holds before sending these again.
            report.failed = len(to_send)
            report.failure = f"Beda answered {exc.status_code or 'nothing'}: {mask_text(exc.body[:300])}"
            logger.error("batch of %d students not delivered: %s", len(to_send), report.failure)
            ledger.record([_outcome(run_id, party, p.personnummer, Outcome.FAILED, source=p.source_id,
                                    units=",".join(p.units), content_hash_=p.content_hash,
                                    errors=[{"kod": "LEVERANS", "falt": "", "meddelande": report.failure}])
                           for p in to_send])
            return report

    accepted: dict[str, tuple[str, dict[str, Any]]] = {}
    answered = []
    for result in results:
        sent = by_key[result.personnummer]
        body = result.model_dump_json(by_alias=True)
        if result.accepted:
            accepted[sent.personnummer] = (sent.content_hash, sent.content)
            answered.append(_outcome(run_id, party, sent.personnummer, Outcome.ACCEPTED, source=sent.source_id,
                                     units=",".join(sent.units), content_hash_=sent.content_hash, response=body))
        else:
            rejection = Rejection(sent.source_id, sent.personnummer, "Beda", tuple(result.fel))
            report.rejected += 1
            report.rejected_rows += _rows(rejection, ",".join(sent.units))
            answered.append(_outcome(run_id, party, sent.personnummer, Outcome.REJECTED, source=sent.source_id,
                                     units=",".join(sent.units), content_hash_=sent.content_hash,
                                     errors=[f.model_dump() for f in result.fel], response=body))
    report.accepted += len(accepted)
    report.protected = sum(1 for p in to_send if p.protected and p.personnummer in accepted)
    ledger.accept(PIPELINE, party, run_id, accepted)
    ledger.record(answered)
    return report


def _student_inputs(grades_path: Path | None, documents: dict[str, list[Any]]) -> Iterator[StudentInput]:
    """Students of the grade export (streamed), then those who only have new documents."""
    seen: set[str] = set()
    if grades_path is not None:
        for student in checked_students(grades_path):
            key = platform_id(student.student_id)
            seen.add(key)
            student.documents = documents.get(key, [])
            yield student
    for key, docs in documents.items():
        if key not in seen:
            yield StudentInput(student_id=docs[0].elev, documents=docs)


def _summary_markdown(totals: BatchReport, start: dt.datetime, end: dt.datetime, party: str, dry_run: bool,
                      watermark_moved: bool) -> str:
    verb = "skulle skickas" if dry_run else "godkända av Beda"
    lines = [
        f"# Betyg → Beda {'(torrkörning) ' if dry_run else ''}för anslutningspart {party}",
        f"Fönster: {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} (svensk tid)",
        "",
        "| utfall | elever |", "|---|---|",
        f"| {verb} | {totals.planned if dry_run else totals.accepted} |",
        f"| oförändrade (skickas inte igen) | {totals.unchanged} |",
        f"| avvisade | {totals.rejected} |",
        f"| ej levererade (skickas vid nästa körning) | {totals.failed} |",
        f"| utanför urvalet | {totals.skipped} |",
        "",
        f"Skyddade identiteter bland de skickade: {totals.protected} (visas bara som referens).",
        f"Bekräftade hos Beda efter en avbruten körning: {totals.reconciled}.",
        "Vattenmärket flyttades fram." if watermark_moved else "Vattenmärket flyttades inte.",
    ]
    return "\n".join(lines)


@flow(name="betyg-to-beda", flow_run_name=_run_name, persist_result=False, log_prints=False,
      on_failure=[notify_failure], on_crashed=[notify_failure])
async def betyg_to_beda(
    anslutningspart: str,
    school_units: list[str] | None = None,
    student: str | None = None,
    what: What = What.BOTH,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    dry_run: bool = False,
    confirm_production: bool = False,
    batch_size: int = 200,
    concurrency: int = 4,
    platform_block: str | None = None,
    ss12000_block: str | None = None,
    beda_block: str | None = None,
) -> State:
    """Report changed grades and diplomas to Beda.

    anslutningspart: the organisationsnummer of the municipality or school owner (checked).
    school_units: skolenhetskoder to report for (empty: all); student: one student by SS 12000 person id
    (the CLI turns a personnummer into this id, so no personnummer is ever a flow parameter).
    start/end: the change window in Swedish time (default: since the last successful run, else 14 days).
    """
    logger = get_run_logger()
    settings = Settings.from_env()
    party = validate_swedish_orgnr(anslutningspart)
    what = What(what)
    http = settings.http()
    systems = Systems(BetygApiCredentials.resolve(platform_block), SS12000Credentials.resolve(ss12000_block),
                      BedaCredentials.resolve(beda_block), http)
    check_target("betyg", systems.platform.base_url, settings.profile, confirm_production)
    check_target("ss12000", systems.ss12000.base_url, settings.profile, confirm_production)
    if not dry_run:
        check_target("beda", systems.beda.base_url, settings.profile, confirm_production)

    # Never two Beda runs for one anslutningspart at once: the second waits (the watermark and the
    # unsettled-send check assume one run at a time).
    async with one_at_a_time(PIPELINE, party):
        ledger = Ledger.shared(settings.database_url)
        end = end or platform_now()
        watermark = ledger.watermark(PIPELINE, party)
        start = start or (watermark.astimezone(PLATFORM_TIMEZONE).replace(tzinfo=None) if watermark
                          else end - DEFAULT_WINDOW)
        selection = Selection(frozenset(school_units or ()), student)
        run_id = ledger.start_run(PIPELINE, party, dry_run=dry_run, flow_run_id=str(flow_run.id or ""),
                                  parameters={"what": what.value, "school_units": sorted(selection.school_units),
                                              "student": student, "start": start.isoformat(), "end": end.isoformat()})
        logger.info("Betyg → Beda for %s, window %s – %s, %s%s", party, start, end, what.value,
                    " (dry run: nothing is sent)" if dry_run else "")

        workdir = settings.data_dir / "work" / run_id
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            return await _report(systems, ledger, settings, run_id, party, selection, what, start, end, dry_run,
                                 workdir, batch_size, concurrency)
        except BaseException as exc:
            ledger.finish_run(run_id, "failed", {"error": mask_text(str(exc))[:1000]})
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


async def _report(systems: Systems, ledger: Ledger, settings: Settings, run_id: str, party: str,
                  selection: Selection, what: What, start: dt.datetime, end: dt.datetime, dry_run: bool,
                  workdir: Path, batch_size: int, concurrency: int) -> State:
    """Everything after the guard: fetch, then batches in parallel (bounded), then artifacts and state."""
    logger = get_run_logger()
    totals = BatchReport()
    grades_path, documents_path = await fetch_exports(systems, start, end, what, workdir)
    units = await school_units_task(systems)
    documents: dict[str, list[Any]] = defaultdict(list)
    for document in read_documents(documents_path) if documents_path else ():
        documents[platform_id(document.elev)].append(document)
    total = len({platform_id(i) for i in student_ids(grades_path)} | documents.keys() if grades_path
                else documents.keys())
    progress = await artifacts.Progress.start(f"Betyg → Beda {party}: elever behandlade")
    done = 0
    running: set[asyncio.Task[BatchReport]] = set()

    async def one(batch: list[StudentInput]) -> BatchReport:
        nonlocal done
        # Submitted to the flow's task runner: threads by default, Dask when the flow is run with a
        # DaskTaskRunner (README § Scale-out).
        future = report_batch.submit(Whole(batch), systems, Whole(units), party, selection, what, run_id,
                                     settings.database_url, dry_run)
        result = await asyncio.to_thread(future.result)
        done += len(batch)
        await progress.update(done, total)
        return result

    results: list[BatchReport] = []
    for batch in batched(_student_inputs(grades_path, documents), batch_size):
        running.add(asyncio.create_task(one(batch)))
        if len(running) >= max(1, concurrency):
            finished, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            results += [t.result() for t in finished]
    if running:
        results += [t.result() for t in (await asyncio.wait(running))[0]]

    for result in results:
        totals.add(result)
    lost = total - totals.outcomes

    # Only a full run moves the watermark: a run narrowed to some units, one student or one kind of merit
    # leaves the rest of the window unreported, and the next ordinary run must still see it.
    full_run = not selection.school_units and not selection.student and what is What.BOTH
    watermark_moved = full_run and not dry_run and totals.failed == 0
    if watermark_moved:
        ledger.set_watermark(PIPELINE, party, end.replace(tzinfo=PLATFORM_TIMEZONE).astimezone(dt.UTC), run_id)
    key = artifacts.artifact_key("betyg-to-beda", party)
    await artifacts.table(f"{key}-avvisade", totals.rejected_rows,
                    f"Avvisade elever ({totals.rejected}) med Bedas eller skolflows egna meddelanden")
    await artifacts.markdown(f"{key}-sammanfattning",
                       _summary_markdown(totals, start, end, party, dry_run, watermark_moved), "Sammanfattning")
    summary = {"accepted": totals.accepted, "planned": totals.planned, "unchanged": totals.unchanged,
               "rejected": totals.rejected, "failed": totals.failed, "skipped": totals.skipped,
               "protected": totals.protected, "reconciled": totals.reconciled, "lost": lost, "students": total}
    delivered = totals.accepted + totals.unchanged + totals.planned
    if totals.failed and not delivered:
        status, state = "failed", Failed(message=f"Nothing could be sent to Beda: {totals.failure}")
    elif totals.failed:
        status, state = "failed", Failed(
            message=f"{totals.failed} students not delivered ({totals.failure}); the next run sends them. "
                    f"{totals.accepted} accepted, {totals.rejected} rejected.")
    elif lost:
        status, state = "failed", Failed(message=f"{lost} students got no outcome: a defect, please report it")
    else:
        status = "completed"
        state = Completed(message=f"{delivered} students ok ({totals.accepted} accepted, {totals.unchanged} "
                                  f"unchanged, {totals.planned} planned), {totals.rejected} rejected", data=summary)
    ledger.finish_run(run_id, status, summary)
    (logger.error if state.is_failed() else logger.info)("%s", state.message)
    for row in totals.rejected_rows[:20]:
        logger.warning("rejected %s: %s %s %s", row["elev"], row["kod"], row["fält"], row["meddelande"])
    return state

