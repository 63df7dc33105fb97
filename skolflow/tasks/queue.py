"""One run at a time per key (a huvudman, an anslutningspart), and a run that died never blocks the next.

The slot ``skolflow-<pipeline>-<key>`` is a lease in the ledger database (:mod:`skolflow.ledger.lease`),
not a Prefect global concurrency limit: Prefect 3.8 keeps the leases behind its limits in the server's
memory, so a run killed under the embedded server (or under a server that restarted) held its slot for
ever. A lease lapses by itself unless its run renews it, which a live run does every third of its time
(``SKOLFLOW_LEASE_SECONDS``, default 90) from a thread of its own, so that a long stretch of synchronous
work on the flow's event loop cannot let it lapse. A waiting run takes the slot when the lease lapses, or
at once when the holder's Prefect flow run has already ended (a worker marks a killed run Crashed). It
does not take it on the holder's Prefect state alone otherwise: a killed run stays "Running" there.

The run that takes the slot marks what the dead one left: its ledger runs 'crashed' (and its Prefect flow
run and unfinished subflows Crashed), its work directory deleted. What it had settled stays settled;
what was in flight is reconciled with the target by the pipeline (Beda: unsettled students are asked
for, DNP: records are resent with updateIfExists).

A run that finds its lease taken (it could not renew in time, e.g. the machine slept) stops with a
Failed state rather than run alongside the one that took over; a run that waits longer than
``SKOLFLOW_SLOT_WAIT_SECONDS`` (default 3600) gives up, Failed, naming the holder.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from prefect import get_client, get_run_logger
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.sorting import FlowRunSort
from prefect.runtime import flow_run
from prefect.states import Crashed
from sqlalchemy.exc import SQLAlchemyError

from skolflow.errors import SafeError
from skolflow.ledger import Ledger
from skolflow.ledger.lease import Holder, Leases
from skolflow.ledger.models import Lease, utcnow
from skolflow.settings import Settings
from skolflow.tasks.artifacts import artifact_key

LEASE_SECONDS_ENV = "SKOLFLOW_LEASE_SECONDS"
WAIT_SECONDS_ENV = "SKOLFLOW_SLOT_WAIT_SECONDS"
POLL_SECONDS = 1.0  # one primary-key read a second while waiting
LOG_EVERY_SECONDS = 30.0  # a waiting run says who holds the slot when it starts waiting, then this often


class SlotTimeout(SafeError):
    """The run waited its configured time for the slot and gave up; the message names the holder."""


class SlotLost(SafeError):
    """The run's lease was taken over while it ran: it stopped rather than run alongside the new holder."""


class SlotSettingsError(SafeError, ValueError):
    """A slot setting in the environment is not a number of seconds the slot can use."""


def _seconds(variable: str, default: float, least: float) -> dt.timedelta:
    text = os.environ.get(variable) or str(default)
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= least:
        raise SlotSettingsError(f"{variable} must be a number of seconds, at least {least:g}, not {text!r}")
    return dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class SlotSettings:
    lease: dt.timedelta  # how long a lease lasts unless renewed: how long a dead run can keep the next waiting
    wait: dt.timedelta  # how long a run waits for a live holder before it gives up

    @classmethod
    def from_env(cls) -> SlotSettings:
        return cls(_seconds(LEASE_SECONDS_ENV, 90, 1), _seconds(WAIT_SECONDS_ENV, 3600, 0))


def slot_name(pipeline: str, key: str) -> str:
    return artifact_key("skolflow", pipeline, key)


