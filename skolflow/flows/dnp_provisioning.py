"""DNP provisioning: a huvudman's users → duties → groups → activities to Skolverket's test platform.

Four steps in DNP's order, each a subflow; a step starts only when the one before it succeeded, and
only records whose content changed since DNP last accepted them are sent, so a run after a failed
one sends nothing again that DNP took and in effect starts at the step that failed. One run per
huvudman at a time (a lease in the ledger, :mod:`skolflow.tasks.queue`): a second run waits in the queue. After the
four steps, what left the SS 12000 source is deleted from DNP, activities first. See README § DNP.

The source is read whole on the first run, when the last full read is older than ``full_read_days`` (7 by
default), when asked (``full_read``), for a dry run and for a run with a selection; otherwise by change since
the watermark (:func:`~skolflow.tasks.dnp_source.read_changes`), falling back to a whole read whenever more than
persons changed or a changed person's place in groups may have (:func:`beyond_persons`). The watermark and the
time of the last full read are in the ledger and move only when a run without a selection completed, so a
failed, crashed or partial run is followed by one that reads at least as much again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote

from skolflow.blocks import DnpCredentials, SS12000Credentials
from skolflow.boundary import flow
from skolflow.connectors.dnp.client import Kind
from skolflow.connectors.dnp.models import Activity, Group, Person
from skolflow.connectors.dnp.opendata import DEFAULT_TEST_ACTIVITIES
from skolflow.connectors.dnp.opendata import Activity as NationalTest
from skolflow.connectors.http import RemoteError
from skolflow.gcpolicy import fewer_collections
from skolflow.guard import check_target
from skolflow.identity import mask, validate_swedish_orgnr
from skolflow.ledger import Ledger, Outcome, RecordOutcome
from skolflow.notify import notify_failure
from skolflow.settings import Settings
from skolflow.tasks import artifacts
from skolflow.tasks.dnp_feed import PersonFeed
from skolflow.tasks.dnp_mapping import Mapped, activity_record_id, map_to_dnp, select_test_activities, staff_record_id
from skolflow.tasks.dnp_source import Catalogue, Changes, Source, read_catalogue, read_changes, read_source
from skolflow.tasks.dnp_steps import (
    DEPENDENCY,
    PIPELINE,
    ROWS_SHOWN,
    STEP_LABELS,
    STEPS,
    Dnp,
    Record,
    StepReport,
    batches_of,
    delete_records,
    record_hash,
    refused_records,
    scope_of,
    send_records,
    waits_for_reference,
)
from skolflow.tasks.ledger_runs import recorded
from skolflow.tasks.queue import one_at_a_time

FULL_READ_DAYS = 7.0
# The watermark is the start of the last completed read less this much: a source's clock may run behind ours,
# and a change committed after our read began may carry an earlier meta.modified. Read twice, it is unchanged.
WATERMARK_OVERLAP = dt.timedelta(minutes=5)

# Records handed from the run to its step subflows in this process. Subflow parameters are stored in
# Prefect's database, and these records hold personnummer: only the run id and the step go there.
_HANDOVER: dict[tuple[str, str], tuple[list[Record] | PersonFeed, dict[str, Person]]] = {}


def _run_name() -> str:
    p = flow_run.parameters
    units = ",".join(p.get("school_units") or []) or "alla skolenheter"
    tests = ",".join(p.get("test_activities") or []) or "alla prov"
    suffix = " (torrkörning)" if p.get("dry_run") else ""
    return f"dnp-provisioning · {p.get('huvudman')} · {units} · {tests}{suffix}"


def _step_name() -> str:
    p = flow_run.parameters
    return f"dnp · {p.get('huvudman')} · {STEP_LABELS.get(p.get('kind', ''), p.get('kind'))}"


@flow(name="dnp-step", flow_run_name=_step_name, persist_result=False)
async def provision_step(kind: Kind, huvudman: str, run_id: str, dry_run: bool, dnp_block: str | None = None,
                         confirm_production: bool = False, also_unchanged: int = 0) -> quote[StepReport]:
    """One step: unchanged records stay, changed ones are sent and followed to DNP's answer.

    The records come as a list, or (the persons of a whole read) as a :class:`PersonFeed` while the source is
    read: then each batch is compared and sent as it comes. ``also_unchanged``: records DNP holds that an
    incremental read did not hand over (their source did not change), counted unchanged so that a step's counts
    mean the same whichever way the source was read. The report is quoted, as ``send_records`` says why.
    """
    logger = get_run_logger()
    settings = Settings.from_env()
    records, people = _HANDOVER.pop((run_id, kind))
    ledger = Ledger.shared(settings.database_url)
    diff = _Diff()
    changed = _changed(ledger, kind, huvudman, run_id, batches_of(records), diff, dry_run)
    to_send: list[Record] | AsyncIterator[list[Record]] = changed
    if dry_run or not isinstance(records, PersonFeed):
        to_send = [record async for batch in changed for record in batch]
        logger.info("%s: %d records, %d changed since DNP last accepted them", kind, diff.records, diff.changed)
        if dry_run:
            return quote(StepReport(kind, status="planned", sent=diff.changed,
                                    unchanged=diff.unchanged + also_unchanged))
        if not to_send:
            return quote(StepReport(kind, unchanged=diff.unchanged + also_unchanged))
    dnp = Dnp(DnpCredentials.resolve(dnp_block), settings.http(confirm_production))
    # quote: Prefect would otherwise walk every record and every person looking for futures (seconds per step).
    report = (await send_records(dnp, kind, quote(to_send), quote(people), huvudman, run_id,
                                 settings.database_url)).unquote()
    if isinstance(records, PersonFeed):
        logger.info("%s: %d records as read, %d changed since DNP last accepted them", kind, diff.records,
                    diff.changed)
    report.unchanged = diff.unchanged + also_unchanged
    return quote(report)


@dataclass
class _Diff:
    """A step's records against what DNP last accepted, counted as the batches go by."""

    records: int = 0
    changed: int = 0

    @property
    def unchanged(self) -> int:
        return self.records - self.changed


