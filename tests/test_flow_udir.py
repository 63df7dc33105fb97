"""The Udir flows run by Prefect for real against Udir's sandbox over HTTP.

What Udir holds is read from the sandbox's own candidate list (through the API), and compared with
the file the school wrote.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prefect.cache_policies import NO_CACHE

from skolflow.connectors.udir import sandbox as udir_sandbox
from skolflow.connectors.udir.client import UdirClient
from skolflow.connectors.udir.models import PameldteKandidater
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
from skolflow.tasks.udir import registered as registered_task
from skolflow.tasks.udir_candidates import write_csv

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
        states = [await fetch_eksamensplan(udir, PERIOD, None, SCHOOL.orgnr, HttpSettings(), return_state=True)
                  for _ in range(2)]
        return [s.name for s in states]

    first, second = await plan_twice(), await plan_twice()
    assert first == ["Completed", "Cached"] and second == ["Cached", "Cached"]
    assert poll_status.cache_policy is NO_CACHE and registered_task.cache_policy is NO_CACHE
