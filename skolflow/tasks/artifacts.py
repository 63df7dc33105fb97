"""Artifacts admins read in the Prefect UI. Everything passed here is already masked."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)


def artifact_key(*parts: str) -> str:
    """Prefect keys allow lower-case letters, digits and dashes only."""
    text = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() and ch.isascii() else "-" for ch in text).strip("-")


class Progress:
    """A progress artifact that follows a long run.

    ``every`` (seconds) spaces the updates sent to Prefect: each is an API call and work for the server, on
    the machine the run shares with it (eleven updates cost a 10,000-student Betyg → Beda run about a
    quarter of a second), while an admin watching the UI learns nothing more from updates closer together.
    The last one (``done >= total``) is always sent, once: a run whose reading ends before its last batches
    do would otherwise send 100 % for each of them, on the run's critical path. ``clock`` is for tests.
    """

    def __init__(self, artifact_id: UUID, every: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.id = artifact_id
        self.every = every
        self.clock = clock
        self._sent = clock()
        self._shown: float | None = None

    @classmethod
    async def start(cls, description: str, every: float = 0.0,
                    clock: Callable[[], float] = time.monotonic) -> Progress:
        return cls(await acreate_progress_artifact(progress=0.0, description=description), every, clock)

    async def update(self, done: int, total: int) -> None:
        now = self.clock()
        value = min(100.0, 100.0 * done / total) if total else 100.0
        if value == self._shown or (value < 100.0 and now - self._sent < self.every):
            return
        self._sent, self._shown = now, value
        await aupdate_progress_artifact(self.id, progress=value)


async def table(key: str, rows: Sequence[dict[str, Any]], description: str) -> None:
    await acreate_table_artifact(key=key, table=list(rows) or [{"": "inga rader"}], description=description)


async def markdown(key: str, text: str, description: str) -> None:
    await acreate_markdown_artifact(key=key, markdown=text, description=description)
