"""Skola24 → Haldor: each configured school's published timetable into Haldor's schedule positions.

One flow run covers every configured school; schools run concurrently within a bound, each as one
task, and one school's trouble (no access, unpublished schedule) never stops the others.
See README § Skola24 → Haldor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote

from skolflow.blocks import HaldorCredentials, Skola24Credentials
from skolflow.boundary import flow, task
from skolflow.connectors.haldor.client import HaldorClient
from skolflow.connectors.http import HttpSettings, RemoteError, TransientError
from skolflow.connectors.skola24.client import Skola24Client, Skola24Error
from skolflow.connectors.skola24.models import Organisation
from skolflow.errors import scrub
from skolflow.guard import check_target
from skolflow.identity import mask_text
from skolflow.ledger import Ledger, Outcome, RecordOutcome
from skolflow.notify import notify_failure
from skolflow.settings import Settings
from skolflow.tasks import artifacts
from skolflow.tasks.schools import SchoolConfig, load_schools, schools_file
from skolflow.tasks.timetable import changed_ranges, day_hashes, match_persons, positions_for

PIPELINE = "skola24_to_haldor"
WEEKS = 4  # this week and the next three
NOT_PUBLISHED = "inga lektioner: är schemat publicerat i Skola24?"


@dataclass
class SchoolReport:
    """What one school's task returns: counts and masked rows only."""

    school: str
    status: str = "synced"  # synced | unchanged | not published | failed
    lessons: int = 0
    positions: int = 0
    days_pushed: int = 0
    unmatched_persons: list[dict[str, str]] = field(default_factory=list)
    unplaced_lessons: list[dict[str, str]] = field(default_factory=list)
    haldor_rejected: list[dict[str, str]] = field(default_factory=list)
    message: str = ""


def default_window(today: dt.date) -> tuple[dt.date, dt.date]:
    monday = today - dt.timedelta(days=today.weekday())
    return monday, monday + dt.timedelta(weeks=WEEKS, days=-1)


def _run_name() -> str:
    params = flow_run.parameters
    schools = ",".join(params.get("schools") or []) or "alla skolor"
    return f"skola24-to-haldor · {schools}{' (torrkörning)' if params.get('dry_run') else ''}"


@task(name="export-organisation", cache_policy=NO_CACHE, persist_result=False)
async def export_organisation(skola24: Skola24Credentials, domain: str, http: HttpSettings) -> Organisation:
    async with Skola24Client(skola24.base_url, skola24.api_key.get_secret_value(), http) as client:
        return await client.organisation(domain)


@task(name="sync-school", cache_policy=NO_CACHE, persist_result=False)
async def sync_school(school: SchoolConfig, organisation: Organisation, skola24: Skola24Credentials,
                      haldor: HaldorCredentials, http: HttpSettings, start: dt.date, end: dt.date, run_id: str,
                      database_url: str, dry_run: bool) -> SchoolReport:
    """Export lessons → match persons → push the days that changed → report what could not be placed."""
    logger = get_run_logger()
    report = SchoolReport(school.name)
    ledger = Ledger.shared(database_url)
    async with Skola24Client(skola24.base_url, skola24.api_key.get_secret_value(), http) as client:
        export = await client.lessons(school.domain, school.school_guid, start, end, v3=True)
    if not export.published:
        report.status, report.message = "not published", NOT_PUBLISHED
        logger.warning("%s: %s", school.name, NOT_PUBLISHED)
        return report
    report.lessons = len(export.lessons)
    persons = [p for p in organisation.persons if p.school == school.school_guid]
    groups = {g.guid: g for g in organisation.groups if g.school == school.school_guid}
    async with HaldorClient(haldor.base_url, haldor.client_id, haldor.client_secret.get_secret_value(),
                            http) as haldor_client:
        matching = match_persons(persons, await haldor_client.users(school.haldor_school), school.match)
        positions, unplaced = positions_for(export.lessons, groups, matching.refs)
        report.positions = len(positions)
        report.unmatched_persons = [{"skola": school.name, "person": u.person, "roll": u.role, "nyckel": u.shown,
                                     "orsak": u.reason} for u in matching.unmatched]
        report.unplaced_lessons = [{"skola": school.name, "lektion": u.lesson, "datum": u.date.isoformat(),
                                    "ämne": u.subject, "orsak": u.reason} for u in unplaced]
        current = day_hashes(positions, start, end)
        held = ledger.sent_state(PIPELINE, school.haldor_school, [d.isoformat() for d in current])
        ranges = changed_ranges(current, {dt.date.fromisoformat(k): v.content_hash for k, v in held.items()})
        report.days_pushed = sum((last - first).days + 1 for first, last in ranges)
        if not ranges:
            report.status = "unchanged"
            return report
        if dry_run:
            report.status = "planned"
            return report
        outcomes = []
        for first, last in ranges:
            sent = [p for p in positions if first <= p.date <= last]
            result = await haldor_client.replace_schedule(school.haldor_school, first, last, sent)
            report.haldor_rejected += [{"skola": school.name, "lektion": r.external_id,
                                        "datum": r.date.isoformat() if r.date else "", "ämne": "",
                                        "orsak": f"Haldor: {r.reason}"} for r in result.rejected]
            days = {d: current[d] for d in current if first <= d <= last}
            ledger.accept(PIPELINE, school.haldor_school, run_id,
                          {d.isoformat(): (h, {"positions": sum(p.date == d for p in sent)}) for d, h in days.items()})
            outcomes += [RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=school.haldor_school,
                                       record_key=d.isoformat(), unit=school.name, content_hash=h,
                                       outcome=Outcome.ACCEPTED, response_body=mask_text(result.model_dump_json()))
                         for d, h in days.items()]
        ledger.record(outcomes)
    return report


