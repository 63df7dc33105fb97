"""One DNP provisioning step (users, duties, groups or activities): diff, send in chunks, follow the jobs.

Records go with ``updateIfExists=true``, so a chunk sent twice (a retry after a lost answer) changes
nothing. Every call — each bulk POST, each ``isCompleted`` poll, each job status — is kept in the
ledger with both bodies; each record's outcome with DNP's LogEntry messages. A record DNP answers
``TemporaryError`` is sent again (up to :data:`TEMPORARY_ROUNDS` times) before it counts as failed.

Where DNP is looser than its contract the step goes on: a chunk DNP answers 413 is halved until it fits (a
record refused alone is refused with ``SF-STORLEK``, the rest sent); a record status the contract does not list
is read as :attr:`~skolflow.connectors.dnp.models.RecordResponse.settled` says (accepted with the status's
text as an ``SF-STATUS`` warning, rejected when DNP gives errors, or left for the next run).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from skolflow.blocks import DnpCredentials
from skolflow.boundary import task
from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.auth import MtlsTokenSource, TokenStore, certificate_thumbprint, pem_of
from skolflow.connectors.dnp.client import (
    MAX_PAYLOAD_BYTES,
    Chunker,
    DnpClient,
    DnpError,
    Kind,
    PayloadTooLarge,
    TokenSource,
    bulk_body,
    encode_wire,
)
from skolflow.connectors.dnp.models import Activity as DnpActivity
from skolflow.connectors.dnp.models import AsynchronousResponse, Duty, Group, LogEntry, Person, RecordResult
from skolflow.connectors.http import HttpSettings
from skolflow.errors import sanitise
from skolflow.identity import mask, mask_email, mask_text
from skolflow.ledger import ApiCall, Ledger, Outcome, RecordOutcome
from skolflow.ledger.store import OutcomeRow
from skolflow.tasks.diff import content_hash

PIPELINE = "dnp_provisioning"
STEPS: tuple[Kind, ...] = ("persons", "duties", "groups", "activities")
STEP_LABELS: dict[str, str] = {"persons": "Användare", "duties": "Tjänstgöringar", "groups": "Grupper",
                               "activities": "Aktiviteter"}
TEMPORARY_ROUNDS = 3
CALLS_IN_FLIGHT = 3
ROWS_SHOWN = 5000  # a step's table artifact shows its first rows; every record's outcome is in the ledger
JOB_TIMEOUT_SECONDS = 900.0
Record = Person | Duty | Group | DnpActivity
StepStatus = Literal["completed", "failed", "skipped", "planned"]
# A record refused only because something it references is missing (DNP's "Referens saknas" rules, and
# skolflow's SF-BEROENDE: the reference was refused in an earlier step) is not at fault itself. The source is
# read whole every run and nothing of it is held back, so it goes as soon as the reference exists: it waits.
DEPENDENCY = "SF-BEROENDE"
MISSING_REFERENCE = frozenset({rules.PERSON_MISSING, rules.MEMBER_MISSING, rules.GROUP_MISSING, rules.DUTY_MISSING,
                               DEPENDENCY})
UNKNOWN_STATUS = "SF-STATUS"  # skolflow's code: DNP answered a record status its contract does not list
STATUS_MARK = {"Success": "✅", "Warning": "⚠️", "Error": "❌", "TooLarge": "❌", "TemporaryError": "⏳", "Failed": "❌",
               "Planned": "📝", "Deleted": "🗑️"}


# One token store per authorisation server, DNP endpoint and certificate in this process: every step and deletion
# of a run builds its own client, and they (and later runs) share one token until it nears expiry.
_TOKEN_STORES: dict[tuple[str, str, str], TokenStore] = {}
_TOKEN_STORES_LOCK = threading.Lock()


@dataclass
class Dnp:
    credentials: DnpCredentials
    http: HttpSettings = field(default_factory=HttpSettings)

    def token(self) -> TokenSource:
        """How calls authenticate: tokens fetched over mTLS with the huvudman's certificate, else the fixed token."""
        credentials = self.credentials
        if not credentials.uses_certificate():
            assert credentials.token is not None  # uses_certificate raises when there is neither
            return credentials.token.get_secret_value()
        assert credentials.certificate is not None and credentials.private_key is not None
        certificate = pem_of(credentials.certificate, "certificate")
        key = pem_of(credentials.private_key.get_secret_value(), "private key")
        trust = pem_of(credentials.auth_ca, "authorisation server's CA") if credentials.auth_ca else None
        with _TOKEN_STORES_LOCK:
            store = _TOKEN_STORES.setdefault(
                (credentials.auth_url, credentials.base_url, certificate_thumbprint(certificate)), TokenStore())
        return MtlsTokenSource(credentials.auth_url, [credentials.base_url], certificate, key, self.http,
                               trust_pem=trust, store=store)

    def client(self) -> DnpClient:
        return DnpClient(self.credentials.base_url, self.token(), self.http)


