"""Betyg → Beda: grades and diplomas from the school platform, resolved via SS 12000, reported to Beda.

The flow composes tasks; each task handles a whole batch of students (never one student), and every
student's outcome lands in the ledger. Prefect sees only references: masked personnummer, platform
GUIDs, counts. See README § Betyg → Beda for parameters and behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from skolflow.blocks import BedaCredentials, BetygApiCredentials, SS12000Credentials
from skolflow.boundary import flow, task
from skolflow.concurrency import all_of
from skolflow.connectors.beda.client import BedaClient
from skolflow.connectors.beda.models import MAX_BATCH, Fel
from skolflow.connectors.betyg.client import BetygClient
from skolflow.connectors.betyg.codec import check_document
from skolflow.connectors.betyg.models import PLATFORM_TIMEZONE, platform_now
from skolflow.connectors.betygsdokument.client import BetygsdokumentClient
from skolflow.connectors.http import AnswerLost, HttpSettings, RemoteError, TransientError
from skolflow.connectors.ss12000.client import SS12000Client
from skolflow.connectors.xmlsafe import XmlDocumentError
from skolflow.errors import sanitise, scrub
from skolflow.gcpolicy import fewer_collections
from skolflow.guard import check_target
from skolflow.identity import validate_swedish_orgnr
from skolflow.ledger import Ledger, Outcome
from skolflow.ledger.models import Waiting
from skolflow.ledger.store import OutcomeRow
from skolflow.notify import notify_failure
from skolflow.settings import Settings
from skolflow.tasks import artifacts
from skolflow.tasks.batching import Whole, batched
from skolflow.tasks.beda_report import (
    CAUSES,
    IDENTITY_JOIN,
    SCHOOL_UNIT,
    UNREACHABLE,
    Prepared,
    PreparedBatch,
    Rejection,
    Selection,
    StudentInput,
    What,
    from_payload,
    merged,
    prepare_batch,
    to_payload,
)
from skolflow.tasks.betyg_documents import checked_students, read_documents
from skolflow.tasks.diff import content_hash
from skolflow.tasks.grades import platform_id
from skolflow.tasks.identities import ResolvedPerson, ResolvedUnit, read_units, resolve_persons, same_orgnr
from skolflow.tasks.queue import one_at_a_time

PIPELINE = "betyg_to_beda"
DEFAULT_WINDOW = dt.timedelta(days=14)
# Seconds between progress updates: the UI follows a long run as well, and a short one costs Prefect less.
PROGRESS_EVERY = 5.0
CAUSES_SV = {IDENTITY_JOIN: "identitetskopplingen", SCHOOL_UNIT: "skolenheten", UNREACHABLE: "SS 12000 nåddes inte"}


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
    unsettled: int = 0  # interrupted earlier and not confirmed with Beda this time: neither sent nor settled
    waiting: int = 0  # refused for a cause outside the grade: kept in the ledger and tried again by every run
    unreachable: int = 0  # of the waiting: SS 12000 could not be asked about them
    waiting_because: dict[str, int] = field(default_factory=dict)  # cause (beda_report.CAUSES) → students
    rejected_rows: list[dict[str, str]] = field(default_factory=list)
    waiting_rows: list[dict[str, str]] = field(default_factory=list)
    failure: str | None = None

    COUNTS = ("accepted", "unchanged", "planned", "failed", "skipped", "protected", "reconciled", "rejected",
              "unsettled", "waiting", "unreachable")

    def add(self, other: BatchReport) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for cause, students in other.waiting_because.items():
            self.waiting_because[cause] = self.waiting_because.get(cause, 0) + students
        self.rejected_rows += other.rejected_rows
        self.waiting_rows += other.waiting_rows
        self.failure = self.failure or other.failure

    @property
    def outcomes(self) -> int:
        """Students that got an outcome; 'protected' and 'reconciled' are subsets of 'accepted'."""
        return self.accepted + self.unchanged + self.planned + self.failed + self.skipped + self.rejected + \
            self.unsettled + self.waiting

    def waiting_note(self) -> str:
        """How many students wait and why, in the words every end of a run uses; empty when none does."""
        if not self.waiting:
            return ""
        causes = ", ".join(f"{cause} {n}" for cause in CAUSES if (n := self.waiting_because.get(cause)))
        return f"{self.waiting} waiting (outside the grade: {causes}), retried every run until accepted or dismissed"

    def counts(self) -> str:
        """The four numbers every end of a run states, failed or not, and the students waiting."""
        delivered = self.accepted + self.unchanged
        note = self.waiting_note()
        return (f"{delivered} delivered ({self.accepted} accepted, {self.unchanged} unchanged), {self.rejected} "
                f"rejected, {self.failed} not delivered, {self.unsettled} unsettled" + (f"; {note}" if note else ""))


@dataclass
class Clients:
    """One pooled client per system for the whole run (DESIGN §5), shared by every batch run in the flow's loop.

    One connection pool and one Beda token (renewed only when it expires) instead of new ones per batch; and
    building a client was, before its TLS context was shared, a tenth of a batch's CPU.
    """

    ss12000: SS12000Client
    beda: BedaClient | None  # None on a dry run, which sends nothing


@contextlib.asynccontextmanager
async def open_clients(systems: Systems, party: str, dry_run: bool) -> AsyncIterator[Clients]:
    """The run's clients, closed when the run is done with them."""
    async with contextlib.AsyncExitStack() as stack:
        ss = await stack.enter_async_context(
            SS12000Client(systems.ss12000.base_url, systems.ss12000.token.get_secret_value(), systems.http))
        beda = None if dry_run else await stack.enter_async_context(
            BedaClient(systems.beda.base_url, systems.beda.client_id, systems.beda.client_secret.get_secret_value(),
                       party, systems.http))
        if beda is not None:
            # Fetched while SS 12000 answers the first batch's lookups: a round trip less for a nightly run.
            await stack.enter_async_context(beda.token_ahead())
        yield Clients(ss, beda)


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
             request: str | None = None, response: str | None = None) -> OutcomeRow:
    """One student's outcome as the ledger's columns: a plain mapping, since a batch records hundreds at once."""
    return {"run_id": run_id, "pipeline": PIPELINE, "scope": scope, "record_key": key, "source_key": source,
            "unit": units, "content_hash": content_hash_, "outcome": outcome.value, "errors": errors or [],
            "request_body": request, "response_body": response}


