"""Udir eksamen: register a school's exam candidates from a CSV or JSON file, poll to the end, record it.

Everything is checked first, all at once (the file's format and Udir's own rules), so a school sees
every problem before anything is sent; refused rows are reported and the rest go on. Udir's candidate
list is read before sending, so a candidate Udir already holds (registered earlier, by hand in PAS,
or by a run that died while Udir processed it) is never sent again. See README § Udir eksamen.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from skolflow.blocks import UdirCredentials
from skolflow.boundary import flow, task
from skolflow.guard import check_target
from skolflow.identity import validate_norwegian_orgnr
from skolflow.ledger import Ledger, Outcome
from skolflow.notify import notify_failure
from skolflow.settings import Settings
from skolflow.tasks import artifacts
from skolflow.tasks.ledger_runs import recorded
from skolflow.tasks.udir import (
    Poll,
    Registered,
    Udir,
    fetch_eksamensplan,
    fetch_schemas,
    held_keys,
    outcome,
    problem_outcome,
    register_rows,
    registered,
)
from skolflow.tasks.udir_candidates import Checked, School, check, read_candidates, to_send

PIPELINE = "udir_registration"


def _run_name() -> str:
    p = flow_run.parameters
    suffix = " (prøvekjøring)" if p.get("dry_run") else ""
    file = Path(p.get("candidates_file", "")).name
    return f"udir-registration · {p.get('orgnr')} · {p.get('periodekode')} · {file}{suffix}"


@task(name="les-kandidatfil", cache_policy=NO_CACHE, persist_result=False)
async def read_file(path: str) -> Checked:
    return read_candidates(Path(path))


def school_of(orgnr: str, skolenavn: str, brukernavn_pas: str, periodekode: str, opplaeringsniva: str | None,
              epost_ved_feil: str | None) -> School:
    return School(validate_norwegian_orgnr(orgnr), skolenavn, brukernavn_pas, periodekode.strip().upper(),
                  opplaeringsniva, epost_ved_feil)  # type: ignore[arg-type]


async def checked_candidates(udir: Udir, school: School, candidates_file: str) -> tuple[Checked, dict[str, bytes]]:
    """The file read and checked against the eksamensplan; Udir's served XSDs for the registration."""
    read = await read_file(candidates_file)
    base_url = udir.credentials.base_url
    schemas = await fetch_schemas(base_url, udir.http)
    plan = await fetch_eksamensplan(base_url, school.periodekode, school.orgnr, udir.http)
    return check(read, school, plan), schemas


def summary_markdown(title: str, counts: dict[str, int], notes: list[str]) -> str:
    lines = [f"# {title}", "", "| utfall | kandidatfag |", "|---|---|"]
    lines += [f"| {name} | {count} |" for name, count in counts.items()]
    return "\n".join([*lines, "", *notes])


@flow(name="udir-registration", flow_run_name=_run_name, persist_result=False, log_prints=False,
      on_failure=[notify_failure], on_crashed=[notify_failure])