def scope_of(huvudman: str, kind: str) -> str:
    return f"{huvudman}/{kind}"


def waits_for_reference(codes: Iterable[str]) -> bool:
    """A refusal whose every code is a missing reference: the record waits for it rather than being rejected."""
    found = set(codes)
    return bool(found) and found <= MISSING_REFERENCE


def refused_records(refusals: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """(rejected, waiting) records among refusals given as (record id, code), one per broken rule."""
    codes: dict[str, set[str]] = {}
    for record_id, code in refusals:
        codes.setdefault(record_id, set()).add(code)
    waiting = sum(1 for found in codes.values() if waits_for_reference(found))
    return len(codes) - waiting, waiting


def record_hash(record: Record) -> str:
    """What DNP holds of a record; ``meta`` and read-only fields are not content."""
    return _content_hash(record.to_wire())


def _content_hash(wire: dict[str, Any]) -> str:
    return content_hash({key: value for key, value in wire.items() if key not in ("meta", "provisioningStatus")})


@dataclass(slots=True)
class _Wired:
    """A record turned into JSON once, on its way into a chunk: its bytes (the size the chunk counts, the body
    sent, the request kept in the ledger), the object DNP will hold and its hash. A step of 100,000 persons
    made each of these several times over before, and that work held the loop the calls go out from."""

    body: bytes
    wire: dict[str, Any]
    digest: str

    @classmethod
    def of(cls, record: Record) -> _Wired:
        wire = record.to_wire()
        return cls(encode_wire(wire), wire, _content_hash(wire))


@dataclass
class StepReport:
    """One step's counts and masked table rows: what the flow, the artifact and the summary show."""

    kind: str
    status: StepStatus = "completed"
    sent: int = 0
    accepted: int = 0
    warnings: int = 0
    rejected: int = 0  # by DNP
    rejected_before: int = 0  # by skolflow, before sending
    waiting: int = 0  # refused (by DNP or skolflow) only for a missing reference: sent once it exists
    unchanged: int = 0
    failed: int = 0
    deleted: int = 0
    calls: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)
    rejected_ids: set[str] = field(default_factory=set)
    failure: str | None = None

    def counts(self) -> dict[str, Any]:
        return {"status": self.status, "sent": self.sent, "accepted": self.accepted, "warnings": self.warnings,
                "rejected": self.rejected, "rejected_before_sending": self.rejected_before, "waiting": self.waiting,
                "unchanged": self.unchanged, "failed": self.failed, "deleted": self.deleted, "calls": self.calls,
                **({"failure": self.failure} if self.failure else {})}


def _eppns(person: Person) -> str:
    """Masked as an e-mail address is: an EPPN is often made of the person's name (Skolverket's warning 3047)."""
    return ", ".join(mask_email(eppn) for eppn in person.edu_person_principal_names)