def _refused(report: BatchReport, run_id: str, party: str, rejection: Rejection, *, content_hash_: str = "",
             response: str | None = None) -> OutcomeRow:
    """A refused student's outcome, counted: 'waiting' when every cause lies outside the grade, else 'rejected'."""
    units = ",".join(rejection.units)
    cause = rejection.waits_for
    if cause is None:
        report.rejected += 1
        report.rejected_rows += _rows(rejection, units)
    else:
        report.waiting += 1
        report.unreachable += cause == UNREACHABLE
        report.waiting_because[cause] = report.waiting_because.get(cause, 0) + 1
        report.waiting_rows += _rows(rejection, units)
    return _outcome(run_id, party, rejection.personnummer or rejection.source_id,
                    Outcome.REJECTED if cause is None else Outcome.WAITING, source=rejection.source_id, units=units,
                    content_hash_=content_hash_, errors=[f.model_dump() for f in rejection.errors], response=response)


@dataclass
class _Queue:
    """One batch's changes to the students waiting in the ledger (README § Betyg → Beda, "Nobody left behind").

    A student is kept waiting *before* its outcome is recorded and released *after* its final answer is, so
    a run killed between the two leaves it waiting, never lost: the next run tries it again (and lets a
    settled one go when it finds it unchanged). A dry run, or a run narrowed to one kind of merit (whose
    window the next full run reads again, since it moves no watermark), leaves the queue as it is.
    """

    ledger: Ledger
    party: str
    run_id: str
    students: dict[str, StudentInput]  # the batch's students by platform id
    window: tuple[dt.datetime, dt.datetime]
    enabled: bool

    def keep(self, rejections: Sequence[Rejection]) -> None:
        """Put or keep these students waiting, with what the platform sent and this try's reasons."""
        if not self.enabled or not rejections:
            return
        rows = [Waiting(pipeline=PIPELINE, scope=self.party, record_key=platform_id(r.source_id),
                        personnummer=r.personnummer or "", unit=",".join(r.units),
                        payload=to_payload(self.students[platform_id(r.source_id)], *self.window),
                        errors=[f.model_dump() for f in r.errors]) for r in rejections]
        self.ledger.wait(PIPELINE, self.party, self.run_id, rows,
                         resent={row.record_key for row in rows if self.students[row.record_key].in_window})

    def still(self, prepared: Sequence[Prepared], kod: str, why: str) -> None:
        """Waiting students this run could not settle with Beda: they go on waiting, with this try's reason."""
        self.keep([Rejection(p.source_id, p.personnummer, "skolflow", (Fel(kod=kod, falt="", meddelande=why),),
                             p.units) for p in prepared if self.students[platform_id(p.source_id)].waiting])

    def release(self, source_ids: Iterable[str]) -> None:
        """These students got a final answer: they wait no more (nor stay dismissed)."""
        keys = [platform_id(source_id) for source_id in source_ids]
        if self.enabled and keys:
            self.ledger.release(PIPELINE, self.party, keys)


