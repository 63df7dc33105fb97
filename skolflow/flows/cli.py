"""The `skolflow` command: demo, sandboxes, runs, validation and history."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from skolflow.identity import InvalidIdentity, mask, mask_text, parse_swedish_identity

if TYPE_CHECKING:
    from prefect.states import State

app = typer.Typer(help="Prefect pipelines for Swedish and Norwegian school data.", no_args_is_help=True)
run_app = typer.Typer(help="Run a pipeline once, now.", no_args_is_help=True)
validate_app = typer.Typer(help="Check a document without sending anything.", no_args_is_help=True)
history_app = typer.Typer(help="What was reported, when, in which run, and the answer.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(validate_app, name="validate")
app.add_typer(history_app, name="history")

console = Console()


@app.command()
def demo(students: Annotated[int, typer.Option(help="students in the synthetic data set")] = 300) -> None:
    """Start the sandboxes and run every pipeline against them, then say where to see the runs."""
    from skolflow.flows.demo import run_demo

    result = run_demo(students=students, console=console)
    if result["first"]["lost"] or result["second"]["lost"]:
        raise typer.Exit(1)


@app.command()
def sandbox(
    students: Annotated[int, typer.Option(help="students in the synthetic data set")] = 300,
    schools: Annotated[int, typer.Option(help="schools (school units) in the data set")] = 6,
    seed: Annotated[int, typer.Option(help="same seed, same data")] = 2026,
    mistakes: Annotated[int, typer.Option(help="students given a grade the rules refuse")] = 3,
    fault_5xx: Annotated[float, typer.Option("--fault-5xx", help="share of requests answered 503")] = 0.0,
    fault_timeout: Annotated[float, typer.Option(help="share held past the client's timeout")] = 0.0,
    fault_429: Annotated[float, typer.Option("--fault-429", help="share answered 429 + Retry-After")] = 0.0,
    fault_drop: Annotated[float, typer.Option(help="share whose connection is dropped mid-answer")] = 0.0,
    latency_ms: Annotated[int, typer.Option(help="latency added to every request")] = 0,
    system: Annotated[list[str] | None, typer.Option(help="apply the faults to these systems only")] = None,
    port: Annotated[int, typer.Option(help="first port; systems take consecutive ports (0: any free)")] = 0,
) -> None:
    """Serve every sandbox on localhost with a seeded data set, and print their URLs and credentials."""
    from skolflow.sandbox import dataset as ds
    from skolflow.sandbox import systems
    from skolflow.sandbox.faults import FaultConfig

    flagged = FaultConfig(server_error=fault_5xx, timeout=fault_timeout, rate_limit=fault_429, drop=fault_drop,
                          latency_ms=latency_ms)
    any_flag = flagged != FaultConfig()
    faults = {name: flagged if any_flag and (not system or name in system) else FaultConfig.from_env(name)
              for name in systems.SYSTEMS}
    ports = {name: port + i for i, name in enumerate(systems.SYSTEMS)} if port else None
    running = systems.start(ds.generate(students=students, schools=schools, seed=seed, mistakes=mistakes),
                            faults, ports=ports)
    console.print(f"[bold]skolflow sandboxes[/] ({students} students, {schools} schools, seed {seed})")
    for name, url in running.urls.items():
        console.print(f"  {name:9} {url}   faults: {faults[name].model_dump(exclude_defaults=True) or 'none'}")
    console.print("\nPoint skolflow at them (profile sandbox):")
    for key, value in running.environment().items():
        console.print(f"  export {key}={value}")
    from skolflow.tasks.schools import dump_schools

    console.print("\nSkola24 → Haldor schools file for these sandboxes (save it, set SKOLFLOW_SKOLA24_SCHOOLS):")
    console.print(dump_schools(systems.school_configs(running.dataset, running.timetable)), markup=False)
    from skolflow.sandbox import udir_data
    from skolflow.settings import Settings
    from skolflow.tasks.udir_candidates import write_csv

    udir = udir_data.generate()
    school = udir.schools[0]
    sample_dir = Settings.from_env().data_dir / "sandbox"
    sample_dir.mkdir(parents=True, exist_ok=True)
    sample = write_csv(sample_dir / "udir-kandidater.csv", udir_data.sample_candidates(udir, school.orgnr))
    console.print(f"\nUdir candidates file for {school.name}: {sample}\n  skolflow run udir-registration {sample} "
                  f"--skole {school.orgnr} --periode {udir.current_period} --skolenavn '{school.name}' "
                  "--brukernavn-pas sas.bruker", markup=False)
    console.print(f"anslutningspart / huvudman: {running.dataset.huvudman_orgnr}. Ctrl-C stops.")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    running.stop()


DeploymentsFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                                  help="deployments of an environment (deployments/*.toml)")]


@app.command()
def deploy(
    file: DeploymentsFile = Path("deployments/sandbox.toml"),
    pool: Annotated[str | None, typer.Option(help="process work pool (default: the file's work_pool)")] = None,
) -> None:
    """Register the file's deployments with the Prefect server (PREFECT_API_URL) for a process worker."""
    from skolflow.deployments import DeploymentConfigError, deploy, load

    try:
        environment = load(file)
        names = asyncio.run(deploy(environment, pool))
    except DeploymentConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    for name in names:
        console.print(f"deployed {name}")
    console.print(f"Start a worker: [bold]uv run prefect worker start --pool {pool or environment.work_pool}[/]")


