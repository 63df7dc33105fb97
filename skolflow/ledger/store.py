"""Reading and writing the ledger. One :class:`Ledger` per process; sessions are short-lived."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Engine, Table, delete, event, func, insert, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, create_engine, select

from skolflow.ledger.models import ApiCall, Outcome, RecordOutcome, Run, SentState, Waiting, Watermark, utcnow

# A RecordOutcome's columns by name: the form in which a pipeline records outcomes in bulk. Building a
# RecordOutcome per record (pydantic validation, SQLAlchemy instrumentation) and flushing it through the ORM
# cost more than everything else a batch does; a plain mapping costs a dict.
OutcomeRow = Mapping[str, Any]

_OUTCOMES: Table = RecordOutcome.__table__  # type: ignore[attr-defined]
_SENT_STATE: Table = SentState.__table__  # type: ignore[attr-defined]
_OUTCOME_DEFAULTS: dict[str, Any] = {"scope": "", "source_key": "", "unit": "", "content_hash": "", "errors": [],
                                     "request_body": None, "response_body": None}


def _session(engine: Engine) -> Session:
    # Rows are read after the session closes (history, diffs): keep their loaded values.
    return Session(engine, expire_on_commit=False)


def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


class Ledger:
    _shared: ClassVar[dict[str, Ledger]] = {}

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)
        SQLModel.metadata.create_all(self.engine)

    @classmethod
    def shared(cls, url: str) -> Ledger:
        """One ledger (one connection pool) per database per process, shared by every task."""
        if url not in cls._shared:
            cls._shared[url] = cls(url)
        return cls._shared[url]

    # runs -----------------------------------------------------------------------------------------
    def start_run(self, pipeline: str, scope: str, *, parameters: dict[str, Any], dry_run: bool,
                  flow_run_id: str | None = None) -> str:
        run_id = str(uuid.uuid4())
        with _session(self.engine) as session:
            session.add(Run(id=run_id, pipeline=pipeline, scope=scope, parameters=parameters, dry_run=dry_run,
                            flow_run_id=flow_run_id))
            session.commit()
        return run_id

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        with _session(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                raise KeyError(run_id)
            run.status, run.summary, run.finished_at = status, summary, utcnow()
            session.add(run)
            session.commit()

    def crash_abandoned(self, pipeline: str, scope: str, reason: str) -> list[Run]:
        """Mark the scope's runs still 'running' as 'crashed', and return them.

        Called by a run that has just taken the scope's lease: one at a time means any other run still
        'running' died without finishing (kill -9, an evicted pod), and nothing else would ever say so.
        """
        with _session(self.engine) as session:
            runs = list(session.exec(select(Run).where(Run.pipeline == pipeline, Run.scope == scope,
                                                       Run.status == "running")))
            for run in runs:
                run.status, run.finished_at = "crashed", utcnow()
                run.summary = {**(run.summary or {}), "error": reason}
                session.add(run)
            session.commit()
        return runs

    def runs(self, pipeline: str, limit: int = 20) -> list[Run]:
        with _session(self.engine) as session:
            query = select(Run).where(Run.pipeline == pipeline).order_by(Run.started_at.desc()).limit(limit)
            return list(session.exec(query))

    # outcomes -------------------------------------------------------------------------------------
    def record(self, outcomes: Iterable[RecordOutcome | OutcomeRow]) -> None:
        """Store outcomes in one transaction with one multi-row INSERT (executemany), on SQLite and PostgreSQL alike.

        Each is a RecordOutcome or a mapping of its columns (:data:`OutcomeRow`, the cheap form for bulk):
        columns left out take the model's defaults, ``recorded_at`` the time of this call.
        """
        now = utcnow()
        rows = [{**_OUTCOME_DEFAULTS, "recorded_at": now,
                 **(_columns(o) if isinstance(o, RecordOutcome) else o)} for o in outcomes]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(_OUTCOMES), rows)

    def outcomes(self, pipeline: str, *, run_id: str | None = None, record_key: str | None = None,
                 limit: int = 1000) -> list[RecordOutcome]:
        query = select(RecordOutcome).where(RecordOutcome.pipeline == pipeline)
        if run_id:
            query = query.where(RecordOutcome.run_id == run_id)
        if record_key:
            query = query.where(RecordOutcome.record_key == record_key)
        query = query.order_by(RecordOutcome.recorded_at.desc(), RecordOutcome.id.desc()).limit(limit)
        with _session(self.engine) as session:
            return list(session.exec(query))

    def unsettled(self, pipeline: str, scope: str, keys: Iterable[str]) -> dict[str, str]:
        """Records whose latest outcome is 'pending' or 'failed': the target may or may not hold them.

        A run died between sending and hearing back, or never heard back. Returns record_key → the
        content hash that was being sent, so the next run can ask the target before sending again.
        """
        result: dict[str, str] = {}
        with _session(self.engine) as session:
            for chunk in _chunks(list(keys), 500):
                latest = (select(func.max(RecordOutcome.id))
                          .where(RecordOutcome.pipeline == pipeline, RecordOutcome.scope == scope,
                                 RecordOutcome.record_key.in_(chunk))
                          .group_by(RecordOutcome.record_key))
                query = select(RecordOutcome).where(RecordOutcome.id.in_(latest),
                                                    RecordOutcome.outcome.in_([Outcome.PENDING, Outcome.FAILED]))
                result.update({row.record_key: row.content_hash for row in session.exec(query)})
        return result

    # calls ----------------------------------------------------------------------------------------
    def record_call(self, call: ApiCall) -> None:
        with _session(self.engine) as session:
            session.add(call)
            session.commit()

    def calls(self, run_id: str, step: str | None = None) -> list[ApiCall]:
        query = select(ApiCall).where(ApiCall.run_id == run_id)
        if step:
            query = query.where(ApiCall.step == step)
        with _session(self.engine) as session:
            return list(session.exec(query.order_by(ApiCall.id)))

    # sent state -----------------------------------------------------------------------------------
    def sent_state(self, pipeline: str, scope: str, keys: Iterable[str]) -> dict[str, SentState]:
        result: dict[str, SentState] = {}
        with _session(self.engine) as session:
            for chunk in _chunks(list(keys), 500):
                query = select(SentState).where(SentState.pipeline == pipeline, SentState.scope == scope,
                                                SentState.record_key.in_(chunk))
                for row in session.exec(query):
                    result[row.record_key] = row
        return result

    def accept(self, pipeline: str, scope: str, run_id: str, accepted: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Store what the target now holds: record_key → (content hash, content).

        One upsert (INSERT … ON CONFLICT (pipeline, scope, record_key) DO UPDATE, executemany) in one
        transaction, rather than reading each row into the ORM to change it.
        """
        if not accepted:
            return
        now = utcnow()
        rows = [{"pipeline": pipeline, "scope": scope, "record_key": key, "content_hash": content_hash,
                 "content": content, "run_id": run_id, "accepted_at": now}
                for key, (content_hash, content) in accepted.items()]
        statement = self._upsert(_SENT_STATE)
        statement = statement.on_conflict_do_update(
            index_elements=["pipeline", "scope", "record_key"],
            set_={name: statement.excluded[name] for name in ("content_hash", "content", "run_id", "accepted_at")})
        with self.engine.begin() as connection:
            connection.execute(statement, rows)

    def _upsert(self, table: Table) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_update`` (the ledger runs on SQLite or PostgreSQL)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    def held(self, pipeline: str, scope: str) -> dict[str, SentState]:
        """Everything the target holds from this scope, as last accepted: the base for deletions."""
        with _session(self.engine) as session:
            query = select(SentState).where(SentState.pipeline == pipeline, SentState.scope == scope)
            return {row.record_key: row for row in session.exec(query)}

    def held_keys(self, pipeline: str, scope: str) -> set[str]:
        """The keys of :meth:`held` without their content: what a count or a set difference needs, cheaply."""
        with _session(self.engine) as session:
            query = select(SentState.record_key).where(SentState.pipeline == pipeline, SentState.scope == scope)
            return set(session.exec(query))

    def forget(self, pipeline: str, scope: str, keys: Iterable[str]) -> None:
        """The target no longer holds these (deleted): the next diff treats them as new."""
        with _session(self.engine) as session:
            for chunk in _chunks(list(keys), 500):
                for row in session.exec(select(SentState).where(
                        SentState.pipeline == pipeline, SentState.scope == scope, SentState.record_key.in_(chunk))):
                    session.delete(row)
            session.commit()

    # waiting records ------------------------------------------------------------------------------
    def waiting(self, pipeline: str, scope: str | None = None, *, dismissed: bool = False) -> list[Waiting]:
        """The records waiting in a scope (every scope when None), oldest first, in one query; or the dismissed ones."""
        dismissal = Waiting.dismissed_at.is_not(None) if dismissed else Waiting.dismissed_at.is_(None)
        query = select(Waiting).where(Waiting.pipeline == pipeline, dismissal)
        if scope is not None:
            query = query.where(Waiting.scope == scope)
        with _session(self.engine) as session:
            return list(session.exec(query.order_by(Waiting.first_seen, Waiting.id)))

    def wait(self, pipeline: str, scope: str, run_id: str, records: Sequence[Waiting], *,
             resent: Collection[str] = ()) -> None:
        """Keep ``records`` waiting: a new one is added, one already waiting is tried once more (payload, reasons).

        A dismissed record stays dismissed unless the source sent it again in this run (its key in ``resent``):
        the dismissal was about the record as it stood, and a new version of it is a new question. One
        transaction, so a run killed half-way leaves each row as it was or as it is now, never half of it.
        """
        now = utcnow()
        by_key = {r.record_key: r for r in records}
        with _session(self.engine) as session:
            existing = {row.record_key: row for chunk in _chunks(list(by_key), 500)
                        for row in session.exec(select(Waiting).where(
                            Waiting.pipeline == pipeline, Waiting.scope == scope, Waiting.record_key.in_(chunk)))}
            for key, new in by_key.items():
                row = existing.get(key)
                if row is None:
                    session.add(Waiting(pipeline=pipeline, scope=scope, record_key=key, personnummer=new.personnummer,
                                        unit=new.unit, payload=new.payload, errors=new.errors, first_seen=now,
                                        last_tried=now, first_run_id=run_id, last_run_id=run_id))
                    continue
                if row.dismissed_at is not None:
                    if key not in resent:
                        continue
                    row.dismissed_at, row.dismissed_by, row.dismissed_reason = None, "", ""
                    row.first_seen, row.first_run_id, row.tries = now, run_id, 0
                row.personnummer, row.unit, row.errors = new.personnummer, new.unit, new.errors
                row.payload = new.payload
                row.last_tried, row.last_run_id, row.tries = now, run_id, row.tries + 1
                session.add(row)
            session.commit()

    def release(self, pipeline: str, scope: str, keys: Iterable[str]) -> None:
        """These records got a final answer (accepted, unchanged, or refused for themselves): they wait no more."""
        with _session(self.engine) as session:
            for chunk in _chunks(list(keys), 500):
                session.execute(delete(Waiting).where(Waiting.pipeline == pipeline, Waiting.scope == scope,
                                                      Waiting.record_key.in_(chunk)))
            session.commit()

    def dismiss(self, pipeline: str, key: str, *, by: str, reason: str, scope: str | None = None) -> list[Waiting]:
        """An administrator gives up on a waiting record (by its key or personnummer); the dismissed rows.

        Later runs no longer try it; the row stays, saying who dismissed it, when and why, until the source
        sends the record again.
        """
        query = select(Waiting).where(Waiting.pipeline == pipeline, Waiting.dismissed_at.is_(None),
                                      or_(Waiting.record_key == key, Waiting.personnummer == key))
        if scope is not None:
            query = query.where(Waiting.scope == scope)
        with _session(self.engine) as session:
            rows = list(session.exec(query))
            for row in rows:
                row.dismissed_at, row.dismissed_by, row.dismissed_reason = utcnow(), by, reason
                session.add(row)
            session.commit()
        return rows

    # watermarks -----------------------------------------------------------------------------------
    def watermark(self, pipeline: str, scope: str) -> dt.datetime | None:
        with _session(self.engine) as session:
            row = session.exec(select(Watermark).where(Watermark.pipeline == pipeline,
                                                       Watermark.scope == scope)).first()
            return row.value if row else None

    def set_watermark(self, pipeline: str, scope: str, value: dt.datetime, run_id: str) -> None:
        with _session(self.engine) as session:
            row = session.exec(select(Watermark).where(Watermark.pipeline == pipeline,
                                                       Watermark.scope == scope)).first()
            row = row or Watermark(pipeline=pipeline, scope=scope, value=value, run_id=run_id)
            row.value, row.run_id, row.updated_at = value, run_id, utcnow()
            session.add(row)
            session.commit()


def _columns(outcome: RecordOutcome) -> dict[str, Any]:
    """An outcome built as a model, as the mapping of its columns (the id is the database's to give)."""
    return {column.name: getattr(outcome, column.name) for column in _OUTCOMES.columns if column.name != "id"}


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
