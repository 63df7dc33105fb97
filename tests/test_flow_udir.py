"""The Udir flows run by Prefect for real against Udir's sandbox over HTTP.

What Udir holds is read from the sandbox's own candidate list (through the API), and compared with
the file the school wrote.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pandas as pd
import pytest
import respx
from prefect import flow
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from pydantic import SecretStr

from skolflow.blocks import UdirCredentials
from skolflow.connectors.http import HttpSettings, RetryPolicy
from skolflow.connectors.udir import codec
from skolflow.connectors.udir import sandbox as udir_sandbox
from skolflow.connectors.udir.client import PATHS, SERVER_ERROR_MESSAGE, UdirClient
from skolflow.connectors.udir.models import KandidatgruppeReport, KandidatReport, PameldingReport, PameldteKandidater
from skolflow.flows.udir_reconcile import PIPELINE as RECONCILE
from skolflow.flows.udir_reconcile import udir_reconcile
from skolflow.flows.udir_registration import PIPELINE as REGISTRATION
from skolflow.flows.udir_registration import udir_registration
from skolflow.flows.udir_results import PIPELINE as RESULTS
from skolflow.flows.udir_results import udir_results
from skolflow.identity import mask
from skolflow.ledger import Ledger, Outcome
from skolflow.sandbox import udir_data
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.sandbox.systems import UDIR_CLIENT_ID, UDIR_CLIENT_SECRET
from skolflow.tasks.udir import Poll, Registered, Udir, register_rows
from skolflow.tasks.udir import registered as registered_task
from skolflow.tasks.udir_candidates import COLUMNS, CandidateRow, School, write_csv

pytestmark = pytest.mark.usefixtures("prefect_harness")

DATA = udir_data.generate()
SCHOOL = DATA.schools[0]
PERIOD = udir_data.CURRENT_PERIOD


@pytest.fixture
def udir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    with SandboxServer() as server:
        url = server.start("udir", with_faults(udir_sandbox.create_app(udir_data.generate(), step_seconds=0.1),
                                               "udir", FaultConfig()))
        monkeypatch.setenv("SKOLFLOW_UDIR_URL", url)
        monkeypatch.setenv("SKOLFLOW_UDIR_CLIENT_ID", UDIR_CLIENT_ID)
        monkeypatch.setenv("SKOLFLOW_UDIR_CLIENT_SECRET", UDIR_CLIENT_SECRET)
        monkeypatch.setenv("SKOLFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
        monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "3")
        yield url


def candidates_file(tmp_path: Path, rows: list[dict[str, str]] | None = None) -> Path:
    return write_csv(tmp_path / "kandidater.csv", udir_data.sample_candidates(DATA, SCHOOL.orgnr)
                     if rows is None else rows)


async def held(url: str) -> Counter[tuple[str, str]]:
    """(fødselsnummer, fagkode) → how many times Udir lists it for the school and period."""
    async with UdirClient(url, UDIR_CLIENT_ID, UDIR_CLIENT_SECRET) as client:
        listed: PameldteKandidater = await client.registered(SCHOOL.orgnr, PERIOD)
    return Counter((k.fodselsnr, e.fagkode) for e in listed.eksamenspameldinger for g in e.kandidatgrupper
                   for k in g.kandidater)


def params(path: Path, **extra: Any) -> dict[str, Any]:
    return {"candidates_file": str(path), "orgnr": SCHOOL.orgnr, "periodekode": PERIOD, "skolenavn": SCHOOL.name,
            "brukernavn_pas": "sas.bruker", "return_state": True, **extra}


def ledger() -> Ledger:
    return Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"])


def summary(pipeline: str) -> dict[str, Any]:
    return ledger().runs(pipeline, limit=1)[0].summary


def passing_checks(rows: list[dict[str, str]]) -> set[tuple[str, str]]:
    """The sample's rows skolflow sends: all but the two that break a rule (see sample_candidates)."""
    return {(r["fodselsnummer"], r["fagkode"]) for r in rows
            if r["fagkode"] != "ABC1234" and not (r["fagkode"] == "NOR0214" and r["kandidatgruppe"] == "3STB sidemål")}