@app.command()
def serve(file: DeploymentsFile = Path("deployments/sandbox.toml")) -> None:
    """Run the file's deployments on their schedules in this one long-lived process (small installations)."""
    from prefect import serve as prefect_serve

    from skolflow.deployments import DeploymentConfigError, build, load

    try:
        deployments = build(load(file))
    except DeploymentConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    prefect_serve(*deployments)


def _parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


async def _person_id(civic: str) -> str:
    """Turn a personnummer into the SS 12000 person id, so the flow run's parameters never hold it."""
    from skolflow.blocks import SS12000Credentials
    from skolflow.connectors.ss12000.client import SS12000Client

    creds = SS12000Credentials.resolve()
    async with SS12000Client(creds.base_url, creds.token.get_secret_value()) as ss:
        found = await ss.lookup_persons(civic_nos=[civic])
    if not found:
        raise typer.BadParameter(f"no person {mask(civic)} in the SS 12000 source")
    return found[0].id


@run_app.command("betyg-to-beda")
def run_betyg_to_beda(
    anslutningspart: Annotated[str, typer.Option(help="organisationsnummer of the municipality / school owner")],
    school_unit: Annotated[list[str] | None, typer.Option(help="skolenhetskod; repeat for a group of units")] = None,
    personnummer: Annotated[str | None, typer.Option(help="report one student (looked up in SS 12000)")] = None,
    what: Annotated[str, typer.Option(help="kursbetyg, examen or both")] = "both",
    start: Annotated[str | None, typer.Option("--from", help="window start, Swedish time (default: last run)")] = None,
    end: Annotated[str | None, typer.Option("--tom", help="window end, Swedish time (default: now)")] = None,
    dry_run: Annotated[bool, typer.Option(help="build and check everything, send nothing")] = False,
    confirm_production: Annotated[bool, typer.Option(help="required to report to Beda for real")] = False,
) -> None:
    """Report changed grades and diplomas to Beda."""
    from skolflow.flows.betyg_to_beda import betyg_to_beda

    student = None
    if personnummer:
        try:
            civic = parse_swedish_identity(personnummer).number
        except InvalidIdentity as exc:
            raise typer.BadParameter(str(exc)) from exc
        student = asyncio.run(_person_id(civic))
    state = asyncio.run(betyg_to_beda(
        anslutningspart=anslutningspart, school_units=school_unit or [], student=student, what=what,
        start=_parse_time(start), end=_parse_time(end), dry_run=dry_run, confirm_production=confirm_production,
        return_state=True))
    console.print(state.message or state.name)
    if state.is_failed():
        raise typer.Exit(1)


