"""Reruns under faults converge: with 20 % of requests failing and only two tries per request, every pipeline is
rerun (as a schedule would) until a run completes, and no run loses ground.

Per run: what the target holds never shrinks and never holds a record twice; a failed run says what happened in
counts, not only in the last error. Each pipeline must complete within a bounded number of runs.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.states import State

from skolflow.connectors.udir import sandbox as udir_sandbox
from skolflow.connectors.udir.client import UdirClient
from skolflow.flows.betyg_to_beda import PIPELINE as BEDA
from skolflow.flows.betyg_to_beda import betyg_to_beda
from skolflow.flows.dnp_provisioning import dnp_provisioning
from skolflow.flows.skola24_to_haldor import skola24_to_haldor
from skolflow.flows.udir_registration import udir_registration
from skolflow.ledger import Ledger, Outcome
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems, udir_data
from skolflow.sandbox.faults import FaultConfig
from skolflow.sandbox.runner import SandboxServer, with_faults
from skolflow.sandbox.systems import UDIR_CLIENT_ID, UDIR_CLIENT_SECRET
from skolflow.tasks.dnp_steps import STEPS
from skolflow.tasks.schools import dump_schools
from skolflow.tasks.udir_candidates import write_csv

pytestmark = pytest.mark.usefixtures("prefect_harness")

FAULTS = {"server_error": 0.1, "drop": 0.1}  # one request in five fails, transiently
MAX_RUNS = 12


@pytest.fixture(autouse=True)
def few_attempts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKOLFLOW_HTTP_ATTEMPTS", "2")
    monkeypatch.setenv("SKOLFLOW_HTTP_TIMEOUT", "10")
    monkeypatch.setenv("SKOLFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[systems.Sandboxes]:
    running = systems.start(ds.generate(students=80, schools=3, seed=21, mistakes=0),
                            {name: FaultConfig() for name in systems.SYSTEMS})
    for key, value in running.environment().items():
        monkeypatch.setenv(key, value)
    yield running
    running.stop()


def faults(url: str, config: dict[str, Any]) -> None:
    httpx.put(f"{url}/_sandbox/faults", json=config).raise_for_status()


async def until_complete(run: Callable[[], Awaitable[State]], held: Callable[[], Awaitable[dict[str, int]] | Any],
                         counted: re.Pattern[str]) -> list[State]:
    """Run until a run completes; after every run the target holds at least what it held, each record once."""
    states: list[State] = []
    before: dict[str, int] = {}
    while not states or not states[-1].is_completed():
        assert len(states) < MAX_RUNS, [s.message for s in states]
        states.append(await run())
        now = held()
        now = await now if isinstance(now, Awaitable) else now
        assert set(before) <= set(now), "a run lost ground"
        assert all(copies == 1 for copies in now.values()), "a record reached the target twice"
        before = now
        if states[-1].is_failed():
            assert counted.search(states[-1].message or ""), states[-1].message
    print("runs:", [s.message for s in states])  # noqa: T201
    return states


async def test_betyg_to_beda_converges(sandboxes: systems.Sandboxes) -> None:
    for name in ("platform", "ss12000", "beda"):
        faults(sandboxes.urls[name], FAULTS)
    data = sandboxes.dataset

    def held() -> dict[str, int]:
        students = httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]
        # received > revisions would mean the same content was sent again
        return {civic: 1 + s["received"] - s["revisions"] for civic, s in students.items()}

    states = await until_complete(
        lambda: betyg_to_beda(anslutningspart=data.huvudman_orgnr, batch_size=10, return_state=True), held,
        re.compile(r"\d+ delivered .*\d+ rejected, \d+ not delivered, \d+ unsettled"))
    for name in ("platform", "ss12000", "beda"):
        faults(sandboxes.urls[name], {})
    assert set(held()) == {p.civic_no for p in data.students() if data.records[p.id].grades}
    ledger = Ledger.shared(os.environ["SKOLFLOW_DATABASE_URL"])
    assert [r.status for r in ledger.runs(BEDA, limit=MAX_RUNS)][0] == "completed"
    latest: dict[str, str] = {}
    for outcome in reversed(ledger.outcomes(BEDA, limit=100_000)):
        latest[outcome.record_key] = outcome.outcome
    assert not {k for k, v in latest.items() if v in (Outcome.PENDING, Outcome.FAILED) and k in held()}
    assert len(states) >= 1


async def test_dnp_provisioning_converges(sandboxes: systems.Sandboxes) -> None:
    for name in ("dnp", "ss12000", "dnp-opendata"):
        faults(sandboxes.urls[name], FAULTS)

    def held() -> dict[str, int]:
        records = httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/state").json()["records"]
        return {f"{kind}/{key}": 1 for kind in STEPS for key in records.get(kind, [])}

    await until_complete(
        lambda: dnp_provisioning(huvudman=sandboxes.dataset.huvudman_orgnr, return_state=True), held,
        re.compile(r"Användare \d+/\d+"))


async def test_skola24_to_haldor_converges(sandboxes: systems.Sandboxes, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    published = systems.school_configs(sandboxes.dataset, sandboxes.timetable)
    (tmp_path / "schools.toml").write_text(dump_schools(published))
    monkeypatch.setenv("SKOLFLOW_SKOLA24_SCHOOLS", str(tmp_path / "schools.toml"))
    for name in ("skola24", "haldor"):
        faults(sandboxes.urls[name], FAULTS)

    def held() -> dict[str, int]:
        return {f"{s.haldor_school}/{p['externalId']}/{p['date']}": 1 for s in published for p in httpx.get(
            f"{sandboxes.urls['haldor']}/_sandbox/schools/{s.haldor_school}/positions").json()["positions"]}

    await until_complete(lambda: skola24_to_haldor(start=dt.date(2026, 11, 23), end=dt.date(2026, 12, 6),
                                                   return_state=True), held, re.compile(r"\d+"))


async def test_udir_registration_converges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = udir_data.generate()
    school = data.schools[0]
    path = write_csv(tmp_path / "kandidater.csv", udir_data.sample_candidates(data, school.orgnr))
    with SandboxServer() as server:
        url = server.start("udir", with_faults(udir_sandbox.create_app(udir_data.generate(), step_seconds=0.05),
                                               "udir", FaultConfig(**FAULTS)))
        monkeypatch.setenv("SKOLFLOW_UDIR_URL", url)
        monkeypatch.setenv("SKOLFLOW_UDIR_CLIENT_ID", UDIR_CLIENT_ID)
        monkeypatch.setenv("SKOLFLOW_UDIR_CLIENT_SECRET", UDIR_CLIENT_SECRET)

        async def held() -> dict[str, int]:
            assert httpx.get(f"{url}/_sandbox/state").json()["resent_while_held"] == 0
            async with UdirClient(url, UDIR_CLIENT_ID, UDIR_CLIENT_SECRET) as client:
                listed = await client.registered(school.orgnr, data.current_period)
            return dict(Counter(f"{k.fodselsnr}/{e.fagkode}" for e in listed.eksamenspameldinger
                                for g in e.kandidatgrupper for k in g.kandidater))

        await until_complete(
            lambda: udir_registration(candidates_file=str(path), orgnr=school.orgnr, periodekode=data.current_period,
                                      skolenavn=school.name, brukernavn_pas="sas.bruker", batch_size=3,
                                      return_state=True), held, re.compile(r"\d+"))