@task(name="fetch-platform-exports", cache_policy=NO_CACHE, persist_result=False)
async def fetch_exports(systems: Systems, start: dt.datetime, end: dt.datetime, what: What,
                        workdir: Path) -> tuple[Path | None, Path | None]:
    """Download the window's Betyg and Betygsdokument answers to disk, so memory stays flat.

    Both at once: a nightly run carries little, and each answer's round trip is a good part of its time.
    """
    token = systems.platform.token.get_secret_value() if systems.platform.token else None

    async def grades() -> Path | None:
        if not what.grades:
            return None
        async with BetygClient(systems.platform.base_url, token, systems.http) as client:
            return await client.fetch(start, end, dest=workdir / "betyg.xml")

    async def documents() -> Path | None:
        if not what.diplomas:
            return None
        async with BetygsdokumentClient(systems.platform.base_url, token, systems.http) as client:
            return await client.fetch(start, end, dest=workdir / "betygsdokument.xml")

    return await all_of(grades(), documents())


@task(name="read-school-units", cache_policy=NO_CACHE, persist_result=False)
async def school_units_task(systems: Systems) -> dict[str, ResolvedUnit]:
    async with SS12000Client(systems.ss12000.base_url, systems.ss12000.token.get_secret_value(),
                             systems.http) as ss:
        return await read_units(ss)


# How often a batch whose answer was lost is checked with Beda and what Beda lacks sent again, within one run.
DELIVERY_ROUNDS = 3


async def _reconcile_unsettled(beda: BedaClient, ledger: Ledger, scope: str, run_id: str,
                               to_send: list[Prepared]) -> tuple[list[Prepared], int, list[Prepared], str]:
    """A run that died or lost Beda's answer left records unsettled: ask Beda what it holds, student by student.

    What Beda already holds is recorded as accepted and not sent again; the rest is sent. A student whose check
    fails stays unsettled (neither sent nor settled: the next run asks again), and the others go on, so every
    rerun makes progress however flaky Beda is. Returns what to send, how many were settled, the students left
    unconfirmed and why.
    """
    unsettled = ledger.unsettled(PIPELINE, scope, [p.personnummer for p in to_send])
    if not unsettled:
        return to_send, 0, [], ""
    still: list[Prepared] = []
    unconfirmed: list[Prepared] = []
    why = ""
    settled: dict[str, tuple[str, dict[str, Any]]] = {}
    outcomes: list[OutcomeRow] = []
    for prepared in to_send:
        if prepared.personnummer not in unsettled:
            still.append(prepared)
            continue
        try:
            held = await beda.get_student(prepared.personnummer)
        except RemoteError as exc:
            unconfirmed.append(prepared)
            why = f"Beda answered {exc.status_code or 'nothing'} when asked what it holds: {scrub(exc.body[:300])}"
            continue
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
    outcomes += [_outcome(run_id, scope, p.personnummer, Outcome.FAILED, source=p.source_id, units=",".join(p.units),
                          content_hash_=p.content_hash, errors=[{"kod": "OBEKRÄFTAD", "falt": "", "meddelande": why}])
                 for p in unconfirmed]
    if settled:
        ledger.accept(PIPELINE, scope, run_id, settled)
    ledger.record(outcomes)
    return still, len(settled), unconfirmed, why