async def udir_registration(
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
    """Register the file's candidates with Udir for the school and period.

    candidates_file: CSV or JSON in skolflow's format (README § Udir eksamen); orgnr: the school's
    organisasjonsnummer; periodekode: H-YYYY or V-YYYY; brukernavn_pas: the PAS user registering.
    """
    settings = Settings.from_env()
    udir = Udir(UdirCredentials.resolve(udir_block), settings.http(confirm_production))
    check_target("udir", udir.credentials.base_url, settings.profile, confirm_production)
    school = school_of(orgnr, skolenavn, brukernavn_pas, periodekode, opplaeringsniva, epost_ved_feil)
    scope = f"{school.orgnr}/{school.periodekode}"
    ledger = Ledger.shared(settings.database_url)
    run_id = ledger.start_run(PIPELINE, scope, dry_run=dry_run, flow_run_id=str(flow_run.id or ""),
                              parameters={"file": Path(candidates_file).name, "periodekode": school.periodekode})
    return await recorded(ledger, run_id, _register(udir, ledger, run_id, school, candidates_file, dry_run,
                                                    batch_size, Poll(timeout=poll_timeout_seconds)))


async def _register(udir: Udir, ledger: Ledger, run_id: str, school: School, candidates_file: str, dry_run: bool,
                    batch_size: int, poll: Poll) -> tuple[State, dict[str, int]]:
    logger = get_run_logger()
    scope = f"{school.orgnr}/{school.periodekode}"
    checked, schemas = await checked_candidates(udir, school, candidates_file)
    ledger.record([problem_outcome(run_id, PIPELINE, scope, p) for p in checked.problems if p.candidate or p.row])
    key = artifacts.artifact_key("udir-registration", school.orgnr, school.periodekode)
    refused = [{"kandidat": p.candidate, "fagkode": p.code, "variant": "", "kandidatgruppe": "", "status": p.rule,
                "StatusMessage": p.message, "kilde": "skolflow"} for p in checked.problems]
    if checked.blocking:
        await artifacts.table(f"{key}-ikke-pameldt", refused, "Problemer som stoppet påmeldingen")
        message = "; ".join(p.message for p in checked.blocking)
        return Failed(message=f"Nothing sent: {message}"), {"rejected": len(checked.problems)}

    held = held_keys(await registered(udir, school.orgnr, school.periodekode))
    sending = to_send(checked.rows, held)
    sending_keys = {row.key for row in sending}
    already = [row for row in checked.rows if row.key not in sending_keys]
    ledger.record([outcome(run_id, PIPELINE, scope, row, Outcome.UNCHANGED, kandidatnummer=held[row.key],
                           status="Pameldt", message="Allerede påmeldt hos Udir: ikke sendt på nytt")
                   for row in already])
    logger.info("%d candidate-subjects in the file: %d already with Udir, %d to send, %d refused before sending",
                len(checked.rows) + len(checked.problems), len(already), len(sending), len(checked.problems))
    if dry_run:
        ledger.record([outcome(run_id, PIPELINE, scope, row, Outcome.PLANNED) for row in sending])
        done = Registered()
    else:
        done = await register_rows(udir, ledger, run_id, PIPELINE, school, sending, schemas, poll, batch_size)

    counts = {"registered": done.accepted, "planned": len(sending) if dry_run else 0, "already": len(already),
              "rejected_by_udir": done.rejected, "refused_by_udir": done.refused,
              "rejected_before_sending": len(checked.problems),
              "failed": done.failed, "unfinished": done.unfinished}
    await artifacts.table(f"{key}-ikke-pameldt", refused + done.rows,
                          f"Kandidatfag som ikke er påmeldt ({len(refused) + len(done.rows)}), med Udirs "
                          "StatusMessage eller skolflows regel")
    await artifacts.markdown(f"{key}-sammendrag", summary_markdown(
        f"Udir-påmelding {school.skolenavn} ({school.orgnr}) {school.periodekode}"
        + (" – prøvekjøring" if dry_run else ""),
        {"påmeldt nå": done.accepted, "ville blitt sendt": counts["planned"], "allerede påmeldt": len(already),
         "avvist av Udir": done.rejected, "avvist av Udir med hele påmeldingen": done.refused,
         "avvist før sending": len(checked.problems),
         "ikke levert": done.failed, "ikke ferdig behandlet": done.unfinished},
        [f"Udir-referanser: {', '.join(done.guids) or '–'}"]), "Sammendrag")
    failures = [done.refused_message()] if done.refused else []
    if done.failed or done.unfinished:
        failures.append(f"{done.failed + done.unfinished} candidate-subjects without a final answer ({done.failure}); "
                        "the next run checks Udir's list and sends only what is missing")
    if failures:
        return Failed(message=f"{'. '.join(failures)}. {done.accepted} registered."), counts
    return Completed(message=f"{done.accepted} registered, {len(already)} already with Udir, "
                             f"{len(sending) if dry_run else 0} planned, "
                             f"{done.rejected + len(checked.problems)} not registered", data=counts), counts

