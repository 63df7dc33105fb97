"""kill -9 of a real `skolflow run` at several points, then the ordinary CLI again: it finishes, in bounded time.

Each run is the installed ``skolflow`` script in a process of its own, against the sandboxes, a shared SQLite
ledger and the session's Prefect server, with a short lease. A sandbox fault holds the phase open (a request
processed and its answer withheld, so that the work is in flight at the target when the process dies), the
test polls the sandbox until the phase is reached, kills the run and reruns it with the faults gone. Then:
the rerun exits 0 well within two minutes, the killed run is 'crashed' in the ledger and Crashed in Prefect,
and the target holds every record exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL

from skolflow.connectors.beda.grade_scales import check_grade
from skolflow.flows.betyg_to_beda import PIPELINE as BEDA
from skolflow.ledger import Ledger, Run
from skolflow.sandbox import dataset as ds
from skolflow.sandbox import systems
from skolflow.sandbox.faults import FaultConfig
from skolflow.tasks.dnp_steps import PIPELINE as DNP
from skolflow.tasks.dnp_steps import STEPS
from skolflow.tasks.queue import slot_name
from tests.serving import dnp_expected

pytestmark = pytest.mark.usefixtures("prefect_harness")

SKOLFLOW = str(Path(sys.executable).with_name("skolflow"))
RERUN_BOUND_SECONDS = 120  # not a timing test: it proves the rerun did not wait for ever
HOLD = {"timeout": 1.0, "timeout_hold_seconds": 600}  # each request processed, its answer withheld


@pytest.fixture
def start_sandboxes() -> Iterator[Callable[[ds.Dataset], systems.Sandboxes]]:
    started: list[systems.Sandboxes] = []

    def start(data: ds.Dataset) -> systems.Sandboxes:
        started.append(systems.start(data, {name: FaultConfig() for name in systems.SYSTEMS}))
        return started[-1]

    yield start
    for running in started:
        running.stop()


class Cli:
    """`skolflow run …` as a process of its own, as an administrator (or a scheduler) starts it."""

    def __init__(self, sandboxes: systems.Sandboxes, tmp_path: Path):
        self.url = f"sqlite:///{tmp_path / 'ledger.db'}"
        self.tmp_path = tmp_path
        self.env = {**os.environ, **sandboxes.environment(), "SKOLFLOW_DATABASE_URL": self.url,
                    "SKOLFLOW_LEASE_SECONDS": "5", "SKOLFLOW_HTTP_TIMEOUT": "300",
                    "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": str(tmp_path / "prefect"),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "2000"}
        self.count = 0

    def start(self, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.count += 1
        output = self.tmp_path / f"run-{self.count}.log"
        with output.open("wb") as sink:
            process = subprocess.Popen([SKOLFLOW, "run", *args], env={**self.env, **env}, stdout=sink,
                                       stderr=subprocess.STDOUT)
        return process, output

    def run(self, *args: str, **env: str) -> tuple[int, str, float]:
        """Exit code, output and seconds taken."""
        began = time.monotonic()
        process, output = self.start(*args, **env)
        code = process.wait(timeout=600)
        return code, output.read_text(), time.monotonic() - began

    def ledger_runs(self, pipeline: str) -> list[Run]:
        ledger = Ledger(self.url)
        try:
            return sorted(ledger.runs(pipeline), key=lambda r: r.started_at)
        finally:
            ledger.engine.dispose()


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended ({process.returncode}) before {what}:\n{output.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"never reached: {what}\n{output.read_text()[-3000:]}")
        time.sleep(0.2)


def kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def faults(sandboxes: systems.Sandboxes, system: str, **config: Any) -> dict[str, Any]:
    response = httpx.put(f"{sandboxes.urls[system]}/_sandbox/faults", json=config)
    response.raise_for_status()
    return httpx.get(f"{sandboxes.urls[system]}/_sandbox/faults").json()


def injected_holds(sandboxes: systems.Sandboxes, system: str) -> int:
    return httpx.get(f"{sandboxes.urls[system]}/_sandbox/faults").json()["injected"]["timeout"]


def beda_students(sandboxes: systems.Sandboxes) -> dict[str, dict[str, Any]]:
    return httpx.get(f"{sandboxes.urls['beda']}/_sandbox/state").json()["students"]


def reportable(data: ds.Dataset) -> set[str]:
    """Students whose every grade is on its scale: what Beda must end up holding."""
    return {p.civic_no for p in data.students()
            if not any(check_grade(g.school_form, g.code, g.value, g.assessment) for g in data.records[p.id].grades)}


def assert_every_student_exactly_once(sandboxes: systems.Sandboxes, data: ds.Dataset) -> None:
    held = beda_students(sandboxes)
    assert set(held) == reportable(data)
    twice = {pnr: s for pnr, s in held.items() if s["received"] != s["revisions"] or s["revisions"] != 1}
    assert not twice, f"{len(twice)} students reached Beda more than once"


async def assert_crashed(killed: Run, reran: Run) -> None:
    assert killed.status == "crashed" and "died without finishing" in killed.summary["error"]
    assert reran.status == "completed", reran.summary
    assert killed.flow_run_id
    async with get_client() as client:
        state = (await client.read_flow_run(killed.flow_run_id)).state
    assert state is not None and state.is_crashed(), state


async def test_killed_during_fetch_while_a_second_run_waits(start_sandboxes: Callable[[ds.Dataset], systems.Sandboxes],
                                                            tmp_path: Path) -> None:
    data = ds.generate(students=60, schools=3, seed=31)
    sandboxes = start_sandboxes(data)
    cli = Cli(sandboxes, tmp_path)
    party = ["betyg-to-beda", "--anslutningspart", data.huvudman_orgnr]
    faults(sandboxes, "platform", **HOLD, path_prefix="/api/skolplattform/betyg")
    # The holder renews every 5 s: even a machine this busy lets a live run keep its slot.
    first, output = cli.start(*party, SKOLFLOW_LEASE_SECONDS="15")
    wait_for(lambda: injected_holds(sandboxes, "platform") >= 1, "the platform got the grades request", first, output)

    code, waited, _ = cli.run(*party, SKOLFLOW_SLOT_WAIT_SECONDS="3")

    assert code == 1, waited
    said = " ".join(waited.split())  # as the console wrapped it or not
    holder = f"held by flow run 'betyg-to-beda · {data.huvudman_orgnr} · alla enheter · both'"
    assert f"waiting for {slot_name(BEDA, data.huvudman_orgnr)}: {holder}" in said, waited
    assert "gave up after waiting" in said and holder in said.split("gave up after waiting")[1], waited

    kill(first)
    faults(sandboxes, "platform")
    code, rerun, seconds = cli.run(*party)

    assert code == 0, rerun
    assert seconds < RERUN_BOUND_SECONDS
    killed, reran = cli.ledger_runs(BEDA)  # the run that gave up never started a ledger run
    await assert_crashed(killed, reran)
    assert_every_student_exactly_once(sandboxes, data)
    assert not (Path(os.environ["SKOLFLOW_DATA_DIR"]) / "work" / killed.id).exists()  # its downloads are gone


async def test_killed_mid_batches_with_a_batch_in_flight(start_sandboxes: Callable[[ds.Dataset], systems.Sandboxes],
                                                         tmp_path: Path) -> None:
    # Five batches of 200, four at a time: Beda processes four and withholds its answers, the fifth waits.
    data = ds.generate(students=850, schools=6, seed=32)
    sandboxes = start_sandboxes(data)
    cli = Cli(sandboxes, tmp_path)
    party = ["betyg-to-beda", "--anslutningspart", data.huvudman_orgnr]
    faults(sandboxes, "beda", **HOLD, path_prefix="/api/v1/")
    first, output = cli.start(*party)
    wait_for(lambda: bool(beda_students(sandboxes)), "Beda held some students", first, output)
    kill(first)
    held_at_kill = len(beda_students(sandboxes))
    assert 0 < held_at_kill < len(reportable(data))
    faults(sandboxes, "beda")

    code, rerun, seconds = cli.run(*party)

    assert code == 0, rerun
    assert seconds < RERUN_BOUND_SECONDS
    killed, reran = cli.ledger_runs(BEDA)
    await assert_crashed(killed, reran)
    assert reran.summary["reconciled"] >= held_at_kill  # asked Beda, not sent again
    assert_every_student_exactly_once(sandboxes, data)



async def test_dnp_killed_during_the_groups_step(start_sandboxes: Callable[[ds.Dataset], systems.Sandboxes],
                                                 tmp_path: Path) -> None:
    data = ds.generate(students=90, schools=6, seed=11)
    sandboxes = start_sandboxes(data)
    cli = Cli(sandboxes, tmp_path)
    huvudman = ["dnp-provisioning", "--huvudman", data.huvudman_orgnr]
    faults(sandboxes, "dnp", **HOLD, path_prefix="/groups/bulk")
    first, output = cli.start(*huvudman)
    wait_for(lambda: injected_holds(sandboxes, "dnp") >= 1, "DNP got the first groups upload", first, output)
    kill(first)
    faults(sandboxes, "dnp")

    code, rerun, seconds = cli.run(*huvudman)

    assert code == 0, rerun
    assert seconds < RERUN_BOUND_SECONDS
    killed, reran = cli.ledger_runs(DNP)
    await assert_crashed(killed, reran)
    records = httpx.get(f"{sandboxes.urls['dnp']}/_sandbox/state").json()["records"]
    assert {kind: set(records.get(kind, [])) for kind in STEPS} == await dnp_expected(sandboxes)
    steps = reran.summary
    assert steps["persons"]["sent"] == steps["duties"]["sent"] == 0  # settled before the kill: not sent again
    assert all(steps[kind]["status"] == "completed" and steps[kind]["failed"] == 0 for kind in STEPS), steps
    async with get_client() as client:
        steps_run = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[killed.flow_run_id])),
            sort=FlowRunSort.START_TIME_ASC, limit=10)
    assert [(r.name.split(" · ")[-1], r.state.type.value if r.state else None) for r in steps_run] == \
        [("Användare", "COMPLETED"), ("Tjänstgöringar", "COMPLETED"), ("Grupper", "CRASHED")]