def describe(record: Record, people: dict[str, Person]) -> dict[str, str]:
    """The columns seed 003's history shows for a record, masked."""
    if isinstance(record, Person):
        enrolment = (record.enrolments or [None])[0]
        return {"roll": "Elev" if record.enrolments else "Personal", "personnummer": mask(record.civic_no.value),
                "eppn": _eppns(record),
                "årskurs": str(enrolment.school_year or "") if enrolment else "",
                "skolform": enrolment.school_type if enrolment else ""}
    if isinstance(record, Duty):
        person = people.get(record.person.id)
        return {"roll": record.duty_role, "personnummer": mask(person.civic_no.value) if person else "",
                "eppn": _eppns(person) if person else "", "skolenhet": record.duty_at.id}
    if isinstance(record, Group):
        return {"namn": record.display_name, "typ": record.group_type, "skolform": record.school_type,
                "medlemmar": str(len(record.group_memberships or []))}
    return {"namn": record.display_name, "provaktivitet": record.parent_activity.id,
            "grupper": str(len(record.groups)), "lärare": str(len(record.teachers or []))}


def _messages(entries: Sequence[LogEntry]) -> str:
    return mask_text("; ".join(f"{e.id} {e.message}" for e in entries))


def _log(entries: Sequence[LogEntry]) -> list[dict[str, Any]]:
    return [{"kod": e.id, "falt": e.attribute_name or e.parameter_name or "", "meddelande": mask_text(e.message),
             "allvarlighet": e.severity_level} for e in entries]


class _LedgerWriter:
    """A step's ledger writes, in the order given, on a thread of their own.

    Each write is a transaction (a job's outcomes, what DNP now holds, one call). On the event loop they held up
    the calls to DNP and the source's pages, most of all while another thread maps: SQLite gives up the
    interpreter lock for every row and then waits its turn to take it back. :meth:`flush` waits for every write
    so far and raises the first that failed: a step has not ended before its outcomes are in the ledger.
    """

    def __init__(self, name: str):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list[Future[None]] = []

    def __call__(self, write: Callable[..., None], *args: Any) -> None:
        self._pending = [f for f in self._pending if not f.done() or f.exception() is not None]
        self._pending.append(self._pool.submit(write, *args))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        for done in pending:
            await asyncio.wrap_future(done)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


class _Calls:
    """Every call of a step into the ledger, as it happens (through ``write``, when the step has a writer)."""

    def __init__(self, ledger: Ledger, run_id: str, kind: str, write: Callable[..., None] | None = None):
        self.ledger, self.run_id, self.kind, self.count = ledger, run_id, kind, 0
        self.write = write or (lambda call, *args: call(*args))

    def add(self, method: str, path: str, status: int | None, request: str | None, response: str | None,
            reference: str = "") -> None:
        self.count += 1
        self.write(self.ledger.record_call, ApiCall(run_id=self.run_id, pipeline=PIPELINE, step=self.kind,
                                                    method=method, path=path, status_code=status,
                                                    reference=reference, request_body=request,
                                                    response_body=response))


@dataclass
class JobPace:
    """How long DNP's jobs take from receipt to answer, as this process has seen them.

    Each job costs one write (the bulk POST) and at least one status read from the same 5 calls/s, so every
    poll of a job that is not done yet is a write the run cannot make. A job's status is therefore read once,
    when the job should be done (its submission plus :attr:`expected`), and read directly: the contract's job
    status lists every record as ``Pending`` until it is processed, so "no record Pending" is completion and
    ``isCompleted`` is needed only for a job that turned out not to be done. What the waits show is learned:
    a job found unfinished raises the estimate to what it took; one found done lowers it slowly.
    """

    expected: float = 1.0  # seconds from submission to a settled job; a first guess, learned from then on
    least: float = 0.1
    most: float = 30.0

    def learn(self, took: float | None) -> None:
        """``took``: a job's observed time to completion, or None when it was done at the first read."""
        if took is None:
            self.expected = max(self.least, self.expected * 0.8)
        else:
            self.expected = min(self.most, max(self.least, took))


_PACES: dict[int, JobPace] = {}


