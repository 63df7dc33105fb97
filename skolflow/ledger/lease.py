"""Leases in the ledger database: one holder per name, for as long as the holder keeps renewing.

The ledger database is where a lease belongs because it is the one thing every run that could get in
another's way already shares: the watermark and the unsettled records that make a run safe to resume are
there, it outlives any process and any Prefect server (Prefect 3.8 keeps its own concurrency leases in
the server's memory, lost with an embedded server at the end of each CLI run and with any server on
restart), and it is on PostgreSQL wherever runs are spread over workers.

Every change is one conditional statement, so two processes can never both hold a name: acquiring is an
insert (the name is the primary key) or an update of an expired row, taking over from a holder known to be
dead is an update that names that holder's token, and renewing and releasing name the holder's own token.
Times come from each host's clock in UTC: hosts that share a ledger keep time (NTP), and their skew is
small against a lease that lasts a minute or more.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Delete, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from skolflow.ledger.models import Lease, utcnow
from skolflow.ledger.store import Ledger


@dataclass(frozen=True)
class Holder:
    """Who asks for a lease: enough for a waiting run to say who holds it, and a token only it knows."""

    flow_run_id: str = ""
    flow_run_name: str = ""
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


class Leases:
    def __init__(self, ledger: Ledger):
        self.engine = ledger.engine

    def acquire(self, name: str, holder: Holder, ttl: dt.timedelta, *, now: dt.datetime | None = None) -> bool:
        """Take ``name`` if nobody holds it or its holder let it expire; False while a holder keeps it."""
        at = now or utcnow()
        try:
            with Session(self.engine) as session:
                session.add(Lease(name=name, holder=holder.token, flow_run_id=holder.flow_run_id,
                                  flow_run_name=holder.flow_run_name, host=holder.host, pid=holder.pid,
                                  acquired_at=at, renewed_at=at, expires_at=at + ttl))
                session.commit()
            return True
        except IntegrityError:
            return self._replace(name, holder, ttl, at, Lease.expires_at <= at)

    def take_over(self, name: str, dead: str, holder: Holder, ttl: dt.timedelta, *,
                  now: dt.datetime | None = None) -> bool:
        """Take ``name`` from the holder whose token is ``dead`` (its run is known to have ended), expired or not.

        False when the lease has moved on since it was read: someone else took it over first.
        """
        return self._replace(name, holder, ttl, now or utcnow(), Lease.holder == dead)

    def renew(self, name: str, token: str, ttl: dt.timedelta, *, now: dt.datetime | None = None) -> dt.datetime | None:
        """Extend the holder's lease; its new expiry, or None when the lease is no longer the holder's."""
        at = now or utcnow()
        with Session(self.engine) as session:
            result = session.exec(update(Lease).where(Lease.name == name, Lease.holder == token)
                                  .values(renewed_at=at, expires_at=at + ttl))
            session.commit()
        return at + ttl if result.rowcount == 1 else None

    def release(self, name: str, token: str) -> bool:
        """Give the lease up; False when it was no longer the holder's (taken over after it expired)."""
        return self._delete(delete(Lease).where(Lease.name == name, Lease.holder == token))

    def free(self, name: str) -> bool:
        """Remove a lease whoever holds it: for an administrator who knows its run is gone (README § Operations)."""
        return self._delete(delete(Lease).where(Lease.name == name))

    def holder(self, name: str) -> Lease | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(Lease, name)

    def every(self) -> list[Lease]:
        """Every lease held now (or left to expire), by name: what an administrator lists before freeing one."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(select(Lease).order_by(Lease.name)))

    def _replace(self, name: str, holder: Holder, ttl: dt.timedelta, at: dt.datetime,
                 condition: ColumnElement[bool]) -> bool:
        with Session(self.engine) as session:
            result = session.exec(update(Lease).where(Lease.name == name, condition)
                                  .values(holder=holder.token, flow_run_id=holder.flow_run_id,
                                          flow_run_name=holder.flow_run_name, host=holder.host, pid=holder.pid,
                                          acquired_at=at, renewed_at=at, expires_at=at + ttl))
            session.commit()
        return result.rowcount == 1

    def _delete(self, statement: Delete) -> bool:
        with Session(self.engine) as session:
            result = session.exec(statement)
            session.commit()
        return result.rowcount == 1