@task(name="report-batch-to-beda", cache_policy=NO_CACHE, persist_result=False)
async def report_batch(batch: Whole[list[StudentInput]], systems: Systems, school_units: Whole[dict[str, ResolvedUnit]],
                       party: str, selection: Selection, what: What, run_id: str, database_url: str,
                       dry_run: bool, window: tuple[dt.datetime, dt.datetime],
                       clients: Whole[Clients] | None = None) -> BatchReport:
    """Resolve, check, diff and send one batch; record every student's outcome in the ledger.

    Whatever goes wrong, every student of the batch gets an outcome: one the batch did not reach is recorded
    'failed' with the (sanitised) reason, so the next run takes it up again and the run's counts stay whole.
    ``clients`` are the run's, when the batch runs in the flow's loop; a batch run elsewhere (a Dask worker)
    builds its own.
    """
    students = batch.value
    ledger = Ledger.shared(database_url)
    report = BatchReport()
    seen: set[str] = set()
    queue = _Queue(ledger, party, run_id, {platform_id(s.student_id): s for s in students}, window,
                   enabled=what is What.BOTH and not dry_run)
    try:
        async with contextlib.AsyncExitStack() as stack:
            own = clients.value if clients is not None else await stack.enter_async_context(
                open_clients(systems, party, dry_run))
            return await _report_batch(students, own, school_units.value, party, selection, what, run_id, ledger,
                                       dry_run, queue, report, seen)
    except Exception as exc:
        failure = str(sanitise(exc))
        left = [s for s in students if s.student_id not in seen]
        get_run_logger().error("batch stopped, %d students not reported: %s", len(left), failure)
        ledger.record([_outcome(run_id, party, s.student_id, Outcome.FAILED, source=s.student_id,
                                errors=[{"kod": "AVBRUTEN", "falt": "", "meddelande": failure}]) for s in left])
        report.failed += len(left)
        report.failure = report.failure or failure
        return report


async def _report_batch(students: list[StudentInput], clients: Clients, units: dict[str, ResolvedUnit], party: str,
                        selection: Selection, what: What, run_id: str, ledger: Ledger, dry_run: bool, queue: _Queue,
                        report: BatchReport, seen: set[str]) -> BatchReport:
    """The batch's work. ``report`` and ``seen`` (students with an outcome) are filled as it goes, for the caller.

    The batch is resolved, checked and recorded at once; what is to be sent goes to Beda in parts of at most
    :data:`MAX_BATCH` students (Beda's limit), each recorded pending before it is sent and answered before the
    next.
    """
    logger = get_run_logger()

    def record(outcomes: list[OutcomeRow]) -> None:
        ledger.record(outcomes)
        seen.update(o["source_key"] for o in outcomes if o["outcome"] != Outcome.PENDING)

    persons: dict[str, ResolvedPerson] = {}
    unreachable = None
    try:
        persons = await resolve_persons(clients.ss12000, (platform_id(s.student_id) for s in students))
    except (TransientError, RemoteError) as exc:
        # Nothing is lost by going on: each student waits in the ledger, and every later run asks again.
        unreachable = f"SS 12000 answered {exc.status_code or 'nothing'}: {scrub(exc.body[:300])}"
        logger.error("batch of %d students not resolved, they wait: %s", len(students), unreachable)
        report.failure = unreachable
    civics = [p.civic_no for p in persons.values() if p.civic_no]
    previous = ledger.sent_state(PIPELINE, party, civics)
    authorised = frozenset(u.code for u in units.values() if u.code and same_orgnr(u.huvudman_orgnr, party))
    prepared: PreparedBatch = prepare_batch(students, persons, units, authorised, previous, selection, what,
                                            unreachable=unreachable)

    report.unchanged, report.skipped = len(prepared.unchanged), prepared.skipped
    queue.keep([r for r in prepared.rejected if r.waits_for])
    outcomes = [_outcome(run_id, party, p.personnummer, Outcome.UNCHANGED, source=p.source_id,
                         units=",".join(p.units), content_hash_=p.content_hash) for p in prepared.unchanged]
    outcomes += [_refused(report, run_id, party, rejection) for rejection in prepared.rejected]
    if dry_run:
        report.planned = len(prepared.to_send)
        outcomes += [_outcome(run_id, party, p.personnummer, Outcome.PLANNED, source=p.source_id,
                              units=",".join(p.units), content_hash_=p.content_hash,
                              request=p.merits.model_dump_json(by_alias=True, exclude_none=True))
                     for p in prepared.to_send]
        record(outcomes)
        return report
    record(outcomes)
    queue.release([p.source_id for p in prepared.unchanged] +
                  [r.source_id for r in prepared.rejected if not r.waits_for])
    sending = {p.source_id for p in prepared.to_send}
    seen.update(s.student_id for s in students if s.student_id not in sending)
    if not prepared.to_send or clients.beda is None:
        return report
    for part in batched(prepared.to_send, MAX_BATCH):
        await _send_part(clients.beda, part, ledger, party, run_id, queue, report, record, seen)
    return report