@run_app.command("skola24-to-haldor")
def run_skola24_to_haldor(
    school: Annotated[list[str] | None, typer.Option(help="a configured school's name; repeat (default: all)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="first day, YYYY-MM-DD (default: this Monday)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="last day (default: the Sunday three weeks on)")] = None,
    dry_run: Annotated[bool, typer.Option(help="export, match and plan; push nothing")] = False,
    confirm_production: Annotated[bool, typer.Option(help="required in profile production")] = False,
) -> None:
    """Sync the configured schools' published timetables from Skola24 into Haldor."""
    from skolflow.flows.skola24_to_haldor import skola24_to_haldor

    state = asyncio.run(skola24_to_haldor(
        schools=school or None, start=dt.date.fromisoformat(start) if start else None,
        end=dt.date.fromisoformat(end) if end else None, dry_run=dry_run, confirm_production=confirm_production,
        return_state=True))
    console.print(state.message or state.name)
    if state.is_failed():
        raise typer.Exit(1)


@run_app.command("dnp-provisioning")
def run_dnp_provisioning(
    huvudman: Annotated[str, typer.Option(help="the huvudman's organisationsnummer")],
    school_unit: Annotated[list[str] | None, typer.Option(help="skolenhetskod; repeat (default: all)")] = None,
    test_activity: Annotated[list[str] | None, typer.Option(help="e.g. 'MA åk 6'; repeat (default: all)")] = None,
    dry_run: Annotated[bool, typer.Option(help="map, check and diff; send nothing")] = False,
    confirm_production: Annotated[bool, typer.Option(help="required in profile production")] = False,
) -> None:
    """Provision users, duties, groups and activities to Skolverket's test platform (DNP)."""
    from skolflow.flows.dnp_provisioning import dnp_provisioning

    _finish(asyncio.run(dnp_provisioning(
        huvudman=huvudman, school_units=school_unit or None, test_activities=test_activity or None,
        dry_run=dry_run, confirm_production=confirm_production, return_state=True)))


UdirSchool = Annotated[str, typer.Option("--skole", help="the school's organisasjonsnummer")]
UdirPeriod = Annotated[str, typer.Option("--periode", help="eksamensperiode, H-YYYY or V-YYYY")]
UdirFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="candidates, CSV or JSON (README)")]
UdirSchoolName = Annotated[str, typer.Option(help="the school's name as Udir knows it")]
UdirPasUser = Annotated[str, typer.Option(help="the PAS user the registration is made by")]
UdirLevel = Annotated[str | None, typer.Option(help="VGS or GS (default: the school's)")]


def _finish(state: State) -> None:
    console.print(state.message or state.name)
    if state.is_failed():
        raise typer.Exit(1)


@run_app.command("udir-registration")
def run_udir_registration(
    file: UdirFile,
    skole: UdirSchool,
    periode: UdirPeriod,
    skolenavn: UdirSchoolName,
    brukernavn_pas: UdirPasUser,
    opplaeringsniva: UdirLevel = None,
    epost_ved_feil: Annotated[str | None, typer.Option(help="address Udir writes to about errors")] = None,
    dry_run: Annotated[bool, typer.Option(help="check and plan; register nothing")] = False,
    confirm_production: Annotated[bool, typer.Option(help="required in profile production")] = False,
) -> None:
    """Register the file's exam candidates with Udir and wait until Udir has processed them."""
    from skolflow.flows.udir_registration import udir_registration

    _finish(asyncio.run(udir_registration(
        candidates_file=str(file.resolve()), orgnr=skole, periodekode=periode, skolenavn=skolenavn,
        brukernavn_pas=brukernavn_pas, opplaeringsniva=opplaeringsniva, epost_ved_feil=epost_ved_feil,
        dry_run=dry_run, confirm_production=confirm_production, return_state=True)))


@run_app.command("udir-reconcile")
def run_udir_reconcile(
    file: UdirFile,
    skole: UdirSchool,
    periode: UdirPeriod,
    skolenavn: UdirSchoolName,
    brukernavn_pas: UdirPasUser,
    opplaeringsniva: UdirLevel = None,
    dry_run: Annotated[bool, typer.Option(help="show the plan; change nothing")] = False,
    confirm_production: Annotated[bool, typer.Option(help="required in profile production")] = False,
) -> None:
    """Make Udir hold exactly the file's registrations: delete the others, register the missing."""
    from skolflow.flows.udir_reconcile import udir_reconcile

    _finish(asyncio.run(udir_reconcile(
        candidates_file=str(file.resolve()), orgnr=skole, periodekode=periode, skolenavn=skolenavn,
        brukernavn_pas=brukernavn_pas, opplaeringsniva=opplaeringsniva, dry_run=dry_run,
        confirm_production=confirm_production, return_state=True)))


