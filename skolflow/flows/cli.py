"""The `skolflow` command: demo, sandboxes, runs, validation and history."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import os
import signal
import threading
import traceback
import uuid
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.exceptions import TyperException

from skolflow import embedded
from skolflow.errors import sanitise, scrub
from skolflow.identity import InvalidIdentity, mask, mask_text, parse_swedish_identity

if TYPE_CHECKING:
    from prefect.states import State

    from skolflow.ledger.models import Waiting

DEBUG_ENV = "SKOLFLOW_DEBUG"
console = Console()
stderr = Console(stderr=True)


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").lower() in {"1", "true", "yes"}


def _reported(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command whose failure is one paragraph and exit 1, never a traceback (unless --debug asks for it).

    The paragraph is the exception as :func:`skolflow.errors.sanitise` lets it be shown: skolflow's own errors say
    what is wrong and what to do (a refused target, a bad value, an unreadable file, a remote system's answer);
    anything else is reduced to where and which rule, never the input it quoted.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            embedded.prepare(stderr)
            if not _debugging():
                _console_without_tracebacks()
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):  # usage errors: typer reports them itself
            raise
        except Exception as exc:
            if _debugging():
                raise
            said = _said(exc)
            stderr.print(f"[bold red]error:[/] {escape(said)}")
            stderr.print(f"[dim](--debug or {DEBUG_ENV}=1 shows the traceback)[/]")
            raise typer.Exit(1) from None

    return run


def _said(exc: Exception) -> str:
    """The exception as :func:`skolflow.errors.sanitise` lets it be shown; Prefect's own failures (its embedded
    server not starting, its API refusing) keep their words, which carry no input, with numbers masked anyway."""
    innermost = traceback.extract_tb(exc.__traceback__)[-1].filename if exc.__traceback__ else ""
    if f"{os.sep}prefect{os.sep}" in innermost and sanitise(exc) is not exc:
        return f"{type(exc).__name__}: {scrub(str(exc))}"
    return str(sanitise(exc)) or type(exc).__name__


def _console_without_tracebacks() -> None:
    """Prefect's console says why a run failed; where it failed (the traceback) is for --debug and the UI.

    Patched on the handler class rather than on its instances, because Prefect sets its logging up again when a
    run starts. Only the console changes: the copy of the record keeps Prefect's API handler sending the traceback.
    """
    from prefect.logging.handlers import PrefectConsoleHandler

    shown = PrefectConsoleHandler.format
    if getattr(shown, "reason_only", False):
        return

    def format(self: PrefectConsoleHandler, record: logging.LogRecord) -> str:
        if _debugging():
            return shown(self, record)
        plain = logging.makeLogRecord(record.__dict__)
        plain.exc_info = plain.exc_text = plain.stack_info = None
        return shown(self, plain)

    format.reason_only = True  # type: ignore[attr-defined]
    PrefectConsoleHandler.format = format  # type: ignore[method-assign]


class _Commands(typer.Typer):
    """Typer whose every command reports failures as :func:`_reported` does, so no command can forget to."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)

        def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
            register(_reported(function))
            return function

        return decorator


app = _Commands(help="Prefect pipelines for Swedish and Norwegian school data.", no_args_is_help=True)
run_app = _Commands(help="Run a pipeline once, now.", no_args_is_help=True)
validate_app = _Commands(help="Check a document without sending anything.", no_args_is_help=True)
history_app = _Commands(help="What was reported, when, in which run, and the answer.", no_args_is_help=True)
slot_app = _Commands(help="The one-run-at-a-time slots (leases in the ledger).", no_args_is_help=True)
pending_app = _Commands(help="Records waiting in the ledger for a cause outside themselves (history … --pending "
                             "lists them).", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(validate_app, name="validate")
app.add_typer(history_app, name="history")
app.add_typer(slot_app, name="slot")
app.add_typer(pending_app, name="pending")


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help=f"show tracebacks (also {DEBUG_ENV}=1)")] = False,
             ) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


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
    imperfect: Annotated[bool, typer.Option(help="SS 12000 with the defects real student-information systems "
                                                 "have (README § Sandboxes)")] = False,
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
    running = systems.start(ds.generate(students=students, schools=schools, seed=seed, mistakes=mistakes,
                                        imperfect=imperfect), faults, ports=ports)
    console.print(f"[bold]skolflow sandboxes[/] ({students} students, {schools} schools, seed {seed})")
    for line in systems.imperfections(running.dataset):
        console.print(f"  imperfect SS 12000: {line}", markup=False)
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