async def _send_part(client: BedaClient, part: list[Prepared], ledger: Ledger, party: str, run_id: str,
                     queue: _Queue, report: BatchReport, record: Callable[[list[OutcomeRow]], None],
                     seen: set[str]) -> None:
    """Send one Beda batch: ask Beda about students left unsettled, record the rest pending, send, record answers.

    A batch whose answer was lost (read timeout, dropped connection) may have reached Beda: it is not resent
    blindly but its students are asked about, one by one, and only what Beda does not hold is sent again, up to
    :data:`DELIVERY_ROUNDS` times, so each student's merits reach Beda once. Any other delivery failure fails this
    part's students (the next run asks Beda what it holds before sending them again) and leaves the batch's
    other parts to go on.
    """
    logger = get_run_logger()
    for delivery in range(1, DELIVERY_ROUNDS + 1):
        to_send, reconciled, unconfirmed, why = await _reconcile_unsettled(client, ledger, party, run_id, part)
        # Those not sent now got their outcome from the reconciliation: settled (accepted) or unconfirmed (failed).
        kept = {p.personnummer for p in to_send}
        left = {p.personnummer for p in unconfirmed}
        seen.update(p.source_id for p in part if p.personnummer not in kept)
        queue.release(p.source_id for p in part if p.personnummer not in kept and p.personnummer not in left)
        queue.still(unconfirmed, "OBEKRÄFTAD", why)
        report.reconciled += reconciled
        report.accepted += reconciled
        report.unsettled += len(unconfirmed)
        report.failure = report.failure or (why if unconfirmed else None)
        if not to_send:
            return
        by_key = {p.personnummer: p for p in to_send}
        record([_outcome(run_id, party, p.personnummer, Outcome.PENDING, source=p.source_id, units=",".join(p.units),
                         content_hash_=p.content_hash) for p in to_send])
        try:
            results = await client.send_batch([p.merits for p in to_send])
            break
        except (TransientError, RemoteError) as exc:
            # Left 'failed': asked about (now, after a lost answer, or by the next run) before being sent again.
            failure = f"Beda answered {exc.status_code or 'nothing'}: {scrub(exc.body[:300])}"
            record([_outcome(run_id, party, p.personnummer, Outcome.FAILED, source=p.source_id,
                             units=",".join(p.units), content_hash_=p.content_hash,
                             errors=[{"kod": "LEVERANS", "falt": "", "meddelande": failure}]) for p in to_send])
            if isinstance(exc, AnswerLost) and delivery < DELIVERY_ROUNDS:
                logger.warning("Beda's answer to a batch of %d students was lost (%s); asking Beda what it holds",
                               len(to_send), failure)
                part = to_send
                continue
            report.failed += len(to_send)
            report.failure = failure
            logger.error("batch of %d students not delivered: %s", len(to_send), failure)
            queue.still(to_send, "LEVERANS", failure)
            return

    accepted: dict[str, tuple[str, dict[str, Any]]] = {}
    answered: list[OutcomeRow] = []
    refused: list[Rejection] = []
    for result in results:
        sent = by_key[result.personnummer]
        body = result.model_dump_json(by_alias=True)
        if result.accepted:
            accepted[sent.personnummer] = (sent.content_hash, sent.content)
            answered.append(_outcome(run_id, party, sent.personnummer, Outcome.ACCEPTED, source=sent.source_id,
                                     units=",".join(sent.units), content_hash_=sent.content_hash, response=body))
        else:
            rejection = Rejection(sent.source_id, sent.personnummer, "Beda", tuple(result.fel), sent.units)
            refused.append(rejection)
            answered.append(_refused(report, run_id, party, rejection, content_hash_=sent.content_hash,
                                     response=body))
    queue.keep([r for r in refused if r.waits_for])
    report.accepted += len(accepted)
    report.protected += sum(1 for p in to_send if p.protected and p.personnummer in accepted)
    ledger.accept(PIPELINE, party, run_id, accepted)
    record(answered)
    queue.release([by_key[key].source_id for key in accepted] + [r.source_id for r in refused if not r.waits_for])


