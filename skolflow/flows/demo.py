"""`skolflow demo`: every pipeline end to end against the built-in sandboxes, on the embedded default.

The demo keeps its own ledger (``<data dir>/demo/ledger.db``, new each time) because its sandboxes
start empty: a ledger that remembered an earlier demo would believe Beda already holds students the
fresh sandbox has never seen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from skolflow import embedded
from skolflow.connectors.http import build_client
from skolflow.identity import mask
from skolflow.ledger import Ledger, Outcome
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.settings import Settings
from skolflow.tasks.grades import platform_id
from skolflow.tasks.schools import dump_schools


def _show(console: Console, title: str, summary: dict[str, Any], rejected: list[dict[str, str]]) -> None:
    table = Table(title=title, show_header=True)
    for column in ("students", "sent (accepted)", "unchanged", "rejected", "waiting", "not delivered", "lost"):
        table.add_column(column, justify="right")
    table.add_row(str(summary["students"]), str(summary["accepted"]), str(summary["unchanged"]),
                  str(summary["rejected"]), str(summary["waiting"]), str(summary["failed"]), str(summary["lost"]))
    console.print(table)
    for row in rejected[:8]:
        console.print(f"  [yellow]rejected[/] {row['elev']}: {row['kod']} {row['fält']} — {row['meddelande']}")
    if len(rejected) > 8:
        console.print(f"  … and {len(rejected) - 8} more problems (see the run's table artifact)")


def _not_yet_in_ss12000(data: ds.Dataset, keep: set[str]) -> ds.Person:
    """A student the platform has graded but SS 12000 does not hold yet, as with a new enrolment registered late.

    One whose grades Beda accepts, so that once SS 12000 holds them the only thing between them and Beda is the
    identity join; ``keep`` are students the demo changes later, left alone.
    """
    from skolflow.connectors.beda.grade_scales import check_grade

    late = next(p for p in reversed(data.students()) if p.id not in keep and data.records[p.id].grades and not any(
        check_grade(g.school_form, g.code, g.value, g.assessment) for g in data.records[p.id].grades))
    data.persons.remove(late)
    return late


def run_demo(students: int = 300, console: Console | None = None) -> dict[str, Any]:
    from skolflow.flows.betyg_to_beda import betyg_to_beda, platform_now

    console = console or Console()
    settings = Settings.from_env()
    demo_dir = settings.data_dir / "demo"
    ledger_path = demo_dir / "ledger.db"
    demo_dir.mkdir(parents=True, exist_ok=True)
    for stale in demo_dir.glob("ledger.db*"):
        stale.unlink()
    database_url = f"sqlite:///{ledger_path}"
    data = ds.generate(students=students, mistakes=max(2, students // 100))
    sandboxes = systems.start(data)
    previous = {k: os.environ.get(k) for k in [*sandboxes.environment(), "SKOLFLOW_PROFILE", "SKOLFLOW_DATABASE_URL",
                                               "SKOLFLOW_SKOLA24_SCHOOLS"]}
    os.environ.update(sandboxes.environment())
    os.environ.update({"SKOLFLOW_PROFILE": "sandbox", "SKOLFLOW_DATABASE_URL": database_url})
    # The embedded server would try to send usage telemetry; a demo should not need the internet.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        console.rule("[bold]skolflow demo: Betyg → Beda")
        for name, url in sandboxes.urls.items():
            console.print(f"sandbox {name:9} {url}")
        students_with_grades = [sid for sid, rec in data.records.items() if len(rec.grades) >= 2][:2]
        late = _not_yet_in_ss12000(data, set(students_with_grades))
        asyncio.run(betyg_to_beda(anslutningspart=data.huvudman_orgnr, return_state=True))
        ledger = Ledger.shared(database_url)
        first = ledger.runs("betyg_to_beda", limit=1)[0].summary
        _show(console, "First run: every student changed in the last 14 days", first, _rejected(ledger))
        waiting = ledger.waiting("betyg_to_beda", data.huvudman_orgnr)
        for row in waiting:
            reason = "; ".join(f"{e.get('kod')} — {e.get('meddelande')}" for e in row.errors)
            console.print(f"  [cyan]waiting[/] {mask(row.personnummer) if row.personnummer else row.record_key}: "
                          f"{reason} (kept in the ledger, tried again by every run)")

        # SS 12000 catches up with the late student; a teacher corrects one grade and removes another. The
        # second run's window holds only those two changes: the waiting student comes from the ledger.
        data.persons.append(late)
        changed_at = platform_now()
        data.change_grade(students_with_grades[0], 0, "A" if data.records[students_with_grades[0]].grades[0].value
                          != "A" else "B", when=changed_at)
        data.remove_grade(students_with_grades[1], 0, when=changed_at)
        asyncio.run(betyg_to_beda(anslutningspart=data.huvudman_orgnr, end=changed_at + dt.timedelta(minutes=1),
                                  return_state=True))
        second_run = ledger.runs("betyg_to_beda", limit=1)[0]
        second = second_run.summary
        _show(console, "Second run: one grade changed, one removed, and the waiting student", second, [])
        accepted = {platform_id(o.source_key) for o in ledger.outcomes("betyg_to_beda", run_id=second_run.id,
                                                                       limit=100_000) if o.outcome == Outcome.ACCEPTED}
        reached = sum(1 for row in waiting if row.record_key in accepted)
        console.print(f"{reached} waiting student{'s' if reached != 1 else ''} from the first run reached Beda on the "
                      "second, without --from (skolflow history beda --pending lists those still waiting).")
        held = asyncio.run(_beda_holds(sandboxes.urls["beda"]))
        console.print(f"Beda's sandbox now holds {len(held)} students, "
                      f"{sum(s['received'] for s in held.values())} deliveries for "
                      f"{sum(s['revisions'] for s in held.values())} changes: nothing was sent twice.")
        timetable = _skola24_to_haldor(console, sandboxes, demo_dir)
        udir = _udir(console, demo_dir)
        dnp = _dnp(console, data, sandboxes)
        _where(console, settings, ledger_path)
        return {"first": first, "second": second, "waiting_reached": reached, "beda_students": len(held),
                "skola24_to_haldor": timetable, "udir": udir, "dnp": dnp}
    finally:
        sandboxes.stop()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def _beda_holds(url: str) -> dict[str, Any]:
    """What Beda's sandbox holds per student; read through the guarded client like every other request."""
    async with build_client(url, system="beda") as client:
        return (await client.get("/_sandbox/state")).json()["students"]