@app.command("prefect-yaml")
def write_prefect_yaml(
    file: DeploymentsFile = Path("deployments/sandbox.toml"),
    output: Annotated[Path, typer.Option(help="where to write it")] = Path("prefect.yaml"),
    pool: Annotated[str | None, typer.Option(help="work pool of every deployment (default: the file's work_pool)")]
    = None,
) -> None:
    """Write the file's deployments as a prefect.yaml for `prefect deploy --all` (the same deployments as deploy)."""
    from skolflow.deployments import DeploymentConfigError, load, prefect_yaml

    try:
        environment = load(file)
        text = prefect_yaml(environment, source=file.as_posix(), work_pool=pool)
    except DeploymentConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    output.write_text(text, encoding="utf-8")
    work_pool = pool or environment.work_pool
    console.print(f"wrote {output}: {len(environment.deployments)} deployments on work pool {work_pool}")
    prefect_file = "" if output == Path("prefect.yaml") else f" --prefect-file {output}"
    console.print(f"Register them from the repository's root: [bold]uv run prefect --no-prompt deploy --all"
                  f"{prefect_file}[/]\n"
                  f"(once, before: uv run prefect work-pool create {work_pool} --type process)")


def _parse_time(value: str | None, option: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if value else None
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date and time in Swedish time, e.g. 2026-08-15T14:30",
                                 param_hint=option) from None


def _parse_day(value: str | None, option: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date, e.g. 2026-08-17", param_hint=option) from None


async def _person_id(civic: str, confirm_production: bool) -> str:
    """Turn a personnummer into the SS 12000 person id, so the flow run's parameters never hold it.

    The lookup sends the personnummer, so it passes the same guard as the run it prepares (the client's door).
    """
    from skolflow.blocks import SS12000Credentials
    from skolflow.connectors.ss12000.client import SS12000Client
    from skolflow.connectors.ss12000.models import PersonIdentity
    from skolflow.settings import Settings

    creds = SS12000Credentials.resolve()
    http = Settings.from_env().http(confirm_production)
    async with SS12000Client(creds.base_url, creds.token.get_secret_value(), http) as ss:
        found = await ss.lookup_persons(civic_nos=[civic], read_as=PersonIdentity)  # only the id is needed
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
        student = asyncio.run(_person_id(civic, confirm_production))
    state = asyncio.run(betyg_to_beda(
        anslutningspart=anslutningspart, school_units=school_unit or [], student=student, what=what,
        start=_parse_time(start, "--from"), end=_parse_time(end, "--tom"), dry_run=dry_run,
        confirm_production=confirm_production, return_state=True))
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
        schools=school or None, start=_parse_day(start, "--from"), end=_parse_day(end, "--to"), dry_run=dry_run,
        confirm_production=confirm_production,
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
    confirm_production: Annotated[bool, typer.Option(help="required in profile production to read the plan")] = False,
    opplaeringsniva: UdirLevel = None,
) -> None:
    """Check a candidates file with Udir's rules without sending anything; exit 1 on any problem."""
    from skolflow.tasks.udir_validation import validate_udir_file

    problems, note = asyncio.run(validate_udir_file(file, periode, skole, confirm_production, opplaeringsniva))
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


