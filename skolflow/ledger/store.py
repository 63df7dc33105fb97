"""Reading and writing the ledger. One :class:`Ledger` per process; sessions are short-lived."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Engine, event, func
from sqlmodel import Session, SQLModel, create_engine, select

from skolflow.ledger.models import ApiCall, Outcome, RecordOutcome, Run, SentState, Watermark, utcnow


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

    def runs(self, pipeline: str, limit: int = 20) -> list[Run]:
        with _session(self.engine) as session:
            query = select(Run).where(Run.pipeline == pipeline).order_by(Run.started_at.desc()).limit(limit)
            return list(session.exec(query))

    # outcomes -------------------------------------------------------------------------------------
    def record(self, outcomes: Sequence[RecordOutcome]) -> None:
        with _session(self.engine) as session:
            session.add_all(outcomes)
            session.commit()

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
        """Store what the target now holds: record_key → (content hash, content)."""
        with _session(self.engine) as session:
            existing = {row.record_key: row for chunk in _chunks(list(accepted), 500)
                        for row in session.exec(select(SentState).where(
                            SentState.pipeline == pipeline, SentState.scope == scope,
                            SentState.record_key.in_(chunk)))}
            for key, (content_hash, content) in accepted.items():
                row = existing.get(key) or SentState(pipeline=pipeline, scope=scope, record_key=key,
                                                     content_hash=content_hash, run_id=run_id)
                row.content_hash, row.content, row.run_id, row.accepted_at = content_hash, content, run_id, utcnow()
                session.add(row)
            session.commit()

    def held(self, pipeline: str, scope: str) -> dict[str, SentState]:
        """Everything the target holds from this scope, as last accepted: the base for deletions."""
        with _session(self.engine) as session:
            query = select(SentState).where(SentState.pipeline == pipeline, SentState.scope == scope)
            return {row.record_key: row for row in session.exec(query)}

    def forget(self, pipeline: str, scope: str, keys: Iterable[str]) -> None:
        """The target no longer holds these (deleted): the next diff treats them as new."""
        with _session(self.engine) as session:
            for chunk in _chunks(list(keys), 500):
                for row in session.exec(select(SentState).where(
                        SentState.pipeline == pipeline, SentState.scope == scope, SentState.record_key.in_(chunk))):
                    session.delete(row)
            session.commit()

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


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