def expected_registered(rows: list[dict[str, str]]) -> set[tuple[str, str]]:
    """What Udir should hold from the sample: rows that pass the checks, of candidates not registered elsewhere."""
    return {key for key in passing_checks(rows) if key[0] not in DATA.elsewhere}


async def test_registration_registers_polls_and_records_every_candidate(udir: str, tmp_path: Path) -> None:
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    state = await udir_registration(**params(candidates_file(tmp_path, rows)))

    assert state.is_completed(), state.message
    now = await held(udir)
    manual = {(r.fodselsnr, r.fagkode) for r in DATA.registrations if r.orgnr == SCHOOL.orgnr}
    assert set(now) == expected_registered(rows) | manual
    assert max(now.values()) == 1
    outcomes = ledger().outcomes(REGISTRATION)
    accepted = {(o.record_key, o.unit): json.loads(o.response_body or "{}") for o in outcomes
                if o.outcome == Outcome.ACCEPTED}
    assert set(accepted) == expected_registered(rows)
    assert all(answer["kandidatnummer"] for answer in accepted.values())
    # One kandidatnummer per candidate, whatever the subject.
    numbers = {fnr: {a["kandidatnummer"] for (f, _), a in accepted.items() if f == fnr} for fnr, _ in accepted}
    assert all(len(n) == 1 for n in numbers.values())
    rejected = {(o.record_key, o.unit): o for o in outcomes if o.outcome == Outcome.REJECTED}
    elsewhere = next(r for r in rows if r["fodselsnummer"] in DATA.elsewhere)
    assert json.loads(rejected[(elsewhere["fodselsnummer"], "NOR1211")].response_body)["status"] == \
        "PameldtAnnenSkole"
    assert {o.errors[0]["kod"] for o in rejected.values() if o.response_body is None} == \
        {"NOR0214-NOR0215-sammen", "fagkode-ikke-i-eksamensplan"}
    assert summary(REGISTRATION)["registered"] == len(expected_registered(rows))


def latest_outcomes(pipeline: str) -> dict[tuple[str, str], Any]:
    """(fødselsnummer, fagkode) → the ledger's last word on it."""
    return {(o.record_key, o.unit): o for o in reversed(ledger().outcomes(pipeline, limit=5000))}


async def test_a_gs_exam_in_a_vgs_schools_file_is_refused_before_sending_and_the_rest_are_registered(
        udir: str, tmp_path: Path) -> None:
    """Issue 12: MAT0010 passed the pre-check, Udir refused the whole registration and nobody was registered."""
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    gs_exam = {**rows[0], "fodselsnummer": udir_data.candidates_at(DATA.candidates, SCHOOL.orgnr)[7].fodselsnr,
               "fagkode": "MAT0010", "kandidatgruppe": "10A matematikk"}
    manual = {(r.fodselsnr, r.fagkode) for r in DATA.registrations if r.orgnr == SCHOOL.orgnr}

    state = await udir_registration(**params(candidates_file(tmp_path, [*rows, gs_exam])))

    assert state.is_completed(), state.message
    assert set(await held(udir)) == expected_registered(rows) | manual
    refused = latest_outcomes(REGISTRATION)[(gs_exam["fodselsnummer"], "MAT0010")]
    assert refused.outcome == Outcome.REJECTED and refused.errors[0]["kod"] == "fagkode-feil-opplaeringsniva"
    assert "grunnskolen (GS)" in refused.errors[0]["meddelande"]
    assert httpx.get(f"{udir}/_sandbox/state").json()["jobs"] != {}