def _utc(value: dt.datetime) -> dt.datetime:
    """A ledger time as UTC: SQLite and PostgreSQL hand back the naive UTC they were given."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _waited(since: dt.datetime, until: dt.datetime) -> str:
    """How long, as an administrator reads it: ``3 d 4 h``, ``2 h 5 min``, ``12 min``."""
    minutes = max(0, int((_utc(until) - _utc(since)).total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _waiting_student(row: Waiting) -> str:
    """A waiting student as shown: the masked personnummer when the join found one, else the platform id."""
    return mask(row.personnummer) if row.personnummer else row.record_key


def _reasons(errors: list[dict[str, Any]]) -> str:
    return mask_text("; ".join(f"{e.get('kod')} {e.get('falt')}: {e.get('meddelande')}" for e in errors))


def _show_waiting(rows: list[Waiting], dismissed: bool) -> None:
    now = dt.datetime.now(dt.UTC)
    if dismissed:
        table = Table(title=f"Beda: students dismissed from waiting ({len(rows)})")
        columns = ("student", "party", "unit", "reason", "first seen", "waited", "tries", "dismissed", "by", "why")
    else:
        table = Table(title=f"Beda: students waiting ({len(rows)}), retried by every run until accepted or dismissed")
        columns = ("student", "party", "unit", "reason", "first seen", "waited", "tries", "last tried")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = [_waiting_student(row), row.scope, row.unit, _reasons(row.errors), f"{row.first_seen:%Y-%m-%d %H:%M}",
                 _waited(row.first_seen, row.dismissed_at or now), str(row.tries)]
        if row.dismissed_at:
            cells += [f"{row.dismissed_at:%Y-%m-%d %H:%M}", row.dismissed_by, mask_text(row.dismissed_reason)]
        else:
            cells.append(f"{row.last_tried:%Y-%m-%d %H:%M}")
        table.add_row(*cells)
    console.print(table)
    if rows and not dismissed:
        console.print("Times in UTC. To stop retrying one: skolflow pending dismiss beda <personnummer or platform id> "
                      "--reason …")


@history_app.command("beda")
def history_beda(
    limit: Annotated[int, typer.Option(help="runs to show")] = 10,
    run: Annotated[str | None, typer.Option(help="one run's per-student outcomes")] = None,
    personnummer: Annotated[str | None, typer.Option(help="one student's history")] = None,
    pending: Annotated[bool, typer.Option(help="students waiting for a cause outside the grade, and why")] = False,
    dismissed: Annotated[bool, typer.Option(help="students dismissed from waiting: by whom, when, why")] = False,
) -> None:
    """Beda API history: what was reported, when, in which run, and Beda's answer (identity numbers masked)."""
    from skolflow.ledger import Ledger
    from skolflow.settings import Settings

    ledger = Ledger(Settings.from_env().database_url)
    if pending or dismissed:
        _show_waiting(ledger.waiting("betyg_to_beda", dismissed=dismissed), dismissed)
        return
    if run or personnummer:
        try:
            key = parse_swedish_identity(personnummer).number if personnummer else None
        except InvalidIdentity as exc:
            raise typer.BadParameter(str(exc), param_hint="--personnummer") from None
        table = Table(title=f"Beda history {'run ' + run if run else mask(key)}")
        for column in ("when", "run", "student", "unit", "outcome", "Beda's answer / reasons"):
            table.add_column(column)
        for o in ledger.outcomes("betyg_to_beda", run_id=run, record_key=key, limit=500):
            shown = mask(o.record_key) if o.record_key.isdigit() else o.record_key
            table.add_row(f"{o.recorded_at:%Y-%m-%d %H:%M:%S}", o.run_id[:8], shown, o.unit, o.outcome,
                          _reasons(o.errors) or mask_text(o.response_body or "")[:80])
        console.print(table)
        return
    table = Table(title="Beda API history (runs)")
    for column in ("started", "run", "party", "status", "dry run", "accepted", "unchanged", "rejected", "failed",
                   "waiting"):
        table.add_column(column)
    for r in ledger.runs("betyg_to_beda", limit=limit):
        s = r.summary or {}
        table.add_row(f"{r.started_at:%Y-%m-%d %H:%M}", r.id, r.scope, r.status, "yes" if r.dry_run else "",
                      str(s.get("accepted", "")), str(s.get("unchanged", "")), str(s.get("rejected", "")),
                      str(s.get("failed", "")), str(s.get("waiting", "")))
    console.print(table)
    console.print("waiting: refused for a cause outside the grade, retried every run (--pending lists them).")


@history_app.command("dnp")
def history_dnp(
    limit: Annotated[int, typer.Option(help="runs to show")] = 10,
    run: Annotated[str | None, typer.Option(help="one run: each step's records with DNP's messages")] = None,
    step: Annotated[str | None, typer.Option(help="persons, duties, groups or activities")] = None,
    calls: Annotated[bool, typer.Option(help="with --run: every call's request and response body")] = False,
    width: Annotated[int, typer.Option(help="characters of each body to show (0: all)")] = 600,
) -> None:
    """DNP provisioning history: runs and their four steps, each record's status, every call (masked)."""
    from skolflow.ledger import Ledger, Outcome
    from skolflow.settings import Settings
    from skolflow.tasks.dnp_steps import PIPELINE, STEP_LABELS, STEPS, waits_for_reference

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
            waiting = o.outcome == Outcome.REJECTED and waits_for_reference(e.get("kod", "") for e in o.errors)
            table.add_row(STEP_LABELS.get(o.unit, o.unit), mask_text(o.source_key) or o.record_key,
                          "waiting (missing reference)" if waiting else o.outcome, mask_text(reasons))
        console.print(table)
        return
    table = Table(title="DNP provisioning history (runs)")
    for column in ("started", "run", "huvudman", "status", "dry run", *(STEP_LABELS[k] for k in STEPS)):
        table.add_column(column)
    for r in ledger.runs(PIPELINE, limit=limit):
        steps = r.summary or {}
        cells = [f"{s['status']} {s['accepted']}/{s['sent']} ✗{s['rejected'] + s['rejected_before_sending']}"
                 + (f" ⏳{s['waiting']}" if s.get("waiting") else "") if (s := steps.get(kind)) else ""
                 for kind in STEPS]
        table.add_row(f"{r.started_at:%Y-%m-%d %H:%M}", r.id, r.scope, r.status, "yes" if r.dry_run else "", *cells)
    console.print(table)
    console.print("A step: status accepted/sent ✗rejected ⏳waiting (missing reference: sent once it exists). "
                  "--run ID for records, --run ID --calls for bodies.")


