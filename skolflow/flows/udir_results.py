"""Udir eksamen: a school's results (karakteroversikt) and examiner assignments (sensoroppdrag) for a period.

Both land in the ledger (one record per candidate and exam, one per appointed person) and in a CSV
and Excel file for the administration; the Prefect UI gets counts per fagkode and status, explained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, State

from skolflow.blocks import UdirCredentials
from skolflow.boundary import flow, task
from skolflow.connectors.udir.models import Fagperson, Karakteroversikt
from skolflow.guard import check_target
from skolflow.identity import validate_norwegian_orgnr
from skolflow.ledger import Ledger, Outcome, RecordOutcome
from skolflow.notify import notify_failure
from skolflow.settings import Settings
from skolflow.tasks import artifacts
from skolflow.tasks.ledger_runs import recorded
from skolflow.tasks.udir import Udir
from skolflow.tasks.udir_results import DELTAKELSE, results_frame, sensors_frame, status_counts, write_files

PIPELINE = "udir_results"


def _run_name() -> str:
    p = flow_run.parameters
    return f"udir-results · {p.get('orgnr')} · {p.get('periodekode')}"


@task(name="udir-karakteroversikt", cache_policy=NO_CACHE, persist_result=False)
async def fetch_results(udir: Udir, orgnr: str, periodekode: str, sas_bruker_referanse: str,
                        include_eksamen_avlyst: bool) -> Karakteroversikt:
    async with udir.client() as client:
        return await client.karakteroversikt(orgnr, periodekode, sas_bruker_referanse,
                                             include_eksamen_avlyst=include_eksamen_avlyst)


@task(name="udir-sensoroppdrag", cache_policy=NO_CACHE, persist_result=False)
async def fetch_sensors(udir: Udir, orgnr: str, periodekode: str) -> list[Fagperson]:
    async with udir.client() as client:
        return await client.sensoroppdrag(orgnr, periodekode)


def _records(run_id: str, scope: str, overview: Karakteroversikt, people: list[Fagperson]) -> list[RecordOutcome]:
    records = [RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=scope, record_key=k.fodselsnr,
                             source_key=k.kandidatnr, unit=exam.fagkode, outcome=Outcome.RECEIVED,
                             response_body=k.model_dump_json(by_alias=True))
               for exam in overview.eksamener for group in exam.kandidatgrupper for k in group.kandidater]
    records += [RecordOutcome(run_id=run_id, pipeline=PIPELINE, scope=scope, record_key=p.fodselsnr,
                              unit="sensoroppdrag", outcome=Outcome.RECEIVED,
                              response_body=json.dumps(p.to_json(), ensure_ascii=False)) for p in people]
    return records


@flow(name="udir-results", flow_run_name=_run_name, persist_result=False, log_prints=False,
      on_failure=[notify_failure], on_crashed=[notify_failure])
async def udir_results(
    orgnr: str,
    periodekode: str,
    sas_bruker_referanse: str,
    include_eksamen_avlyst: bool = True,
    output_dir: str | None = None,
    full_fodselsnummer: bool = False,
    confirm_production: bool = False,
    udir_block: str | None = None,
) -> State:
    """Fetch results and sensor appointments; write ``<output_dir>/<orgnr>-<period>.xlsx`` and two CSVs.

    include_eksamen_avlyst: answer EA for cancelled exams (Udir's DF otherwise); full_fodselsnummer:
    write the full number into the files (for an import; the default is masked plus kandidatnummer).
    """
    settings = Settings.from_env()
    udir = Udir(UdirCredentials.resolve(udir_block), settings.http(confirm_production))
    check_target("udir", udir.credentials.base_url, settings.profile, confirm_production)
    orgnr, period = validate_norwegian_orgnr(orgnr), periodekode.strip().upper()
    ledger = Ledger.shared(settings.database_url)
    run_id = ledger.start_run(PIPELINE, f"{orgnr}/{period}", dry_run=False, flow_run_id=str(flow_run.id or ""),
                              parameters={"periodekode": period, "include_eksamen_avlyst": include_eksamen_avlyst})
    directory = Path(output_dir) if output_dir else settings.data_dir / "udir" / "resultater"
    return await recorded(ledger, run_id, _results(udir, ledger, run_id, orgnr, period, sas_bruker_referanse,
                                                   include_eksamen_avlyst, full_fodselsnummer, directory))


async def _results(udir: Udir, ledger: Ledger, run_id: str, orgnr: str, period: str, sas_bruker_referanse: str,
                   include_eksamen_avlyst: bool, full_fodselsnummer: bool, directory: Path) -> \
        tuple[State, dict[str, Any]]:
    overview = await fetch_results(udir, orgnr, period, sas_bruker_referanse, include_eksamen_avlyst)
    people = await fetch_sensors(udir, orgnr, period)
    ledger.record(_records(run_id, f"{orgnr}/{period}", overview, people))
    results = results_frame(overview, full_identity=full_fodselsnummer)
    sensors = sensors_frame(people, full_identity=full_fodselsnummer)
    written = write_files(results, sensors, directory, f"{orgnr}-{period}")
    complaints = int(results["klagekarakter"].notna().sum())
    key = artifacts.artifact_key("udir-results", orgnr, period)
    await artifacts.table(f"{key}-deltakelse", status_counts(results),
                          "Kandidater per fagkode og deltakelsesstatus")
    explained = "\n".join(f"| {code} | {text} |" for code, text in DELTAKELSE.items())
    await artifacts.markdown(f"{key}-sammendrag", "\n".join([
        f"# Resultater {orgnr} {period}", "",
        f"{len(results)} kandidatresultater, {complaints} med klagekarakter; "
        f"{len(sensors)} personer med sensoroppdrag.", "",
        "| status | betydning |", "|---|---|", explained, "",
        f"Filer for administrasjonen: `{written.excel}`, `{written.csv}`, `{written.sensors_csv}`."]),
        "Sammendrag")
    summary = {"results": len(results), "complaints": complaints, "sensors": len(sensors),
               **{f"status_{k}": int(v) for k, v in results["deltakelsesstatus"].value_counts().items()}}
    files = {"excel": str(written.excel), "csv": str(written.csv)}
    return Completed(message=f"{len(results)} results and {len(sensors)} sensor appointments written to "
                             f"{written.excel}", data={**summary, **files}), summary