@pytest.mark.parametrize("pipeline", [REGISTRATION, RECONCILE])
async def test_a_registration_udir_refuses_as_a_whole_fails_the_run_with_udirs_message(
        udir: str, tmp_path: Path, pipeline: str) -> None:
    """Udir judges a registration naming no level at the school's own (VGS), which skolflow reads off the file:
    here mostly GS exams, so the VGS row is refused before sending and Udir refuses the rest with 400."""
    first, second, third = (c for c in udir_data.candidates_at(DATA.candidates, SCHOOL.orgnr)[2:5])
    template = udir_data.sample_candidates(DATA, SCHOOL.orgnr)[0]
    rows = [{**template, "fodselsnummer": c.fodselsnr, "fagkode": code, "kandidatgruppe": f"10A {code}"}
            for c in (first, second) for code in ("MAT0010", "NOR0011")]
    rows.append({**template, "fodselsnummer": third.fodselsnr})
    run = udir_registration if pipeline == REGISTRATION else udir_reconcile

    state = await run(**params(candidates_file(tmp_path, rows)))

    udirs = ("Fagkoden MAT0010 finnes ikke i eksamensplanen for videregående (VGS) i V-2026: den er en eksamen "
             "for grunnskolen (GS).")
    assert state.is_failed(), state.message
    assert "refused the registration of 4 candidate-subjects as a whole (400: " in state.message
    assert udirs in state.message
    assert not found(personal_values(rows), state.message)
    assert not {key for key in await held(udir) if key[1] in ("MAT0010", "NOR0011")}
    latest = latest_outcomes(pipeline)
    for c in (first, second):
        for code in ("MAT0010", "NOR0011"):
            outcome = latest[(c.fodselsnr, code)]
            answer = json.loads(outcome.response_body or "{}")
            assert outcome.outcome == Outcome.REJECTED and answer["status"] == "ApiError"
            assert udirs in answer["statusMessage"] and udirs in outcome.errors[0]["meddelande"]
    assert summary(pipeline)["refused_by_udir"] == 4
    if pipeline == REGISTRATION:  # the file's rows refused before sending are in the registration's ledger
        assert latest[(third.fodselsnr, "NOR1211")].errors[0]["kod"] == "fagkode-feil-opplaeringsniva"


async def test_a_candidate_in_two_rea3015_variants_is_registered_in_neither(udir: str, tmp_path: Path) -> None:
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    java = next(r for r in rows if r["fagkode"] == "REA3015")
    csharp = {**java, "variant": "CS", "kandidatgruppe": "IT2 C#"}
    manual = {(r.fodselsnr, r.fagkode) for r in DATA.registrations if r.orgnr == SCHOOL.orgnr}

    state = await udir_registration(**params(candidates_file(tmp_path, [*rows, csharp])))

    assert state.is_completed(), state.message
    assert set(await held(udir)) == expected_registered(rows) - {(java["fodselsnummer"], "REA3015")} | manual
    refusals = [o for o in ledger().outcomes(REGISTRATION) if (o.record_key, o.unit) ==
                (java["fodselsnummer"], "REA3015")]
    assert [o.errors[0]["kod"] for o in refusals] == ["REA3015-en-variant"] * 2
    assert all(o.outcome == Outcome.REJECTED for o in refusals)


async def test_a_second_run_sends_nothing_udir_already_holds(udir: str, tmp_path: Path) -> None:
    path = candidates_file(tmp_path)
    await udir_registration(**params(path))
    jobs_before = len(httpx.get(f"{udir}/_sandbox/state").json()["jobs"])

    state = await udir_registration(**params(path))

    assert state.is_completed()
    assert summary(REGISTRATION)["registered"] == 0 and summary(REGISTRATION)["already"] > 0
    # Only the candidates Udir refused are tried again; nobody it holds is sent.
    sandbox = httpx.get(f"{udir}/_sandbox/state").json()
    assert len(sandbox["jobs"]) == jobs_before + 1
    assert sandbox["resent_while_held"] == 0