class _CountingFile(io.FileIO):
    """The grade export opened for the parser, counting the bytes it reads: how far the run has got.

    (Asking ``tell()`` after each student cost more than reading the students.)
    """

    counted = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size) or b""
        self.counted += len(data)
        return data


class _Students:
    """The run's students, streamed: the grade export's, then those who only have new documents, then the waiting.

    A waiting student the window sends again is taken with the window's version merged in (the newer wins).
    The grade export is read once, as the batches need it; on the way this counts the distinct students (the
    run's total, against which every student's outcome is checked) and how far into the export it has read
    (the progress, since the number of students is known only at the end).
    """

    def __init__(self, grades_path: Path | None, documents: dict[str, list[Any]], waiting: dict[str, StudentInput]):
        self.grades_path = grades_path
        self.documents = documents
        self.waiting = waiting
        self.keys: set[str] = set()
        self.size = grades_path.stat().st_size if grades_path else 0
        self._export: _CountingFile | None = None

    @property
    def read(self) -> int:
        """Bytes of the grade export read so far."""
        return self._export.counted if self._export is not None else 0

    def _newest(self, key: str, student: StudentInput) -> StudentInput:
        self.keys.add(key)
        return merged(self.waiting[key], student) if key in self.waiting else student

    def __iter__(self) -> Iterator[StudentInput]:
        if self.grades_path is not None:
            with _CountingFile(self.grades_path) as self._export:
                for student in checked_students(self._export):
                    key = platform_id(student.student_id)
                    student.documents = self.documents.get(key, [])
                    yield self._newest(key, student)
        for key, docs in self.documents.items():
            if key not in self.keys:
                yield self._newest(key, StudentInput(student_id=docs[0].elev, documents=docs))
        for key, student in self.waiting.items():
            if key not in self.keys:
                self.keys.add(key)
                yield student