async def _changed(ledger: Ledger, kind: Kind, huvudman: str, run_id: str,
                   batches: AsyncIterator[Sequence[Record]], diff: _Diff, dry_run: bool) -> AsyncIterator[list[Record]]:
    """Each batch's records whose content changed since DNP last accepted them; the others are recorded unchanged
    (and in a dry run the changed ones planned)."""
    scope = scope_of(huvudman, kind)
    async for batch in batches:
        previous = ledger.sent_state(PIPELINE, scope, [r.id for r in batch])
        hashes = {r.id: record_hash(r) for r in batch}
        same = [r for r in batch if r.id in previous and previous[r.id].content_hash == hashes[r.id]]
        changed = [r for r in batch if r.id not in previous or previous[r.id].content_hash != hashes[r.id]]
        ledger.record([RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=huvudman, record_key=r.id, unit=kind,
                                     content_hash=hashes[r.id], outcome=outcome)
                       for rs, outcome in ((same, Outcome.UNCHANGED), (changed if dry_run else [], Outcome.PLANNED))
                       for r in rs])
        diff.records += len(batch)
        diff.changed += len(changed)
        if changed:
            yield changed


def _without_rejected(kind: Kind, records: Sequence[Record], rejected: dict[str, set[str]]) -> \
        tuple[list[Record], list[tuple[Record, str]]]:
    """What DNP refused in an earlier step leaves this step's references: dropped, or the record refused."""
    persons, duties, groups = rejected["persons"], rejected["duties"], rejected["groups"]
    kept: list[Record] = []
    refused: list[tuple[Record, str]] = []
    for record in records:
        if kind == "duties" and record.person.id in persons:  # type: ignore[union-attr]
            refused.append((record, "personen avvisades av DNP i steget Användare"))
        elif isinstance(record, Group) and record.group_memberships and persons:
            members = [m for m in record.group_memberships if m.person.id not in persons]
            kept.append(record.model_copy(update={"group_memberships": members}))
        elif isinstance(record, Activity):
            left = [g for g in record.groups if g.id not in groups]
            if not left:
                refused.append((record, "alla grupper avvisades av DNP i steget Grupper"))
                continue
            teachers = [t for t in (record.teachers or []) if t.duty.id not in duties]
            kept.append(record.model_copy(update={"groups": left, "teachers": teachers}))
        else:
            kept.append(record)
    return kept, refused