async def test_a_registration_with_delvis_ferdig_reports_udirs_status_message(udir: str, tmp_path: Path) -> None:
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    await udir_registration(**params(candidates_file(tmp_path, rows)))

    runs = ledger().runs(REGISTRATION, limit=1)
    assert runs[0].summary["rejected_by_udir"] > 0 and runs[0].summary["registered"] > 0
    jobs = httpx.get(f"{udir}/_sandbox/state").json()["jobs"]
    assert list(jobs.values()) == ["DelvisFerdig"]


async def test_a_bad_period_code_stops_everything_before_sending(udir: str, tmp_path: Path) -> None:
    state = await udir_registration(**params(candidates_file(tmp_path), periodekode="V2026"), )

    assert state.is_failed() and "Eksamensperiodekoden" in state.message
    assert httpx.get(f"{udir}/_sandbox/state").json()["jobs"] == {}


async def test_dry_run_plans_and_sends_nothing(udir: str, tmp_path: Path) -> None:
    state = await udir_registration(**params(candidates_file(tmp_path), dry_run=True))

    assert state.is_completed() and summary(REGISTRATION)["planned"] > 0
    assert httpx.get(f"{udir}/_sandbox/state").json()["jobs"] == {}
    assert {o.outcome for o in ledger().outcomes(REGISTRATION)} >= {Outcome.PLANNED, Outcome.REJECTED}