@run_app.command("udir-results")
def run_udir_results(
    skole: UdirSchool,
    periode: UdirPeriod,
    sas_bruker: Annotated[str, typer.Option(help="sasBrukerReferanse: your user in PAS")],
    output: Annotated[Path | None, typer.Option(help="folder for the CSV and Excel files")] = None,
    eksamen_avlyst: Annotated[bool, typer.Option(help="EA for cancelled exams (else Udir answers DF)")] = True,
    full_fodselsnummer: Annotated[bool, typer.Option(help="full fødselsnummer in the files (default masked)")] = False,
    confirm_production: Annotated[bool, typer.Option(help="required in profile production")] = False,
) -> None:
    """Fetch results (karakteroversikt) and sensor assignments into the ledger and a CSV/Excel file."""
    from skolflow.flows.udir_results import udir_results

    _finish(asyncio.run(udir_results(
        orgnr=skole, periodekode=periode, sas_bruker_referanse=sas_bruker, include_eksamen_avlyst=eksamen_avlyst,
        output_dir=str(output) if output else None, full_fodselsnummer=full_fodselsnummer,
        confirm_production=confirm_production, return_state=True)))


@validate_app.command("betyg")
def validate_betyg(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a Betyg API XML document")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of problems")] = False,
) -> None:
    """Check a Betyg API document against the XSD and the grade rules; exit 1 on any problem."""
    from skolflow.tasks.validation import validate_betyg_document

    problems = validate_betyg_document(file)
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in problems], ensure_ascii=False, indent=2))
    else:
        for p in problems:
            typer.echo(f"{p.student}\t{p.code or '-'}\t{p.rule}\t{p.message}")
        if not problems:
            typer.echo(f"{file}: no problems")
    if problems:
        raise typer.Exit(1)


@validate_app.command("udir")
def validate_udir(
    file: UdirFile,
    periode: Annotated[str | None, typer.Option("--periode", help="check fagkoder against this period's plan")] = None,
    skole: Annotated[str | None, typer.Option("--skole", help="organisasjonsnummer, for school variants")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of problems")] = False,
) -> None:
    """Check a candidates file with Udir's rules without sending anything; exit 1 on any problem."""
    from skolflow.tasks.udir_validation import validate_udir_file

    problems, note = asyncio.run(validate_udir_file(file, periode, skole))
    if note:
        typer.echo(note, err=True)
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in problems], ensure_ascii=False, indent=2))
    else:
        for p in problems:
            typer.echo(f"{p.candidate or '-'}\t{p.code or '-'}\t{p.rule}\t{p.message}")
        if not problems:
            typer.echo(f"{file}: no problems")
    if problems:
        raise typer.Exit(1)