async def _guarded(school: SchoolConfig, work: Any) -> SchoolReport:
    """A school whose systems refuse it is reported in their words; the other schools go on."""
    try:
        return await work
    except Skola24Error as exc:
        return SchoolReport(school.name, status="failed", message=f"Skola24: {exc.code or exc.status_code}: "
                                                                  f"{scrub(exc.message)}")
    except (TransientError, RemoteError) as exc:
        answer = scrub(exc.body[:300])
        return SchoolReport(school.name, status="failed",
                            message=f"{exc.system} answered {exc.status_code or 'nothing'}: {answer}")


@flow(name="skola24-to-haldor", flow_run_name=_run_name, persist_result=False,
      on_failure=[notify_failure], on_crashed=[notify_failure])
async def skola24_to_haldor(
    schools: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    dry_run: bool = False,
    confirm_production: bool = False,
    concurrency: int = 3,
    skola24_block: str | None = None,
    haldor_block: str | None = None,
) -> State:
    """Sync the timetables of the configured schools (all, or those named) for [start, end].

    Default window: this week and the next three. Schools come from the schools file
    (SKOLFLOW_SKOLA24_SCHOOLS, default <data dir>/skola24-haldor.toml).
    """
    logger = get_run_logger()
    settings = Settings.from_env()
    configured = load_schools(schools_file(settings.data_dir))
    chosen = [s for s in configured if not schools or s.name in schools or s.haldor_school in schools]
    if schools and len(chosen) < len(set(schools)):
        known = ", ".join(s.name for s in configured)
        return Failed(message=f"unknown school among {schools}; configured: {known}")
    skola24, haldor = Skola24Credentials.resolve(skola24_block), HaldorCredentials.resolve(haldor_block)
    check_target("skola24", skola24.base_url, settings.profile, confirm_production)
    if not dry_run:
        check_target("haldor", haldor.base_url, settings.profile, confirm_production)
    http = settings.http(confirm_production)
    if start is None or end is None:
        default_start, default_end = default_window(dt.date.today())
        start, end = start or default_start, end or default_end
    ledger = Ledger.shared(settings.database_url)
    run_id = ledger.start_run(PIPELINE, "", dry_run=dry_run, flow_run_id=str(flow_run.id or ""),
                              parameters={"schools": [s.name for s in chosen], "start": start.isoformat(),
                                          "end": end.isoformat()})
    logger.info("Skola24 → Haldor for %d schools, %s – %s%s", len(chosen), start, end,
                " (dry run: nothing is sent)" if dry_run else "")

    organisations: dict[str, Organisation | SchoolReport] = {}
    for domain in sorted({s.domain for s in chosen}):
        first = next(s for s in chosen if s.domain == domain)
        organisations[domain] = await _guarded(first, export_organisation(skola24, domain, http))
    limiter = asyncio.Semaphore(max(1, concurrency))

    async def one(school: SchoolConfig) -> SchoolReport:
        organisation = organisations[school.domain]
        if isinstance(organisation, SchoolReport):
            return SchoolReport(school.name, status="failed", message=organisation.message)
        async with limiter:
            return await _guarded(school, sync_school(school, quote(organisation), skola24, haldor, http, start, end,
                                                      run_id, settings.database_url, dry_run))

    reports = await asyncio.gather(*(one(s) for s in chosen))
    for school, report in zip(chosen, reports, strict=True):
        key = artifacts.artifact_key("skola24-haldor", school.haldor_school)
        await artifacts.table(f"{key}-omatchade-personer", report.unmatched_persons,
                              f"{school.name}: personer som inte kunde matchas mot Haldor ({school.match}, maskerade)")
        await artifacts.table(f"{key}-lektioner-ej-placerade", report.unplaced_lessons + report.haldor_rejected,
                              f"{school.name}: lektioner som inte kom till Haldor, med orsak")
    rows = [f"| {r.school} | {r.status} | {r.lessons} | {r.positions} | {r.days_pushed} | "
            f"{len(r.unmatched_persons)} | {len(r.unplaced_lessons) + len(r.haldor_rejected)} | {r.message} |"
            for r in reports]
    await artifacts.markdown("skola24-haldor-sammanfattning", "\n".join([
        f"# Skola24 → Haldor {start} – {end}{' (torrkörning)' if dry_run else ''}", "",
        "| skola | status | lektioner | positioner | dagar skickade | omatchade personer | ej placerade | meddelande |",
        "|---|---|---|---|---|---|---|---|", *rows]), "Sammanfattning per skola")
    summary = {r.school: {"status": r.status, "lessons": r.lessons, "positions": r.positions,
                          "days_pushed": r.days_pushed, "unmatched_persons": len(r.unmatched_persons),
                          "unplaced_lessons": len(r.unplaced_lessons) + len(r.haldor_rejected),
                          "message": r.message} for r in reports}
    failed = [r for r in reports if r.status == "failed"]
    for r in reports:
        (logger.error if r.status == "failed" else logger.info)("%s: %s %s", r.school, r.status, r.message)
    ledger.finish_run(run_id, "failed" if failed else "completed", summary)
    if failed:
        return Failed(message="; ".join(f"{r.school}: {r.message}" for r in failed))
    return Completed(message=", ".join(f"{r.school}: {r.status}" for r in reports))
