"""Udir eksamen: make Udir hold exactly what the school intends for a period.

The candidates file is the school's whole intent for the school and period. Registrations Udir holds
that the file does not list (wherever they came from, by hand in PAS included) are deleted in one
batch call; the file's registrations Udir lacks are registered as :mod:`udir_registration` does.
``dry_run`` shows the plan and changes nothing. A file with a row whose candidate cannot be read
deletes nothing: it is not a complete statement of intent, and the unread row may be the one Udir holds.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from skolflow.blocks import UdirCredentials
from skolflow.boundary import flow
from skolflow.connectors.udir import rules
from skolflow.connectors.udir.models import KandidatFagkode
from skolflow.flows.udir_registration import checked_candidates, school_of, summary_markdown
from skolflow.guard import check_target
from skolflow.identity import mask
from skolflow.ledger import Ledger, Outcome, RecordOutcome
from skolflow.notify import notify_failure
from skolflow.settings import Settings
from skolflow.tasks import artifacts
from skolflow.tasks.ledger_runs import recorded
from skolflow.tasks.udir import Poll, Udir, delete_registrations, held_keys, outcome, register_rows, registered
from skolflow.tasks.udir_candidates import RULE_MISSING, Checked, School, to_send

PIPELINE = "udir_reconcile"
UNREADABLE = frozenset({RULE_MISSING, rules.RULE_FODSELSNUMMER})


def _run_name() -> str:
    p = flow_run.parameters
    suffix = " (prøvekjøring)" if p.get("dry_run") else ""
    return f"udir-reconcile · {p.get('orgnr')} · {p.get('periodekode')}{suffix}"


def intended(checked: Checked) -> set[tuple[str, str]]:
    """Every (fødselsnummer, fagkode) the file names, including rows refused by a rule: still the school's intent."""
    keys = {row.key for row in checked.rows}
    keys |= {(p.fodselsnr, p.code) for p in checked.problems if p.fodselsnr and p.code and p.rule not in UNREADABLE}
    return keys


@flow(name="udir-reconcile", flow_run_name=_run_name, persist_result=False, log_prints=False,
      on_failure=[notify_failure], on_crashed=[notify_failure])
async def udir_reconcile(
    candidates_file: str,
    orgnr: str,
    periodekode: str,
    skolenavn: str,
    brukernavn_pas: str,
    opplaeringsniva: str | None = None,
    epost_ved_feil: str | None = None,
    dry_run: bool = False,
    confirm_production: bool = False,
    batch_size: int = 500,
    poll_timeout_seconds: float = 1800.0,
    udir_block: str | None = None,
) -> State:
    """Delete what Udir holds beyond the file, register what it lacks; ``dry_run`` only plans."""
    settings = Settings.from_env()
    udir = Udir(UdirCredentials.resolve(udir_block), settings.http(confirm_production))
    check_target("udir", udir.credentials.base_url, settings.profile, confirm_production)
    school = school_of(orgnr, skolenavn, brukernavn_pas, periodekode, opplaeringsniva, epost_ved_feil)
    ledger = Ledger.shared(settings.database_url)
    run_id = ledger.start_run(PIPELINE, f"{school.orgnr}/{school.periodekode}", dry_run=dry_run,
                              flow_run_id=str(flow_run.id or ""),
                              parameters={"file": Path(candidates_file).name, "periodekode": school.periodekode})
    return await recorded(ledger, run_id, _reconcile(udir, ledger, run_id, school, candidates_file, dry_run,
                                                     batch_size, Poll(timeout=poll_timeout_seconds)))


def _deleted(run_id: str, scope: str, fnr: str, fagkode: str, nr: str, kind: Outcome, note: str) -> RecordOutcome:
    return RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=scope, record_key=fnr, unit=fagkode,
                         source_key=nr, outcome=kind, response_body=note)