def _present(source: Source, catalogue: Catalogue) -> dict[str, set[str]]:
    """Every DNP id the source could give rise to: what is not here has left the source (a refused record has not)."""
    people = {p.id for p in source.persons} | source.refused_ids("/persons")
    persons = people | {staff_record_id(person_id) for person_id in people}
    taught = {a.id for a in source.activities} | source.refused_ids("/activities")
    activities = {activity_record_id(a, t.id) for a in taught for t in catalogue.test_activities}
    return {"persons": persons, "duties": {d.id for d in source.duties} | source.refused_ids("/duties"),
            "groups": {g.id for g in source.groups} | source.refused_ids("/groups"), "activities": activities}


def _label(kind: str, content: dict[str, Any]) -> str:
    if kind == "persons":
        return mask((content.get("civicNo") or {}).get("value"))
    return str(content.get("displayName") or content.get("dutyRole") or "")


@flow(name="dnp-provisioning", flow_run_name=_run_name, persist_result=False, log_prints=False,
      on_failure=[notify_failure], on_crashed=[notify_failure])
async def dnp_provisioning(
    huvudman: str,
    school_units: list[str] | None = None,
    test_activities: list[str] | None = None,
    dry_run: bool = False,
    confirm_production: bool = False,
    dnp_block: str | None = None,
    ss12000_block: str | None = None,
    full_read: bool = False,
    full_read_days: float = FULL_READ_DAYS,
) -> State:
    """Provision the huvudman's students and staff, duties, groups and test activities to DNP.

    huvudman: organisationsnummer; school_units: skolenhetskoder (default all); test_activities:
    display names or ids from DNP's open-data catalogue (default every one the catalogue lists).
    full_read: read the SS 12000 source whole even if the last full read is recent; full_read_days: how old the
    last full read may be before a run reads whole again (what an incremental read misses — a record whose
    meta.modified the source did not move, an enrolment that ended by date — is caught by that read).
    """
    logger = get_run_logger()
    settings = Settings.from_env()
    orgnr = validate_swedish_orgnr(huvudman)
    dnp = Dnp(DnpCredentials.resolve(dnp_block), settings.http(confirm_production))
    ss12000 = SS12000Credentials.resolve(ss12000_block)
    check_target("ss12000", ss12000.base_url, settings.profile, confirm_production)
    check_target("dnp", dnp.credentials.opendata_url, settings.profile, confirm_production)
    if not dry_run:
        check_target("dnp", dnp.credentials.base_url, settings.profile, confirm_production)
        if dnp.credentials.uses_certificate():  # the token comes from Skolverket's authorisation server: judged too
            check_target("dnp-auth", dnp.credentials.auth_url, settings.profile, confirm_production)
    async with one_at_a_time(PIPELINE, orgnr) as queue:
        logger.info("holding %s: other provisioning runs for %s wait until this one ends", queue, orgnr)
        ledger = Ledger.shared(settings.database_url)
        run_id = ledger.start_run(PIPELINE, orgnr, dry_run=dry_run, flow_run_id=str(flow_run.id or ""),
                                  parameters={"school_units": school_units or [],
                                              "test_activities": test_activities or []})
        whole = ("full_read was asked for" if full_read else "a dry run reads whole" if dry_run else
                 "a run with a selection reads whole" if school_units or test_activities else
                 f"first run, or the last full read is {full_read_days:g} days old or more")
        since = None if full_read or dry_run or school_units or test_activities else \
            incremental_since(ledger, orgnr, dt.datetime.now(dt.UTC), full_read_days)
        with fewer_collections():
            return await recorded(ledger, run_id, _provision(dnp, ss12000, settings, ledger, run_id, orgnr,
                                                             school_units, test_activities, dry_run, dnp_block, since,
                                                             whole))