async def test_registration_under_faults_registers_no_candidate_twice(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    faults = FaultConfig(server_error=0.15, timeout=0.1, drop=0.1, timeout_hold_seconds=1.5, seed=7)
    monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "8")
    monkeypatch.setenv("SKOLFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    path = candidates_file(tmp_path, rows)
    with SandboxServer() as server:
        app = udir_sandbox.create_app(udir_data.generate(), step_seconds=0.1)
        url = server.start("udir", with_faults(app, "udir", faults))
        monkeypatch.setenv("SKOLFLOW_UDIR_URL", url)
        monkeypatch.setenv("SKOLFLOW_UDIR_CLIENT_ID", UDIR_CLIENT_ID)
        monkeypatch.setenv("SKOLFLOW_UDIR_CLIENT_SECRET", UDIR_CLIENT_SECRET)
        states = [await udir_registration(**params(path, batch_size=3))]
        # A run that could not finish leaves the rest to the next one, as a schedule would.
        while states[-1].is_failed() and len(states) < 4:
            states.append(await udir_registration(**params(path, batch_size=3)))
        injected = httpx.get(f"{url}/_sandbox/faults").json()
        resent = httpx.get(f"{url}/_sandbox/state").json()["resent_while_held"]
        httpx.put(f"{url}/_sandbox/faults", json={})
        now = await held(url)

    assert sum(injected["injected"].values()) > 0, "the run met no faults"
    assert states[-1].is_completed(), [s.message for s in states]
    manual = {(r.fodselsnr, r.fagkode) for r in DATA.registrations if r.orgnr == SCHOOL.orgnr}
    assert set(now) == expected_registered(rows) | manual
    assert max(now.values()) == 1, "a candidate is registered twice"
    assert resent == 0, "a candidate Udir already held was sent again"
    latest: dict[tuple[str, str], str] = {}
    for o in reversed(ledger().outcomes(REGISTRATION, limit=5000)):
        latest[(o.record_key, o.unit)] = o.outcome
    assert {k for k, v in latest.items() if v in (Outcome.ACCEPTED, Outcome.UNCHANGED)} == expected_registered(rows)


async def test_reconcile_deletes_extras_registers_missing_and_dry_run_only_plans(udir: str, tmp_path: Path) -> None:
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    await udir_registration(**params(candidates_file(tmp_path, rows)))
    # The school drops one candidate's NOR1211 and adds a new one for another candidate.
    dropped = next(r for r in rows if r["fagkode"] == "NOR1211" and r["fodselsnummer"] not in DATA.elsewhere)
    added = {**dropped, "fagkode": "ENG1002", "kandidatgruppe": "3STA engelsk"}
    intent = [r for r in rows if r is not dropped] + [added]
    path = candidates_file(tmp_path, intent)
    manual = {(r.fodselsnr, r.fagkode) for r in DATA.registrations if r.orgnr == SCHOOL.orgnr}
    before = await held(udir)

    plan = await udir_reconcile(**params(path, dry_run=True))

    assert plan.is_completed()
    assert await held(udir) == before
    assert summary(RECONCILE)["delete"] == len(manual) + 1
    # The new subject, and again those Udir refused because they are registered at another school.
    assert summary(RECONCILE)["register"] == len(passing_checks(intent) - set(before))

    state = await udir_reconcile(**params(path))

    assert state.is_completed(), state.message
    assert set(await held(udir)) == expected_registered(intent)
    deleted = {(o.record_key, o.unit) for o in ledger().outcomes(RECONCILE) if o.outcome == Outcome.DELETED}
    assert deleted == manual | {(dropped["fodselsnummer"], "NOR1211")}


async def test_reconcile_deletes_nothing_when_a_row_cannot_be_read(udir: str, tmp_path: Path) -> None:
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    broken = [*rows, {**rows[0], "fodselsnummer": "12345678901"}]
    before = await held(udir)

    await udir_reconcile(**params(candidates_file(tmp_path, broken)))

    assert summary(RECONCILE)["deletions_blocked_by_unreadable_rows"] == 1 and summary(RECONCILE)["delete"] == 0
    after = await held(udir)
    assert set(before) <= set(after)


@pytest.mark.parametrize("include_ea", [True, False])
async def test_results_land_in_the_ledger_and_in_csv_and_excel(udir: str, tmp_path: Path, include_ea: bool) -> None:
    period = udir_data.PREVIOUS_PERIOD
    state = await udir_results(orgnr=SCHOOL.orgnr, periodekode=period, sas_bruker_referanse="sas.bruker",
                               include_eksamen_avlyst=include_ea, output_dir=str(tmp_path / "ut"), return_state=True)

    assert state.is_completed(), state.message
    expected = [r for r in DATA.results if r.orgnr == SCHOOL.orgnr and r.periode == period]
    out = tmp_path / "ut"
    frame = pd.read_csv(out / f"{SCHOOL.orgnr}-{period}-karakterer.csv", sep=";", dtype=str, keep_default_na=False)
    assert len(frame) == len(expected)
    by_number = frame.set_index("kandidatnummer")
    for result in expected:
        row = by_number.loc[result.kandidatnr]
        shown = "DF" if result.deltakelsesstatus == "EA" and not include_ea else result.deltakelsesstatus
        assert row["deltakelsesstatus"] == shown
        assert row["fodselsnummer"] == mask(result.fodselsnr)
        assert row["deltakelse"]  # explained, e.g. "Dokumentert fravær"
        assert row["karakter"] == (str(result.karakter) if result.karakter else "")
    excel = pd.read_excel(out / f"{SCHOOL.orgnr}-{period}.xlsx", sheet_name=None)
    assert set(excel) == {"Karakteroversikt", "Sensoroppdrag", "Deltakelsesstatus"}
    sensors = [a for a in DATA.appointments if a.orgnr == SCHOOL.orgnr and a.periode == period]
    assert len(excel["Sensoroppdrag"]) == len(sensors)
    received = ledger().outcomes(RESULTS)
    assert len(received) == len(expected) + len(sensors)
    assert {o.record_key for o in received} >= {r.fodselsnr for r in expected}
    assert ("EA" in set(frame["deltakelsesstatus"])) is include_ea


async def test_the_eksamensplan_is_cached_across_runs_but_statuses_never_are(udir: str) -> None:
    from prefect import flow

    from skolflow.connectors.http import HttpSettings
    from skolflow.tasks.udir import fetch_eksamensplan, poll_status

    @flow
    async def plan_twice() -> list[str]:
        states = [await fetch_eksamensplan(udir, PERIOD, SCHOOL.orgnr, HttpSettings(), return_state=True)
                  for _ in range(2)]
        return [s.name for s in states]

    first, second = await plan_twice(), await plan_twice()
    assert first == ["Completed", "Cached"] and second == ["Cached", "Cached"]
    assert poll_status.cache_policy is NO_CACHE and registered_task.cache_policy is NO_CACHE


# --- files in other encodings, unreadable files, and Udir's server error references ----------------------------


def encoded_candidates_file(tmp_path: Path, rows: list[dict[str, str]], encoding: str) -> Path:
    """The candidates file as a school's system exports it: semicolons, CRLF, its own encoding."""
    path = tmp_path / "kandidater.csv"
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), delimiter=";")
        writer.writeheader()
        writer.writerows({name: r.get(name, "") for name in COLUMNS} for r in rows)
    return path