@slot_app.command("list")
def slot_list() -> None:
    """Every slot held now: by whom, since when, until when its lease runs unless renewed."""
    from skolflow.ledger import Ledger
    from skolflow.ledger.lease import Leases
    from skolflow.settings import Settings
    from skolflow.tasks.queue import held_by

    leases = Leases(Ledger(Settings.from_env().database_url)).every()
    for lease in leases:
        console.print(f"{lease.name}: {held_by(lease)}; lease runs until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    if not leases:
        console.print("no slot is held")


@slot_app.command("free")
def slot_free(name: Annotated[str, typer.Argument(help="e.g. skolflow-betyg-to-beda-212000-0142")]) -> None:
    """Free the slot of a run you know is gone, instead of waiting for its lease to lapse."""
    from skolflow.ledger import Ledger
    from skolflow.ledger.lease import Leases
    from skolflow.settings import Settings

    if not Leases(Ledger(Settings.from_env().database_url)).free(name):
        raise typer.BadParameter(f"no slot {name} is held", param_hint="NAME")
    console.print(f"freed {name}; the next run marks the run that held it crashed")


class Waitable(StrEnum):
    """Pipelines whose records wait in the ledger (DNP's need no queue: its source is read whole every run)."""

    BEDA = "beda"


WAITING_PIPELINES = {Waitable.BEDA: "betyg_to_beda"}


@pending_app.command("dismiss")
def pending_dismiss(
    pipeline: Annotated[Waitable, typer.Argument(help="the pipeline")],
    student: Annotated[str, typer.Argument(help="personnummer or platform id, as history beda --pending shows it")],
    reason: Annotated[str, typer.Option(help="why it is given up: kept with the dismissal")],
    anslutningspart: Annotated[str | None, typer.Option(help="only at this anslutningspart (default: any)")] = None,
    by: Annotated[str | None, typer.Option(help="who gives it up (default: your user name)")] = None,
) -> None:
    """Stop retrying a waiting student: later runs leave them alone until the platform sends them again."""
    import getpass

    from skolflow.identity import validate_swedish_orgnr
    from skolflow.ledger import Ledger
    from skolflow.settings import Settings
    from skolflow.tasks.grades import platform_id

    try:
        key = parse_swedish_identity(student).number
    except InvalidIdentity:
        key = platform_id(student)
        try:
            uuid.UUID(key)
        except ValueError:
            raise typer.BadParameter(f"{mask_text(student)!r} is neither a personnummer nor a platform id",
                                     param_hint="STUDENT") from None
    try:
        scope = validate_swedish_orgnr(anslutningspart) if anslutningspart else None
    except InvalidIdentity as exc:
        raise typer.BadParameter(str(exc), param_hint="--anslutningspart") from None
    ledger = Ledger(Settings.from_env().database_url)
    rows = ledger.dismiss(WAITING_PIPELINES[pipeline], key, by=by or getpass.getuser(), reason=reason, scope=scope)
    if not rows:
        shown = mask(key) if key.isdigit() else key
        raise typer.BadParameter(f"no student {shown} is waiting{' at ' + scope if scope else ''} "
                                 f"(skolflow history {pipeline} --pending lists them)", param_hint="STUDENT")
    for row in rows:
        console.print(f"dismissed {_waiting_student(row)} ({row.record_key}) at {row.scope}, waiting since "
                      f"{row.first_seen:%Y-%m-%d %H:%M} UTC, {row.tries} tries: later runs leave them alone until the "
                      "platform sends them again")


if __name__ == "__main__":
    app()