def job_pace(dnp: DnpClient) -> JobPace:
    """One learned pace per DNP host in this process (keyed like its shared rate budget), for every step and run."""
    return _PACES.setdefault(id(dnp.budget), JobPace())


async def _follow(dnp: DnpClient, kind: Kind, job_id: str, calls: _Calls, *, submitted: float | None = None,
                  pace: JobPace | None = None) -> AsynchronousResponse:
    """The job's per-record answers, with as few status calls as the job allows (usually one).

    Waits until the job should be done (``submitted`` + the pace's estimate), then reads the job's status
    (never cached); if records are still ``Pending``, polls ``isCompleted`` with a doubling interval from the
    estimate (at most 5 s) and reads the status once more when it says done.
    """
    pace = pace or JobPace()
    submitted = time.monotonic() if submitted is None else submitted
    deadline = submitted + JOB_TIMEOUT_SECONDS
    await asyncio.sleep(max(0.0, submitted + pace.expected - time.monotonic()))
    answer = await dnp.job(kind, job_id)
    calls.add("GET", f"/{kind}/bulk/jobs/{job_id}", 200, None, answer.model_dump_json(by_alias=True), job_id)
    if answer.is_completed:
        pace.learn(None)
        return answer
    interval = max(pace.expected / 2, 0.1)
    while True:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"DNP {kind} job {job_id} not completed after {JOB_TIMEOUT_SECONDS:.0f} s")
        await asyncio.sleep(interval)
        interval = min(interval * 2, 5.0)
        done = await dnp.is_completed(kind, job_id)
        calls.add("GET", f"/{kind}/bulk/jobs/{job_id}/isCompleted", 200, None, json.dumps(done), job_id)
        if done:
            break
    pace.learn(time.monotonic() - submitted)
    answer = await dnp.job(kind, job_id)
    calls.add("GET", f"/{kind}/bulk/jobs/{job_id}", 200, None, answer.model_dump_json(by_alias=True), job_id)
    return answer


async def batches_of(records: Sequence[Record] | AsyncIterable[Sequence[Record]]) -> AsyncIterator[Sequence[Record]]:
    """A step's records in batches: a list is one batch; a feed's batches come as the source is read."""
    if isinstance(records, AsyncIterable):
        async for batch in records:
            yield batch
    else:
        yield records


_Job = tuple[str, float, Sequence[Record]]  # a job's id, when it was submitted, the records it carries