def _utc(at: dt.datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def held_by(lease: Lease) -> str:
    """Who holds a lease and since when, for logs and state messages (a run name holds no personnummer)."""
    run = f"flow run '{lease.flow_run_name}' ({lease.flow_run_id})" if lease.flow_run_id else "a run outside Prefect"
    return f"{run} on host {lease.host}, pid {lease.pid}, since {_utc(lease.acquired_at)}"


async def _ended_in_prefect(flow_run_id: str) -> str | None:
    """The holder's final Prefect state name if its flow run has ended, else None (also when Prefect cannot say)."""
    if not flow_run_id:
        return None
    try:
        async with get_client() as client:
            state = (await client.read_flow_run(flow_run_id)).state
    except Exception:  # unknown to this server, or the server unreachable: the lease's expiry decides
        return None
    return state.name if state is not None and state.is_final() else None


async def _acquire(leases: Leases, name: str, me: Holder, slot: SlotSettings) -> Lease | None:
    """Wait for the slot; the lease of the dead run it was taken from, if any."""
    logger = get_run_logger()
    started = time.monotonic()
    said = -LOG_EVERY_SECONDS
    while True:
        current = leases.holder(name)
        if current is None:
            if leases.acquire(name, me, slot.lease):
                return None
            continue
        now = utcnow()
        if current.expires_at <= now:
            if leases.acquire(name, me, slot.lease, now=now):
                return current
            continue
        ended = await _ended_in_prefect(current.flow_run_id)
        if ended and leases.take_over(name, current.holder, me, slot.lease):
            logger.info("the holder of %s, %s, ended %s in Prefect without releasing it: taking the slot over",
                        name, held_by(current), ended)
            return current
        waited = time.monotonic() - started
        if waited >= slot.wait.total_seconds():
            raise SlotTimeout(f"gave up after waiting {waited:.0f} s ({WAIT_SECONDS_ENV}) for {name}: held by "
                              f"{held_by(current)}, lease renewed until {_utc(current.expires_at)}. A run that "
                              "died lets its lease lapse by itself; this one is still renewing it")
        if waited - said >= LOG_EVERY_SECONDS:
            said = waited
            logger.warning("waiting for %s: held by %s; its lease runs until %s unless renewed (a run that died "
                           "lets it lapse). Giving up after %.0f s (%s)", name, held_by(current),
                           _utc(current.expires_at), slot.wait.total_seconds(), WAIT_SECONDS_ENV)
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, slot.wait.total_seconds() - waited)))


async def _crash_in_prefect(flow_run_ids: Iterable[str], reason: str) -> None:
    """Mark dead runs (and their unfinished subflows, e.g. DNP's steps) Crashed in Prefect, where it knows them."""
    logger = get_run_logger()
    for flow_run_id in flow_run_ids:
        try:
            async with get_client() as client:
                children = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
                    sort=FlowRunSort.START_TIME_ASC, limit=200)  # Prefect 3.8's server refuses either left unset
                for run in [await client.read_flow_run(flow_run_id), *children]:
                    if run.state is None or not run.state.is_final():
                        await client.set_flow_run_state(run.id, Crashed(message=reason), force=True)
        except Exception as exc:  # another server's run, or the server unreachable: the ledger still says it
            logger.warning("could not mark flow run %s Crashed in Prefect (%s)", flow_run_id, type(exc).__name__)