def _read_waiting(ledger: Ledger, party: str) -> dict[str, StudentInput]:
    """The party's waiting students by platform id, read once per run in one query.

    A stored input that can no longer be read (written by a skolflow that read it differently) rejects that
    student with the reason, rather than failing every run from now on.
    """
    students: dict[str, StudentInput] = {}
    for row in ledger.waiting(PIPELINE, party):
        try:
            students[row.record_key] = from_payload(row.payload)
        except XmlDocumentError as exc:
            why = f"the waiting student's stored input could not be read ({sanitise(exc)}): report it again with --from"
            students[row.record_key] = StudentInput(row.record_key, schema_errors=[why], waiting=True, in_window=False)
    return students


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
        f"| väntar: orsaken ligger utanför betyget (försöks igen vid varje körning) | {totals.waiting} |",
        f"| ej levererade (skickas vid nästa körning) | {totals.failed} |",
        f"| obekräftade hos Beda (frågas igen vid nästa körning) | {totals.unsettled} |",
        f"| utanför urvalet | {totals.skipped} |",
        "",
        f"Skyddade identiteter bland de skickade: {totals.protected} (visas bara som referens).",
        f"Bekräftade hos Beda efter en avbruten körning: {totals.reconciled}.",
        *([f"Väntande elever: {totals.waiting} ("
           + ", ".join(f"{CAUSES_SV[cause]} {n}" for cause in CAUSES if (n := totals.waiting_because.get(cause)))
           + "). De ligger kvar i huvudboken och försöks igen vid varje körning, utan --from, tills Beda godkänner "
           "dem eller en administratör avskriver dem (`skolflow history beda --pending`)."] if totals.waiting else []),
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
    batch_size: int = 1000,
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
    http = settings.http(confirm_production)
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
            with fewer_collections():
                return await _report(systems, ledger, settings, run_id, party, selection, what, start, end,
                                     dry_run, workdir, batch_size, concurrency)
        except BaseException as exc:
            ledger.finish_run(run_id, "failed", {"error": str(sanitise(exc))[:1000]})
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


