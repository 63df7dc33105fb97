"""One DNP provisioning step (users, duties, groups or activities): diff, send in chunks, follow the jobs.

Records go with ``updateIfExists=true``, so a chunk sent twice (a retry after a lost answer) changes
nothing. Every call — each bulk POST, each ``isCompleted`` poll, each job status — is kept in the
ledger with both bodies; each record's outcome with DNP's LogEntry messages. A record DNP answers
``TemporaryError`` is sent again (up to :data:`TEMPORARY_ROUNDS` times) before it counts as failed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from skolflow.blocks import DnpCredentials
from skolflow.boundary import task
from skolflow.connectors.dnp import rules
from skolflow.connectors.dnp.client import (
    MAX_PAYLOAD_BYTES,
    DnpClient,
    DnpError,
    Kind,
    bulk_body,
    chunk_by_size,
    encode_record,
)
from skolflow.connectors.dnp.models import Activity as DnpActivity
from skolflow.connectors.dnp.models import AsynchronousResponse, Duty, Group, LogEntry, Person, RecordResult
from skolflow.connectors.http import HttpSettings
from skolflow.errors import sanitise
from skolflow.identity import mask, mask_text
from skolflow.ledger import ApiCall, Ledger, Outcome, RecordOutcome
from skolflow.tasks.diff import content_hash

PIPELINE = "dnp_provisioning"
STEPS: tuple[Kind, ...] = ("persons", "duties", "groups", "activities")
STEP_LABELS: dict[str, str] = {"persons": "Användare", "duties": "Tjänstgöringar", "groups": "Grupper",
                               "activities": "Aktiviteter"}
TEMPORARY_ROUNDS = 3
JOB_TIMEOUT_SECONDS = 900.0
Record = Person | Duty | Group | DnpActivity
StepStatus = Literal["completed", "failed", "skipped", "planned"]
# A record refused only because something it references is missing (DNP's "Referens saknas" rules, and
# skolflow's SF-BEROENDE: the reference was refused in an earlier step) is not at fault itself. The source is
# read whole every run and nothing of it is held back, so it goes as soon as the reference exists: it waits.
DEPENDENCY = "SF-BEROENDE"
MISSING_REFERENCE = frozenset({rules.PERSON_MISSING, rules.MEMBER_MISSING, rules.GROUP_MISSING, rules.DUTY_MISSING,
                               DEPENDENCY})
STATUS_MARK = {"Success": "✅", "Warning": "⚠️", "Error": "❌", "TooLarge": "❌", "TemporaryError": "⏳", "Failed": "❌",
               "Planned": "📝", "Deleted": "🗑️"}


@dataclass
class Dnp:
    credentials: DnpCredentials
    http: HttpSettings = field(default_factory=HttpSettings)

    def client(self) -> DnpClient:
        return DnpClient(self.credentials.base_url, self.credentials.token.get_secret_value(), self.http)


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
    wire = record.to_wire()
    wire.pop("meta", None)
    wire.pop("provisioningStatus", None)
    return content_hash(wire)


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


def describe(record: Record, people: dict[str, Person]) -> dict[str, str]:
    """The columns seed 003's history shows for a record, masked."""
    if isinstance(record, Person):
        enrolment = (record.enrolments or [None])[0]
        return {"roll": "Elev" if record.enrolments else "Personal", "personnummer": mask(record.civic_no.value),
                "eppn": ", ".join(record.edu_person_principal_names),
                "årskurs": str(enrolment.school_year or "") if enrolment else "",
                "skolform": enrolment.school_type if enrolment else ""}
    if isinstance(record, Duty):
        person = people.get(record.person.id)
        return {"roll": record.duty_role, "personnummer": mask(person.civic_no.value) if person else "",
                "eppn": ", ".join(person.edu_person_principal_names) if person else "", "skolenhet": record.duty_at.id}
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


class _Calls:
    """Every call of a step into the ledger, as it happens."""

    def __init__(self, ledger: Ledger, run_id: str, kind: str):
        self.ledger, self.run_id, self.kind, self.count = ledger, run_id, kind, 0

    def add(self, method: str, path: str, status: int | None, request: str | None, response: str | None,
            reference: str = "") -> None:
        self.count += 1
        self.ledger.record_call(ApiCall(run_id=self.run_id, pipeline=PIPELINE, step=self.kind, method=method,
                                        path=path, status_code=status, reference=reference, request_body=request,
                                        response_body=response))


