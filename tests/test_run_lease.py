"""The slot a pipeline holds per key: a lease in the ledger, on SQLite and PostgreSQL.

The first half drives :class:`skolflow.ledger.lease.Leases` with an explicit clock (no test waits for a
lease to lapse); the second runs small flows through :func:`skolflow.tasks.queue.one_at_a_time` on the
session's Prefect server, with holders written straight into the ledger as a dead or live run leaves them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from uuid import UUID

import pytest
from prefect import flow, get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.states import Running, State

from skolflow.ledger import Ledger
from skolflow.ledger.lease import Holder, Leases
from skolflow.ledger.models import utcnow
from skolflow.tasks.queue import (
    LEASE_SECONDS_ENV,
    WAIT_SECONDS_ENV,
    SlotSettings,
    SlotSettingsError,
    one_at_a_time,
    slot_name,
)

NAME = "skolflow-betyg-to-beda-2120000142"
MINUTE = dt.timedelta(minutes=1)
T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def leases(ledger: Ledger) -> Leases:
    return Leases(ledger)


def test_a_free_name_is_acquired_and_a_held_one_is_not(leases: Leases) -> None:
    first, second = Holder("run-1", "betyg-to-beda · 2120000142"), Holder("run-2")

    assert leases.acquire(NAME, first, MINUTE, now=T0)
    assert not leases.acquire(NAME, second, MINUTE, now=T0 + dt.timedelta(seconds=59))
    held = leases.holder(NAME)
    assert held is not None and held.holder == first.token
    assert (held.flow_run_id, held.flow_run_name, held.host, held.pid) == \
        ("run-1", "betyg-to-beda · 2120000142", first.host, first.pid)
    assert (held.acquired_at, held.expires_at) == (T0, T0 + MINUTE)
    assert leases.acquire("skolflow-betyg-to-beda-5560000001", second, MINUTE, now=T0)  # another key: no wait


def test_renewing_keeps_the_lease_and_only_the_holder_can(leases: Leases) -> None:
    holder = Holder()
    leases.acquire(NAME, holder, MINUTE, now=T0)

    assert leases.renew(NAME, holder.token, MINUTE, now=T0 + dt.timedelta(seconds=50)) == \
        T0 + dt.timedelta(seconds=110)
    assert leases.renew(NAME, Holder().token, MINUTE, now=T0) is None
    assert not leases.acquire(NAME, Holder(), MINUTE, now=T0 + dt.timedelta(seconds=100))
    assert leases.acquire(NAME, Holder(), MINUTE, now=T0 + dt.timedelta(seconds=110))


def test_an_expired_lease_is_taken_over_and_its_old_holder_can_neither_renew_nor_release_it(leases: Leases) -> None:
    dead, next_run = Holder("dead"), Holder("next")
    leases.acquire(NAME, dead, MINUTE, now=T0)

    assert leases.acquire(NAME, next_run, MINUTE, now=T0 + 2 * MINUTE)
    assert leases.renew(NAME, dead.token, MINUTE) is None
    assert not leases.release(NAME, dead.token)
    held = leases.holder(NAME)
    assert held is not None and (held.holder, held.flow_run_id) == (next_run.token, "next")
    assert held.acquired_at == T0 + 2 * MINUTE


def test_a_dead_holder_is_replaced_only_by_naming_its_token(leases: Leases) -> None:
    dead = Holder("dead")
    leases.acquire(NAME, dead, MINUTE, now=T0)
    first, second = Holder("first"), Holder("second")

    assert not leases.take_over(NAME, Holder().token, first, MINUTE, now=T0)
    assert leases.take_over(NAME, dead.token, first, MINUTE, now=T0)
    assert not leases.take_over(NAME, dead.token, second, MINUTE, now=T0)  # it has moved on: first holds it
    held = leases.holder(NAME)
    assert held is not None and held.holder == first.token


def test_released_and_freed_by_hand(leases: Leases) -> None:
    holder = Holder()
    leases.acquire(NAME, holder, MINUTE)
    assert leases.release(NAME, holder.token)
    assert leases.holder(NAME) is None

    leases.acquire(NAME, Holder(), MINUTE)
    leases.acquire("skolflow-dnp-provisioning-2120000142", Holder(), MINUTE)
    assert [lease.name for lease in leases.every()] == [NAME, "skolflow-dnp-provisioning-2120000142"]
    assert leases.free(NAME)
    assert not leases.free(NAME)
    assert leases.acquire(NAME, Holder(), MINUTE)


def race(stores: list[Ledger], name: str) -> list[Holder]:
    """Every store asks for ``name`` at the same moment, each from its own thread; who got it."""
    start = threading.Barrier(len(stores))
    won: list[Holder] = []

    def ask(store: Ledger) -> None:
        me = Holder()
        start.wait()
        if Leases(store).acquire(name, me, MINUTE):
            won.append(me)

    threads = [threading.Thread(target=ask, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won


@pytest.mark.parametrize("expired", [False, True], ids=["free", "expired"])
def test_never_two_holders(ledger_url: str, expired: bool) -> None:
    """Eight processes' worth of connections race for one name, free or lapsed: exactly one gets it, each round."""
    stores = [Ledger(ledger_url) for _ in range(8)]
    try:
        for round_ in range(5):
            name = f"skolflow-race-{round_}"
            if expired:
                Leases(stores[0]).acquire(name, Holder("dead"), MINUTE, now=utcnow() - 2 * MINUTE)
            won = race(stores, name)
            held = Leases(stores[0]).holder(name)
            assert len(won) == 1 and held is not None and held.holder == won[0].token
    finally:
        for store in stores:
            store.engine.dispose()