async def _report(systems: Systems, ledger: Ledger, settings: Settings, run_id: str, party: str,
                  selection: Selection, what: What, start: dt.datetime, end: dt.datetime, dry_run: bool,
                  workdir: Path, batch_size: int, concurrency: int) -> State:
    """Everything after the guard: fetch, then batches in parallel (bounded), then artifacts and state."""
    logger = get_run_logger()
    totals = BatchReport()
    try:
        # Independent calls, made together: fewer round trips for every run, however little it carries.
        (grades_path, documents_path), units, progress = await all_of(
            fetch_exports(systems, start, end, what, workdir), school_units_task(systems),
            artifacts.Progress.start(f"Betyg → Beda {party}: elever behandlade", every=PROGRESS_EVERY))
    except RemoteError as exc:
        message = f"nothing was read, nothing sent ({exc}); {totals.counts()}. The next run tries again."
        ledger.finish_run(run_id, "failed", {"failure": message})
        return Failed(message=message)
    documents: dict[str, list[Any]] = defaultdict(list)
    # A run narrowed to one kind of merit leaves the waiting students alone: each holds both kinds.
    waiting = _read_waiting(ledger, party) if what is What.BOTH else {}
    try:
        for document in read_documents(documents_path) if documents_path else ():
            documents[platform_id(document.elev)].append(document)
        if grades_path is not None:  # before any student is acted on; the students are read in the one pass after
            check_document(grades_path)
    except XmlDocumentError as exc:  # another version or kind of document: read as empty it would move the watermark
        message = f"the platform's answer could not be read, nothing sent ({sanitise(exc)}); {totals.counts()}."
        ledger.finish_run(run_id, "failed", {"failure": message})
        return Failed(message=message)
    students = _Students(grades_path, documents, waiting)
    # The batches are asyncio code whose waiting overlaps in one loop: run in the flow's own loop (task runs
    # all the same) they share the run's clients, and spare the default runner's threads, which gained nothing
    # but contention for the GIL. A runner that takes tasks to other processes (Dask, README § Scale-out) is
    # given them to submit, and each batch there builds its own clients.
    context = FlowRunContext.get()
    elsewhere = context is not None and not isinstance(context.task_runner, ThreadPoolTaskRunner)

    async def one(batch: list[StudentInput], clients: Clients | None) -> BatchReport:
        arguments = (Whole(batch), systems, Whole(units), party, selection, what, run_id, settings.database_url,
                     dry_run, (start, end))
        try:
            if clients is None:
                future = report_batch.submit(*arguments)
                result = await asyncio.to_thread(future.result)
            else:
                result = await report_batch(*arguments, clients=Whole(clients))
        except Exception as exc:  # the task itself never ran to its end: its students count as not delivered
            result = BatchReport(failed=len(batch), failure=str(sanitise(exc)))
        await progress.update(students.read, students.size)
        return result

    async with contextlib.AsyncExitStack() as stack:
        clients = None if elsewhere else await stack.enter_async_context(open_clients(systems, party, dry_run))
        running: set[asyncio.Task[BatchReport]] = set()
        for batch in batched(students, batch_size):
            running.add(asyncio.create_task(one(batch, clients)))
            if len(running) >= max(1, concurrency):
                finished, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for done in finished:
                    totals.add(done.result())
        for done in (await asyncio.wait(running))[0] if running else ():
            totals.add(done.result())
    await progress.update(1, 1)
    total = len(students.keys)
    lost = total - totals.outcomes

    # Only a full run moves the watermark: a run narrowed to some units, one student or one kind of merit
    # leaves the rest of the window unreported, and the next ordinary run must still see it. Waiting students
    # never hold it back: they are kept in the ledger and every later run takes them up, whatever its window.
    full_run = not selection.school_units and not selection.student and what is What.BOTH
    watermark_moved = full_run and not dry_run and totals.failed == 0 and totals.unsettled == 0
    if watermark_moved:
        ledger.set_watermark(PIPELINE, party, end.replace(tzinfo=PLATFORM_TIMEZONE).astimezone(dt.UTC), run_id)
    key = artifacts.artifact_key("betyg-to-beda", party)
    await all_of(
        artifacts.table(f"{key}-avvisade", totals.rejected_rows,
                        f"Avvisade elever ({totals.rejected}) med Bedas eller skolflows egna meddelanden"),
        artifacts.table(f"{key}-vantande", totals.waiting_rows,
                        f"Väntande elever ({totals.waiting}): orsaken ligger utanför betyget; de försöks igen vid "
                        "varje körning tills de godkänns eller avskrivs"),
        artifacts.markdown(f"{key}-sammanfattning",
                           _summary_markdown(totals, start, end, party, dry_run, watermark_moved), "Sammanfattning"))
    summary = {"accepted": totals.accepted, "planned": totals.planned, "unchanged": totals.unchanged,
               "rejected": totals.rejected, "failed": totals.failed, "unsettled": totals.unsettled,
               "skipped": totals.skipped, "waiting": totals.waiting, "waiting_because": totals.waiting_because,
               "protected": totals.protected, "reconciled": totals.reconciled, "lost": lost, "students": total}
    delivered = totals.accepted + totals.unchanged + totals.planned
    if (totals.failed or totals.unsettled) and not delivered:
        status, state = "failed", Failed(message=f"Nothing could be sent to Beda ({totals.failure}): "
                                                 f"{totals.counts()}. The next run takes them up again.")
    elif totals.failed or totals.unsettled:
        status, state = "failed", Failed(message=f"Not every student reached Beda ({totals.failure}): "
                                                 f"{totals.counts()}. The next run takes them up again.")
    elif totals.unreachable:
        # Nothing is lost (they wait in the ledger), but an outage is for an administrator to see, not a count.
        status, state = "failed", Failed(message=f"SS 12000 could not be reached for {totals.unreachable} students "
                                                 f"({totals.failure}): {totals.counts()}.")
    elif lost:
        status, state = "failed", Failed(message=f"{lost} students got no outcome: a defect, please report it")
    else:
        status = "completed"
        note = totals.waiting_note()
        state = Completed(message=f"{delivered} students ok ({totals.accepted} accepted, {totals.unchanged} "
                                  f"unchanged, {totals.planned} planned), {totals.rejected} rejected"
                                  + (f", {note}" if note else ""), data=summary)
    ledger.finish_run(run_id, status, summary)
    (logger.error if state.is_failed() else logger.info)("%s", state.message)
    for row in totals.rejected_rows[:20]:
        logger.warning("rejected %s: %s %s %s", row["elev"], row["kod"], row["fält"], row["meddelande"])
    for row in totals.waiting_rows[:20]:
        logger.warning("waiting %s: %s %s %s", row["elev"], row["kod"], row["fält"], row["meddelande"])
    return state