async def held_names(url: str) -> dict[str, tuple[str, str]]:
    async with UdirClient(url, UDIR_CLIENT_ID, UDIR_CLIENT_SECRET) as client:
        listed = await client.registered(SCHOOL.orgnr, PERIOD)
    return {k.fodselsnr: (k.fornavn, k.etternavn) for e in listed.eksamenspameldinger for g in e.kandidatgrupper
            for k in g.kandidater}


async def run_logs(flow_run_id: UUID) -> str:
    """The run's logs (its tasks' included) as Prefect's API serves them to the UI."""
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200,
                                      offset=0)
    return "\n".join(f"{logging.getLevelName(log.level)} {log.message}" for log in logs)


def personal_values(rows: list[dict[str, str]]) -> set[str]:
    """What a candidates file says about people: numbers, names (whole, and each part) and e-mail addresses."""
    values: set[str] = set()
    for r in rows:
        values |= {r["fodselsnummer"], r.get("ansvarlig_fodselsnummer", ""), r.get("ansvarlig_epost", ""),
                   f"{r['fornavn']} {r['etternavn']}", *r["fornavn"].split(), *r["etternavn"].split(),
                   r.get("ansvarlig_fornavn", ""), r.get("ansvarlig_etternavn", "")}
    return values - {""}