def _skola24_to_haldor(console: Console, sandboxes: systems.Sandboxes, demo_dir: Path) -> dict[str, Any]:
    """Sync every sandbox school; one school's schedule is left unpublished, as happens in real life."""
    from skolflow.flows.skola24_to_haldor import PIPELINE, skola24_to_haldor

    configs = systems.school_configs(sandboxes.dataset, sandboxes.timetable)
    schools_path = demo_dir / "skola24-haldor.toml"
    schools_path.write_text(dump_schools(configs), encoding="utf-8")
    os.environ["SKOLFLOW_SKOLA24_SCHOOLS"] = str(schools_path)
    sandboxes.timetable.set_published(configs[-1].school_guid, False)
    console.rule("[bold]skolflow demo: Skola24 → Haldor")
    console.print(f"schools configured in {schools_path}")
    asyncio.run(skola24_to_haldor(return_state=True))
    summary = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"]).runs(PIPELINE, limit=1)[0].summary
    table = Table(title="Per school: this week and the next three")
    for column in ("school", "status", "lessons", "positions in Haldor", "unmatched persons", "lessons not placed"):
        table.add_column(column)
    for name, school in summary.items():
        table.add_row(name, school["message"] or school["status"], str(school["lessons"]), str(school["positions"]),
                      str(school["unmatched_persons"]), str(school["unplaced_lessons"]))
    console.print(table)
    return summary


def _udir(console: Console, demo_dir: Path) -> dict[str, Any]:
    """Register the first sandbox school's candidates (a school's file, mistakes included), then fetch results."""
    from skolflow.flows.udir_registration import PIPELINE, udir_registration
    from skolflow.flows.udir_results import PIPELINE as RESULTS
    from skolflow.flows.udir_results import udir_results
    from skolflow.sandbox import udir_data
    from skolflow.tasks.udir_candidates import write_csv

    data = udir_data.generate()
    school = data.schools[0]
    path = write_csv(demo_dir / "udir-kandidater.csv", udir_data.sample_candidates(data, school.orgnr))
    console.rule("[bold]skolflow demo: Udir eksamen")
    console.print(f"candidates file for {school.name} ({school.orgnr}), {data.current_period}: {path}")
    asyncio.run(udir_registration(candidates_file=str(path), orgnr=school.orgnr, periodekode=data.current_period,
                                  skolenavn=school.name, brukernavn_pas="demo.sas", return_state=True))
    ledger = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"])
    registration = ledger.runs(PIPELINE, limit=1)[0].summary
    table = Table(title="Registration, polled until Udir had processed it")
    for column in ("registered", "already with Udir", "refused by Udir", "refused before sending", "not final"):
        table.add_column(column, justify="right")
    table.add_row(str(registration["registered"]), str(registration["already"]),
                  str(registration["rejected_by_udir"]), str(registration["rejected_before_sending"]),
                  str(registration["failed"] + registration["unfinished"]))
    console.print(table)
    for record in ledger.outcomes(PIPELINE, limit=100):
        if record.outcome == Outcome.REJECTED:
            reason = record.errors[0].get("meddelande", "") if record.errors else ""
            console.print(f"  [yellow]not registered[/] {mask(record.record_key)} {record.unit}: {reason}")
    asyncio.run(udir_results(orgnr=school.orgnr, periodekode=udir_data.PREVIOUS_PERIOD,
                             sas_bruker_referanse="demo.sas", output_dir=str(demo_dir / "udir-resultater"),
                             return_state=True))
    results = ledger.runs(RESULTS, limit=1)[0].summary
    statuses = ", ".join(f"{k.removeprefix('status_')} {v}" for k, v in results.items() if k.startswith("status_"))
    console.print(f"Results {udir_data.PREVIOUS_PERIOD}: {results['results']} candidates ({statuses}), "
                  f"{results['complaints']} complaint grades, {results['sensors']} sensor assignments → "
                  f"{demo_dir / 'udir-resultater'}")
    return {"registration": registration, "results": results}


