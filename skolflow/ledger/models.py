"""Ledger tables."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Outcome(StrEnum):
    PENDING = "pending"  # about to be sent: if a run dies here, the next run asks the target what it holds
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # by the target, or by skolflow's own checks before sending
    UNCHANGED = "unchanged"  # same content as last accepted: not sent
    FAILED = "failed"  # transient failure that outlived the retries: will be sent again
    PLANNED = "planned"  # dry run: built and validated, not sent
    DELETED = "deleted"  # removed from the target because the source no longer holds it
    RECEIVED = "received"  # fetched from the remote system (results, assignments), not sent
    # Refused for something outside the record (identity join, unknown reference, unreachable source): kept in
    # skolflow_waiting and tried again by every later run until accepted or dismissed.
    WAITING = "waiting"


class Run(SQLModel, table=True):
    __tablename__ = "skolflow_run"

    id: str = Field(primary_key=True)
    pipeline: str = Field(index=True)
    scope: str = Field(default="", index=True)  # e.g. the anslutningspart or huvudman
    flow_run_id: str | None = None
    started_at: dt.datetime = Field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    status: str = "running"  # then completed or failed; crashed when it died and a later run found it so
    dry_run: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class RecordOutcome(SQLModel, table=True):
    __tablename__ = "skolflow_record_outcome"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, foreign_key="skolflow_run.id")
    pipeline: str = Field(index=True)
    scope: str = Field(default="", index=True)
    record_key: str = Field(index=True)  # the target's key, e.g. personnummer: kept here, masked when shown
    source_key: str = ""  # the source's key, e.g. the platform GUID
    unit: str = ""  # school unit code or similar, for selection in history
    content_hash: str = ""
    outcome: str = Field(index=True)
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    request_body: str | None = Field(default=None, sa_column=Column(Text))
    response_body: str | None = Field(default=None, sa_column=Column(Text))
    recorded_at: dt.datetime = Field(default_factory=utcnow)


class ApiCall(SQLModel, table=True):
    """One call to a target, with both bodies as sent and received (masked only when shown)."""

    __tablename__ = "skolflow_api_call"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, foreign_key="skolflow_run.id")
    pipeline: str = Field(index=True)
    step: str = ""  # e.g. "persons" for DNP's users step
    method: str
    path: str
    status_code: int | None = None
    reference: str = ""  # the target's id for the call, e.g. DNP's jobId
    request_body: str | None = Field(default=None, sa_column=Column(Text))
    response_body: str | None = Field(default=None, sa_column=Column(Text))
    at: dt.datetime = Field(default_factory=utcnow)


class SentState(SQLModel, table=True):
    """What the target holds per record, as last accepted: the base of the diff."""

    __tablename__ = "skolflow_sent_state"
    __table_args__ = (UniqueConstraint("pipeline", "scope", "record_key"),)

    id: int | None = Field(default=None, primary_key=True)
    pipeline: str = Field(index=True)
    scope: str = Field(index=True)
    record_key: str = Field(index=True)
    content_hash: str
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    run_id: str
    accepted_at: dt.datetime = Field(default_factory=utcnow)


class Waiting(SQLModel, table=True):
    """A record refused for something outside itself, kept with its input until it is accepted or dismissed.

    A source such as the Betyg API sends a record only in the window in which it changed: a student refused
    because SS 12000 did not know them yet would never be sent again, and the watermark would move past them.
    Keeping what the source sent (``payload``, in the source's own format, so that it is read with the same
    codec after any upgrade of skolflow) lets every later run try the record again without ``--from``.
    A dismissal keeps the row (who, when, why) until the source sends the record again.
    """

    __tablename__ = "skolflow_waiting"
    __table_args__ = (UniqueConstraint("pipeline", "scope", "record_key"),)

    id: int | None = Field(default=None, primary_key=True)
    pipeline: str = Field(index=True)
    scope: str = Field(index=True)
    record_key: str = Field(index=True)  # the source's key, e.g. the platform GUID as SS 12000 writes it
    personnummer: str = Field(default="", index=True)  # when the join found one: kept here, masked when shown
    unit: str = ""
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))  # the latest try's reasons
    first_seen: dt.datetime = Field(default_factory=utcnow)
    last_tried: dt.datetime = Field(default_factory=utcnow)
    tries: int = 1
    first_run_id: str = ""
    last_run_id: str = ""
    dismissed_at: dt.datetime | None = None
    dismissed_by: str = ""
    dismissed_reason: str = ""


class Watermark(SQLModel, table=True):
    __tablename__ = "skolflow_watermark"
    __table_args__ = (UniqueConstraint("pipeline", "scope"),)

    id: int | None = Field(default=None, primary_key=True)
    pipeline: str
    scope: str
    value: dt.datetime
    run_id: str
    updated_at: dt.datetime = Field(default_factory=utcnow)


class Lease(SQLModel, table=True):
    """A pipeline's slot for one key (``skolflow-<pipeline>-<key>``): who holds it, and until when unless renewed.

    Only the holder (by its token, new for every acquisition) renews or releases it; anyone may take it
    over once it has expired. See :mod:`skolflow.ledger.lease`.
    """

    __tablename__ = "skolflow_lease"

    name: str = Field(primary_key=True)
    holder: str
    flow_run_id: str = ""
    flow_run_name: str = ""
    host: str = ""
    pid: int = 0
    acquired_at: dt.datetime
    renewed_at: dt.datetime
    expires_at: dt.datetime