def _marks(orgnr: str) -> tuple[str, str]:
    """The ledger's watermark scopes: changes read up to (incremental), and the last full read."""
    return f"{orgnr}/ss12000", f"{orgnr}/ss12000-full"


def incremental_since(ledger: Ledger, orgnr: str, now: dt.datetime, full_read_days: float) -> dt.datetime | None:
    """The watermark to read changes after, or None when the source must be read whole.

    Whole on the first run (no watermark), and when the last full read is ``full_read_days`` old or older: an
    incremental read trusts the source to move ``meta.modified`` and to list what it removes, and a full read on a
    schedule catches what it did not (and enrolments, memberships and duties that ended by date alone).
    """
    changes_mark, full_mark = _marks(orgnr)
    watermark, last_full = ledger.watermark(PIPELINE, changes_mark), ledger.watermark(PIPELINE, full_mark)
    if watermark is None or last_full is None:
        return None
    # The ledger stores UTC; SQLite (and a timestamp column without a zone) gives it back naive.
    watermark, last_full = (t if t.tzinfo else t.replace(tzinfo=dt.UTC) for t in (watermark, last_full))
    if now - last_full >= dt.timedelta(days=full_read_days):
        return None
    return watermark


def beyond_persons(ledger: Ledger, orgnr: str, changes: Changes, mapped: Mapped) -> str | None:
    """Why the changed persons may change more than their own records and the duties (None: they do not).

    Groups and activities are not read incrementally, so a changed person may only change what DNP holds of
    them: whether they are a student and their enrolments (which decide group memberships and which groups take
    a test) must be as DNP last accepted them, and every duty must map to what DNP holds (an activity's
    teachers are duties). Anything else, and the flow reads the source whole.
    """
    changed = {p.id for p in changes.persons} | {r.record_id for r in changes.refused if r.path.startswith("/persons")}
    held = ledger.sent_state(PIPELINE, scope_of(orgnr, "persons"), changed)
    students = {p.id: p.to_wire().get("enrolments") for p in mapped.persons if p.enrolments}
    refused = mapped.rejected_ids("persons")
    for person_id in changed:
        before = held[person_id].content.get("enrolments") if person_id in held else None
        if (before or None) != (students.get(person_id) or None):
            return "a changed person's enrolments or student record changed"
        if person_id in refused and person_id not in held:
            return "a changed person is refused and DNP holds nothing of them"
    duties = ledger.held(PIPELINE, scope_of(orgnr, "duties"))  # a few hundred at most
    now = {d.id: record_hash(d) for d in mapped.duties}
    if set(now) != set(duties) or any(duties[key].content_hash != value for key, value in now.items()):
        return "duties map differently"
    return None