class _Renewal(threading.Thread):
    """Renews the lease every third of its time; when it is lost, cancels the run's task with the reason."""

    def __init__(self, leases: Leases, name: str, token: str, ttl: dt.timedelta) -> None:
        super().__init__(name=f"lease-{name}", daemon=True)
        self.leases, self.lease_name, self.token, self.ttl = leases, name, token, ttl
        self.expires_at = utcnow() + ttl  # the lease's own, give or take the moment since it was acquired
        self.task = asyncio.current_task()
        self.loop = asyncio.get_running_loop()
        self.stopped = threading.Event()
        self.active = True  # read and written on the loop only: once the body has left, nothing is cancelled
        self.lost: str | None = None

    def run(self) -> None:
        interval = self.ttl.total_seconds() / 3
        while not self.stopped.wait(interval):
            try:
                renewed = self.leases.renew(self.lease_name, self.token, self.ttl)
            except SQLAlchemyError as exc:
                # Someone may take the slot once the lease lapses: stop a renewal before that, not after.
                if utcnow() + dt.timedelta(seconds=interval) >= self.expires_at:
                    self._lose(f"could not renew the lease on {self.lease_name} before it lapsed "
                               f"({type(exc).__name__}); this run stopped so that two never run at once")
                    return
                continue
            if renewed is None:
                current = self.leases.holder(self.lease_name)
                what = f"was taken over by {held_by(current)}" if current else "was freed by hand"
                self._lose(f"the lease on {self.lease_name} (renewed until {_utc(self.expires_at)}) {what}; this "
                           "run stopped so that two never run at once (the next run resumes what it left)")
                return
            self.expires_at = renewed

    def _lose(self, reason: str) -> None:
        self.lost = reason
        with suppress(RuntimeError):  # the loop has closed: the run is over anyway
            self.loop.call_soon_threadsafe(self._cancel, reason)

    def _cancel(self, reason: str) -> None:
        if self.active and self.task is not None:
            self.task.cancel(reason)

    def stop(self) -> str | None:
        """On the loop, as the body leaves: no cancel after this; why the lease was lost, if it was."""
        self.active = False
        self.stopped.set()
        self.join(timeout=30)
        if self.lost is not None and self.task is not None and self.task.cancelling():
            self.task.uncancel()
        return self.lost


async def _mark_abandoned(ledger: Ledger, settings: Settings, pipeline: str, key: str, name: str, me: Holder,
                          dead: Lease | None) -> None:
    """What a dead run left: its ledger runs crashed, its flow runs Crashed in Prefect, its downloads gone."""
    logger = get_run_logger()
    found = f"; it held {name} ({held_by(dead)}, renewed until {_utc(dead.expires_at)})" if dead else ""
    reason = f"died without finishing{found}. Marked crashed by flow run '{me.flow_run_name}' ({me.flow_run_id})"
    crashed = ledger.crash_abandoned(pipeline, key, reason)
    for run in crashed:
        logger.warning("ledger run %s (started %s) %s", run.id, _utc(run.started_at), reason)
        # Its downloads (on this machine) are personal data nobody will read again.
        shutil.rmtree(settings.data_dir / "work" / run.id, ignore_errors=True)
    ids = {run.flow_run_id or "" for run in crashed} | ({dead.flow_run_id} if dead else set())
    await _crash_in_prefect(sorted(ids - {"", me.flow_run_id}), reason)


@asynccontextmanager
async def one_at_a_time(pipeline: str, key: str) -> AsyncIterator[str]:
    """Hold the key's slot for the body, after marking what a dead holder left; yields the slot's name.

    Waits while a live run holds it (saying who, every half minute), up to ``SKOLFLOW_SLOT_WAIT_SECONDS``.
    """
    settings, slot = Settings.from_env(), SlotSettings.from_env()
    ledger = Ledger.shared(settings.database_url)
    leases = Leases(ledger)
    name = slot_name(pipeline, key)
    me = Holder(flow_run_id=str(flow_run.id or ""), flow_run_name=flow_run.name or "")
    dead = await _acquire(leases, name, me, slot)
    renewal = _Renewal(leases, name, me.token, slot.lease)
    renewal.start()  # before anything slow, so the lease cannot lapse under this run
    lost: str | None = None
    try:
        await _mark_abandoned(ledger, settings, pipeline, key, name, me, dead)
        yield name
    except BaseException:
        lost = renewal.stop()
        if lost is None:
            raise
        raise SlotLost(lost) from None
    else:
        lost = renewal.stop()
        if lost is not None:
            raise SlotLost(lost)
    finally:
        if lost is None:
            try:
                leases.release(name, me.token)
            except SQLAlchemyError as exc:
                get_run_logger().warning("could not release %s (%s): it lapses by itself within %.0f s", name,
                                         type(exc).__name__, slot.lease.total_seconds())
