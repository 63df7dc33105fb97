"""A flow's work as one ledger run: it ends 'completed' or 'failed' with its summary, or with the masked error."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from prefect import get_run_logger
from prefect.states import State

from skolflow.errors import sanitise
from skolflow.ledger import Ledger


async def recorded(ledger: Ledger, run_id: str, work: Awaitable[tuple[State, dict[str, Any]]]) -> State:
    """Await ``work`` (the run's final state and summary); a failed run's reason is logged as an error."""
    try:
        state, summary = await work
    except BaseException as exc:
        ledger.finish_run(run_id, "failed", {"error": str(sanitise(exc))[:1000]})
        raise
    ledger.finish_run(run_id, "failed" if state.is_failed() else "completed", summary)
    logger = get_run_logger()
    (logger.error if state.is_failed() else logger.info)("%s", state.message)
    return state