async def _provision(dnp: Dnp, ss12000: SS12000Credentials, settings: Settings, ledger: Ledger, run_id: str,
                     orgnr: str, school_units: list[str] | None, test_activities: list[str] | None, dry_run: bool,
                     dnp_block: str | None, since: dt.datetime | None = None,
                     whole: str = "") -> tuple[State, dict[str, Any]]:
    """The run: read (whole, or by change since ``since``; ``whole`` says why not by change), map, four steps.

    Read whole, the persons go to DNP page by page while the source is still read (:class:`PersonFeed`), and the
    other steps are mapped once it is read; read by change, everything is mapped before the first step.
    """
    logger = get_run_logger()
    read_at = dt.datetime.now(dt.UTC)
    changes: Changes | None = None
    mapped: Mapped | None = None
    feed: PersonFeed | None = None
    reading: asyncio.Future[Source] | None = None
    how = f"read whole: {whole}"
    try:
        catalogue = await read_catalogue(dnp.credentials.opendata_url, orgnr, dnp.http)
        wanted = test_activities or [t.displayName for t in catalogue.test_activities] or \
            [name for name, _, _ in DEFAULT_TEST_ACTIVITIES]
        tests = select_test_activities(catalogue.test_activities, wanted)
        if since is not None:
            changes = await read_changes(ss12000, dnp.http, since)
            if changes.full_read_because:
                how, changes = f"read whole: {changes.full_read_because} since {since:%Y-%m-%d %H:%M}", None
        if changes is not None:
            source = changes.source()
            mapped = _map(source, tests, school_units, catalogue)
            if reason := beyond_persons(ledger, orgnr, changes, mapped):
                how, changes, mapped = f"read whole: {reason}", None, None
            else:
                how = f"read by change since {since:%Y-%m-%d %H:%M}: {len(changes.persons)} persons changed"
        if changes is None:
            feed = PersonFeed(tests, school_units, catalogue.school_units)
            reading = asyncio.ensure_future(read_source(ss12000, dnp.http, quote(feed)))
            await feed.started.wait()
            if not feed.began:
                await reading  # the read failed before any person could be mapped: raised here, nothing was sent
    except RemoteError as exc:
        return _unread(exc), {}
    logger.info("SS 12000 %s", how)
    mapping = asyncio.ensure_future(_mapped_when_read(reading, feed, catalogue)) \
        if reading is not None and feed is not None else None
    try:
        return await _steps(dnp, settings, ledger, run_id, orgnr, school_units, test_activities, dry_run, dnp_block,
                            catalogue, changes, how, read_at, mapped, feed, mapping)
    finally:
        for pending in (reading, mapping):
            if pending is not None and not pending.done():
                pending.cancel()


async def _mapped_when_read(reading: asyncio.Future[Source], feed: PersonFeed,
                            catalogue: Catalogue) -> tuple[Mapped, dict[str, set[str]]]:
    """All of the source mapped (:meth:`PersonFeed.finish`) once it is read whole, and every DNP id it gives rise to.

    Both are worked out in a thread as soon as the read is done, while the persons step is still sending: that
    step mostly waits on DNP's rate, so the groups, the activities and what deletions compare with are ready when
    it ends.
    """
    source = await reading

    def work() -> tuple[Mapped, dict[str, set[str]]]:
        return feed.finish(source.groups, source.activities, source.refused), _present(source, catalogue)

    return await asyncio.to_thread(work)


def _unread(exc: RemoteError, persons: StepReport | None = None) -> State:
    """The run's state when SS 12000 could not be read (whole): what was sent of it, and that nothing else was."""
    if persons is None:
        sent = ", ".join(f"{STEP_LABELS[k]} 0/0" for k in STEPS)
        return Failed(message=f"the source could not be read ({exc}); no step started, nothing was sent: {sent}. "
                              "The next run tries again.")
    return Failed(message=f"the source could not be read whole ({exc}); the persons read before that were sent "
                          f"({STEP_LABELS['persons']} {persons.accepted}/{persons.sent}); no later step started and "
                          "nothing was deleted. The next run reads whole again.")