def found(values: set[str], text: str) -> list[str]:
    return sorted(v for v in values if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", text))


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
async def test_a_windows_1252_or_latin_1_file_registers_with_every_letter_intact(udir: str, tmp_path: Path,
                                                                               encoding: str) -> None:
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    if encoding == "cp1252":  # besides æ, ø and å, a letter only Windows-1252 has (0x92)
        rows = [{**r, "etternavn": f"O’{r['etternavn']}"} if "Rønning" in r["etternavn"] else r for r in rows]
    path = encoded_candidates_file(tmp_path, rows, encoding)

    state = await udir_registration(**params(path))

    assert state.is_completed(), state.message
    registered = {fnr for fnr, _ in expected_registered(rows)}
    in_file = {r["fodselsnummer"]: (r["fornavn"], r["etternavn"]) for r in rows}
    now = await held_names(udir)
    assert {fnr: now[fnr] for fnr in registered} == {fnr: in_file[fnr] for fnr in registered}
    assert {"Ø", "ø", "æ"} & set("".join(n for fnr in registered for n in in_file[fnr]))
    assert summary(REGISTRATION)["registered"] == len(expected_registered(rows))


async def test_an_unreadable_file_fails_the_run_naming_file_encoding_and_byte_and_nothing_it_holds(
        udir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    rows = udir_data.sample_candidates(DATA, SCHOOL.orgnr)
    path = encoded_candidates_file(tmp_path, rows, "latin-1")
    data = path.read_bytes().replace(b"3STA norsk", b"3STA\x81norsk")  # 0x81: no character in any of them
    path.write_bytes(data)
    utf8_at = min(data.index(letter.encode("latin-1")) for letter in "æøåÆØÅ" if letter.encode("latin-1") in data)

    state = await udir_registration(**params(path))

    expected = (f"kandidater.csv: not readable as UTF-8 (at byte {utf8_at}), Windows-1252 or ISO-8859-1 "
                f"(at byte {data.index(0x81)})")
    assert state.is_failed() and expected in state.message
    logs = await run_logs(state.state_details.flow_run_id)
    assert expected in logs
    # What Prefect's console handler prints: the records (tracebacks included), and anything else written out.
    console = caplog.text + "".join(capfd.readouterr())
    assert expected in console
    personal = personal_values(rows)
    assert not found(personal, state.message), state.message
    assert not found(personal, logs), logs
    assert not found(personal, console), console
    assert httpx.get(f"{udir}/_sandbox/state").json()["jobs"] == {}


UDIR_MOCK = "http://127.0.0.1:9"  # loopback, as the sandbox profile requires; respx answers, nothing listens


def api_error(guid: str) -> httpx.Response:
    return httpx.Response(500, json={"Message": SERVER_ERROR_MESSAGE.format(guid=guid)})


@pytest.mark.parametrize("then", ["accepted", "not delivered"])
async def test_every_server_error_reference_udir_gives_is_logged_and_kept_in_the_ledger(tmp_path: Path,
                                                                                       then: str) -> None:
    """Udir logs each failed attempt under a guid of its own; PAS's administrators need every one."""
    guids = [f"0f7a0000-0000-4000-8000-00000000000{n}" for n in range(1, 4)]
    candidate = udir_data.candidates_at(DATA.candidates, SCHOOL.orgnr)[3]
    row = CandidateRow(2, candidate.fodselsnr, candidate.fornavn, candidate.etternavn, "Bokmal", "Elev", "NOR1211",
                       None, "3STA norsk")
    report = PameldingReport(orgnr=SCHOOL.orgnr, skolenavn=SCHOOL.name, status="Ferdig", kandidatgrupper=[
        KandidatgruppeReport(navn="3STA norsk", fagkode="NOR1211", kandidater=[KandidatReport(
            fodselsnr=candidate.fodselsnr, kandidatnr="101-V", status="Pameldt", status_message="Påmeldt")])])
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    scope = f"{SCHOOL.orgnr}/{PERIOD}"
    run_id = ledger.start_run(REGISTRATION, scope, dry_run=False, flow_run_id="", parameters={})
    udir = Udir(UdirCredentials(base_url=UDIR_MOCK, client_id="sas", client_secret=SecretStr("hemmelig")),
                HttpSettings(retry=RetryPolicy(attempts=3, backoff_base=0.001, backoff_max=0.001)))
    schemas = {p.name: p.read_bytes() for p in codec.schema_files()}

    @flow(persist_result=False)
    async def registering() -> Registered:
        return await register_rows(udir, ledger, run_id, REGISTRATION, School(SCHOOL.orgnr, SCHOOL.name, "sas.bruker",
                                                                             PERIOD), [row], schemas, Poll(), 10)

    with respx.mock(assert_all_called=False) as mock:
        mock.post(f"{UDIR_MOCK}/connect/token").mock(return_value=httpx.Response(
            200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}))
        third = httpx.Response(202, json={"Reference": "job-1"}) if then == "accepted" else api_error(guids[2])
        mock.post(f"{UDIR_MOCK}{PATHS.kandidatpamelding}").mock(side_effect=[api_error(guids[0]),
                                                                             api_error(guids[1]), third])
        mock.get(f"{UDIR_MOCK}{PATHS.kandidatpamelding}/job-1").mock(side_effect=[
            api_error(guids[2]), httpx.Response(200, json=report.to_json())])
        mock.route().pass_through()  # Prefect's own API
        state = await registering(return_state=True)
    done: Registered = await state.result()

    [recorded] = ledger.outcomes(REGISTRATION, run_id=run_id, limit=10)[:1]
    assert json.loads(recorded.response_body or "{}")["serverErrorReferences"] == guids
    if then == "accepted":
        assert done.accepted == 1 and recorded.outcome == Outcome.ACCEPTED
    else:
        assert done.failed == 1 and recorded.outcome == Outcome.FAILED
        assert all(guid in (done.failure or "") for guid in guids)
    logs = await run_logs(state.state_details.flow_run_id)
    assert all(guid in logs for guid in guids), logs