@history_app.command("beda")
def history_beda(
    limit: Annotated[int, typer.Option(help="runs to show")] = 10,
    run: Annotated[str | None, typer.Option(help="one run's per-student outcomes")] = None,
    personnummer: Annotated[str | None, typer.Option(help="one student's history")] = None,
) -> None:
    """Beda API history: what was reported, when, in which run, and Beda's answer (identity numbers masked)."""
    from skolflow.ledger import Ledger
    from skolflow.settings import Settings

    ledger = Ledger(Settings.from_env().database_url)
    if run or personnummer:
        key = parse_swedish_identity(personnummer).number if personnummer else None
        table = Table(title=f"Beda history {'run ' + run if run else mask(key)}")
        for column in ("when", "run", "student", "unit", "outcome", "Beda's answer / reasons"):
            table.add_column(column)
        for o in ledger.outcomes("betyg_to_beda", run_id=run, record_key=key, limit=500):
            reasons = mask_text("; ".join(f"{e.get('kod')} {e.get('falt')}: {e.get('meddelande')}" for e in o.errors))
            shown = mask(o.record_key) if o.record_key.isdigit() else o.record_key
            table.add_row(f"{o.recorded_at:%Y-%m-%d %H:%M:%S}", o.run_id[:8], shown, o.unit, o.outcome,
                          reasons or mask_text(o.response_body or "")[:80])
        console.print(table)
        return
    table = Table(title="Beda API history (runs)")
    for column in ("started", "run", "party", "status", "dry run", "accepted", "unchanged", "rejected", "failed"):
        table.add_column(column)
    for r in ledger.runs("betyg_to_beda", limit=limit):
        s = r.summary or {}
        table.add_row(f"{r.started_at:%Y-%m-%d %H:%M}", r.id, r.scope, r.status, "yes" if r.dry_run else "",
                      str(s.get("accepted", "")), str(s.get("unchanged", "")), str(s.get("rejected", "")),
                      str(s.get("failed", "")))
    console.print(table)



@history_app.command("dnp")
def history_dnp(
    limit: Annotated[int, typer.Option(help="runs to show")] = 10,
    run: Annotated[str | None, typer.Option(help="one run: each step's records with DNP's messages")] = None,
    step: Annotated[str | None, typer.Option(help="persons, duties, groups or activities")] = None,
    calls: Annotated[bool, typer.Option(help="with --run: every call's request and response body")] = False,
    width: Annotated[int, typer.Option(help="characters of each body to show (0: all)")] = 600,
) -> None:
    """DNP provisioning history: runs and their four steps, each record's status, every call (masked)."""
    from skolflow.ledger import Ledger
    from skolflow.settings import Settings
    from skolflow.tasks.dnp_steps import PIPELINE, STEP_LABELS, STEPS

    ledger = Ledger(Settings.from_env().database_url)

    def cut(text: str | None) -> str:
        shown = mask_text(text or "")
        return shown if not width or len(shown) <= width else shown[:width] + " …"

    if run and calls:
        table = Table(title=f"DNP calls of run {run}")
        for column in ("when", "step", "call", "status", "job", "request", "response"):
            table.add_column(column, overflow="fold")
        for c in ledger.calls(run, step):
            table.add_row(f"{c.at:%H:%M:%S}", STEP_LABELS.get(c.step, c.step), f"{c.method} {c.path}",
                          str(c.status_code or ""), c.reference[:8], cut(c.request_body), cut(c.response_body))
        console.print(table)
        return
    if run:
        table = Table(title=f"DNP run {run}: records")
        for column in ("step", "record", "outcome", "DNP's messages / reasons"):
            table.add_column(column, overflow="fold")
        outcomes = [o for o in ledger.outcomes(PIPELINE, run_id=run, limit=100_000) if not step or o.unit == step]
        for o in sorted(outcomes, key=lambda o: (STEPS.index(o.unit) if o.unit in STEPS else 9, o.id or 0)):
            reasons = "; ".join(f"{e.get('kod')} {e.get('meddelande')}" for e in o.errors)
            table.add_row(STEP_LABELS.get(o.unit, o.unit), mask_text(o.source_key) or o.record_key, o.outcome,
                          mask_text(reasons))
        console.print(table)
        return
    table = Table(title="DNP provisioning history (runs)")
    for column in ("started", "run", "huvudman", "status", "dry run", *(STEP_LABELS[k] for k in STEPS)):
        table.add_column(column)
    for r in ledger.runs(PIPELINE, limit=limit):
        steps = r.summary or {}
        cells = [f"{s['status']} {s['accepted']}/{s['sent']} ✗{s['rejected'] + s['rejected_before_sending']}"
                 if (s := steps.get(kind)) else "" for kind in STEPS]
        table.add_row(f"{r.started_at:%Y-%m-%d %H:%M}", r.id, r.scope, r.status, "yes" if r.dry_run else "", *cells)
    console.print(table)
    console.print("A step: status accepted/sent ✗rejected. --run ID for records, --run ID --calls for bodies.")


if __name__ == "__main__":
    app()