async def _follow(dnp: DnpClient, kind: Kind, job_id: str, calls: _Calls) -> AsynchronousResponse:
    """Poll ``isCompleted`` with backoff (never cached), then read the job's per-record answers."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    interval = 0.25
    while True:
        done = await dnp.is_completed(kind, job_id)
        calls.add("GET", f"/{kind}/bulk/jobs/{job_id}/isCompleted", 200, None, json.dumps(done), job_id)
        if done:
            break
        if time.monotonic() >= deadline:
            raise TimeoutError(f"DNP {kind} job {job_id} not completed after {JOB_TIMEOUT_SECONDS:.0f} s")
        await asyncio.sleep(interval)
        interval = min(interval * 2, 5.0)
    answer = await dnp.job(kind, job_id)
    calls.add("GET", f"/{kind}/bulk/jobs/{job_id}", 200, None, answer.model_dump_json(by_alias=True), job_id)
    return answer


async def _round(dnp: DnpClient, kind: Kind, records: Sequence[Record], calls: _Calls) -> dict[str, RecordResult]:
    """Send every record once (chunks under the size cap, within the rate limit); each record's answer."""
    job_ids = []
    for chunk in chunk_by_size(records, dnp.max_payload_bytes):
        job_id = await dnp.submit(kind, chunk, update_if_exists=True)
        body = bulk_body([encode_record(r) for r in chunk])
        calls.add("POST", f"/{kind}/bulk?updateIfExists=true", 202, body.decode(), json.dumps({"jobId": job_id}),
                  job_id)
        job_ids.append(job_id)
    results: dict[str, RecordResult] = {}
    for job_id in job_ids:
        answer = await _follow(dnp, kind, job_id, calls)
        results.update({r.id: r for r in answer.responses})
    return results


@task(name="dnp-send", cache_policy=NO_CACHE, persist_result=False)
async def send_records(dnp: Dnp, kind: Kind, records: list[Record], people: dict[str, Person], huvudman: str,
                       run_id: str, database_url: str) -> StepReport:
    """Send the step's changed records and record each one's outcome; the step's report."""
    logger = get_run_logger()
    ledger = Ledger.shared(database_url)
    report = StepReport(kind, sent=len(records))
    calls = _Calls(ledger, run_id, kind)
    by_id = {r.id: r for r in records}
    final: dict[str, RecordResult] = {}
    # A record no body can carry is refused here, alone; the rest of the step goes on.
    oversized = {r.id: size for r in records if (size := len(bulk_body([encode_record(r)]))) > MAX_PAYLOAD_BYTES}
    pending = [r for r in records if r.id not in oversized]
    try:
        async with dnp.client() as client:
            for attempt in range(TEMPORARY_ROUNDS + 1):
                answered = await _round(client, kind, pending, calls)
                final.update(answered)
                pending = [by_id[i] for i, r in answered.items() if r.response.status == "TemporaryError"]
                if not pending or attempt == TEMPORARY_ROUNDS:
                    break
                logger.warning("%s: %d records answered TemporaryError, sending them again", kind, len(pending))
                await asyncio.sleep(min(2.0 ** attempt, 10.0))
    except (DnpError, TimeoutError) as exc:
        report.failure = str(sanitise(exc))[:500]
        logger.error("%s step stopped: %s", kind, report.failure)
    finally:
        report.calls = calls.count
    outcomes, accepted = [], {}
    scope = scope_of(huvudman, kind)
    for record in records:
        result = final.get(record.id)
        status = result.response.status if result else "TooLarge" if record.id in oversized else "Failed"
        shown = describe(record, people)
        body = encode_record(record).decode()
        answer = result.model_dump_json(by_alias=True) if result else None
        if status in ("Success", "Warning"):
            report.accepted += 1
            report.warnings += status == "Warning"
            accepted[record.id] = (record_hash(record), record.to_wire())
            kind_of = Outcome.ACCEPTED
            errors = _log(result.response.warnings) if result else []
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
            errors = [{"kod": "SF-STORLEK", "falt": "", "meddelande": f"posten är {oversized[record.id]} byte; "
                                                                         f"DNP tar emot högst {MAX_PAYLOAD_BYTES} byte "
                                                                         "per anrop (skolflows kontroll)"}]
        else:  # TemporaryError every round, still Pending, or never answered: the next run sends it again
            report.failed += 1
            kind_of = Outcome.FAILED
            errors = [{"kod": status, "falt": "", "meddelande": report.failure or "DNP answered TemporaryError"}]
        message = "; ".join(f"{e['kod']} {e['meddelande']}" for e in errors)
        report.rows.append({"status": f"{STATUS_MARK.get(status, '')} {status}".strip(), **shown,
                            "meddelande": message})
        outcomes.append(RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=huvudman, record_key=record.id,
                                      source_key=shown.get("personnummer") or shown.get("namn", ""), unit=kind,
                                      content_hash=record_hash(record), outcome=kind_of, errors=errors,
                                      request_body=body, response_body=answer))
    ledger.record(outcomes)
    ledger.accept(PIPELINE, scope, run_id, accepted)
    if report.failed or report.failure:
        report.status = "failed"
        report.failure = report.failure or f"{report.failed} records without a final answer from DNP"
    return report


@task(name="dnp-delete", cache_policy=NO_CACHE, persist_result=False)
async def delete_records(dnp: Dnp, kind: Kind, ids: list[str], labels: dict[str, str], huvudman: str, run_id: str,
                         database_url: str) -> StepReport:
    """Bulk delete what left the source; what DNP confirms is forgotten, so it is not counted as held."""
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
                results.update({r.id: r for r in (await _follow(client, kind, job_id, calls)).responses})
    except (DnpError, TimeoutError) as exc:
        report.failure = str(sanitise(exc))[:500]
    report.calls = calls.count
    gone, outcomes = [], []
    for record_id in ids:
        result = results.get(record_id)
        ok = result is not None and result.response.status in ("Success", "Warning")
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
    return report