def test_crash_marking_takes_only_the_scopes_running_runs(ledger: Ledger) -> None:
    dead = ledger.start_run("betyg_to_beda", "2120000142", parameters={}, dry_run=False, flow_run_id="f1")
    done = ledger.start_run("betyg_to_beda", "2120000142", parameters={}, dry_run=False)
    ledger.finish_run(done, "completed", {"accepted": 3})
    other_scope = ledger.start_run("betyg_to_beda", "5560000001", parameters={}, dry_run=False)
    other_pipeline = ledger.start_run("dnp_provisioning", "2120000142", parameters={}, dry_run=False)

    crashed = ledger.crash_abandoned("betyg_to_beda", "2120000142", "died without finishing")

    assert [run.id for run in crashed] == [dead]
    status = {run.id: run for pipeline in ("betyg_to_beda", "dnp_provisioning") for run in ledger.runs(pipeline)}
    assert status[dead].status == "crashed" and status[dead].summary == {"error": "died without finishing"}
    assert status[dead].finished_at is not None
    assert [status[i].status for i in (done, other_scope, other_pipeline)] == ["completed", "running", "running"]


def test_slot_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEASE_SECONDS_ENV, raising=False)
    monkeypatch.delenv(WAIT_SECONDS_ENV, raising=False)
    assert SlotSettings.from_env() == SlotSettings(dt.timedelta(seconds=90), dt.timedelta(hours=1))
    monkeypatch.setenv(LEASE_SECONDS_ENV, "30")
    monkeypatch.setenv(WAIT_SECONDS_ENV, "0")
    assert SlotSettings.from_env() == SlotSettings(dt.timedelta(seconds=30), dt.timedelta(0))
    for bad in ("0", "-5", "nan", "ninety"):
        monkeypatch.setenv(LEASE_SECONDS_ENV, bad)
        with pytest.raises(SlotSettingsError, match=f"SKOLFLOW_LEASE_SECONDS .* not '{bad}'"):
            SlotSettings.from_env()


# --- through one_at_a_time, in flows run by Prefect ---------------------------------------------------------

PIPELINE, KEY = "test_pipeline", "2120000142"


@flow(name="slot-holder", persist_result=False)
async def hold_slot(seconds: float = 0.0) -> str:
    async with one_at_a_time(PIPELINE, KEY) as name:
        await asyncio.sleep(seconds)
    return name