async def _reconcile(udir: Udir, ledger: Ledger, run_id: str, school: School, candidates_file: str, dry_run: bool,
                     batch_size: int, poll: Poll) -> tuple[State, dict[str, int]]:
    logger = get_run_logger()
    scope = f"{school.orgnr}/{school.periodekode}"
    checked, schemas = await checked_candidates(udir, school, candidates_file)
    if checked.blocking:
        return Failed(message="Nothing changed: " + "; ".join(p.message for p in checked.blocking)), {}
    held = held_keys(await registered(udir, school.orgnr, school.periodekode))
    unreadable = [p for p in checked.problems if p.rule in UNREADABLE]
    extras = sorted(set(held) - intended(checked))
    missing = to_send(checked.rows, held)
    plan = [{"handling": "slett", "kandidat": mask(fnr), "fagkode": fagkode, "kandidatnummer": held[(fnr, fagkode)],
             "kandidatgruppe": ""} for fnr, fagkode in extras]
    plan += [{"handling": "meld på", "kandidat": row.shown, "fagkode": row.fagkode,
              "kandidatnummer": held.get(row.key, ""), "kandidatgruppe": row.kandidatgruppe} for row in missing]
    if unreadable:
        logger.warning("%d rows of the file could not be read: nothing is deleted until they are fixed",
                       len(unreadable))
        plan = [p for p in plan if p["handling"] != "slett"]
        extras = []
    key = artifacts.artifact_key("udir-reconcile", school.orgnr, school.periodekode)
    await artifacts.table(f"{key}-plan", plan, ("Planen (ingenting endret: prøvekjøring)" if dry_run else
                                                 "Endringene hos Udir"))
    counts = {"delete": len(extras), "register": len(missing), "rejected_before_sending": len(checked.problems),
              "deletions_blocked_by_unreadable_rows": len(unreadable)}
    if dry_run:
        ledger.record([_deleted(run_id, scope, fnr, fagkode, held[(fnr, fagkode)], Outcome.PLANNED, "slett")
                       for fnr, fagkode in extras])
        ledger.record([outcome(run_id, PIPELINE, scope, row, Outcome.PLANNED) for row in missing])
        await artifacts.markdown(f"{key}-sammendrag", summary_markdown(
            f"Udir-avstemming {school.orgnr} {school.periodekode} – prøvekjøring",
            {"ville blitt slettet": len(extras), "ville blitt meldt på": len(missing)}, []), "Sammendrag")
        return Completed(message=f"plan: delete {len(extras)}, register {len(missing)}", data=counts), counts

    deleted = still = 0
    if extras:
        await delete_registrations(udir, school.orgnr, school.periodekode,
                                   [KandidatFagkode(kandidatnummer=held[k], fagkode=k[1]) for k in extras])
        after = held_keys(await registered(udir, school.orgnr, school.periodekode))
        records = []
        for fnr, fagkode in extras:
            gone = (fnr, fagkode) not in after
            deleted += gone
            still += not gone
            records.append(_deleted(run_id, scope, fnr, fagkode, held[(fnr, fagkode)],
                                    Outcome.DELETED if gone else Outcome.FAILED,
                                    "slettet hos Udir" if gone else "Udir holder fortsatt påmeldingen"))
        ledger.record(records)
    done = await register_rows(udir, ledger, run_id, PIPELINE, school, missing, schemas, poll, batch_size)
    counts.update({"deleted": deleted, "not_deleted": still, "registered": done.accepted,
                   "rejected_by_udir": done.rejected, "refused_by_udir": done.refused, "failed": done.failed,
                   "unfinished": done.unfinished})
    await artifacts.table(f"{key}-ikke-pameldt", done.rows, "Kandidatfag Udir ikke meldte på")
    await artifacts.markdown(f"{key}-sammendrag", summary_markdown(
        f"Udir-avstemming {school.orgnr} {school.periodekode}",
        {"slettet": deleted, "ikke slettet": still, "meldt på": done.accepted, "avvist av Udir": done.rejected,
         "avvist av Udir med hele påmeldingen": done.refused,
         "avvist før sending": len(checked.problems), "ikke levert / ikke ferdig": done.failed + done.unfinished},
        ["Sletting holdt tilbake: filen har rader som ikke kunne leses."] if unreadable else []), "Sammendrag")
    failures = [done.refused_message()] if done.refused else []
    if still or done.failed or done.unfinished:
        failures.append(f"{still} registrations not deleted, {done.failed + done.unfinished} not registered "
                        f"({done.failure or 'Udir still holds them'})")
    if failures:
        return Failed(message=". ".join(failures)), counts
    return Completed(message=f"deleted {deleted}, registered {done.accepted}, "
                             f"{done.rejected + len(checked.problems)} not registered", data=counts), counts