async def _steps(dnp: Dnp, settings: Settings, ledger: Ledger, run_id: str, orgnr: str,
                 school_units: list[str] | None, test_activities: list[str] | None, dry_run: bool,
                 dnp_block: str | None, catalogue: Catalogue, changes: Changes | None, how: str,
                 read_at: dt.datetime, mapped: Mapped | None, feed: PersonFeed | None,
                 mapping: asyncio.Future[tuple[Mapped, dict[str, set[str]]]] | None) -> tuple[State, dict[str, Any]]:
    """The four steps in DNP's order, then what left the source deleted.

    ``mapped`` is None when the persons come as they are read (``feed``): ``mapping`` gives the rest of the records
    once the source is read whole, and every DNP id it gives rise to (what deletions compare with).
    """
    people: dict[str, Person] = {}

    def rejections(mapped: Mapped) -> None:
        ledger.record([RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=orgnr, record_key=r.record_id,
                                     source_key=r.masked_label, unit=r.kind, outcome=Outcome.REJECTED,
                                     errors=[{"kod": r.code, "falt": r.rule, "meddelande": r.message}])
                       for r in mapped.rejected])
        people.update((p.id, p) for p in mapped.persons)

    async def step(kind: Kind, records: list[Record] | PersonFeed, also_unchanged: int = 0) -> StepReport:
        _HANDOVER[(run_id, kind)] = (records, people)
        try:
            return (await provision_step(kind=kind, huvudman=orgnr, run_id=run_id, dry_run=dry_run,
                                         dnp_block=dnp_block, confirm_production=dnp.http.door.confirm_production,
                                         also_unchanged=also_unchanged)).unquote()
        finally:
            _HANDOVER.pop((run_id, kind), None)

    if mapped is not None:
        rejections(mapped)
    progress = await artifacts.Progress.start(f"DNP {orgnr}: steg klara")
    reports: dict[str, StepReport] = {}
    rejected: dict[str, set[str]] = {kind: set() for kind in STEPS}
    for index, kind in enumerate(STEPS):
        refused: list[tuple[Record, str]] = []
        if mapped is None:  # the persons of a whole read, sent as read; the rest is mapped once it is read
            assert feed is not None and mapping is not None
            report = await step(kind, feed)
            try:
                mapped, present = await mapping
            except RemoteError as exc:
                return _unread(exc, report), {}
            rejections(mapped)
            before = [r for r in mapped.rejected if r.kind == kind]
            refusals = [(r.record_id, r.code) for r in before]
        else:
            before = [r for r in mapped.rejected if r.kind == kind]
            refusals = [(r.record_id, r.code) for r in before]
            if any(r.status in ("failed", "skipped") for r in reports.values()):
                rejected_before, waiting = refused_records(refusals)
                reports[kind] = StepReport(kind, status="skipped", rejected_before=rejected_before, waiting=waiting)
                continue
            records, refused = _without_rejected(kind, getattr(mapped, kind), rejected)
            ledger.record([RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=orgnr, record_key=r.id, unit=kind,
                                         outcome=Outcome.REJECTED, errors=[{"kod": "SF-BEROENDE", "falt": "",
                                                                            "meddelande": why}])
                           for r, why in refused])
            # Read by change, the step sees only what the changes touched; what else DNP holds did not change.
            also_unchanged = len(ledger.held_keys(PIPELINE, scope_of(orgnr, kind)) - {r.id for r in records}) \
                if changes is not None else 0
            if changes is not None:  # what is as DNP accepted it is recorded here: only what changed goes on
                diff = _Diff()
                records = [r async for batch in _changed(ledger, kind, orgnr, run_id, batches_of(records), diff, False)
                           for r in batch]
                also_unchanged += diff.unchanged
            if changes is not None and not records:
                report = StepReport(kind, unchanged=also_unchanged)  # nothing to judge: no subflow to start
            else:
                report = await step(kind, records, also_unchanged)
        rejected_before, waiting = refused_records(refusals + [(r.id, DEPENDENCY) for r, _ in refused])
        report.rejected_before += rejected_before
        report.waiting += waiting
        codes: dict[str, set[str]] = {}
        for record_id, code in refusals:
            codes.setdefault(record_id, set()).add(code)
        report.rows = [{"status": "⏳ Väntar: referens saknas" if waits_for_reference(codes[r.record_id])
                        else "❌ Avvisad av skolflow", "post": r.masked_label,
                        "meddelande": f"{r.code} {r.rule}: {r.message}"} for r in before] + report.rows
        rejected[kind] = report.rejected_ids | {r.id for r, _ in refused}
        reports[kind] = report
        await artifacts.table(artifacts.artifact_key("dnp", orgnr, kind), report.rows[:ROWS_SHOWN],
                              f"{STEP_LABELS[kind]}: {report.accepted} godkända, {report.rejected} avvisade av DNP, "
                              f"{report.rejected_before} avvisade före sändning, {report.waiting} väntar på en "
                              f"referens som saknas, {report.unchanged} oförändrade")
        await progress.update(index + 1, len(STEPS) + 1)

    deletions: dict[str, StepReport] = {}
    # Read by change, nothing left the source (a removal makes the run read whole): there is nothing to delete.
    if not dry_run and changes is None and all(r.status == "completed" for r in reports.values()):
        for kind in reversed(STEPS):
            gone = sorted(ledger.held_keys(PIPELINE, scope_of(orgnr, kind)) - present[kind])
            if gone:  # the content (for labels) only of what goes: all of it is tens of megabytes
                held = ledger.sent_state(PIPELINE, scope_of(orgnr, kind), gone)
                labels = {key: _label(kind, held[key].content) for key in gone}
                deletions[kind] = (await delete_records(dnp, kind, gone, labels, orgnr, run_id,
                                                        settings.database_url)).unquote()
        rows = [{"steg": STEP_LABELS[k], **row} for k, r in deletions.items() for row in r.rows]
        await artifacts.table(artifacts.artifact_key("dnp", orgnr, "borttagna"), rows,
                              "Borttagna ur DNP: lämnade källan (SS 12000)")
    await progress.update(len(STEPS) + 1, len(STEPS) + 1)
    summary = {kind: {**report.counts(), "deleted": deletions[kind].deleted if kind in deletions else 0}
               for kind, report in reports.items()}
    await artifacts.markdown(artifacts.artifact_key("dnp", orgnr, "sammanfattning"),
                             _summary(orgnr, summary, dry_run), "Sammanfattning")
    failed = next((k for k, r in reports.items() if r.status == "failed"), None)
    failed_deletion = next((k for k, r in deletions.items() if r.status == "failed"), None)
    counts = ", ".join(f"{STEP_LABELS[k]} {r.accepted}/{r.sent}" for k, r in reports.items())
    if waiting := sum(r.waiting for r in reports.values()):
        counts += (f"; {waiting} waiting (missing reference: "
                   + ", ".join(f"{STEP_LABELS[k]} {r.waiting}" for k, r in reports.items() if r.waiting)
                   + "), sent by the first run after the reference exists")
    if failed:
        return Failed(message=f"step {STEP_LABELS[failed]} failed ({reports[failed].failure}); later steps not "
                              f"started. A new run starts there: what DNP accepted is not sent again. {counts}"), \
            summary
    if failed_deletion:
        return Failed(message=f"deletions of {failed_deletion} failed ({deletions[failed_deletion].failure})"), summary
    if not dry_run and not school_units and not test_activities:
        # Only a complete run without a selection moves the marks: every change up to read_at has reached DNP.
        changes_mark, full_mark = _marks(orgnr)
        ledger.set_watermark(PIPELINE, changes_mark, read_at - WATERMARK_OVERLAP, run_id)
        if changes is None:
            ledger.set_watermark(PIPELINE, full_mark, read_at, run_id)
    verb = "planned" if dry_run else "accepted/sent"
    return Completed(message=f"DNP {orgnr} {verb}: {counts}; SS 12000 {how}", data=summary), summary