@pytest.fixture
def slot(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> Leases:
    monkeypatch.setenv("SKOLFLOW_DATABASE_URL", ledger.url)
    monkeypatch.setenv(WAIT_SECONDS_ENV, "60")
    return Leases(ledger)


async def run_logs(flow_run_id: UUID) -> list[str]:
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200,
                                      offset=0)
    return [f"{logging.getLevelName(log.level)} {log.message}" for log in logs]


async def a_flow_run_left_running() -> str:
    """What a killed run leaves in Prefect: a flow run that says Running for ever."""
    async with get_client() as client:
        return str((await client.create_flow_run(hold_slot, state=Running())).id)


async def prefect_state(flow_run_id: str) -> State:
    async with get_client() as client:
        state = (await client.read_flow_run(flow_run_id)).state
    assert state is not None
    return state


async def test_a_lapsed_lease_is_taken_and_its_dead_run_marked_crashed(slot: Leases, ledger: Ledger) -> None:
    flow_run_id = await a_flow_run_left_running()
    name = slot_name(PIPELINE, KEY)
    slot.acquire(name, Holder(flow_run_id, "betyg-to-beda · killed"), MINUTE, now=utcnow() - 2 * MINUTE)
    killed = ledger.start_run(PIPELINE, KEY, parameters={}, dry_run=False, flow_run_id=flow_run_id)

    state = await hold_slot(return_state=True)

    assert state.is_completed(), state.message
    [run] = [r for r in ledger.runs(PIPELINE) if r.id == killed]
    assert run.status == "crashed" and "betyg-to-beda · killed" in run.summary["error"]
    assert (await prefect_state(flow_run_id)).is_crashed()
    assert slot.holder(name) is None  # released at the end


async def test_a_holder_whose_flow_run_ended_is_replaced_at_once(slot: Leases) -> None:
    ended = await hold_slot(return_state=True)
    name = slot_name(PIPELINE, KEY)
    # As a run leaves it when it ended (e.g. Crashed by its worker) without releasing: the lease has 10 minutes left.
    slot.acquire(name, Holder(str(ended.state_details.flow_run_id), "ended"), 10 * MINUTE)

    state = await hold_slot(return_state=True)  # would wait the full 60 s, then fail, without the fast path

    assert state.is_completed(), state.message
    logs = await run_logs(state.state_details.flow_run_id)
    assert any("ended Completed in Prefect without releasing it" in line for line in logs), logs


async def test_a_run_waiting_for_a_live_holder_says_who_and_gives_up(slot: Leases,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WAIT_SECONDS_ENV, "2")
    live = Holder(await a_flow_run_left_running(), "betyg-to-beda · 2120000142 · alla enheter · both",
                  host="worker-7", pid=4242)
    slot.acquire(slot_name(PIPELINE, KEY), live, 10 * MINUTE)

    state = await hold_slot(return_state=True)

    assert state.is_failed()
    assert "gave up after waiting" in state.message and "SKOLFLOW_SLOT_WAIT_SECONDS" in state.message
    who = f"flow run '{live.flow_run_name}' ({live.flow_run_id}) on host worker-7, pid 4242, since"
    assert who in state.message
    logs = await run_logs(state.state_details.flow_run_id)
    assert any(line.startswith("WARNING waiting for skolflow-test-pipeline-2120000142: held by " + who)
               for line in logs), logs


async def test_a_run_whose_lease_is_taken_over_stops_failed(slot: Leases, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEASE_SECONDS_ENV, "1")  # renewed every third of a second
    name = slot_name(PIPELINE, KEY)
    running = asyncio.create_task(hold_slot(seconds=600, return_state=True))
    for _ in range(1200):
        held = slot.holder(name)
        if held is not None:
            break
        await asyncio.sleep(0.1)
    assert held is not None, "the run never took the slot"
    # What another run does when this one's lease lapsed (its machine slept, say).
    assert slot.take_over(name, held.holder, Holder("thief", "betyg-to-beda · the other run"), 10 * MINUTE)

    state = await asyncio.wait_for(running, timeout=120)

    assert state.is_failed()
    assert "SlotLost" in state.message and "taken over by flow run 'betyg-to-beda · the other run'" in state.message
    still = slot.holder(name)
    assert still is not None and still.flow_run_id == "thief"  # the loser does not release what is not its own
