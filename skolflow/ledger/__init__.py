"""The run ledger: what was sent, when, in which run, with which content hash and outcome.

It belongs to the municipality (SQLite file by default, PostgreSQL by URL), so unlike Prefect it may
hold personal data: it is what makes runs idempotent and resumable, and it is the history admins ask for.
"""

from skolflow.ledger.models import ApiCall, Outcome, RecordOutcome, Run, SentState, Waiting, Watermark
from skolflow.ledger.store import Ledger

__all__ = ["ApiCall", "Ledger", "Outcome", "RecordOutcome", "Run", "SentState", "Waiting", "Watermark"]