class _Sending:
    """One step's records from hand-over to outcome.

    Chunks go as they fill, so a step fed while the source is still read starts with its first full chunk. Each
    job's records are settled — counted, shown, and kept in the ledger with what DNP now holds — as soon as its
    answer is read, so a large step's bookkeeping is done while DNP's rate spaces the calls, not after the last
    one; and a run that stops half-way has recorded every answer it read.
    """

    def __init__(self, kind: Kind, people: dict[str, Person], huvudman: str, run_id: str, ledger: Ledger):
        self.kind, self.people, self.huvudman, self.run_id, self.ledger = kind, people, huvudman, run_id, ledger
        self.report = StepReport(kind)
        self.write = _LedgerWriter(f"dnp-ledger-{kind}")
        self.calls = _Calls(ledger, run_id, kind, self.write)
        self.open: dict[str, Record] = {}  # handed over, no outcome yet
        self.wired: dict[str, _Wired] = {}  # open records as they are sent

    async def round(self, dnp: DnpClient, batches: AsyncIterator[Sequence[Record]], *, fresh: bool,
                    last: bool) -> list[Record]:
        """Send every record once, reading each job (and settling its records) once it should be done; what to
        send again.

        ``fresh``: the records are handed over now (counted as sent). What DNP answers ``TemporaryError`` is
        returned to be sent again, unless this is the ``last`` round. A record no body can carry is refused alone
        (by skolflow's cap, or by DNP's 413 when sent alone) and the rest of the step goes on.
        """
        again: list[Record] = []
        # DNP's answers take longer than its rate spaces calls (a 200 KB body; a job's answer of hundreds of
        # records), so one call at a time would leave the rate unspent: up to CALLS_IN_FLIGHT of the step's writes
        # and job reads are under way at once, all drawing on the one budget, which keeps them within DNP's rate.
        # Chunks of one step do not depend on each other, so the order DNP receives them in does not matter.
        slots = asyncio.Semaphore(CALLS_IN_FLIGHT)
        pace = job_pace(dnp)

        async def write(chunk: Sequence[Record]) -> None:
            try:
                jobs = await self.submit(dnp, chunk)
            finally:
                slots.release()
            for job in jobs:
                group.create_task(read(job))

        async def read(job: _Job) -> None:
            job_id, submitted, sent = job
            await asyncio.sleep(max(0.0, submitted + pace.expected - time.monotonic()))  # its time, not a slot's
            async with slots:
                answer = await _follow(dnp, self.kind, job_id, self.calls, submitted=submitted, pace=pace)
            results = {r.id: r for r in answer.responses}
            answered: list[tuple[Record, RecordResult | None, str | None]] = []
            for record in sent:
                result = results.get(record.id)
                if result is not None and result.response.settled == "TemporaryError" and not last:
                    again.append(record)
                elif result is not None:
                    answered.append((record, result, None))
            self.settle(answered)  # a record the job's answer does not list stays open: failed, at the end

        try:
            async with asyncio.TaskGroup() as group:
                async for chunk in self.chunks(dnp, batches, fresh=fresh):
                    await slots.acquire()
                    group.create_task(write(chunk))
        except BaseExceptionGroup as failed:  # the first call that failed stops the step, as it did alone
            raise failed.exceptions[0] from None
        return again

    async def chunks(self, dnp: DnpClient, batches: AsyncIterator[Sequence[Record]], *,
                     fresh: bool) -> AsyncIterator[list[Record]]:
        """The records in chunks under the size cap, each as soon as it is full."""
        chunker: Chunker[Record] = Chunker(dnp.max_payload_bytes)
        async for batch in batches:
            for record in batch:
                if fresh:
                    self.report.sent += 1
                    self.open[record.id] = record
                wired = self.wired.get(record.id) or self.wired.setdefault(record.id, _Wired.of(record))
                size = len(bulk_body([wired.body]))
                try:
                    if size > MAX_PAYLOAD_BYTES:
                        raise PayloadTooLarge
                    full = chunker.add(record, len(wired.body))
                except PayloadTooLarge:
                    self.settle([(record, None, f"posten är {size} byte; DNP tar emot högst "
                                                f"{min(MAX_PAYLOAD_BYTES, dnp.max_payload_bytes)} byte per anrop "
                                                "(skolflows kontroll)")])
                    continue
                if full:
                    yield full
        if rest := chunker.rest():
            yield rest

    async def submit(self, dnp: DnpClient, chunk: Sequence[Record]) -> list[_Job]:
        """POST one chunk (halved on 413); the jobs DNP accepted."""
        jobs: list[_Job] = []
        async for sent, outcome in dnp.submit_halving(self.kind, chunk, update_if_exists=True, encode=self._body):
            body = bulk_body([self._body(r) for r in sent])
            path = f"/{self.kind}/bulk?updateIfExists=true"
            if isinstance(outcome, DnpError):
                self.calls.add("POST", path, outcome.status_code, body.decode(), outcome.body)
                if len(sent) == 1:
                    self.settle([(sent[0], None, f"posten är {len(body)} byte; DNP svarade {outcome.status_code} även "
                                                 f"när den skickades ensam: "
                                                 f"{_messages(outcome.entries) or outcome.body[:200]}")])
                continue
            self.calls.add("POST", path, 202, body.decode(), json.dumps({"jobId": outcome}), outcome)
            jobs.append((outcome, time.monotonic(), sent))
        return jobs

    def _body(self, record: Record) -> bytes:
        return self.wired[record.id].body

    def settle(self, answered: Sequence[tuple[Record, RecordResult | None, str | None]]) -> None:
        """Each record's outcome (DNP's answer; None without one, with why no body could carry it if so), counted,
        shown, and written to the ledger with what DNP now holds (by :attr:`write`)."""
        report = self.report
        outcomes: list[OutcomeRow] = []
        accepted: dict[str, tuple[str, dict[str, Any]]] = {}
        for record, result, too_large in answered:
            self.open.pop(record.id, None)
            wired = self.wired.pop(record.id, None) or _Wired.of(record)  # none: the step stopped before its chunk
            status = result.response.settled if result else "TooLarge" if too_large else "Failed"
            said = result.response.status if result else status  # as DNP wrote it, a status it does not list too
            shown = describe(record, self.people)
            if status in ("Success", "Warning"):
                report.accepted += 1
                report.warnings += status == "Warning"
                accepted[record.id] = (wired.digest, wired.wire)
                kind_of = Outcome.ACCEPTED
                errors = _log(result.response.warnings) if result else []
                if result and not result.response.known:
                    errors.append({"kod": UNKNOWN_STATUS, "falt": "status", "meddelande": mask_text(
                        f"DNP svarade status '{said}', som kontraktet inte listar; statusCode "
                        f"{result.response.status_code} utan fel: posten räknas som accepterad, med varning")})
            elif status == "Error":
                report.rejected_ids.add(record.id)
                kind_of, errors = Outcome.REJECTED, _log(result.response.errors) if result else []
                if waits_for_reference(e["kod"] for e in errors):
                    report.waiting += 1
                else:
                    report.rejected += 1
            elif status == "TooLarge":
                report.rejected_before += 1
                report.rejected_ids.add(record.id)
                kind_of = Outcome.REJECTED
                errors = [{"kod": "SF-STORLEK", "falt": "", "meddelande": too_large or ""}]
            else:  # TemporaryError every round, still Pending, or never answered: the next run sends it again
                report.failed += 1
                kind_of = Outcome.FAILED
                unsettled = (f"DNP svarade status '{said}' (statusCode {result.response.status_code}, inga fel): "
                             "inget slutligt svar, posten skickas igen vid nästa körning"
                             if result and not result.response.known else None)
                errors = [{"kod": said, "falt": "", "meddelande": mask_text(unsettled or report.failure
                                                                             or "DNP answered TemporaryError")}]
            if len(report.rows) < ROWS_SHOWN:
                message = "; ".join(f"{e['kod']} {e['meddelande']}" for e in errors)
                report.rows.append({"status": f"{STATUS_MARK.get(status, '')} {said}".strip(), **shown,
                                    "meddelande": message})
            outcomes.append({"run_id": self.run_id, "pipeline": PIPELINE, "scope": self.huvudman,
                             "record_key": record.id, "unit": self.kind,
                             "source_key": shown.get("personnummer") or shown.get("namn", ""),
                             "content_hash": wired.digest, "outcome": kind_of.value, "errors": errors,
                             "request_body": wired.body.decode(),
                             "response_body": result.model_dump_json(by_alias=True) if result else None})
        self.write(self.ledger.record, outcomes)
        self.write(self.ledger.accept, PIPELINE, scope_of(self.huvudman, self.kind), self.run_id, accepted)