def _map(source: Source, tests: Sequence[NationalTest], school_units: list[str] | None,
         catalogue: Catalogue) -> Mapped:
    return map_to_dnp(source.persons, source.duties, source.groups, source.activities, source.school_units, tests,
                      include_units=school_units or None, known_school_units=catalogue.school_units,
                      refused=source.refused)


def _summary(orgnr: str, summary: dict[str, dict[str, Any]], dry_run: bool) -> str:
    lines = [f"# DNP-provisionering för huvudman {orgnr}{' (torrkörning)' if dry_run else ''}", "",
             "| steg | status | skickade | godkända | varav varningar | avvisade av DNP | avvisade före sändning "
             "| väntar (referens saknas) | oförändrade | ej besvarade | borttagna | anrop |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, s in summary.items():
        lines.append(f"| {STEP_LABELS[kind]} | {s['status']} | {s['sent']} | {s['accepted']} | {s['warnings']} | "
                     f"{s['rejected']} | {s['rejected_before_sending']} | {s['waiting']} | {s['unchanged']} | "
                     f"{s['failed']} | {s['deleted']} | {s['calls']} |")
    lines += ["", "Väntar: posten avvisades bara för att något den hänvisar till saknas (en person, medlem, grupp "
              "eller tjänstgöring). Posten skickas av första körningen efter att referensen finns."]
    return "\n".join(lines)