def _dnp(console: Console, data: ds.Dataset, sandboxes: systems.Sandboxes | None = None) -> dict[str, Any]:
    """Provision the sandbox huvudman to DNP's sandbox; per step what was sent, accepted and refused.

    The token comes as Skolverket's does: from the authorisation server sandbox, over mTLS, with the huvudman's
    client certificate; the demo says so, so that a user sees where a real run's token would come from.
    """
    from skolflow.flows.dnp_provisioning import dnp_provisioning
    from skolflow.tasks.dnp_steps import PIPELINE, STEP_LABELS

    console.rule("[bold]skolflow demo: DNP provisioning")
    asyncio.run(dnp_provisioning(huvudman=data.huvudman_orgnr, return_state=True))
    if sandboxes is not None and os.environ.get("SKOLFLOW_DNP_CERTIFICATE"):
        issued = sandboxes.issuer.issued
        console.print(f"DNP's token: {issued} fetched over mTLS from the authorisation server sandbox "
                      f"({os.environ.get('SKOLFLOW_DNP_AUTH_URL')}) with the sandbox huvudman's client certificate "
                      f"(SKOLFLOW_DNP_CERTIFICATE), each valid {sandboxes.issuer.lifetime_seconds} s and renewed "
                      "before it runs out; DNP's sandbox refuses an expired one (403, 5002).", markup=False)
    summary = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"]).runs(PIPELINE, limit=1)[0].summary
    table = Table(title=f"Huvudman {data.huvudman_orgnr}: users → duties → groups → activities")
    for column in ("step", "status", "sent", "accepted", "rejected by DNP", "rejected before sending",
                   "waiting (missing reference)", "unchanged", "calls"):
        table.add_column(column)
    for kind, step in summary.items():
        table.add_row(STEP_LABELS[kind], step["status"], str(step["sent"]), str(step["accepted"]),
                      str(step["rejected"]), str(step["rejected_before_sending"]), str(step["waiting"]),
                      str(step["unchanged"]), str(step["calls"]))
    console.print(table)
    return summary


def _rejected(ledger: Ledger) -> list[dict[str, str]]:
    rows = []
    for record in ledger.outcomes("betyg_to_beda", limit=200):
        if record.outcome == Outcome.REJECTED:
            for error in record.errors:
                rows.append({"elev": mask(record.record_key) if record.record_key.isdigit() else record.record_key,
                             "kod": error.get("kod", ""), "fält": error.get("falt", ""),
                             "meddelande": error.get("meddelande", "")})
    return rows


def _where(console: Console, settings: Settings, ledger_path: Path) -> None:
    api = os.environ.get("PREFECT_API_URL")
    console.rule("[bold]Where to see the runs")
    if api:
        console.print(f"Prefect UI: {api.removesuffix('/api')}/runs")
    else:
        console.print(f"The runs ran on Prefect's embedded server; they are kept in Prefect's database "
                      f"({embedded.database_path() or 'as configured in PREFECT_API_DATABASE_CONNECTION_URL'}). "
                      "To browse them (with the same PREFECT_HOME): [bold]uv run prefect server start[/] and open "
                      "http://127.0.0.1:4200/runs (flows 'betyg-to-beda', 'skola24-to-haldor', 'udir-registration', "
                      "'udir-results' and 'dnp-provisioning', with their table, progress and summary artifacts).")
    console.print(f"History with masked personnummer: [bold]SKOLFLOW_DATABASE_URL=sqlite:///{ledger_path} "
                  "uv run skolflow history beda[/] (or [bold]history dnp[/])")