@task(name="dnp-send", cache_policy=NO_CACHE, persist_result=False)
async def send_records(dnp: Dnp, kind: Kind, records: Sequence[Record] | AsyncIterable[Sequence[Record]],
                       people: dict[str, Person], huvudman: str, run_id: str, database_url: str) -> quote[StepReport]:
    """Send the step's changed records — a list, or batches as the source is read — and record each one's outcome
    as DNP answers; the step's report.

    The report leaves quoted: Prefect walks whatever a task or flow returns, every row of it, for futures and
    states, at the task's and again at the step subflow's return, and the report holds neither. With
    :data:`ROWS_SHOWN` rows that held the next step back: from the persons' task ending to the duties step
    starting took 0.80–0.84 s before, 0.54–0.57 s quoted (first load at 40,000 students).
    """
    logger = get_run_logger()
    sending = _Sending(kind, people, huvudman, run_id, Ledger.shared(database_url))
    report = sending.report
    try:
        try:
            async with dnp.client() as client:
                pending = await sending.round(client, batches_of(records), fresh=True,
                                              last=TEMPORARY_ROUNDS == 0)
                for attempt in range(1, TEMPORARY_ROUNDS + 1):
                    if not pending:
                        break
                    logger.warning("%s: %d records answered TemporaryError, sending them again", kind, len(pending))
                    await asyncio.sleep(min(2.0 ** (attempt - 1), 10.0))
                    pending = await sending.round(client, batches_of(pending), fresh=False,
                                                  last=attempt == TEMPORARY_ROUNDS)
        except (DnpError, TimeoutError) as exc:
            report.failure = str(sanitise(exc))[:500]
            logger.error("%s step stopped: %s", kind, report.failure)
        finally:
            report.calls = sending.calls.count
        sending.settle([(record, None, None) for record in list(sending.open.values())])
        await sending.write.flush()
    finally:
        sending.write.close()  # what was handed to it is still written
    if report.failed or report.failure:
        report.status = "failed"
        report.failure = report.failure or f"{report.failed} records without a final answer from DNP"
    return quote(report)


