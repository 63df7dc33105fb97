"""DNP provisioning: a huvudman's users → duties → groups → activities to Skolverket's test platform.

Four steps in DNP's order, each a subflow; a step starts only when the one before it succeeded, and
only records whose content changed since DNP last accepted them are sent, so a run after a failed
one sends nothing again that DNP took and in effect starts at the step that failed. One run per
huvudman at a time (a lease in the ledger, :mod:`skolflow.tasks.queue`): a second run waits in the queue. After the
four steps, what left the SS 12000 source is deleted from DNP, activities first. See README § DNP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from skolflow.blocks import DnpCredentials, SS12000Credentials
from skolflow.boundary import flow
from skolflow.connectors.dnp.client import Kind
from skolflow.connectors.dnp.models import Activity, Group, Person
from skolflow.connectors.dnp.opendata import DEFAULT_TEST_ACTIVITIES
from skolflow.connectors.http import RemoteError
from skolflow.guard import check_target
from skolflow.identity import mask, validate_swedish_orgnr
from skolflow.ledger import Ledger, Outcome, RecordOutcome
from skolflow.notify import notify_failure
from skolflow.settings import Settings
from skolflow.tasks import artifacts
from skolflow.tasks.dnp_mapping import Mapped, activity_record_id, map_to_dnp, select_test_activities, staff_record_id
from skolflow.tasks.dnp_source import Catalogue, Source, read_catalogue, read_source
from skolflow.tasks.dnp_steps import (
    DEPENDENCY,
    PIPELINE,
    STEP_LABELS,
    STEPS,
    Dnp,
    Record,
    StepReport,
    delete_records,
    record_hash,
    refused_records,
    scope_of,
    send_records,
    waits_for_reference,
)
from skolflow.tasks.ledger_runs import recorded
from skolflow.tasks.queue import one_at_a_time

# Records handed from the run to its step subflows in this process. Subflow parameters are stored in
# Prefect's database, and these records hold personnummer: only the run id and the step go there.
_HANDOVER: dict[tuple[str, str], tuple[list[Record], dict[str, Person]]] = {}


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
                         confirm_production: bool = False) -> StepReport:
    """One step: unchanged records stay, changed ones are sent and followed to DNP's answer."""
    logger = get_run_logger()
    settings = Settings.from_env()
    records, people = _HANDOVER.pop((run_id, kind))
    ledger = Ledger.shared(settings.database_url)
    previous = ledger.sent_state(PIPELINE, scope_of(huvudman, kind), [r.id for r in records])
    changed = [r for r in records if r.id not in previous or previous[r.id].content_hash != record_hash(r)]
    unchanged = len(records) - len(changed)
    ledger.record([RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=huvudman, record_key=r.id, unit=kind,
                                 content_hash=record_hash(r), outcome=Outcome.UNCHANGED)
                   for r in records if r.id in previous and previous[r.id].content_hash == record_hash(r)])
    logger.info("%s: %d records, %d changed since DNP last accepted them", kind, len(records), len(changed))
    if dry_run:
        ledger.record([RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=huvudman, record_key=r.id, unit=kind,
                                     content_hash=record_hash(r), outcome=Outcome.PLANNED) for r in changed])
        return StepReport(kind, status="planned", sent=len(changed), unchanged=unchanged)
    if not changed:
        return StepReport(kind, unchanged=unchanged)
    dnp = Dnp(DnpCredentials.resolve(dnp_block), settings.http(confirm_production))
    report = await send_records(dnp, kind, changed, people, huvudman, run_id, settings.database_url)
    report.unchanged = unchanged
    return report


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
) -> State:
    """Provision the huvudman's students and staff, duties, groups and test activities to DNP.

    huvudman: organisationsnummer; school_units: skolenhetskoder (default all); test_activities:
    display names or ids from DNP's open-data catalogue (default every one the catalogue lists).
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
    async with one_at_a_time(PIPELINE, orgnr) as queue:
        logger.info("holding %s: other provisioning runs for %s wait until this one ends", queue, orgnr)
        ledger = Ledger.shared(settings.database_url)
        run_id = ledger.start_run(PIPELINE, orgnr, dry_run=dry_run, flow_run_id=str(flow_run.id or ""),
                                  parameters={"school_units": school_units or [],
                                              "test_activities": test_activities or []})
        return await recorded(ledger, run_id, _provision(dnp, ss12000, settings, ledger, run_id, orgnr, school_units,
                                                         test_activities, dry_run, dnp_block))


async def _provision(dnp: Dnp, ss12000: SS12000Credentials, settings: Settings, ledger: Ledger, run_id: str,
                     orgnr: str, school_units: list[str] | None, test_activities: list[str] | None, dry_run: bool,
                     dnp_block: str | None) -> tuple[State, dict[str, Any]]:
    try:
        source = await read_source(ss12000, dnp.http)
        catalogue = await read_catalogue(dnp.credentials.opendata_url, orgnr, dnp.http)
    except RemoteError as exc:
        nothing = ", ".join(f"{STEP_LABELS[k]} 0/0" for k in STEPS)
        return Failed(message=f"the source could not be read ({exc}); no step started, nothing was sent: {nothing}. "
                              "The next run tries again."), {}
    wanted = test_activities or [t.displayName for t in catalogue.test_activities] or \
        [name for name, _, _ in DEFAULT_TEST_ACTIVITIES]
    mapped: Mapped = map_to_dnp(source.persons, source.duties, source.groups, source.activities,
                                source.school_units, select_test_activities(catalogue.test_activities, wanted),
                                include_units=school_units or None, known_school_units=catalogue.school_units,
                                refused=source.refused)
    ledger.record([RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=orgnr, record_key=r.record_id,
                                 source_key=r.masked_label, unit=r.kind, outcome=Outcome.REJECTED,
                                 errors=[{"kod": r.code, "falt": r.rule, "meddelande": r.message}])
                   for r in mapped.rejected])
    people = {p.id: p for p in mapped.persons}
    progress = await artifacts.Progress.start(f"DNP {orgnr}: steg klara")
    reports: dict[str, StepReport] = {}
    rejected: dict[str, set[str]] = {kind: set() for kind in STEPS}
    for index, kind in enumerate(STEPS):
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
        _HANDOVER[(run_id, kind)] = (records, people)
        try:
            report = await provision_step(kind=kind, huvudman=orgnr, run_id=run_id, dry_run=dry_run,
                                          dnp_block=dnp_block, confirm_production=dnp.http.door.confirm_production)
        finally:
            _HANDOVER.pop((run_id, kind), None)
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
        await artifacts.table(artifacts.artifact_key("dnp", orgnr, kind), report.rows[:5000],
                              f"{STEP_LABELS[kind]}: {report.accepted} godkända, {report.rejected} avvisade av DNP, "
                              f"{report.rejected_before} avvisade före sändning, {report.waiting} väntar på en "
                              f"referens som saknas, {report.unchanged} oförändrade")
        await progress.update(index + 1, len(STEPS) + 1)

    deletions: dict[str, StepReport] = {}
    if not dry_run and all(r.status == "completed" for r in reports.values()):
        present = _present(source, catalogue)
        for kind in reversed(STEPS):
            held = ledger.held(PIPELINE, scope_of(orgnr, kind))
            gone = sorted(set(held) - present[kind])
            if gone:
                labels = {key: _label(kind, held[key].content) for key in gone}
                deletions[kind] = await delete_records(dnp, kind, gone, labels, orgnr, run_id, settings.database_url)
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
    verb = "planned" if dry_run else "accepted/sent"
    return Completed(message=f"DNP {orgnr} {verb}: {counts}", data=summary), summary


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
              "eller tjänstgöring). Källan läses hel vid varje körning, så posten skickas av första körningen efter "
              "att referensen finns."]
    return "\n".join(lines)