@task(name="dnp-delete", cache_policy=NO_CACHE, persist_result=False)
async def delete_records(dnp: Dnp, kind: Kind, ids: list[str], labels: dict[str, str], huvudman: str, run_id: str,
                         database_url: str) -> quote[StepReport]:
    """Bulk delete what left the source; what DNP confirms is forgotten, so it is not counted as held (the report
    quoted, as :func:`send_records` says why)."""
    ledger = Ledger.shared(database_url)
    report = StepReport(kind)
    calls = _Calls(ledger, run_id, kind)
    results: dict[str, RecordResult] = {}
    try:
        async with dnp.client() as client:
            for start in range(0, len(ids), 1000):
                chunk = ids[start:start + 1000]
                job_id = await client.delete(kind, chunk)
                calls.add("POST", f"/{kind}/bulk/delete", 202, json.dumps({"data": chunk}),
                          json.dumps({"jobId": job_id}), job_id)
                results.update({r.id: r for r in (await _follow(client, kind, job_id, calls,
                                                                pace=job_pace(client))).responses})
    except (DnpError, TimeoutError) as exc:
        report.failure = str(sanitise(exc))[:500]
    report.calls = calls.count
    gone, outcomes = [], []
    for record_id in ids:
        result = results.get(record_id)
        # "Not found" is what a delete resent after a lost answer hears (the first one did it): the record is gone.
        ok = result is not None and (result.response.settled in ("Success", "Warning") or (
            result.response.settled == "Error" and bool(result.response.errors)
            and all(e.id == rules.NOT_FOUND for e in result.response.errors)))
        errors = [] if ok else (_log(result.response.errors) if result else
                                [{"kod": "Failed", "falt": "", "meddelande": report.failure or "no answer"}])
        if ok:
            gone.append(record_id)
            report.deleted += 1
        else:
            report.failed += 1
        report.rows.append({"status": f"{STATUS_MARK['Deleted' if ok else 'Failed']} "
                                      f"{'Borttagen' if ok else 'Ej borttagen'}", "post": labels.get(record_id, ""),
                            "meddelande": "; ".join(f"{e['kod']} {e['meddelande']}" for e in errors)})
        outcomes.append(RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=huvudman, record_key=record_id,
                                      source_key=labels.get(record_id, ""), unit=kind,
                                      outcome=Outcome.DELETED if ok else Outcome.FAILED, errors=errors,
                                      response_body=result.model_dump_json(by_alias=True) if result else None))
    ledger.record(outcomes)
    ledger.forget(PIPELINE, scope_of(huvudman, kind), gone)
    if report.failed:
        report.status = "failed"
        report.failure = report.failure or f"{report.failed} records not deleted"
    return quote(report)
